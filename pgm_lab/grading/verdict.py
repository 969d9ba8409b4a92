"""Grader side of hidden checks: read the emitted records, compare a submission with the key.

Each record is one JSON line written by :mod:`.hidden` in a kernel: ``{"check", "label",
"value"}`` (plus ``"forbidden"`` when the call reached a module the exercise forbids), or
``{"check", "tamper"}``. A label of a check earns its share of the check's points when the
submission emitted it exactly once and its value :func:`matches` the key's value within
the check's tolerance (``rtol``/``atol`` in the cell's metadata). Nothing here runs student
code: records are data.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_RECORD_BYTES = 32 * 2**20
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-8


@dataclass
class Records:
    """What one run emitted: values per (check, label), duplicates, forbidden calls, tampering."""

    values: dict[tuple[str, str], object] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    forbidden: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    tamper: list[str] = field(default_factory=list)
    began: set[str] = field(default_factory=set)  # checks whose first line ran
    problem: str | None = None

    def labels(self, check: str) -> list[str]:
        return [label for (c, label) in self.values if c == check]


def read_records(path: str | os.PathLike) -> Records:
    """Parse a records file; a missing, huge or garbled file gives what could be read and a problem."""
    rec = Records()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return rec
    if size > MAX_RECORD_BYTES:
        rec.problem = f"hidden-check records of {size / 2**20:.0f} MB, over the limit"
        return rec
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            rec.problem = "garbled hidden-check records"
            continue
        if not isinstance(item, dict) or not isinstance(item.get("check"), str):
            rec.problem = "garbled hidden-check records"
            continue
        if "tamper" in item:
            rec.began.add(item["check"])
            found = item["tamper"] if isinstance(item["tamper"], list) else ["unreadable tamper report"]
            rec.tamper += [str(t) for t in found if str(t) not in rec.tamper]
            continue
        if not isinstance(item.get("label"), str) or "value" not in item:
            rec.problem = "garbled hidden-check records"
            continue
        key = (item["check"], item["label"])
        rec.counts[key] = rec.counts.get(key, 0) + 1
        rec.values[key] = item["value"]
        if item.get("forbidden"):
            rec.forbidden[key] = [str(f) for f in item["forbidden"]][:5]
    return rec


def _is_error(v) -> bool:
    return isinstance(v, dict) and "__error__" in v


def _numeric(v):
    """``v`` as a float array when it is a number, an encoded array or a numeric nested list."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return np.asarray(float(v))
    if isinstance(v, dict) and "__array__" in v:
        try:
            a = np.asarray(v["__array__"], dtype=float)
            return a.reshape(v.get("shape", a.shape))
        except (ValueError, TypeError):
            return None
    if isinstance(v, list) and v:
        try:
            a = np.asarray(v, dtype=float)
        except (ValueError, TypeError):
            return None
        return a if a.dtype == float else None
    return None


def _bools(v):
    if isinstance(v, bool):
        return np.asarray(v)
    if isinstance(v, dict) and "__array__" in v:
        try:
            a = np.asarray(v["__array__"])
        except ValueError:  # a ragged nested list (a student's dtype=object array): no bool array
            return None
        return a if a.dtype == bool else None
    return None


def matches(student, key, *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> bool:
    """Whether an emitted value equals the key's: numbers within tolerance, the rest exactly.

    An error matches when the student's exception is (a subclass of) the key's; numbers,
    arrays and numeric lists compare as arrays (same shape, ``allclose``, NaN equals NaN);
    booleans, strings and ``None`` exactly; sets and dicts item by item.
    """
    if _is_error(key) or _is_error(student):
        return _same_error(student, key)
    kb, sb = _bools(key), _bools(student)
    if kb is not None:
        return sb is not None and kb.shape == sb.shape and bool((kb == sb).all())
    kn = _numeric(key)
    if kn is not None:
        return _close(_numeric(student), kn, rtol=rtol, atol=atol)
    return _same_structure(student, key, rtol=rtol, atol=atol)


def _same_error(student, key) -> bool:
    """Both are errors and the student's class is the key's or a subclass (its MRO names it)."""
    if not (_is_error(key) and _is_error(student)):
        return False
    return key["__error__"] in (student.get("mro") or [student["__error__"]])


def _close(sn, kn: np.ndarray, *, rtol: float, atol: float) -> bool:
    """Numbers and arrays: the same shape and ``allclose`` (NaN equals NaN)."""
    if sn is None or sn.shape != kn.shape:
        return False
    return bool(np.allclose(sn, kn, rtol=rtol, atol=atol, equal_nan=True))


def _same_structure(student, key, *, rtol: float, atol: float) -> bool:
    """Sets, dicts and lists item by item; NaN and infinities as floats; the rest exactly."""
    if isinstance(key, dict) and isinstance(student, dict):
        for tag in ("__set__", "__dict__"):
            if tag in key:
                return tag in student and matches(student[tag], key[tag], rtol=rtol, atol=atol)
        return key == student
    if isinstance(key, list) and isinstance(student, list):
        return len(key) == len(student) and all(
            matches(s, k, rtol=rtol, atol=atol) for s, k in zip(student, key)
        )
    if isinstance(key, float) and isinstance(student, float):  # NaN or infinity
        return (math.isnan(key) and math.isnan(student)) or key == student
    return type(key) is type(student) and key == student


@dataclass
class CheckResult:
    """The verdict on one hidden check of one submission."""

    earned: float
    failed: list[str]  # labels that differ or are missing
    notes: list[str] = field(default_factory=list)


def judge_check(
    check_id: str, points: float, key: Records, sub: Records, *, rtol: float, atol: float
) -> CheckResult:
    """Points for one hidden check: ``points`` shared equally by the key's labels of the check."""
    labels = key.labels(check_id)
    if not labels:
        return CheckResult(0.0, [], [f"the key emitted nothing for hidden check {check_id}"])
    share = points / len(labels)
    earned, failed, notes = 0.0, [], []
    for label in labels:
        k = (check_id, label)
        if sub.counts.get(k, 0) == 0:
            failed.append(label)
        elif sub.counts[k] > 1:
            failed.append(label)
            notes.append(f"'{label}' emitted {sub.counts[k]} times")
        elif sub.forbidden.get(k):
            failed.append(label)
            notes.append(
                f"'{label}' calls {sub.forbidden[k][0]}, which the exercise asks you to write yourself"
            )
        elif matches(sub.values[k], key.values[k], rtol=rtol, atol=atol):
            earned += share
        elif _is_error(sub.values[k]):
            failed.append(f"{label} (raised {sub.values[k]['__error__']})")
        else:
            failed.append(label)
    return CheckResult(earned, failed, notes)
