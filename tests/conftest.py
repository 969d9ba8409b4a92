"""Shared fixtures.

Every test runs in the ``smoke`` profile (``PGM_LAB_PROFILE=smoke``) with matplotlib's
Agg backend; figures are closed after each test.

The smoke-profile book, built once per test session:

``built_book`` runs ``jupyter-book build`` exactly as ``make book`` does, but with
``PGM_LAB_PROFILE=smoke``, into ``_build/smoke`` and with ``--all`` (a fresh Sphinx
environment, so warnings from every page are reported again; executed notebooks still
come from the execution cache in ``_build/smoke/_build/.jupyter_cache``, which is dropped
when a file of ``pgm_lab`` is newer than it).
tests/test_book.py asserts that the build succeeded; tests/test_browser.py reads the
HTML it produced.

Set ``PGM_LAB_REUSE_BOOK=1`` to skip the build and use an existing
``_build/smoke/_build/html`` (handy while working on the browser test).
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
BOOK_PROFILE = "smoke"
BOOK_OUT = ROOT / "_build" / BOOK_PROFILE
HTML_DIR = BOOK_OUT / "_build" / "html"
BUILD_LOG = ROOT / "_build" / f"book-{BOOK_PROFILE}.log"


os.environ.setdefault("PGM_LAB_PROGRESS", "0")
if os.environ.get("PGM_LAB_THREADS", "").isdigit():  # parallel test workers share the cores
    import torch

    torch.set_num_threads(int(os.environ["PGM_LAB_THREADS"]))


@pytest.fixture(autouse=True)
def _smoke_profile(monkeypatch, tmp_path_factory):
    """Unit tests run in the smoke profile with a private checkpoint cache (PGM_LAB_CACHE);
    a test may still change either with monkeypatch."""
    monkeypatch.setenv("PGM_LAB_PROFILE", "smoke")
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path_factory.getbasetemp() / "pgm_lab_cache"))
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@dataclass(frozen=True)
class BuiltBook:
    """Result of the smoke-profile book build shared by the slow and browser tests."""

    returncode: int
    html: Path
    log: str
    seconds: float
    reused: bool

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.splitlines()[-n:])


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "jupyter_book.cli.main"]


def stale_execution_cache(out: Path = BOOK_OUT) -> bool:
    """True when pgm_lab changed after the execution cache was last written.

    jupyter-cache re-executes a notebook only when the notebook's code changes, so
    outputs computed with an older pgm_lab would otherwise be reused.
    """
    db = out / "_build" / ".jupyter_cache" / "global.db"
    if not db.exists():
        return False
    stamp = db.stat().st_mtime
    return any(p.stat().st_mtime > stamp for p in (ROOT / "pgm_lab").rglob("*.py"))


def build_book(*, toc: Path | None = None) -> BuiltBook:
    """Build the book in the smoke profile with warnings as errors (``-W -n --keep-going``)."""
    if stale_execution_cache():
        shutil.rmtree(BOOK_OUT / "_build" / ".jupyter_cache")
    # one kernel at a time: under ``make test`` the other xdist worker keeps the second core
    # busy, and a third process slows the timed grading tests beside it
    env = dict(os.environ, PGM_LAB_PROFILE=BOOK_PROFILE, PGM_LAB_BOOK_JOBS="1")
    # The kernels must use matplotlib's inline backend (ipykernel's default): with an
    # inherited MPLBACKEND=Agg, plt.show() draws nothing and the book loses its figures.
    env.pop("MPLBACKEND", None)
    cmd = [*_jupyter_book(), "build", str(ROOT), "--path-output", str(BOOK_OUT)]
    cmd += ["-W", "-n", "--keep-going", "--all"]
    if toc is not None:
        cmd += ["--toc", str(toc)]
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = ""
    for attempt in (1, 2):  # one retry: executed notebooks are kept in the execution cache
        returncode, out = _run_with_watchdog(cmd, env, BOOK_ATTEMPT_TIMEOUT_S)
        log += f"--- attempt {attempt}: exit {returncode}\n{out}\n"
        if returncode != HUNG:
            break
    seconds = time.perf_counter() - start
    BUILD_LOG.write_text(f"$ {' '.join(cmd)}\n{log}\n[{seconds:.1f} s, exit {returncode}]\n")
    return BuiltBook(returncode, HTML_DIR, log, seconds, reused=False)


#: one smoke build takes 3-6 minutes on 2 cores; past this an attempt is taken to have hung
BOOK_ATTEMPT_TIMEOUT_S = float(os.environ.get("PGM_LAB_BOOK_TIMEOUT", "1200"))
HUNG = -999


def _run_with_watchdog(cmd: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run ``cmd``; kill its whole process group (kernels included) after ``timeout`` seconds.

    nbclient can wait forever for a reply that an idle kernel already sent when a cell creates
    ipywidgets (jupyter/nbclient#312, seen here once in chapter 05): the build is then killed
    and retried rather than left to hang CI. Returns (exit code or ``HUNG``, output).
    """
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return HUNG, out + f"\n[killed after {timeout:.0f} s without finishing: retrying once]"


#: the test files that use the built book: under ``-n 2 --dist loadgroup`` (``make test``)
#: their tests all run on one worker, so the book is built once while the other worker runs
#: the rest. Two workers building into the same folder race (one copies raw sources over
#: the other's output), so a test elsewhere that asks for ``built_book`` is refused.
BOOK_TEST_FILES = ("tests/test_book.py", "tests/test_browser.py")


def work_unit(nodeid: str) -> str:
    """The scheduling unit of a test under ``--dist loadgroup``: the book's files together, each
    notebook's nbval cells together (they run in order in one kernel), any other test alone."""
    path = nodeid.split("::")[0]
    if path in BOOK_TEST_FILES:
        return "book"
    return path if path.endswith(".ipynb") else nodeid


def pytest_xdist_make_scheduler(config, log):
    """loadgroup with the units of :func:`work_unit` (largest first: xdist's scope reordering).
    xdist 3.8 marks groups by renaming node ids, which pytest 9.2 ignores (``Node._id``), so
    ``xdist_group`` marks are not used."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class BookGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return BookGroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    items[:] = with_answer_keys_again(items)
    _refuse_stray_book_tests(items)


def with_answer_keys_again(items: list) -> list:
    """nbval's items, each answer-key cell followed by a second run of it (``Cell N again``).

    An answer-key cell (tag ``answer-key``, marked ``# NBVAL_CHECK_OUTPUT``) prints what
    ``pgm-lab grade`` compares: nbval checks its first run against the output stored by
    ``pgm-lab keys`` in another process; the second run, right after it in the same kernel,
    must print that output again (a check that draws from a global random stream or keeps
    state would not, and a student's copy would then be graded against another output).
    """
    from pgm_lab.notebooks import is_answer_key

    out = []
    for item in items:
        out.append(item)
        cell = getattr(item, "cell", None)
        if type(item).__name__ == "IPyNbCell" and cell is not None and is_answer_key(cell):
            again = type(item).from_parent(
                item.parent,
                name=f"{item.name} again",
                cell_num=item.cell_num,
                cell=copy.deepcopy(cell),  # a run leaves what it printed on its item's cell
                options=item.options,
            )
            out.append(again)
    return out


def _refuse_stray_book_tests(items) -> None:
    strays = [
        item.nodeid
        for item in items
        if "built_book" in getattr(item, "fixturenames", ())
        and item.nodeid.split("::")[0] not in BOOK_TEST_FILES
    ]
    if strays:
        raise pytest.UsageError(
            f"tests outside {BOOK_TEST_FILES} use built_book (add their file to "
            f"BOOK_TEST_FILES in tests/conftest.py): {strays}"
        )


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    """The smoke-profile HTML book (built once per session, or reused on request)."""
    if os.environ.get("PGM_LAB_REUSE_BOOK") and (HTML_DIR / "index.html").exists():
        return BuiltBook(0, HTML_DIR, "(reused an existing build)", 0.0, reused=True)
    return build_book()


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread, restoring the previous count afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
