"""How ``make test`` runs (tests/conftest.py): its work shared between two xdist workers, and
every answer-key cell run twice by nbval."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import nbformat
import pytest
from conftest import BOOK_TEST_FILES, ROOT, pytest_xdist_make_scheduler, work_unit


class _Config:
    """The options xdist's scheduler reads, for ``-n 2 --dist DIST``."""

    def __init__(self, dist: str):
        self.values = {"dist": dist, "tx": ["2*popen"]}
        self.option = SimpleNamespace(loadscopereorder=True, maxschedchunk=None)

    def getvalue(self, name):
        return self.values[name]


def _units(nodeids):
    sched = pytest_xdist_make_scheduler(_Config("loadgroup"), None)
    return {nodeid: sched._split_scope(nodeid) for nodeid in nodeids}


def test_book_tests_share_one_unit_notebooks_one_each_other_tests_alone():
    book = [f"{BOOK_TEST_FILES[0]}::test_build", f"{BOOK_TEST_FILES[1]}::test_pages[intro]"]
    cells = [
        "chapters/06_autoregressive_models.ipynb::Cell 0",
        "chapters/06_autoregressive_models.ipynb::Cell 7",
    ]
    other = [
        "chapters/08_diffusion_models.ipynb::Cell 0",
        "tests/test_bp.py::test_chain",
        "tests/test_bp.py::test_loop",
    ]
    units = _units(book + cells + other)
    assert {units[n] for n in book} == {"book"}
    assert units[cells[0]] == units[cells[1]] == "chapters/06_autoregressive_models.ipynb"
    assert len({units[n] for n in other}) == 3 and "book" not in {units[n] for n in other}
    assert units == {n: work_unit(n) for n in units}


def test_other_distributions_keep_xdists_scheduler():
    assert pytest_xdist_make_scheduler(_Config("loadfile"), None) is None


def _nbval(path) -> subprocess.CompletedProcess:
    """nbval on one notebook with this suite's conftest loaded, as ``make test`` runs it."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "conftest", "-q"]
    cmd += ["--nbval-lax", "--nbval-current-env", str(path)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"), PGM_LAB_PROFILE="smoke")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("stateful", [False, True])
def test_an_answer_key_must_print_its_stored_output_twice(tmp_path, stateful):
    """The stored output is "run 1"; a key cell that counts its runs prints "run 2" the second
    time and its ``again`` item fails, while the first run passes."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("n = 0"))
    body = "n += 1\nprint('run', n)" if stateful else "print('run', n + 1)"
    key = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n" + body, metadata={"tags": ["answer-key"]})
    key.outputs = [nbformat.v4.new_output("stream", name="stdout", text="run 1\n")]
    key.execution_count = 1
    nb.cells.append(key)
    path = tmp_path / "key.ipynb"
    nbformat.write(nb, path)
    done = _nbval(path)
    if stateful:
        assert done.returncode == 1, done.stdout
        assert "1 failed, 2 passed" in done.stdout and "Cell 1 again" in done.stdout
    else:
        assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout
