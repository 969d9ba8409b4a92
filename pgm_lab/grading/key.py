"""The instructor's key: a chapter notebook with solutions, public checks and hidden checks.

- an **exercise** is an ``exercise``-tagged code cell (the student's edit cell);
- its **public checks** are the ``answer-key`` cells after it (expected output stored and
  shipped to students for self-checking with nbval; they earn no points);
- its **hidden checks** are the ``hidden-check`` cells after it: only in the key, worth
  ``metadata["points"]`` each, compared within ``metadata["rtol"]``/``["atol"]``.

The gradebook has one column per exercise that has hidden checks (``ex1``, ``ex2`` …, in
the order of the exercise cells). See CONTRIBUTING.md for the cell schema.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..notebooks import NotebookError, is_answer_key, is_exercise, is_hidden_check, read_notebook
from .release import check_key
from .verdict import DEFAULT_ATOL, DEFAULT_RTOL


class KeyError_(ValueError):
    """A key that cannot be graded with (unreadable, malformed)."""


@dataclass(frozen=True)
class HiddenCheck:
    """One hidden-check cell of the key."""

    cell_id: str
    key_index: int
    points: float
    rtol: float
    atol: float
    exercise: str


@dataclass(frozen=True)
class PublicCheck:
    """One answer-key cell of the key (restored in every submission, 0 points)."""

    cell_id: str | None
    key_index: int
    source: str
    exercise: str


@dataclass(frozen=True)
class Exercise:
    """A gradebook column: an exercise cell and the hidden checks that score it."""

    name: str
    cell_id: str | None
    key_index: int
    checks: tuple[HiddenCheck, ...]
    summary: str

    @property
    def points(self) -> float:
        return float(sum(c.points for c in self.checks))


@dataclass
class Key:
    """A reference notebook: its exercises and what identifies its chapter."""

    path: Path
    chapter: str
    title: str | None
    nb: object
    exercises: list[Exercise]
    public_checks: list[PublicCheck]

    @property
    def max_points(self) -> float:
        return float(sum(ex.points for ex in self.exercises))

    @property
    def hidden_checks(self) -> list[HiddenCheck]:
        return [c for ex in self.exercises for c in ex.checks]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Key:
        """Read and validate the key; ``ValueError`` names what is wrong with it."""
        path = Path(path)
        try:
            nb = read_notebook(path)
        except NotebookError as exc:
            raise KeyError_(f"cannot read the key: {exc}") from None
        n_public = check_key(nb, name=str(path))
        exercises, publics = _collect(nb, path)
        if not exercises and n_public == 0:
            raise KeyError_(f"{path}: no exercises with checks, nothing to grade")
        return cls(path, path.stem, notebook_title(nb), nb, exercises, publics)


def _number(meta, name: str, default: float, where: str) -> float:
    value = meta.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise KeyError_(f"{where}: metadata {name!r} must be a non-negative number, got {value!r}")
    return float(value)


def _collect(nb, path: Path) -> tuple[list[Exercise], list[PublicCheck]]:
    groups: list[tuple[int, object, list[HiddenCheck]]] = []
    publics: list[PublicCheck] = []
    for i, cell in enumerate(nb.cells):
        if is_exercise(cell):
            groups.append((i, cell, []))
            continue
        if not (is_hidden_check(cell) or is_answer_key(cell)):
            continue
        where = f"{path}: {'hidden-check' if is_hidden_check(cell) else 'answer-key'} cell {i}"
        if not groups:
            raise KeyError_(f"{where} comes before any exercise cell")
        name = f"ex{len(groups)}"
        if is_answer_key(cell):
            publics.append(PublicCheck(cell.get("id"), i, cell.source, name))
            continue
        if not cell.get("id"):
            raise KeyError_(f"{where} has no cell id (nbformat 4.5 ids are needed)")
        if cell.get("outputs"):
            raise KeyError_(f"{where} stores outputs: hidden values must never be stored")
        meta = cell.metadata
        check = HiddenCheck(
            cell.id,
            i,
            _number(meta, "points", 1, where),
            _number(meta, "rtol", DEFAULT_RTOL, where),
            _number(meta, "atol", DEFAULT_ATOL, where),
            name,
        )
        groups[-1][2].append(check)
    exercises = [
        Exercise(f"ex{k + 1}", cell.get("id"), i, tuple(checks), _summary(nb, i))
        for k, (i, cell, checks) in enumerate(groups)
        if checks
    ]
    return exercises, publics


def _summary(nb, index: int) -> str:
    """The bold title of the exercise's statement (the markdown cell above it), if any."""
    for cell in reversed(nb.cells[:index]):
        if cell.get("cell_type") == "markdown":
            for line in reversed(str(cell.source).splitlines()):
                line = line.strip()
                if line.startswith(("**Exercise", "### Exercise", "## Exercise")):
                    return line.strip("*# ").split("**")[0][:80]
            break
    return f"exercise cell {index}"


def notebook_title(nb) -> str | None:
    """The first ``# Title`` line of the first markdown cell that has one."""
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in str(cell.get("source", "")).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return None
