"""Every check cell of every chapter prints the same thing twice and in another process.

For each ``chapters/*.ipynb`` with answer-key cells the notebook runs top to bottom in a
fresh kernel in the ``smoke`` profile; each answer-key cell is run a second time right
after the first. Both runs must print exactly what is stored in the chapter, which
``pgm-lab keys`` produced in another process. Outputs are compared as nbval compares them
(streams merged, images ignored), so a failure here is a failure of ``pgm-lab grade``.
Chapters are discovered when the tests are collected; a chapter without exercises is skipped.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pgm_lab.grading.prepare import normalise_outputs
from pgm_lab.notebooks import is_answer_key, read_notebook, strip_outputs

pytestmark = pytest.mark.slow

CHAPTERS = sorted((Path(__file__).resolve().parent.parent / "chapters").glob("*.ipynb"))


def _params():
    if not CHAPTERS:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no chapters/*.ipynb yet"), id="none")]
    return [pytest.param(p, id=p.stem) for p in CHAPTERS]


def _show(outputs: dict) -> str:
    return repr({k: v for k, v in outputs.items()})[:400]


@pytest.mark.parametrize("path", _params())
def test_check_cells_are_reproducible(path, monkeypatch):
    from nbclient import NotebookClient

    nb = read_notebook(path)
    keys = [i for i, c in enumerate(nb.cells) if is_answer_key(c)]
    if not keys:
        pytest.skip(f"{path.name} has no answer-key cells")
    monkeypatch.setenv("PGM_LAB_PROFILE", "smoke")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run = strip_outputs(nb, keep_answer_keys=False)
    client = NotebookClient(
        run, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    problems = []
    with client.setup_kernel():
        for i, cell in enumerate(run.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, i)
            if i not in keys:
                continue
            where = f"{path.name} answer-key cell {i} (id {cell.get('id')})"
            stored = normalise_outputs(nb.cells[i].outputs)
            first = normalise_outputs(cell.outputs)
            again = copy.deepcopy(cell)
            client.execute_cell(again, i)
            second = normalise_outputs(again.outputs)
            if first != stored:
                problems.append(f"{where}: differs from the stored output: {_show(first)} vs {_show(stored)}")
            if second != first:
                problems.append(
                    f"{where}: a second run prints something else: {_show(second)} vs {_show(first)}"
                )
    assert not problems, "\n".join(problems)
