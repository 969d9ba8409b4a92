"""Points per exercise from a run of a submission and the hidden values of the key's run.

Every point comes from a hidden check (see :mod:`.key`): the check cell must have run
(nbval's outcome for its cell) and each value it emitted must match the key's
(:func:`.verdict.judge_check`). Public checks earn nothing; their failures are the
student's own business. Each lost point gets a reason in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .key import Key
from .nbval_run import RunResult, cell_reason
from .prepare import Prepared
from .verdict import Records, judge_check

UNSANDBOXED_NOTE = "graded unsandboxed (--no-sandbox)"
TAMPERED_CELL_NOTE = "tampering: a hidden check cell did not run as written (cells rewritten at run time?)"


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
    marking = _Marking(row, run, expected or Records(), got or Records())
    row.notes += _records_notes(marking.got)
    for ex in key.exercises:
        for check in ex.checks:
            marking.mark(ex.name, check, prep.cell_number.get(check.cell_id))
    for reason, names in marking.reasons.items():
        row.notes.append(f"{', '.join(names)}: {reason}")
    row.points = {name: round(p, 4) for name, p in row.points.items()}
    row.total = round(sum(row.points.values()), 4)
    return _with(row, extra)


def _records_notes(got: Records) -> list[str]:
    """Notes about the run's records as a whole: tampering reports and an unreadable file."""
    notes = ["tampering: " + "; ".join(got.tamper)] if got.tamper else []
    return notes + ([got.problem] if got.problem else [])


@dataclass
class _Marking:
    """Marks the hidden checks of one run in order, adding points and notes to ``row``.

    ``reasons`` maps each reason for lost points to the exercises that lost points for it.
    """

    row: Row
    run: RunResult
    expected: Records
    got: Records
    reasons: dict[str, list[str]] = field(default_factory=dict)
    previous: int = -1  # cell number of the last hidden check seen

    def mark(self, exercise: str, check, n: int | None) -> None:
        """Score hidden check ``check`` of ``exercise``, run as nbval's cell ``n`` (None: absent)."""
        reason = self._reason(exercise, check, n)
        self.previous = n if n is not None else self.previous
        if reason:
            names = self.reasons.setdefault(reason, [])
            if exercise not in names:
                names.append(exercise)

    def _reason(self, exercise: str, check, n: int | None) -> str:
        """Why the check lost points ('' when none), after adding what it earned."""
        outcome = self.run.cells.get(n) if n is not None else None
        if outcome is None:
            return "not run"
        if outcome.status != "passed":
            return _failed_check_reason(n, self.previous, self.run)
        if check.cell_id not in self.got.began:
            if TAMPERED_CELL_NOTE not in self.row.notes:
                self.row.notes.append(TAMPERED_CELL_NOTE)
            return "hidden check did not run as written"
        verdict = judge_check(
            check.cell_id, check.points, self.expected, self.got, rtol=check.rtol, atol=check.atol
        )
        self.row.points[exercise] += verdict.earned
        self.row.notes += [f"{exercise}: {note}" for note in verdict.notes]
        return _wrong_reason(verdict.failed)


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
