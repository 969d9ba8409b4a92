"""Points per exercise from a run of a submission and the hidden values of the key's run.

Every point comes from a hidden check (see :mod:`.key`): the check cell must have run
(nbval's outcome for its cell) and each value it emitted must match the key's
(:func:`.verdict.judge_check`). Public checks earn nothing; their failures are the
student's own business. Each lost point gets a reason in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .key import Key
from .nbval_run import RunResult, cell_reason
from .prepare import Prepared
from .verdict import Records, judge_check

UNSANDBOXED_NOTE = "graded unsandboxed (--no-sandbox)"


@dataclass
class Row:
    """One gradebook line."""

    student: str
    points: dict[str, float]
    total: float
    max: float
    notes: list[str]
    source: str = ""
    seconds: float = 0.0

    @property
    def notes_text(self) -> str:
        return "; ".join(self.notes)


def empty_row(key: Key, student: str, notes: list[str]) -> Row:
    return Row(student, dict.fromkeys((ex.name for ex in key.exercises), 0.0), 0.0, key.max_points, notes)


def _failed_check_reason(n: int, previous: int, run: RunResult) -> str:
    """Why hidden-check cell ``n`` did not run: the first failing cell since the last check, if any."""
    reason = cell_reason(n, run.cells[n], run.cells)
    if reason.startswith(("output differs", "timed out", "kernel died")) or run.cells[n].status == "skipped":
        return reason
    for m in range(previous + 1, n):
        out = run.cells.get(m)
        if out is not None and out.status in ("failed", "error"):
            other = cell_reason(m, out, run.cells)
            if not other.startswith("output differs"):
                return other
    return reason


def score(
    key: Key,
    student: str,
    prep: Prepared,
    run: RunResult | None,
    *,
    expected: Records | None = None,
    got: Records | None = None,
    timeout: float = 0,
    sandboxed: bool = True,
) -> Row:
    """Points per exercise and the reasons for every point lost."""
    extra = [] if sandboxed else [UNSANDBOXED_NOTE]
    if prep.problem is not None:
        return empty_row(key, student, [prep.problem, *prep.notes, *extra])
    row = empty_row(key, student, list(prep.notes))
    assert run is not None
    row.seconds = run.seconds
    if run.status == "timeout":
        row.notes += [f"timed out: the notebook ran over the {timeout:g} s limit", *extra]
        return row
    if run.status == "crashed":
        row.notes.append(
            f"grader error: pytest exited with code {run.returncode} and wrote no results (see the log)"
        )
        return _with(row, extra)
    expected = expected or Records()
    got = got or Records()
    if got.tamper:
        row.notes.append("tampering: " + "; ".join(got.tamper))
    if got.problem:
        row.notes.append(got.problem)
    reasons: dict[str, list[str]] = {}
    previous = -1
    for ex in key.exercises:
        for check in ex.checks:
            n = prep.cell_number.get(check.cell_id)
            outcome = run.cells.get(n) if n is not None else None
            if outcome is None:
                reason = "not run"
            elif outcome.status != "passed":
                reason = _failed_check_reason(n, previous, run)
            elif check.cell_id not in got.began:
                reason = "hidden check did not run as written"
                tampered = (
                    "tampering: a hidden check cell did not run as written (cells rewritten at run time?)"
                )
                if tampered not in row.notes:
                    row.notes.append(tampered)
            else:
                verdict = judge_check(
                    check.cell_id, check.points, expected, got, rtol=check.rtol, atol=check.atol
                )
                row.points[ex.name] += verdict.earned
                row.notes += [f"{ex.name}: {note}" for note in verdict.notes]
                reason = _wrong_reason(verdict.failed)
            previous = n if n is not None else previous
            if reason:
                names = reasons.setdefault(reason, [])
                if ex.name not in names:
                    names.append(ex.name)
    for reason, names in reasons.items():
        row.notes.append(f"{', '.join(names)}: {reason}")
    row.points = {name: round(p, 4) for name, p in row.points.items()}
    row.total = round(sum(row.points.values()), 4)
    return _with(row, extra)


def _wrong_reason(failed: list[str]) -> str:
    """``raised X on hidden inputs`` when every failed label raised X, else the labels."""
    if not failed:
        return ""
    raised = {f.rpartition("(raised ")[2].rstrip(")") for f in failed if f.endswith(")") and "(raised " in f}
    if len(raised) == 1 and all("(raised " in f for f in failed):
        return f"raised {raised.pop()} on hidden inputs"
    return "wrong on hidden inputs: " + ", ".join(failed)


def _with(row: Row, extra: list[str]) -> Row:
    row.notes += extra
    return row
