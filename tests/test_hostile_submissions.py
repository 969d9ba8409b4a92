"""Hostile submissions: each attack on the grader earns nothing and leaves a note.

One grading run of the fixture chapter (sandboxed, two jobs) with a submission per kind of
attack: visible numbers typed in, check cells rewritten at run time by an input
transformer, replaced ``print``/``sys.stdout`` and monkeypatched libraries, reading the key
or the prepared notebook from disk, writing outside the scratch folder and into another
submission, a socket to a port of the grading machine, a fork storm, a huge file, and a
kernel that kills itself. The key's own solutions earn full marks in the same run, and no
file outside the output folder changes.
"""

from __future__ import annotations

import copy
import socket
import threading
import uuid
from pathlib import Path

import nbformat
import pytest
from test_grading import EX1, EX2, EX3, KEY, SOLUTIONS, fill

from pgm_lab.grading import grade, release
from pgm_lab.grading.sandbox import sandbox_problem
from pgm_lab.notebooks import read_notebook

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason="no bubblewrap sandbox here")

TRANSFORMER = """
def _swap(lines):
    text = "".join(lines)
    if "NBVAL_CHECK_OUTPUT" in text or "hidden" in text:
        return ["pass\\n"]
    return lines


get_ipython().input_transformers_cleanup.append(_swap)
"""

TAMPERER = """
import builtins, sys, io
import numpy as np
import pgm_lab.grading.hidden as _h

builtins.print = lambda *a, **k: sys.__stdout__.write("[0.125 0.25  0.625]\\n")


class _Quiet(io.StringIO):
    pass


sys.stdout = _Quiet()
np.allclose = lambda *a, **k: True
_h.check = lambda label, fn, *a, **k: _h.emit(label, [0.125, 0.25, 0.625])
"""

INTRUDER = """
import glob, json, os, socket
stolen = []
for pattern in {patterns!r}:
    for path in glob.glob(pattern, recursive=True):
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        if "BEGIN SOLUTION" in text or "hidden-check" in text:
            stolen.append(path)
            for c in json.loads(text)["cells"]:
                if "BEGIN SOLUTION" in "".join(c["source"]):
                    exec("".join(c["source"]), globals())
for target in {targets!r}:
    try:
        with open(target, "a") as f:
            f.write("vandal was here")
    except OSError:
        pass
try:
    s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    s.sendall(b"hello from the sandbox")
except OSError:
    pass
"""

FORK_STORM = """import os, time
for _ in range(5000):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
return p / np.sum(p)"""

HUGE_FILE = """with open("big.bin", "wb") as f:
    for _ in range(128):
        f.write(bytes(16 * 2**20))
return np.sum(joint, axis=1)"""


def _with_cell(nb, source: str):
    nb = copy.deepcopy(nb)
    nb.cells.insert(2, nbformat.v4.new_code_cell(source))
    return nb


def _files(*roots: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file():
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def listener():
    """A TCP server on the grading machine's loopback that records every connection."""
    seen = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            seen.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], seen
    stop.set()
    thread.join()
    srv.close()


def test_attacks_earn_nothing_and_touch_nothing(tmp_path, listener):
    port, seen = listener
    (student,) = [read_notebook(p) for p in release([KEY], tmp_path / "released")]
    subs = tmp_path / "submissions"
    subs.mkdir()
    marker = f"/tmp/pgm-lab-vandal-{uuid.uuid4().hex}"
    victim = subs / "correct.ipynb"
    out = tmp_path / "out"
    intruder = INTRUDER.format(
        patterns=[f"{KEY.parent}/*.ipynb", f"{tmp_path}/**/*.ipynb", "/tmp/**/*.ipynb", "../**/*.ipynb"],
        targets=[str(victim), marker, str(KEY), str(out / "gradebook.csv"), "../submission.ipynb"],
        port=port,
    )
    correct = fill(student, SOLUTIONS)
    cases = {
        "correct": correct,
        "typed numbers": fill(
            student,
            {
                EX1: "return np.array([0.125, 0.25, 0.625])",
                EX2: "return np.array([0.3, 0.7])",
                EX3: "return 2",
            },
        ),
        "transformer": _with_cell(fill(student, {EX1: "return p"}), TRANSFORMER),
        "tamperer": _with_cell(student, TAMPERER),
        "intruder": _with_cell(student, intruder),
        "fork storm": fill(student, {**SOLUTIONS, EX1: FORK_STORM}),
        "huge file": fill(student, {**SOLUTIONS, EX2: HUGE_FILE}),
        "sandbox killer": fill(
            student, {**SOLUTIONS, EX3: "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"}
        ),
    }
    for name, nb in cases.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    before = _files(KEY.parent, subs, tmp_path / "released")
    book = grade(KEY, [subs], out, jobs=2, timeout=240)
    rows = {r.student: r for r in book.rows}

    assert rows["correct"].total == 4 and rows["correct"].notes == []
    for name in cases:
        if name != "correct":
            assert rows[name].notes, name
    assert rows["typed numbers"].total == 0
    assert all("wrong on hidden inputs" in n for n in rows["typed numbers"].notes)
    assert rows["transformer"].total == 0
    assert "tampering: a hidden check cell did not run as written" in rows["transformer"].notes_text
    tamperer = rows["tamperer"]
    assert tamperer.total == 0
    for found in ("builtins.print replaced", "sys.stdout replaced", "numpy.allclose replaced"):
        assert found in tamperer.notes_text, tamperer.notes
    assert "pgm_lab.grading.hidden.check replaced" in tamperer.notes_text
    assert rows["intruder"].total == 0 and "raised NotImplementedError" in rows["intruder"].notes_text
    storm = rows["fork storm"]
    assert storm.points == {"ex1": 0.0, "ex2": 2.0, "ex3": 1.0}
    assert "ex1: raised BlockingIOError on hidden inputs" in storm.notes
    huge = rows["huge file"]
    assert huge.points["ex2"] == 0 and "ex2: raised OSError on hidden inputs" in huge.notes
    killer = rows["sandbox killer"]
    assert killer.points == {"ex1": 1.0, "ex2": 2.0, "ex3": 0.0}
    assert "ex3: kernel died in cell 9 (killed by signal 9, SIGKILL)" in killer.notes

    assert seen == []  # nothing reached the grading machine's port
    assert not Path(marker).exists()
    assert _files(KEY.parent, subs, tmp_path / "released") == before
