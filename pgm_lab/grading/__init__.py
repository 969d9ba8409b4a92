"""Grading with nbval: ``pgm-lab release`` (student copies) and ``pgm-lab grade`` (gradebook).

One module per concern:

- :mod:`.release`: student copies (solutions out, hidden checks out, public checks kept)
  and the static check that a copy leaks nothing;
- :mod:`.key`: reading and validating the key (exercises, public and hidden checks);
- :mod:`.prepare`: the notebook that is run for a submission (checks restored, hidden
  checks inserted);
- :mod:`.sandbox` (+ :mod:`._jail`): the bubblewrap sandbox the kernels run in;
- :mod:`.nbval_run`: running nbval and reading its per-cell results;
- :mod:`.hidden`, :mod:`.tamper`: the kernel side of hidden checks and tamper findings;
- :mod:`.verdict`, :mod:`.scoring`: comparing emitted values with the key's, points;
- :mod:`.grade`: a grading run; :mod:`.report`: the gradebook files;
  :mod:`.selftest`: trying a chapter's hidden checks while writing them.

The conventions are those of :mod:`pgm_lab.notebooks` and CONTRIBUTING.md; the workflow
and the threat table are in book/instructor_guide.md.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from .grade import KeyRunError, grade
from .key import Exercise, HiddenCheck, Key
from .nbval_run import RunResult, cell_reason, run_nbval
from .prepare import Prepared, prepare
from .release import (
    PLACEHOLDER,
    check_key,
    default_chapters,
    release,
    release_notebook,
    release_problems,
    strip_solution_regions,
)
from .report import Gradebook
from .sandbox import SandboxError
from .scoring import Row, score

__all__ = [
    "PLACEHOLDER",
    "Exercise",
    "Gradebook",
    "HiddenCheck",
    "Key",
    "KeyRunError",
    "Prepared",
    "Row",
    "RunResult",
    "SandboxError",
    "add_commands",
    "cell_reason",
    "check_key",
    "check_release",
    "default_chapters",
    "grade",
    "prepare",
    "release",
    "release_notebook",
    "release_problems",
    "run_nbval",
    "score",
    "strip_solution_regions",
]


def check_release(
    key_path, released_path, *, timeout: float = 600, memory_mb: int = 4096, sandbox: bool = True
) -> list[str]:
    """What breaks the release contract for one chapter; an empty list when it holds.

    The contract: the student copy holds no hidden check, no solution and no stored value
    but the public checks' (:func:`.release.release_problems`); graded against the key, the
    reference (solutions in, hidden checks out) earns full marks and the student copy,
    as released, earns nothing.
    """
    from ..notebooks import is_hidden_check, read_notebook, strip_outputs, write_notebook

    key_nb = read_notebook(key_path)
    problems = release_problems(key_nb, read_notebook(released_path))
    with tempfile.TemporaryDirectory(prefix="pgm-lab-release-check-") as tmp:
        tmp = Path(tmp)
        reference = strip_outputs(key_nb, keep_answer_keys=True)
        reference.cells = [c for c in reference.cells if not is_hidden_check(c)]
        write_notebook(reference, tmp / "reference.ipynb")
        shutil.copyfile(released_path, tmp / "student-copy.ipynb")
        book = grade(
            key_path,
            [tmp / "reference.ipynb", tmp / "student-copy.ipynb"],
            tmp / "out",
            timeout=timeout,
            memory_mb=memory_mb,
            jobs=2,
            sandbox=sandbox,
        )
    for row in book.rows:
        if row.student == "reference" and row.total != row.max:
            problems.append(f"reference: {row.total:g}/{row.max:g} ({row.notes_text})")
        if row.student == "student-copy" and row.total > 0:
            problems.append(f"student copy earns {row.total:g} without a solution ({row.notes_text})")
    return problems


#: what ``pgm-lab grade`` and ``release --check`` import (the ``grade`` extra of pyproject.toml)
GRADE_EXTRA = ("nbval", "pytest", "psutil")


def require_grade_extra() -> None:
    """Raise a clear ValueError when the ``grade`` extra is not installed."""
    import importlib.util

    missing = [m for m in GRADE_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(
            f"grading needs {', '.join(missing)}: install the grade extra, pip install 'pgm-lab[grade]'"
        )


def _release_cmd(args) -> int:
    if args.check:
        require_grade_extra()
    chapters = args.chapters or default_chapters()
    written = release(chapters, args.out)
    failed = False
    for src, dst in zip(chapters, written):
        print(f"{src} -> {dst}")
        if args.check:
            problems = check_release(src, dst, timeout=args.timeout, sandbox=not args.no_sandbox)
            for p in problems:
                print(f"  {p}")
            print(
                "  check: "
                + (
                    "FAILED"
                    if problems
                    else "no hidden check, solution or hidden value in the copy; "
                    "the reference earns full marks, the copy none"
                )
            )
            failed |= bool(problems)
    return 1 if failed else 0


def _grade_cmd(args) -> int:
    require_grade_extra()
    try:
        book = _grade_from_args(args)
    except (SandboxError, KeyRunError) as exc:
        print(f"pgm-lab: error: {exc}", file=sys.stderr)
        return 2
    print(book.table())
    out = Path(args.out)
    print(f"\nwrote {out / 'gradebook.csv'} and {out / 'gradebook.html'}")
    print(f"{out / 'graded'} and {out / 'logs'} hold the hidden checks and values: keep them from students")
    return 0


def _grade_from_args(args):
    return grade(
        args.key,
        args.submissions,
        args.out,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        jobs=args.jobs,
        memory_mb=args.memory,
        scratch=args.scratch,
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)),
        sandbox=not args.no_sandbox,
    )


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
    p.add_argument("--no-sandbox", action="store_true", help="run --check's kernels without bubblewrap")
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
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run kernels without bubblewrap (every gradebook row says so); only for trusted notebooks",
    )
    p.set_defaults(func=_grade_cmd)
