"""Unit tests of the hidden-check pieces: encoding in the kernel, comparing outside it,
tamper findings, forbidden calls, release leaks, and the sandbox's error paths."""

from __future__ import annotations

import json
import os

import nbformat
import numpy as np
import pytest
import torch

from pgm_lab import notebooks
from pgm_lab.grading import hidden, sandbox, tamper
from pgm_lab.grading.release import release_problems
from pgm_lab.grading.verdict import judge_check, matches, read_records


def rt(value):
    """Encode as the kernel does and decode as the grader does."""
    return json.loads(json.dumps(hidden.encode(value)))


def test_numbers_arrays_and_tensors_compare_within_tolerance():
    a = np.array([[0.1, 0.2], [0.3, 0.4]])
    assert matches(rt(a), rt(a + 1e-9))
    assert not matches(rt(a), rt(a + 1e-3))
    assert matches(rt(torch.tensor(a, dtype=torch.float32)), rt(a), rtol=1e-6, atol=1e-7)
    assert not matches(rt(torch.tensor(a, dtype=torch.float32)), rt(a), rtol=1e-12, atol=0)
    assert not matches(rt(a.T.reshape(-1)), rt(a))  # same values, other shape
    assert matches(rt([0.5, 0.5]), rt(np.array([0.5, 0.5])))  # list vs array: both sequences
    assert matches(rt((1, 2)), rt([1, 2])) and not matches(rt([1, 2, 3]), rt([1, 2]))
    assert matches(rt(float("nan")), rt(float("nan"))) and not matches(rt(1.0), rt(float("nan")))
    assert matches(rt(np.array([np.nan, 1.0])), rt(np.array([np.nan, 1.0])))


def test_exact_values_sets_dicts_and_errors():
    assert matches(rt(True), rt(np.bool_(True))) and not matches(rt(1), rt(True))
    assert matches(rt("abc"), rt("abc")) and not matches(rt("abc"), rt("abd"))
    edges = {frozenset({"a", "b"}), frozenset({"b", "c"})}
    assert matches(rt(set(edges)), rt(edges)) and not matches(rt({frozenset({"a", "b"})}), rt(edges))
    assert matches(rt({"x": [1.0, 2.0]}), rt({"x": np.array([1.0, 2.0 + 1e-12])}))
    assert not matches(rt({"x": 1.0}), rt({"y": 1.0}))
    key_err = hidden.encode_error(ValueError("bad"))

    class Mine(ValueError):
        pass

    assert matches(hidden.encode_error(Mine()), key_err)  # a subclass is the same kind of error
    assert not matches(hidden.encode_error(TypeError()), key_err)
    assert not matches(rt(1.0), key_err) and not matches(key_err, rt(1.0))
    assert hidden.encode(object())["__unsupported__"] == "object"


def test_a_ragged_object_array_earns_nothing_and_breaks_nothing():
    """A student's ragged dtype=object array is compared, not a crash of the grader."""
    ragged = np.empty(2, dtype=object)
    ragged[:] = [[1], [1, 2]]
    flags = np.empty(2, dtype=object)
    flags[:] = [[True], [True, False]]
    for student in (ragged, flags):
        for key in (1.0, np.array([1.0, 1.0]), np.array([True, False]), "a"):
            assert not matches(rt(student), rt(key))


def test_check_records_values_errors_and_forbidden_calls(tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    monkeypatch.setenv(hidden.OUT_VAR, str(out))
    monkeypatch.setenv(hidden.SEED_VAR, "s1")
    hidden.begin("c1")
    first = hidden.rng().random(3)
    hidden.check("sum", np.sum, [1, 2, 3])
    hidden.check("fails", lambda: 1 / 0)
    hidden.check("by pgm_lab", lambda: notebooks.tags, forbid=("pgm_lab.notebooks",))
    hidden.check("calls pgm_lab", lambda: notebooks.tags({}), forbid=("pgm_lab.notebooks",))
    hidden.check("plain numpy", lambda: np.ones(2), forbid=("pgm_lab",))
    hidden.check("too slow", lambda: [0 for _ in iter(int, 1)], limit_s=0.2)
    rec = read_records(out)
    assert rec.began == {"c1"} and rec.values[("c1", "sum")] == 6
    assert rec.values[("c1", "fails")]["__error__"] == "ZeroDivisionError"
    assert ("c1", "by pgm_lab") not in rec.forbidden
    assert ("c1", "plain numpy") not in rec.forbidden
    assert rec.values[("c1", "too slow")]["__error__"] == "TimeoutError"
    assert rec.forbidden[("c1", "calls pgm_lab")] == ["pgm_lab.notebooks.tags"]
    # fresh inputs: another secret seed, or another check, gives other numbers; the same, the same
    hidden.begin("c1")
    assert np.array_equal(hidden.rng().random(3), first)
    monkeypatch.setenv(hidden.SEED_VAR, "s2")
    hidden.begin("c1")
    assert not np.array_equal(hidden.rng().random(3), first)


def test_judge_check_shares_points_and_refuses_duplicates_and_forbidden(tmp_path):
    key, sub = tmp_path / "k.jsonl", tmp_path / "s.jsonl"
    lines = [{"check": "c", "label": lab, "value": v} for lab, v in (("a", 1.0), ("b", [1, 2]), ("c", "x"))]
    key.write_text("\n".join(json.dumps(x) for x in lines))
    student = [*lines[:2], {"check": "c", "label": "c", "value": "y"}]
    sub.write_text("\n".join(json.dumps(x) for x in student) + "\nnot json\n")
    k, s = read_records(key), read_records(sub)
    res = judge_check("c", 3, k, s, rtol=1e-5, atol=1e-8)
    assert res.earned == 2 and res.failed == ["c"] and s.problem == "garbled hidden-check records"
    sub.write_text(
        "\n".join(json.dumps(x) for x in [*lines[:2], lines[0], {**lines[2], "forbidden": ["m.f"]}])
    )
    res = judge_check("c", 3, k, read_records(sub), rtol=1e-5, atol=1e-8)
    assert res.earned == 1 and res.failed == ["a", "c"]
    assert any("emitted 2 times" in n for n in res.notes) and any("calls m.f" in n for n in res.notes)
    assert judge_check("other", 1, k, k, rtol=0, atol=0).notes == [
        "the key emitted nothing for hidden check other"
    ]


def test_tamper_findings_see_notebook_code_in_hooks(monkeypatch):
    assert tamper._module_findings() == []

    def fake_allclose(*a, **k):
        return True

    fake_allclose.__module__ = "__main__"
    monkeypatch.setattr(np, "allclose", fake_allclose)
    monkeypatch.setattr("builtins.print", fake_allclose)
    found = tamper._module_findings()
    assert "numpy.allclose replaced" in found and "builtins.print replaced" in found
    assert not tamper.is_notebook_code(np.sum) and not tamper.is_notebook_code(print.__class__)


def test_release_problems_find_hidden_checks_solutions_and_outputs():
    key = nbformat.v4.new_notebook()
    sol = "def f(x):\n    ### BEGIN SOLUTION\n    return x * 2 + secret_offset_value\n    ### END SOLUTION"
    hid = "hidden.check('doubles', f, rng.integers(0, 100, size=7))"
    key.cells = [
        nbformat.v4.new_code_cell(sol, metadata={"tags": ["exercise"]}),
        nbformat.v4.new_code_cell(hid, metadata={"tags": ["hidden-check"]}),
    ]
    clean = nbformat.v4.new_notebook()
    clean.cells = [nbformat.v4.new_code_cell("def f(x):\n    raise NotImplementedError")]
    assert release_problems(key, clean) == []
    leaky = nbformat.v4.new_notebook()
    out = nbformat.v4.new_output("stream", name="stdout", text="14\n")
    leaky.cells = [
        nbformat.v4.new_code_cell("def f(x):\n    return x * 2 + secret_offset_value"),
        nbformat.v4.new_code_cell(hid, outputs=[out]),
    ]
    problems = release_problems(key, leaky)
    assert "holds a line of a solution" in problems[0] and "holds a line of a hidden check" in problems[1]
    assert "stores outputs" in problems[2]


def test_missing_bubblewrap_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from pgm_lab import cli

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    sandbox.sandbox_problem.cache_clear()
    try:
        assert (
            "install bubblewrap" in sandbox.sandbox_problem() and "--no-sandbox" in sandbox.sandbox_problem()
        )
        with pytest.raises(sandbox.SandboxError, match="apt-get install bubblewrap"):
            sandbox.bwrap_argv(sandbox.SandboxConfig(str(tmp_path), [], sandbox.Limits()), ["true"])
        key = os.path.join(os.path.dirname(__file__), "fixtures", "grading", "01_fixture.ipynb")
        assert cli.main(["grade", "--key", key, key, "--out", str(tmp_path / "out")]) == 2
        assert "install bubblewrap" in capsys.readouterr().err
        assert not (tmp_path / "out" / "gradebook.csv").exists()
    finally:
        sandbox.sandbox_problem.cache_clear()


def test_limits_become_rlimits():
    lim = sandbox.Limits(memory_mb=1000, cpu_s=30, nproc=64, file_mb=8).rlimits()
    assert lim == {
        "RLIMIT_CPU": 30,
        "RLIMIT_NPROC": 64,
        "RLIMIT_FSIZE": 8 * 2**20,
        "RLIMIT_CORE": 0,
        "RLIMIT_AS": 1000 * 2**20,
    }
    assert "RLIMIT_AS" not in sandbox.Limits(memory_mb=0).rlimits()
