"""Tests of ``pgm-lab release`` and ``pgm-lab grade`` on the fixture chapter.

``tests/fixtures/grading/01_fixture.ipynb`` is a tiny chapter (numpy only) with three
exercises whose hidden checks are worth 1, 2 and 1 points; ``02_other.ipynb`` is a second
chapter. Submissions are made the way students make them: from the released copy, with the
solutions written in (or not, or wrongly), and graded end to end with nbval in the sandbox.
Attacks on the grader are in ``test_hostile_submissions.py``.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import nbformat
import pytest

from pgm_lab import cli
from pgm_lab.grading import (
    PLACEHOLDER,
    Key,
    cell_reason,
    check_release,
    grade,
    prepare,
    release,
    release_notebook,
    strip_solution_regions,
)
from pgm_lab.grading.grade import KeyRunError, student_names
from pgm_lab.grading.nbval_run import RUN_TOKEN_VAR, CellOutcome, read_junit
from pgm_lab.notebooks import is_answer_key, is_hidden_check, read_notebook

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
KEY = FIXTURES / "01_fixture.ipynb"
OTHER = FIXTURES / "02_other.ipynb"

# the code written into the released copy by a student who solves everything
SOLUTIONS = {
    "2de4bc77": "p = np.asarray(p, dtype=float)\nreturn p / p.sum()",
    "9cbe89d2": "return np.sum(joint, axis=1)",
    "272f93bd": "if np.ndim(adj) != 2 or len(adj) != len(adj[0]):\n    raise ValueError('square, please')\n"
    "return sum(adj[i][j] for i in range(len(adj)) for j in range(i + 1, len(adj)))",
}
EX1, EX2, EX3 = "2de4bc77", "9cbe89d2", "272f93bd"  # exercise (edit) cell ids
CHECK1, CHECK2, CHECK3 = "4484ea1c", "9858d51c", "4909b6fc"  # public (answer-key) check ids
HIDDEN = ["h-normalise", "h-marginal", "h-edges"]  # hidden-check cell ids
NIE = "NotImplementedError"


def fill(nb, answers: dict[str, str]):
    """Replace the placeholder in the exercise cells named by id with ``answers`` (indented)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("id") in answers:
            lines = []
            for line in cell.source.splitlines():
                if line.strip() == PLACEHOLDER:
                    indent = line[: len(line) - len(line.lstrip())]
                    lines += [indent + a for a in answers[cell.id].splitlines()]
                else:
                    lines.append(line)
            cell.source = "\n".join(lines)
    return nb


def cell(nb, cid):
    return next(c for c in nb.cells if c.get("id") == cid)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("released")
    release([KEY, OTHER], out)
    return read_notebook(out / KEY.name), read_notebook(out / OTHER.name), out


# --------------------------------------------------------------------------- release


def test_strip_solution_regions_keeps_indentation_and_rejects_bad_markers():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    out, n = strip_solution_regions(src)
    assert n == 1
    assert out == f"def f(x):\n    y = 1\n    {PLACEHOLDER}\n"
    compile(out, "<cell>", "exec")
    two = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n  ### BEGIN SOLUTION\n  c = 3\n  ### END SOLUTION"
    out, n = strip_solution_regions(two)
    assert n == 2 and out == f"{PLACEHOLDER}\nb = 2\n  {PLACEHOLDER}"
    with pytest.raises(ValueError, match="has no ### END SOLUTION"):
        strip_solution_regions("### BEGIN SOLUTION\nx = 1\n", where="cell 3")
    with pytest.raises(ValueError, match="without a ### BEGIN SOLUTION"):
        strip_solution_regions("x = 1\n### END SOLUTION\n")
    with pytest.raises(ValueError, match="inside the region opened on line 1"):
        strip_solution_regions("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n")


def test_released_copy_hides_solutions_and_keeps_only_expected_outputs(released):
    student, _, _ = released
    key = read_notebook(KEY)
    text = json.dumps(student)
    assert "BEGIN SOLUTION" not in text and "p / p.sum()" not in text and "np.triu" not in text
    assert student.metadata["pgm_lab"]["chapter"] == "01_fixture"
    assert "hidden.check" not in text and not any(is_hidden_check(c) for c in student.cells)
    key.cells = [c for c in key.cells if not is_hidden_check(c)]
    assert [c.id for c in student.cells] == [c.id for c in key.cells]
    for s, k in zip(student.cells, key.cells):
        if s.cell_type != "code":
            continue
        if is_answer_key(k):
            assert s.source == k.source and s.outputs == k.outputs and s.execution_count == k.execution_count
        else:
            assert s.outputs == [] and s.execution_count is None
    assert cell(student, EX1).source.splitlines()[-1] == f"    {PLACEHOLDER}"
    assert cell(student, EX2).source.splitlines()[-1] == f"    {PLACEHOLDER}"
    # the reference file itself is untouched
    assert "### BEGIN SOLUTION" in cell(read_notebook(KEY), EX1).source


def test_release_validates_the_reference(tmp_path):
    nb = read_notebook(KEY)
    broken = copy.deepcopy(nb)
    cell(broken, CHECK1).execution_count = None
    with pytest.raises(ValueError, match="no stored execution count"):
        release_notebook(broken, name="x")
    broken = copy.deepcopy(nb)
    cell(broken, EX1).source = "def normalise(p):\n    return p"
    with pytest.raises(ValueError, match="tagged exercise but has no ### BEGIN SOLUTION"):
        release_notebook(broken, name="x")
    broken = copy.deepcopy(nb)
    cell(broken, CHECK3).metadata["points"] = -1
    with pytest.raises(ValueError, match="'points' must be a non-negative number"):
        release_notebook(broken, name="x")
    with pytest.raises(ValueError, match="would overwrite the reference"):
        release([KEY], FIXTURES)
    # hidden checks: numbers in their metadata, never stored outputs, after an exercise
    for meta, message in [({"points": "2"}, "'points' must be"), ({"rtol": -1}, "'rtol' must be")]:
        broken = copy.deepcopy(nb)
        cell(broken, HIDDEN[0]).metadata.update(meta)
        nbformat.write(broken, tmp_path / "k.ipynb")
        with pytest.raises(ValueError, match=message):
            Key.load(tmp_path / "k.ipynb")
    broken = copy.deepcopy(nb)
    cell(broken, HIDDEN[1]).outputs = [nbformat.v4.new_output("stream", name="stdout", text="0.3\n")]
    nbformat.write(broken, tmp_path / "k.ipynb")
    with pytest.raises(ValueError, match="hidden values must never be stored"):
        Key.load(tmp_path / "k.ipynb")
    broken = copy.deepcopy(nb)
    early = copy.deepcopy(cell(nb, HIDDEN[0]))
    early.id = "early"
    broken.cells.insert(1, early)
    nbformat.write(broken, tmp_path / "k.ipynb")
    with pytest.raises(ValueError, match="comes before any exercise cell"):
        Key.load(tmp_path / "k.ipynb")


def test_release_cli_writes_student_copies(tmp_path, capsys):
    assert cli.main(["release", str(KEY), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / KEY.name).exists()
    assert "01_fixture.ipynb" in capsys.readouterr().out


# --------------------------------------------------------------------------- preparing submissions


def test_prepare_restores_answer_keys_by_id_source_and_order(released, tmp_path):
    student, _, _ = released
    key = Key.load(KEY)
    assert [(e.name, e.points) for e in key.exercises] == [("ex1", 1.0), ("ex2", 2.0), ("ex3", 1.0)]

    # edited check: source and stored output changed; a foreign cell tagged answer-key
    nb = copy.deepcopy(student)
    cell(nb, CHECK1).source = "# NBVAL_CHECK_OUTPUT\nprint('[0.125 0.25  0.625]')"
    cell(nb, CHECK1).outputs[0]["text"] = "anything\n"
    extra = nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["answer-key"]})
    extra.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.cells.insert(1, extra)
    path = tmp_path / "edited.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    prep = prepare(key, path)
    assert path.read_bytes() == before  # the submission is never written
    assert prep.notes == ["check cell edited: ex1 (restored from the key)"]
    restored = cell(prep.nb, CHECK1)
    assert restored.source == cell(read_notebook(KEY), CHECK1).source
    assert restored.outputs[0]["text"] == "[0.125 0.25  0.625]\n"
    assert (
        cell(prep.nb, extra.id).outputs == [] and "answer-key" not in cell(prep.nb, extra.id).metadata["tags"]
    )
    # code cells: 0 extra, 1 import, 2 ex1, 3 check1, 4 hidden check 1, 5 table, ...
    assert prep.cell_number == dict(zip(HIDDEN, (4, 8, 11)))
    hidden = cell(prep.nb, HIDDEN[0])
    assert (
        hidden.source.startswith("__import__('pgm_lab.grading.hidden'")
        and "begin('h-normalise')" in hidden.source
    )

    # fresh ids (cells pasted into a new notebook): found by source, or by order when edited
    nb = copy.deepcopy(student)
    check2 = [c.id for c in nb.cells].index(CHECK2)
    for i, c in enumerate(nb.cells):
        c.id = f"new-{i}"
    nb.cells[check2].source += "\n# my note"
    path = tmp_path / "fresh.ipynb"
    nbformat.write(nb, path)
    prep = prepare(key, path)
    assert prep.problem is None
    assert prep.notes == ["check cell edited: ex2 (restored from the key)"]
    assert prep.cell_number == dict(zip(HIDDEN, (3, 7, 10)))

    # a deleted check goes back after its exercise; moved cells are reported
    nb = copy.deepcopy(student)
    nb.cells = [c for c in nb.cells if c.get("id") != CHECK3]
    table = next(c for c in nb.cells if c.get("source", "").startswith("table ="))
    nb.cells.remove(table)
    nb.cells.append(table)
    path = tmp_path / "messy.ipynb"
    nbformat.write(nb, path)
    prep = prepare(key, path)
    assert prep.notes == ["cells reordered", "check cell missing: ex3 (restored from the key)"]
    ids = [c.id for c in prep.nb.cells]
    assert ids.index(CHECK3) == ids.index(EX3) + 1 and ids.index(HIDDEN[2]) == ids.index(CHECK3) + 1
    # a student cell tagged hidden-check is an ordinary cell
    nb = copy.deepcopy(student)
    fake = nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["hidden-check"], "points": 9})
    nb.cells.append(fake)
    nbformat.write(nb, tmp_path / "fake.ipynb")
    prep = prepare(key, tmp_path / "fake.ipynb")
    assert "hidden-check" not in cell(prep.nb, fake.id).metadata["tags"] and fake.id not in prep.cell_number


def test_prepare_rejects_non_notebooks_and_other_chapters(released, tmp_path):
    _, other, _ = released
    key = Key.load(KEY)
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [', encoding="utf-8")
    assert prepare(key, bad).problem.startswith("not a notebook (invalid JSON")
    (tmp_path / "list.ipynb").write_text("[1, 2]", encoding="utf-8")
    assert prepare(key, tmp_path / "list.ipynb").problem == "not a notebook (no list of cells)"
    (tmp_path / "bin.ipynb").write_bytes(b"\xff\xfe\x00binary")
    assert prepare(key, tmp_path / "bin.ipynb").problem.startswith("not a notebook (not UTF-8")
    assert prepare(key, tmp_path / "missing.ipynb").problem == "not a notebook (no such file)"
    nbformat.write(other, tmp_path / "other.ipynb")
    assert prepare(key, tmp_path / "other.ipynb").problem == "wrong chapter (02_other, expected 01_fixture)"
    # without metadata the title tells
    other = copy.deepcopy(other)
    other.metadata.pop("pgm_lab")
    nbformat.write(other, tmp_path / "other2.ipynb")
    assert prepare(key, tmp_path / "other2.ipynb").problem.startswith(
        "wrong chapter ('Another fixture chapter"
    )
    with pytest.raises(ValueError, match=r"cannot read the key: .*invalid JSON"):
        Key.load(bad)
    with pytest.raises(ValueError, match="no exercises with checks"):
        empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
        nbformat.write(empty, tmp_path / "empty.ipynb")
        Key.load(tmp_path / "empty.ipynb")


def test_a_key_without_hidden_checks_gives_no_points_and_warns(released, tmp_path):
    """The released copy has public checks only: as a key it can give no points, and says so."""
    student, _, out = released
    rel = Key.load(out / KEY.name)
    assert rel.exercises == [] and rel.max_points == 0 and len(rel.public_checks) == 3
    said = []
    nbformat.write(fill(student, SOLUTIONS), tmp_path / "s.ipynb")
    book = grade(out / KEY.name, [tmp_path / "s.ipynb"], tmp_path / "out", progress=said.append)
    assert said[0].startswith("warning:") and "no hidden checks" in said[0]
    assert [(r.total, r.max) for r in book.rows] == [(0.0, 0.0)]


def test_a_key_whose_hidden_check_fails_stops_the_run(tmp_path):
    nb = read_notebook(KEY)
    cell(nb, HIDDEN[1]).source = cell(nb, HIDDEN[1]).source.replace("marginal_a", "marginal_b")
    nbformat.write(nb, tmp_path / "key.ipynb")
    nbformat.write(nb, tmp_path / "s.ipynb")
    with pytest.raises(
        KeyRunError, match=r"hidden check h-marginal \(ex2\) failed: error in cell 7: NameError"
    ):
        grade(tmp_path / "key.ipynb", [tmp_path / "s.ipynb"], tmp_path / "out")
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_student_names_strip_suffix_and_disambiguate():
    assert student_names(["a/Zoë Müller.ipynb", "b/Zoë Müller.ipynb", "x.IPYNB", "notes.txt"]) == [
        "Zoë Müller",
        "Zoë Müller (2)",
        "x",
        "notes.txt",
    ]


def test_read_junit_and_reasons(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(
        """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="s.ipynb" name="Cell 0"><error message="failed on teardown with &quot;OSError&quot;">x</error></testcase>
<testcase classname="s.ipynb" name="Cell 1"><failure message="m">#x1B[94mCell 1: Cell execution caused an exception
#x1B[31mValueError#x1B[39m: bad shape (3,)
</failure></testcase>
<testcase classname="s.ipynb" name="Cell 2"><failure message="m">Cell 2: Cell outputs differ</failure></testcase>
<testcase classname="s.ipynb" name="Cell 3"><failure message="m">Cell 3: Timeout of 5 seconds exceeded executing cell
KeyboardInterrupt: </failure></testcase>
<testcase classname="s.ipynb" name="Cell 4"><skipped type="pytest.xfail" message="Previous cell timed out, expected cell to fail" /></testcase>
<testcase classname="s.ipynb" name="Cell 5"><failure message="m">pytest plugin exception: kernel died (exit code 3)</failure></testcase>
<testcase classname="s.ipynb" name="Cell 6"><failure message="m">pytest plugin exception: Kernel dead on test start</failure></testcase>
<testcase classname="s.ipynb" name="Cell 7"><failure message="m">Cell 7: Cell execution caused an exception
MemoryError: Unable to allocate 128. MiB for an array</failure></testcase>
<testcase classname="s.ipynb" name="Cell 8"><failure message="m">Cell 8: Cell execution caused an exception
Oops                                 Traceback (most recent call last)
Cell In[1], line 3
      1 class Oops(Exception): pass
----&gt; 3 raise Oops("no luck")

Oops: no luck
</failure></testcase>
</testsuite></testsuites>""",
        encoding="utf-8",
    )
    cells = read_junit(xml)
    assert cells[0].status == "passed" and cells[4].status == "skipped"
    reasons = [cell_reason(n, cells[n], cells) for n in range(1, 9)]
    assert reasons == [
        "error in cell 1: ValueError: bad shape (3,)",
        "output differs",
        "timed out in cell 3",
        "timed out in cell 3",
        "kernel died in cell 5 (exit code 3)",
        "kernel died in cell 5 (exit code 3)",
        "memory limit exceeded in cell 7",
        "error in cell 8: Oops: no luck",
    ]
    assert cell_reason(0, CellOutcome("error", "RuntimeError: Kernel didn't respond"), {}) == (
        "kernel failed to start: RuntimeError: Kernel didn't respond"
    )


# --------------------------------------------------------------------------- end to end


def _submissions(released, folder: Path) -> dict[str, tuple[list[str], str]]:
    """Write the fixture submissions; returns student -> (expected points, expected notes)."""
    student, other, _ = released
    folder.mkdir()
    expected = {}

    def put(name, nb, points, notes):
        nbformat.write(nb, folder / f"{name}.ipynb")
        expected[name] = (points, notes)

    correct = fill(student, SOLUTIONS)
    put("correct", correct, ["1", "2", "1", "4"], "")
    put("Zoë Müller", correct, ["1", "2", "1", "4"], "")
    put("blank", student, ["0", "0", "0", "0"], f"ex1, ex2, ex3: raised {NIE} on hidden inputs")
    put("partly wrong", fill(student, {**SOLUTIONS, EX2: "return np.sum(joint, axis=0)"}), ["1", "0", "1", "2"],
        "ex2: wrong on hidden inputs: joint")  # fmt: skip
    put(
        "erroring",
        fill(student, {**SOLUTIONS, EX1: "return p.total()"}),
        ["0", "2", "1", "3"],
        "ex1: raised AttributeError on hidden inputs",
    )
    put("infinite loop", fill(student, {**SOLUTIONS, EX3: "while True:\n    pass"}), ["1", "2", "0", "3"],
        "ex3: timed out in cell 9")  # fmt: skip
    tampered = fill(student, {**SOLUTIONS, EX1: "return p"})
    cell(tampered, CHECK1).source = "# NBVAL_CHECK_OUTPUT\nprint('[0.125 0.25  0.625]')"
    put(
        "tampered",
        tampered,
        ["0", "2", "1", "3"],
        "check cell edited: ex1 (restored from the key); ex1: wrong on hidden inputs: vector, table",
    )
    put(
        "memory hog",
        fill(student, {**SOLUTIONS, EX2: "blocks = []\nwhile True:\n    blocks.append(np.zeros(2**24))"}),
        ["1", "0", "1", "2"],
        "ex2: raised MemoryError on hidden inputs",
    )
    put(
        "kernel crash",
        fill(student, {**SOLUTIONS, EX2: "import os\nos._exit(3)"}),
        ["1", "0", "0", "1"],
        "ex2, ex3: kernel died in cell 6 (exit code 3)",
    )
    messy = copy.deepcopy(correct)
    messy.cells = [c for c in messy.cells if c.get("id") != CHECK3]
    table = next(c for c in messy.cells if c.get("source", "").startswith("table ="))
    messy.cells.remove(table)
    messy.cells.append(table)
    put(
        "late submission (v2)",
        messy,
        ["1", "2", "1", "4"],
        "cells reordered; check cell missing: ex3 (restored from the key)",
    )
    (folder / "invalid json.ipynb").write_text(json.dumps(correct)[:500], encoding="utf-8")
    expected["invalid json"] = (["0", "0", "0", "0"], "not a notebook (invalid JSON at line 1: ")
    put("other chapter", other, ["0", "0", "0", "0"], "wrong chapter (02_other, expected 01_fixture)")
    return expected


def test_grade_gradebook_end_to_end(released, tmp_path, capsys):
    subs = tmp_path / "submissions"
    expected = _submissions(released, subs)
    stamp = {p.name: p.read_bytes() for p in subs.iterdir()}
    out = tmp_path / "grades"
    argv = ["grade", "--key", str(KEY), str(subs), "--out", str(out), "--jobs", "2"]
    # a cell limit with room for a loaded machine (imports of torch took seconds under load)
    argv += ["--timeout", "120", "--cell-timeout", "15", "--memory", "1500"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in subs.iterdir()} == stamp  # submissions untouched

    with open(out / "gradebook.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student", "ex1", "ex2", "ex3", "total", "max", "notes"]
    got = {r[0]: r for r in rows[1:]}
    assert set(got) == set(expected)
    for name, (points, notes) in expected.items():
        row = got[name]
        assert row[1:5] == points, (name, row)
        assert row[5] == "4"
        if name == "invalid json":
            assert row[6].startswith(notes), row
        else:
            assert row[6] == notes, (name, row[6])
    page = (out / "gradebook.html").read_text(encoding="utf-8")
    assert "Zoë Müller" in page and "late submission (v2)" in page and "<table>" in page
    assert "raised AttributeError" in page
    assert "Zoë Müller" in printed and "12 submissions of 01_fixture" in printed
    assert (out / "graded" / "tampered.ipynb").exists() and (out / "logs" / "kernel crash.log").exists()


def test_grade_kills_a_notebook_over_the_wall_clock_limit(released, tmp_path):
    """A cell that swallows nbval's interrupt and keeps printing: only the wall clock stops it."""
    psutil = pytest.importorskip("psutil")
    student, _, _ = released
    stubborn = "import time\nwhile True:\n    try:\n        while True:\n            print('.', flush=True)\n"
    stubborn += "            time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass"
    path = tmp_path / "stubborn.ipynb"
    nbformat.write(fill(student, {**SOLUTIONS, EX2: stubborn}), path)
    book = grade(KEY, [path], tmp_path / "out", timeout=15, cell_timeout=3, scratch=tmp_path / "scratch")
    (row,) = book.rows
    assert row.total == 0 and row.notes == ["timed out: the notebook ran over the 15 s limit"]
    leftovers = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if RUN_TOKEN_VAR in env and env.get("HOME", "").startswith(str(tmp_path)):
                leftovers.append(p.pid)
        except psutil.Error:
            pass
    assert leftovers == []


def test_check_release_holds_for_the_fixture_and_catches_violations(tmp_path):
    """``pgm-lab release --check``: nothing hidden in the copy, the reference full, the copy 0."""
    (copy_path,) = release([KEY], tmp_path / "released")
    assert check_release(KEY, copy_path) == []
    released = read_notebook(copy_path)
    leaky = fill(released, {EX3: "return int(np.triu(adj, 1).sum())"})
    leaky.cells.append(copy.deepcopy(cell(read_notebook(KEY), HIDDEN[0])))
    nbformat.write(leaky, tmp_path / "leaky.ipynb")
    problems = check_release(KEY, tmp_path / "leaky.ipynb")
    assert problems[0].endswith("holds a line of a solution: 'return int(np.triu(adj, 1).sum())'")
    assert "is a hidden check" in problems[1] and "holds a line of a hidden check" in problems[2]
    assert problems[3].startswith("student copy earns 0.5 without a solution")
    assert len(problems) == 4
