"""Grading with nbval: ``pgm-lab release`` (student copies) and ``pgm-lab grade`` (gradebook).

- :mod:`.release` writes student copies: solution regions replaced by
  ``raise NotImplementedError(...)``, answer-key outputs kept, other outputs removed;
- :mod:`.grade` restores the answer keys in copies of the submissions, runs nbval on each
  under time and memory limits and turns the per-cell results into points;
- :mod:`.report` writes ``gradebook.csv`` / ``gradebook.html`` and the summary table;
- :mod:`.nbval_guard` is the pytest plugin that reports a dead kernel at once.

The conventions (exercise cells, ``answer-key`` check cells) are those of
:mod:`pgm_lab.notebooks`; the workflow is described in book/instructor_guide.md.
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .grade import Exercise, Key, Prepared, Row, RunResult, cell_reason, grade, prepare, run_nbval, score
from .release import (
    PLACEHOLDER,
    check_key,
    default_chapters,
    release,
    release_notebook,
    strip_solution_regions,
)
from .report import Gradebook

__all__ = [
    "PLACEHOLDER",
    "Exercise",
    "Gradebook",
    "Key",
    "Prepared",
    "Row",
    "RunResult",
    "add_commands",
    "cell_reason",
    "check_key",
    "check_release",
    "default_chapters",
    "grade",
    "prepare",
    "release",
    "release_notebook",
    "run_nbval",
    "score",
    "strip_solution_regions",
]


def check_release(key_path, released_path, *, timeout: float = 600, memory_mb: int = 4096) -> list[str]:
    """Run the reference and its student copy with nbval; list what breaks the contract.

    The contract: the reference passes every cell; the student copy, run as-is, fails
    every exercise check, and no cell fails except exercise cells and their checks.
    Both run at once, each under the grader's limits. Returns an empty list when both hold.
    """
    from ..notebooks import is_answer_key, is_exercise, write_notebook

    key = Key.load(key_path)

    def check(label: str, path, tmp: Path) -> list[str]:
        prep = prepare(key, path)
        if prep.problem:
            return [f"{label}: {prep.problem}"]
        work = tmp / label.replace(" ", "-")
        work.mkdir()
        nb_file = work / "notebook.ipynb"
        write_notebook(prep.nb, nb_file)
        run = run_nbval(nb_file, timeout=timeout, cell_timeout=timeout, memory_mb=memory_mb)
        if run.status == "timeout":
            return [f"{label}: ran over the {timeout:g} s limit"]
        if run.status != "ok":
            tail = (work / "pytest.log").read_text(encoding="utf-8", errors="replace").strip()[-500:]
            return [f"{label}: nbval wrote no results (exit code {run.returncode}): {tail}"]
        failing = sorted(n for n, o in run.cells.items() if o.status != "passed")
        if label == "reference":
            return [f"reference: {cell_reason(n, run.cells[n], run.cells)}" for n in failing]
        code = [c for c in prep.nb.cells if c.cell_type == "code"]
        allowed = {n for n, c in enumerate(code) if is_exercise(c) or is_answer_key(c)}
        problems = [
            f"student copy: a cell that is no exercise fails: {cell_reason(n, run.cells[n], run.cells)}"
            for n in failing
            if n not in allowed
        ]
        row = score(key, label, prep, run, timeout=timeout)
        problems += [
            f"student copy: {name} passes without a solution" for name, p in row.points.items() if p > 0
        ]
        return problems

    with tempfile.TemporaryDirectory(prefix="pgm-lab-release-check-") as tmp:
        with ThreadPoolExecutor(max_workers=2) as pool:
            ref = pool.submit(check, "reference", key_path, Path(tmp))
            stu = pool.submit(check, "student copy", released_path, Path(tmp))
            return ref.result() + stu.result()


def _release_cmd(args) -> int:
    chapters = args.chapters or default_chapters()
    written = release(chapters, args.out)
    failed = False
    for src, dst in zip(chapters, written):
        print(f"{src} -> {dst}")
        if args.check:
            problems = check_release(src, dst, timeout=args.timeout)
            for p in problems:
                print(f"  {p}")
            print(
                "  check: "
                + ("FAILED" if problems else "reference passes, student copy fails exactly its checks")
            )
            failed |= bool(problems)
    return 1 if failed else 0


def _grade_cmd(args) -> int:
    book = grade(
        args.key,
        args.submissions,
        args.out,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        jobs=args.jobs,
        memory_mb=args.memory,
        scratch=args.scratch,
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)),
    )
    print(book.table())
    out = Path(args.out)
    print(f"\nwrote {out / 'gradebook.csv'} and {out / 'gradebook.html'}")
    return 0


def add_commands(subparsers) -> None:
    """Add ``release`` and ``grade`` to the ``pgm-lab`` command (see :mod:`pgm_lab.cli`)."""
    p = subparsers.add_parser(
        "release",
        help="write student copies: solutions replaced by NotImplementedError, answer-key outputs kept",
    )
    p.add_argument("chapters", nargs="*", help="chapter notebooks (default: chapters/*.ipynb)")
    p.add_argument("--out", required=True, help="folder for the student copies")
    p.add_argument(
        "--check",
        action="store_true",
        help="also run reference and copy with nbval: the reference must pass, the copy fail exactly its checks",
    )
    p.add_argument("--timeout", type=float, default=600, help="limit for each --check run, seconds (600)")
    p.set_defaults(func=_release_cmd)

    p = subparsers.add_parser("grade", help="grade submissions against a chapter's answer keys with nbval")
    p.add_argument("--key", required=True, help="the reference chapter notebook (chapters/NN_topic.ipynb)")
    p.add_argument("submissions", nargs="+", help="submitted notebooks, or folders of them")
    p.add_argument("--out", required=True, help="folder for gradebook.csv, gradebook.html, graded/ and logs/")
    p.add_argument(
        "--timeout", type=float, default=600, help="wall-clock limit per submission, seconds (600)"
    )
    p.add_argument(
        "--cell-timeout",
        type=float,
        default=None,
        help="limit per cell, seconds (default: min(timeout, 300))",
    )
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (1)")
    p.add_argument(
        "--memory", type=int, default=4096, help="address-space limit per submission, MB; 0: none (4096)"
    )
    p.add_argument(
        "--scratch", default=None, help="scratch folder to use and keep (default: a temporary one)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_grade_cmd)
