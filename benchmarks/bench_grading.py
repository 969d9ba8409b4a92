"""Benchmark: wall time of ``pgm-lab grade`` on N copies of one chapter, 1 job vs 2 jobs.

Each copy is the reference notebook without outputs except its answer keys (a student who
solved everything), so every run executes the whole chapter and earns full marks, which
the benchmark checks. Grading always runs the ``smoke`` profile whatever ``profile`` says.
"ours" is 2 parallel jobs, "peer" 1 job (one submission after another).

Environment: ``PGM_LAB_BENCH_GRADING_N`` copies (default 100),
``PGM_LAB_BENCH_GRADING_KEY`` the chapter (default the grading tests' fixture chapter,
``tests/fixtures/grading/01_fixture.ipynb``, which runs in about a second, so the numbers
measure the grader's own cost: pytest, kernel start, limits and bookkeeping; a real chapter
adds its smoke run time to every copy).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KEY = ROOT / "tests" / "fixtures" / "grading" / "01_fixture.ipynb"


def _copies(key: Path, folder: Path, n: int) -> list[Path]:
    from pgm_lab.notebooks import read_notebook, strip_outputs, write_notebook

    nb = strip_outputs(read_notebook(key), keep_answer_keys=True)
    paths = []
    for i in range(n):
        p = folder / f"student{i:03d}.ipynb"
        write_notebook(nb, p)
        paths.append(p)
    return paths


def _timed_grade(key: Path, paths: list[Path], out: Path, jobs: int) -> float:
    from pgm_lab.grading import grade

    start = time.perf_counter()
    book = grade(key, paths, out, jobs=jobs, timeout=600)
    seconds = time.perf_counter() - start
    bad = [r for r in book.rows if r.total != r.max]
    if bad:
        raise RuntimeError(
            f"{len(bad)} copies of the reference lost points, e.g. {bad[0].student}: {bad[0].notes}"
        )
    return seconds


def bench(profile: str) -> list[dict]:
    n = int(os.environ.get("PGM_LAB_BENCH_GRADING_N", "100"))
    if n < 1:
        raise ValueError(f"PGM_LAB_BENCH_GRADING_N must be positive, got {n}")
    key = Path(os.environ.get("PGM_LAB_BENCH_GRADING_KEY") or DEFAULT_KEY)
    with tempfile.TemporaryDirectory(prefix="pgm-lab-bench-grading-") as tmp:
        tmp = Path(tmp)
        (tmp / "subs").mkdir()
        paths = _copies(key, tmp / "subs", n)
        one = _timed_grade(key, paths, tmp / "out1", jobs=1)
        two = _timed_grade(key, paths, tmp / "out2", jobs=2)
    what = f"grade {n} copies of {key.stem} (smoke)"
    note = f"{os.cpu_count()} CPUs; grading always uses the smoke profile"
    return [
        {
            "what": f"{what}: wall time",
            "ours": two,
            "peer": one,
            "unit": "s",
            "goal": "2 jobs well under 1 job on 2 cores",
            "peer_name": "1 job",
            "note": note,
        },
        {
            "what": f"{what}: submissions per minute",
            "ours": 60 * n / two,
            "peer": 60 * n / one,
            "unit": "1/min",
            "goal": "throughput grows with --jobs",
            "peer_name": "1 job",
            "higher_is_better": True,
            "note": note,
        },
    ]


if __name__ == "__main__":
    for row in bench(os.environ.get("PGM_LAB_PROFILE", "smoke")):
        print(row)
