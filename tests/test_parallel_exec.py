"""The book's notebooks execute side by side before Sphinx reads them (book/_ext/parallel_exec.py)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("parallel_exec", ROOT / "book" / "_ext" / "parallel_exec.py")
pe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pe)


def test_jobs_from_env():
    assert pe.jobs_from_env(None, 2) == 2
    assert pe.jobs_from_env("", 16) == 4  # at most 4 by default
    assert pe.jobs_from_env(" 3 ", 2) == 3
    assert pe.jobs_from_env(None, 1) == 1
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="PGM_LAB_BOOK_JOBS must be a positive integer"):
            pe.jobs_from_env(bad, 2)


def test_longest_first_uses_measured_seconds_then_later_chapters():
    docs = ["chapters/01_a", "chapters/06_b", "chapters/10_c", "chapters/07_d", "book/status"]
    seconds = {"06": 300.0, "10": 200.0}
    assert pe.longest_first(docs, seconds) == [
        "chapters/06_b",
        "chapters/10_c",
        "chapters/07_d",
        "chapters/01_a",
        "book/status",
    ]
    assert pe.longest_first(docs, {})[:3] == ["chapters/10_c", "chapters/07_d", "chapters/06_b"]


def test_measured_seconds_reads_the_timings_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"chapters": [{"chapter": "06", "cold_total_s": 12.5}]}))
    assert pe.measured_seconds(path) == {"06": 12.5}
    path.write_text("not json")
    assert pe.measured_seconds(path) == {}
    assert pe.measured_seconds(tmp_path / "missing.json") == {}


CELL = """import json, os, time
start = time.time()
time.sleep(4)
with open({log!r}, "a") as f:
    f.write(json.dumps([{name!r}, start, time.time(), os.environ.get("PGM_LAB_THREADS")]) + "\\n")
"""


@pytest.mark.slow
def test_two_chapters_run_side_by_side_once_and_are_read_from_the_cache(tmp_path, monkeypatch):
    from test_exec_guard import _build, _make_book, _notebook

    log = tmp_path / "runs.jsonl"
    book = _make_book(tmp_path, CELL.format(log=str(log), name="one"))
    (book / "two.ipynb").write_text(json.dumps(_notebook(CELL.format(log=str(log), name="two"))))
    toc = "format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n  - file: two\n"
    (book / "_toc.yml").write_text(toc)
    monkeypatch.setenv("PGM_LAB_BOOK_JOBS", "2")
    monkeypatch.delenv("PGM_LAB_THREADS", raising=False)
    result = _build(book)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r[0] for r in runs) == ["one", "two"]  # once each: the read phase used the cache
    (_, s1, e1, t1), (_, s2, e2, t2) = runs
    assert max(s1, s2) < min(e1, e2), f"the two chapters ran one after the other: {runs}"
    assert t1 == t2 == str(max(1, (os.cpu_count() or 1) // 2))
    for name in ("chapter", "two"):
        assert (book / "out" / "_build" / "html" / f"{name}.html").exists()
    out = result.stdout + result.stderr
    assert out.count("Using cached notebook") == 2, out[-3000:]
