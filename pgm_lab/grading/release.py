"""Student copies of chapter notebooks: solution regions out, expected outputs in.

A solution region is the block of lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION``
(both included) inside an exercise cell. ``release_notebook`` replaces each region with one
placeholder line at the indentation of the ``BEGIN`` line, so the cell still parses and,
when run as-is, raises ``NotImplementedError``; the check cell after it then fails, and
nothing else does. Answer-key cells keep their stored (expected) output; every other
output and execution count is removed. See the instructor guide (book/instructor_guide.md).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from ..notebooks import (
    CHECK_MARKER,
    SOLUTION_BEGIN,
    SOLUTION_END,
    is_answer_key,
    is_exercise,
    is_hidden_check,
    read_notebook,
    strip_outputs,
    write_notebook,
)

PLACEHOLDER = 'raise NotImplementedError("Exercise: write your solution here")'
MARKDOWN_PLACEHOLDER = "*Write your answer here.*"


def _cell_name(cell, index: int) -> str:
    cid = cell.get("id")
    return f"cell {index}" + (f" (id {cid})" if cid else "")


def strip_solution_regions(
    source: str, *, placeholder: str = PLACEHOLDER, where: str = "cell"
) -> tuple[str, int]:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block of ``source``.

    Each block becomes ``placeholder`` indented like its ``BEGIN`` line. Returns the new
    source and the number of blocks; a ``BEGIN`` without ``END`` (or the reverse, or a
    nested ``BEGIN``) is a ``ValueError`` naming ``where``.
    """
    out: list[str] = []
    n = 0
    begin_line = None
    for lineno, line in enumerate(source.splitlines(keepends=True), start=1):
        text = line.strip()
        if text.startswith(SOLUTION_BEGIN):
            if begin_line is not None:
                raise ValueError(
                    f"{where}: {SOLUTION_BEGIN} on line {lineno} inside the region opened on line {begin_line}"
                )
            begin_line = lineno
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{placeholder}\n")
            n += 1
        elif text.startswith(SOLUTION_END):
            if begin_line is None:
                raise ValueError(f"{where}: {SOLUTION_END} on line {lineno} without a {SOLUTION_BEGIN}")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise ValueError(f"{where}: {SOLUTION_BEGIN} on line {begin_line} has no {SOLUTION_END}")
    text = "".join(out)
    if not source.endswith("\n"):
        text = text.rstrip("\n")
    return text, n


def check_key(nb, *, name: str = "notebook") -> int:
    """Validate the answer-key cells of a reference notebook; returns how many there are.

    Every answer-key cell must start with ``# NBVAL_CHECK_OUTPUT`` and carry an execution
    count (nbval treats a cell with outputs and no count as unrun and fails it).
    """
    n = 0
    for i, cell in enumerate(nb.cells):
        if not is_answer_key(cell):
            continue
        n += 1
        where = f"{name}: answer-key {_cell_name(cell, i)}"
        if not cell.source.lstrip().startswith(CHECK_MARKER):
            raise ValueError(f"{where} must start with {CHECK_MARKER}")
        if cell.get("execution_count") is None:
            raise ValueError(f"{where} has no stored execution count: run `pgm-lab keys` on the chapter")
        points = cell.metadata.get("points", 1)
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not points >= 0:
            raise ValueError(f"{where}: metadata 'points' must be a non-negative number, got {points!r}")
    return n


def release_notebook(nb, *, name: str = "notebook"):
    """Student copy of the reference notebook ``nb`` (which is left unchanged).

    Solution regions become ``raise NotImplementedError(...)`` (markdown regions become an
    invitation to answer), answer-key outputs stay, other outputs go, and
    ``metadata.pgm_lab.chapter`` records ``name`` so that ``pgm-lab grade`` can tell a
    notebook of another chapter.
    """
    check_key(nb, name=name)
    nb = strip_outputs(nb, keep_answer_keys=True)
    nb.cells = [cell for cell in nb.cells if not is_hidden_check(cell)]
    n_regions = 0
    for i, cell in enumerate(nb.cells):
        where = f"{name}: {_cell_name(cell, i)}"
        if cell.cell_type == "code":
            cell.source, n = strip_solution_regions(cell.source, where=where)
            if is_exercise(cell) and n == 0:
                raise ValueError(f"{where} is tagged exercise but has no {SOLUTION_BEGIN} region")
        elif cell.cell_type == "markdown":
            cell.source, n = strip_solution_regions(
                cell.source, placeholder=MARKDOWN_PLACEHOLDER, where=where
            )
        else:
            n = 0
        n_regions += n
        cell.metadata.pop("execution", None)
    if n_regions == 0:
        raise ValueError(f"{name}: no {SOLUTION_BEGIN} region: nothing to release")
    nb.metadata.setdefault("pgm_lab", {})
    nb.metadata["pgm_lab"] = {**dict(nb.metadata["pgm_lab"]), "chapter": name, "released": True}
    return nb


def default_chapters(root: str | os.PathLike = ".") -> list[Path]:
    """``chapters/*.ipynb`` under ``root``, sorted; ``ValueError`` when there is none."""
    paths = sorted(Path(root, "chapters").glob("*.ipynb"))
    if not paths:
        raise ValueError(f"no chapters/*.ipynb under {Path(root).resolve()}: name the chapter notebooks")
    return paths


def release(chapters, out_dir: str | os.PathLike) -> list[Path]:
    """Write the student copy of each chapter notebook to ``out_dir`` (same file names)."""
    out_dir = Path(out_dir)
    paths = [Path(p) for p in chapters]
    for path in paths:
        if path.suffix != ".ipynb":
            raise ValueError(f"{path}: a chapter must be an .ipynb notebook")
        if out_dir.exists() and path.parent.resolve() == out_dir.resolve():
            raise ValueError(f"--out {out_dir} is the folder of {path}: it would overwrite the reference")
    released = [(path, release_notebook(read_notebook(path), name=path.stem)) for path in paths]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, nb in released:
        target = out_dir / path.name
        write_notebook(copy.deepcopy(nb), target)
        written.append(target)
    return written


def _solution_lines(source: str) -> list[str]:
    lines, inside = [], False
    for line in source.splitlines():
        text = line.strip()
        if text.startswith(SOLUTION_BEGIN):
            inside = True
        elif text.startswith(SOLUTION_END):
            inside = False
        elif inside:
            lines.append(text)
    return lines


def _distinctive(lines, elsewhere: str) -> set[str]:
    """Lines long enough to identify their origin and not found in the public text."""
    return {t for t in lines if len(t) >= 24 and t not in elsewhere}


def release_problems(key, released) -> list[str]:
    """What a released copy must not hold, found statically: an empty list when it is clean.

    No ``hidden-check`` cell and no line of one, no solution region and no distinctive line
    of a solution, no stored output except the public checks' expected outputs.
    """
    public_text = "\n".join("\n".join(c.source.splitlines()) for c in key.cells if not is_hidden_check(c))
    solution = set()
    for cell in key.cells:
        solution |= _distinctive(_solution_lines(cell.source), "")
    hidden = set()
    for cell in key.cells:
        if is_hidden_check(cell):
            hidden |= _distinctive([ln.strip() for ln in cell.source.splitlines()], public_text)
    public_solution_free = "\n".join(
        strip_solution_regions(c.source)[0] for c in key.cells if not is_hidden_check(c)
    )
    solution = {t for t in solution if t not in public_solution_free}
    problems = []
    for i, cell in enumerate(released.cells):
        where = f"released {_cell_name(cell, i)}"
        if is_hidden_check(cell):
            problems.append(f"{where} is a hidden check")
        text = cell.get("source", "")
        if SOLUTION_BEGIN in text or SOLUTION_END in text:
            problems.append(f"{where} holds a solution region")
        lines = {ln.strip() for ln in text.splitlines()}
        if lines & solution:
            problems.append(f"{where} holds a line of a solution: {sorted(lines & solution)[0]!r}")
        if lines & hidden:
            problems.append(f"{where} holds a line of a hidden check: {sorted(lines & hidden)[0]!r}")
        if cell.get("cell_type") == "code" and cell.get("outputs") and not is_answer_key(cell):
            problems.append(f"{where} stores outputs (only public checks may)")
    return problems
