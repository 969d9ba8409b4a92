"""Notebook conventions of the workbook: reading, output hygiene and answer keys.

An exercise is an edit cell tagged ``exercise`` holding a solution between
``### BEGIN SOLUTION`` and ``### END SOLUTION``, followed by a check cell tagged
``answer-key`` that starts with ``# NBVAL_CHECK_OUTPUT`` and whose stored output is the
expected output. Notebooks are stored with outputs only in answer-key cells.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

ANSWER_KEY_TAG = "answer-key"
HIDDEN_CHECK_TAG = "hidden-check"
EXERCISE_TAG = "exercise"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"


class NotebookError(ValueError):
    """A file that is not a usable notebook (not JSON, not nbformat 4, …)."""


def read_notebook(path: str | os.PathLike):
    """Read ``path`` as an nbformat-4 notebook; ``NotebookError`` says why when it is not one."""
    import nbformat

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise NotebookError(f"{path}: not a notebook (not UTF-8 text: {exc.reason})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path}: not a notebook (invalid JSON at line {exc.lineno}: {exc.msg})"
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw or not isinstance(raw["cells"], list):
        raise NotebookError(f"{path}: not a notebook (no list of cells)")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types
        raise NotebookError(f"{path}: not a notebook ({type(exc).__name__}: {exc})") from None
    return nb


def write_notebook(nb, path: str | os.PathLike) -> None:
    import nbformat

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, path)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_answer_key(cell) -> bool:
    return cell.get("cell_type") == "code" and ANSWER_KEY_TAG in tags(cell)


def is_hidden_check(cell) -> bool:
    return cell.get("cell_type") == "code" and HIDDEN_CHECK_TAG in tags(cell)


def is_exercise(cell) -> bool:
    return cell.get("cell_type") == "code" and EXERCISE_TAG in tags(cell)


def strip_outputs(nb, *, keep_answer_keys: bool = True):
    """Copy of ``nb`` without outputs and execution counts, except in answer-key cells."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if keep_answer_keys and is_answer_key(cell):
            continue
        cell.outputs = []
        cell.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def execute(nb, *, profile: str = "smoke", cwd: str | os.PathLike | None = None, timeout: int = 600):
    """Execute ``nb`` in a fresh python3 kernel with ``PGM_LAB_PROFILE=profile``; returns the executed copy."""
    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    old = os.environ.get("PGM_LAB_PROFILE")
    os.environ["PGM_LAB_PROFILE"] = profile
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd or ".")}}
        ).execute()
    finally:
        if old is None:
            os.environ.pop("PGM_LAB_PROFILE", None)
        else:
            os.environ["PGM_LAB_PROFILE"] = old
    return nb


KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def normalise_metadata(nb):
    """Give ``nb`` the workbook's notebook metadata: the python3 kernel, nothing editor-specific."""
    nb.metadata.pop("jupytext", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def refresh_answer_keys(path: str | os.PathLike, *, profile: str = "smoke") -> int:
    """Execute the notebook at ``path`` and store outputs in its answer-key cells only.

    Returns the number of answer-key cells. Every other cell is stored without output.
    """
    path = Path(path)
    nb = normalise_metadata(read_notebook(path))
    executed = execute(strip_outputs(nb, keep_answer_keys=False), profile=profile, cwd=path.parent)
    n = 0
    for cell, done in zip(nb.cells, executed.cells):
        if cell.cell_type != "code":
            continue
        if is_answer_key(cell):
            if not cell.source.lstrip().startswith(CHECK_MARKER):
                raise NotebookError(
                    f"{path}: answer-key cell {cell.get('id')} must start with {CHECK_MARKER}"
                )
            cell.outputs = [o for o in done.outputs if o.get("output_type") != "display_data"]
            cell.execution_count = done.execution_count or 1
            n += 1
        else:
            cell.outputs = []
            cell.execution_count = None
    write_notebook(nb, path)
    return n
