"""Benchmark: ``pgm-lab grade`` on N copies of one chapter, sandboxed vs unsandboxed, 1 vs 2 jobs.

Each copy is the reference notebook without its hidden checks (a student who solved
everything), so every run executes the whole chapter and earns full marks, which the
benchmark checks. Grading always runs the ``smoke`` profile whatever ``profile`` says.
Rows: the bubblewrap sandbox ("ours") against ``--no-sandbox`` ("peer"), wall time per
submission with one job (goal: the sandbox adds at most 1 s per submission), measured in
the same run; and 2 jobs against 1 job, sandboxed.

Environment: ``PGM_LAB_BENCH_GRADING_N`` copies (default 20),
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
    from pgm_lab.notebooks import is_hidden_check, read_notebook, strip_outputs, write_notebook

    nb = strip_outputs(read_notebook(key), keep_answer_keys=True)
    nb.cells = [c for c in nb.cells if not is_hidden_check(c)]
    paths = []
    for i in range(n):
        p = folder / f"student{i:03d}.ipynb"
        write_notebook(nb, p)
        paths.append(p)
    return paths


def _timed_grade(key: Path, paths: list[Path], out: Path, jobs: int, sandbox: bool = True) -> float:
    from pgm_lab.grading import grade

    start = time.perf_counter()
    book = grade(key, paths, out, jobs=jobs, timeout=600, sandbox=sandbox)
    seconds = time.perf_counter() - start
    bad = [r for r in book.rows if r.total != r.max]
    if bad:
        raise RuntimeError(
            f"{len(bad)} copies of the reference lost points, e.g. {bad[0].student}: {bad[0].notes}"
        )
    return seconds


def bench(profile: str) -> list[dict]:
    n = int(os.environ.get("PGM_LAB_BENCH_GRADING_N", "20"))
    if n < 1:
        raise ValueError(f"PGM_LAB_BENCH_GRADING_N must be positive, got {n}")
    key = Path(os.environ.get("PGM_LAB_BENCH_GRADING_KEY") or DEFAULT_KEY)
    with tempfile.TemporaryDirectory(prefix="pgm-lab-bench-grading-") as tmp:
        tmp = Path(tmp)
        (tmp / "subs").mkdir()
        paths = _copies(key, tmp / "subs", n)
        bare = _timed_grade(key, paths, tmp / "out0", jobs=1, sandbox=False)
        one = _timed_grade(key, paths, tmp / "out1", jobs=1)
        two = _timed_grade(key, paths, tmp / "out2", jobs=2)
    what = f"grade {n} copies of {key.stem} (smoke)"
    load = os.getloadavg()[0]
    note = f"{os.cpu_count()} CPUs, load {load:.1f}; each grading run also runs the key once"
    return [
        {
            "what": f"{what}, 1 job: seconds per submission",
            "ours": one / n,
            "peer": bare / n,
            "unit": "s",
            "goal": "the sandbox adds at most 1 s per submission",
            "peer_name": "--no-sandbox",
            "note": f"{note}; sandbox cost {(one - bare) / n:+.2f} s per submission",
        },
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
