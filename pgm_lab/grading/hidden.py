"""Kernel side of hidden checks: fresh inputs from a secret seed, the student's values emitted.

A hidden check is a code cell of the instructor's key tagged ``hidden-check`` (see
CONTRIBUTING.md). It draws new inputs with :func:`rng`, calls the student's function on
them with :func:`check` and so *emits* what the function returned; it decides nothing.
``pgm-lab grade`` runs the key and every submission with the same secret seed, then
compares, outside the kernel, each value a submission emitted with the value the key's
solution emitted for the same label (:mod:`pgm_lab.grading.verdict`). Typing in numbers,
rewriting check cells or printing what a check prints therefore earns nothing.

Environment (set by the grader, absent in a lecture or an nbval run of a chapter):
``PGM_LAB_HIDDEN_SEED`` the secret seed (0 when unset), ``PGM_LAB_HIDDEN_OUT`` the JSON-lines
file that receives the records (records stay in :data:`RECORDED` when unset).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import threading

import numpy as np

SEED_VAR = "PGM_LAB_HIDDEN_SEED"
OUT_VAR = "PGM_LAB_HIDDEN_OUT"
CALL_LIMIT_S = 30.0  # per hidden call; nbval's cell limit stays the outer bound
RECORDED: list[dict] = []  # records of this kernel when no output file is set
_state = {"check": "", "draws": 0}


def begin(check_id: str) -> None:
    """Start the hidden check ``check_id`` (the grader puts this call first in each check cell).

    Also records what :func:`pgm_lab.grading.tamper.findings` sees in the kernel.
    """
    from .tamper import findings

    _state.update(check=str(check_id), draws=0)
    _write({"check": _state["check"], "tamper": findings()})


def seed_for(label: str = "") -> int:
    """A 64-bit seed from the secret seed, the current check and ``label``."""
    secret = os.environ.get(SEED_VAR, "0")
    text = f"{secret}\0{_state['check']}\0{_state['draws']}\0{label}"
    _state["draws"] += 1
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng(label: str = "") -> np.random.Generator:
    """A numpy generator seeded afresh for this grading run and this check."""
    return np.random.default_rng(seed_for(label))


def torch_generator(label: str = ""):
    """A ``torch.Generator`` seeded like :func:`rng` (CPU)."""
    import torch

    return torch.Generator().manual_seed(seed_for(label) % 2**63)


def check(label: str, fn, *args, forbid: tuple[str, ...] = (), limit_s: float = CALL_LIMIT_S, **kwargs):
    """Call ``fn(*args, **kwargs)`` and emit its result (or the exception it raised) as ``label``.

    ``forbid`` names module prefixes (``"pgm_lab.models.diffusion"``) that the call must not
    reach: an exercise that asks for something by hand passes the module that computes it.
    A call that runs longer than ``limit_s`` seconds is stopped with ``TimeoutError`` (its
    value), so one slow answer costs its label, not the rest of the notebook.
    Returns the result (``None`` when ``fn`` raised), so a check can chain calls.
    """
    record = {"check": _state["check"], "label": str(label)}
    watcher = _Watcher(forbid) if forbid else None
    try:
        with _time_limit(limit_s):
            if watcher:
                watcher.start()
            try:
                result = fn(*args, **kwargs)
            finally:
                if watcher:
                    watcher.stop()
    except Exception as exc:  # the student's code may raise anything: that is the value
        record["value"] = encode_error(exc)
        result = None
    else:
        record["value"] = encode(result)
    if watcher and watcher.hits:
        record["forbidden"] = sorted(watcher.hits)[:5]
    _write(record)
    return result


def emit(label: str, value) -> None:
    """Emit ``value`` as ``label`` (for a check that computes the value itself)."""
    _write({"check": _state["check"], "label": str(label), "value": encode(value)})


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise ``TimeoutError`` in the calling code after ``seconds`` (main thread, Unix only)."""
    usable = (
        seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"hidden check call ran over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- encoding


def encode_error(exc: BaseException) -> dict:
    return {"__error__": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__]}


_NOT_SCALAR = object()


def encode(value, _depth: int = 0):
    """``value`` as JSON: arrays and tensors with their shape, sets sorted, dicts as pairs."""
    if _depth > 20:
        return {"__unsupported__": "nested too deeply"}
    scalar = _scalar(value)
    if scalar is not _NOT_SCALAR:
        return scalar
    tensor = _as_numpy(value)
    if tensor is not None:
        return _array(tensor)
    return _container(value, _depth + 1)


def _scalar(value):
    """JSON form of ``None``, a bool, a string or a (numpy) number; ``_NOT_SCALAR`` otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)  # NaN and infinities travel as JSON's NaN / Infinity
    if isinstance(value, complex):
        return {"__unsupported__": "complex"}
    return _NOT_SCALAR


def _container(value, depth: int):
    """Sets sorted by their items' JSON, dicts as pairs sorted by key, sequences as lists."""
    if isinstance(value, (set, frozenset)):
        items = [encode(v, depth) for v in value]
        return {"__set__": sorted(items, key=_canonical)}
    if isinstance(value, dict):
        pairs = [[encode(k, depth), encode(v, depth)] for k, v in value.items()]
        return {"__dict__": sorted(pairs, key=lambda kv: _canonical(kv[0]))}
    if isinstance(value, (list, tuple, range)):
        return [encode(v, depth) for v in value]
    return {"__unsupported__": type(value).__name__}


def _as_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    mod = type(value).__module__
    if mod.startswith("torch") and hasattr(value, "detach"):
        try:
            return value.detach().cpu().double().numpy() if value.is_floating_point() else value.cpu().numpy()
        except Exception:
            return None
    return None


def _array(a: np.ndarray) -> dict:
    if a.dtype == bool or np.issubdtype(a.dtype, np.number):
        data = a.tolist()
    else:
        data = [encode(v) for v in a.ravel().tolist()]
    return {"__array__": data, "shape": list(a.shape)}


def _canonical(v) -> str:
    return json.dumps(v, sort_keys=True)


def _write(record: dict) -> None:
    path = os.environ.get(OUT_VAR)
    if not path:
        RECORDED.append(record)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


class _Watcher:
    """Notes calls into forbidden modules while the student's function runs (``sys.setprofile``)."""

    def __init__(self, prefixes):
        self.prefixes = tuple(p.rstrip(".") for p in prefixes)
        self.hits: set[str] = set()
        self._old = None

    def _module_of(self, frame, event, arg) -> str:
        if event == "call":
            return frame.f_globals.get("__name__", "")
        if event == "c_call":
            return getattr(arg, "__module__", None) or ""
        return ""

    def _profile(self, frame, event, arg):
        mod = self._module_of(frame, event, arg)
        if mod.startswith("pgm_lab.grading"):  # the watcher itself, not the student's call
            return
        if mod and any(mod == p or mod.startswith(p + ".") for p in self.prefixes):
            name = frame.f_code.co_qualname if event == "call" else getattr(arg, "__qualname__", "?")
            self.hits.add(f"{mod}.{name}")

    def start(self):
        self._old = sys.getprofile()
        sys.setprofile(self._profile)

    def stop(self):
        sys.setprofile(self._old)
