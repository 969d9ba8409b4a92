"""The one training loop of Part II (chapters 06-10): ``fit(model, data, ...)``.

Every model follows the protocol of :class:`pgm_lab.models.base.GenerativeModel`
(``configure_optimizers`` and ``training_step``), so likelihood models and GANs train
with the same call. ``fit`` places model and data on ``pgm_lab.device()``, uses bf16
autocast on CUDA, shows a progress bar, records a history for plotting and caches the
trained parameters under ``pgm_lab.cache_dir()/checkpoints``, keyed by everything that
determines them (see :func:`cache_key`): re-running a lecture cell loads in seconds instead
of training again, and an edit of the model's code retrains.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any, Literal

import torch

from .config import cache_dir, warn_cache_unwritable
from .config import device as default_device
from .config import profile as active_profile

#: training steps when neither ``steps`` nor ``model.default_steps`` says otherwise
DEFAULT_STEPS = {"smoke": 20, "quick": 2000, "full": 10000}
#: bump when the checkpoint layout or the cache key changes (2: code, initial weights, torch,
#: the random state training leaves)
_CACHE_FORMAT = 2


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds its last good parameters."""


@dataclass
class History:
    """What ``fit`` recorded: per-step logs, timing and where the checkpoint lives."""

    logs: dict[str, list[float]] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    snapshots: list[tuple[int, Any]] = field(default_factory=list)
    seconds: float = 0.0
    loaded: bool = False
    path: Path | None = None

    def __getitem__(self, key: str) -> list[float]:
        return self.logs[key]

    def __contains__(self, key: str) -> bool:
        return key in self.logs

    def state(self) -> dict[str, Any]:
        return {"logs": self.logs, "steps": self.steps, "snapshots": self.snapshots, "seconds": self.seconds}


def as_tensors(data) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Accept a ``TensorDataset``, a tensor of images or an ``(images, labels)`` pair."""
    if isinstance(data, torch.utils.data.TensorDataset):
        tensors = data.tensors
    elif torch.is_tensor(data):
        tensors = (data,)
    elif isinstance(data, (tuple, list)) and data and all(torch.is_tensor(t) for t in data):
        tensors = tuple(data)
    else:
        raise ValueError(
            "data must be a TensorDataset, a tensor of images or an (images, labels) pair of tensors, "
            f"got {type(data).__name__}"
        )
    x = tensors[0].float()
    y = tensors[1] if len(tensors) > 1 else None
    if x.dim() not in (2, 4):
        raise ValueError(f"data must be images (N, C, H, W) or vectors (N, D), got shape {tuple(x.shape)}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("data is empty")
    return x, y


def _fingerprint(t: torch.Tensor | None) -> str:
    if t is None:
        return "none"
    arr = t.detach().cpu().contiguous().numpy()
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode() + str(arr.dtype).encode()).hexdigest()[:16]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _code_text(code: CodeType) -> str:
    """Byte code, constants (nested functions recursively) and names of ``code``: what it does."""
    consts = [_code_text(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}|{code.co_freevars}"


_CONSTANTS = (int, float, complex, str, bytes, bool, type(None), range, frozenset)


def _value_text(value) -> str:
    """A stable description of a default or closure value: constants by value, tensors by
    content, code by code; anything else (a list the function appends to, an open file) by
    its type only, since its state may change while training runs."""
    if torch.is_tensor(value):
        return _fingerprint(value)
    if isinstance(value, tuple):
        return f"({', '.join(_value_text(v) for v in value)})"
    if isinstance(value, _CONSTANTS):
        return repr(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if callable(value):
        return callable_fingerprint(value)
    return type(value).__qualname__


def callable_fingerprint(fn) -> str:
    """Hash of what ``fn`` computes: its code, defaults and closure values, not its name.

    Used for ``fit``'s ``transform``: two functions of the same name but different bodies, or
    one factory's closures over different constants, get different fingerprints.
    """
    if id(fn) in _VISITING:  # a recursive function reaches itself through its closure
        return "recursive"
    _VISITING.add(id(fn))
    try:
        return _callable_text(fn)
    finally:
        _VISITING.discard(id(fn))


_VISITING: set[int] = set()


def _callable_text(fn) -> str:
    if isinstance(fn, functools.partial):
        parts = [
            callable_fingerprint(fn.func),
            _value_text(fn.args),
            _value_text(tuple(sorted(fn.keywords.items()))),
        ]
    elif isinstance(fn, FunctionType):
        cells = [_value_text(c.cell_contents) for c in (fn.__closure__ or ()) if _cell_filled(c)]
        parts = [
            _code_text(fn.__code__),
            _value_text(fn.__defaults__),
            _value_text(tuple(sorted((fn.__kwdefaults__ or {}).items()))),
            *cells,
        ]
        if (fn.__module__ or "").startswith("pgm_lab"):  # the helpers it calls live there
            parts.append(_module_source(fn.__module__))
    elif inspect.ismethod(fn):
        parts = [callable_fingerprint(fn.__func__), class_fingerprint(type(fn.__self__))]
    else:  # a callable object: its class's code and its attributes
        parts = [
            class_fingerprint(type(fn)),
            _value_text(tuple(sorted(vars(fn).items())) if hasattr(fn, "__dict__") else ()),
        ]
    return _sha("|".join(parts))


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty closure cell
        return False
    return True


def class_fingerprint(cls: type) -> str:
    """Hash of the code of every attribute that ``cls`` defines itself (methods, properties, constants).

    It reads the live objects (byte code, constants, defaults), so a patched or reloaded
    method changes it even where ``inspect.getsource`` would still read the old file.
    """
    parts = []
    for name, attr in sorted(vars(cls).items()):
        if name in (
            "__dict__",
            "__weakref__",
            "__doc__",
            "__module__",
            "__firstlineno__",
            "__static_attributes__",
        ):
            continue
        fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if isinstance(fn, property):
            parts += [
                f"{name}.{p}={callable_fingerprint(f)}"
                for p, f in zip("gsd", (fn.fget, fn.fset, fn.fdel))
                if f
            ]
        elif isinstance(fn, FunctionType):
            parts.append(f"{name}={callable_fingerprint(fn)}")
        elif isinstance(fn, type):
            parts.append(f"{name}={class_fingerprint(fn)}")
        elif isinstance(fn, (dict, list, set)) and " at 0x" not in repr(fn):  # a table of settings
            parts.append(f"{name}={fn!r}")
        else:
            parts.append(f"{name}={_value_text(fn)}")
    return _sha(f"{cls.__qualname__}|{'|'.join(parts)}")


def _module_source(name: str) -> str:
    """Hash of the source file of module ``name`` ("" when it has none, e.g. a notebook)."""
    module = sys.modules.get(name)
    try:
        return _sha(Path(inspect.getsourcefile(module)).read_text(encoding="utf-8"))
    except (TypeError, OSError):
        return ""


def _pgm_lab_imports(name: str) -> set[str]:
    """The ``pgm_lab`` modules whose functions, classes or selves module ``name`` imported
    (a loss in ``pgm_lab.metrics`` that a model's ``loss`` calls, say)."""
    module = sys.modules.get(name)
    found = set()
    for value in vars(module).values() if module is not None else ():
        owner = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(owner, str) and owner.startswith("pgm_lab") and owner in sys.modules:
            found.add(owner)
    return found


def code_fingerprint(model) -> dict[str, str]:
    """Code that determines what training produces: one hash per class and per module.

    Covers the class of the model and of each of its sub-modules, their base classes up to
    ``object`` (torch's own classes are covered by ``torch.__version__`` instead), the
    source files of the ``pgm_lab`` modules they live in and of this training loop, and of
    the ``pgm_lab`` modules those import from.
    """
    classes = {cls for m in model.modules() for cls in type(m).__mro__}
    classes |= set(type(model).__mro__)
    ours = [c for c in classes if not c.__module__.startswith(("torch", "builtins"))]
    modules = {c.__module__ for c in ours if c.__module__.startswith("pgm_lab")} | {__name__}
    modules |= {dep for m in modules for dep in _pgm_lab_imports(m)}
    out = {f"class {c.__module__}.{c.__qualname__}": class_fingerprint(c) for c in ours}
    out.update({f"module {m}": _module_source(m) for m in modules})
    return out


def weights_fingerprint(model) -> str:
    """Hash of every parameter and buffer (the initial weights, when called before training)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(_fingerprint(t).encode())
    return h.hexdigest()[:16]


def cache_key(model, x, y, settings: dict[str, Any]) -> str:
    """Hash of everything that determines the trained parameters.

    The model's configuration, its code (:func:`code_fingerprint`: an edit of any method of
    the model, of its base classes or of their ``pgm_lab`` modules retrains), its initial
    weights, the data, the training settings (profile, steps, lr, ``transform`` by its code)
    and the torch version. Computed before training, so ``model`` holds its initial weights.
    """
    payload = {
        "format": _CACHE_FORMAT,
        "config": model.config,
        "code": code_fingerprint(model),
        "init": weights_fingerprint(model),
        "torch": torch.__version__,
        "x": _fingerprint(x),
        "y": _fingerprint(y),
        **settings,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _resolve_steps(model, steps, prof) -> int:
    if steps is None:
        steps = getattr(model, "default_steps", None) or DEFAULT_STEPS
    if isinstance(steps, dict):
        missing = {"smoke", "quick", "full"} - set(steps)
        if missing:
            raise ValueError(f"steps dict lacks profiles {sorted(missing)}")
        steps = prof.pick(**{k: steps[k] for k in ("smoke", "quick", "full")})
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return int(steps)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or os.environ.get("PGM_LAB_PROGRESS", "1") == "0":
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=0.5, leave=False)


def fit(
    model,
    data,
    *,
    profile: str | None = None,
    steps: int | dict[str, int] | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    cache: bool = True,
    device: str | torch.device | None = None,
    progress: bool = True,
    log_every: int = 1,
    snapshot_every: int | None = None,
    snapshot: Callable[[Any], Any] | None = None,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | Literal[False] | None = None,
    lr_schedule: str | None = None,
) -> History:
    """Train ``model`` on ``data``; load from the checkpoint cache when it already exists.

    ``steps`` may be an int or a dict per profile (``{"smoke": 20, "quick": 2000, "full": 10000}``);
    by default ``model.default_steps`` or :data:`DEFAULT_STEPS`. ``snapshot(model)`` is called
    every ``snapshot_every`` steps (and at the end) and its results are kept in
    ``history.snapshots`` and in the cache. ``transform(x, generator)`` augments each batch
    (for example stochastic binarisation; ``False``: none). ``lr_schedule="cosine"`` decays every
    optimiser's learning rate from ``lr`` to 0 along a half cosine over the run (``"constant"``:
    no decay). ``batch_size``, ``lr``, ``lr_schedule`` and ``transform`` left at ``None``: the
    model's recipe (its ``default_fit``, see :mod:`pgm_lab.recipes`), else :data:`FIT_DEFAULTS`
    (batch 128, lr 1e-3, constant, no augmentation). The model is left in ``eval()`` mode.
    """
    _check_schedule_and_transform(lr_schedule, transform)
    prof = active_profile(profile)
    batch_size, lr, lr_schedule, transform = _fit_defaults(model, batch_size, lr, lr_schedule, transform)
    x, y = _checked_data(model, data)
    n_steps = _resolve_steps(model, steps, prof)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if snapshot is not None and not snapshot_every:
        snapshot_every = max(1, n_steps // 8)
    dev = torch.device(device) if device is not None else default_device()
    settings = {
        "profile": prof.name,
        "steps": n_steps,
        "batch_size": batch_size,
        "lr": lr,
        **({"lr_schedule": lr_schedule} if lr_schedule != "constant" else {}),
        "seed": seed,
        "snapshot_every": snapshot_every if snapshot is not None else None,
        "transform": callable_fingerprint(transform) if transform is not None else None,
    }
    key = cache_key(model, x, y, settings)
    path = cache_dir() / "checkpoints" / f"{type(model).__name__}-{prof.name}-{key}.pt"
    model.to(dev)

    if cache and path.exists():
        loaded = _load(model, path, dev)
        if loaded is not None:
            loaded.path = path
            model.eval()
            return loaded

    # no usable checkpoint: train
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    run = _Run(model, x.to(dev), y.to(dev) if y is not None else None, gen, lr, n_steps)
    run.schedulers = _lr_schedulers(run.optimizers, lr_schedule, n_steps)
    history = History()
    bar = _progress(n_steps, type(model).__name__, progress)
    start = time.perf_counter()
    model.train()
    try:
        for step in range(1, n_steps + 1):
            logs = run.step(step, batch_size, transform)
            _record(history, model, step, logs, n_steps, log_every, snapshot, snapshot_every)
            _show(bar, step, logs)
    finally:
        if bar is not None:
            bar.close()
    history.seconds = time.perf_counter() - start
    history.path = path if cache else None
    if cache:
        try:
            _save(model, history, path)
        except OSError as exc:  # a read-only cache: the lecture goes on, training instead of loading
            warn_cache_unwritable(path.parent.parent, exc)
            history.path = None
    model.eval()
    return history


#: the learning-rate schedules ``fit`` knows
LR_SCHEDULES = ("constant", "cosine")
#: fit's settings unless the model's ``default_fit`` or the caller says otherwise
FIT_DEFAULTS = {"batch_size": 128, "lr": 1e-3, "lr_schedule": "constant", "transform": None}


def _check_schedule_and_transform(lr_schedule, transform) -> None:
    if lr_schedule not in (None, *LR_SCHEDULES):
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES} or None, got {lr_schedule!r}")
    if not (transform is None or transform is False or callable(transform)):
        raise TypeError(f"transform must be a function (x, generator) -> x, False or None, got {transform!r}")


def _fit_defaults(model, batch_size, lr, lr_schedule=None, transform=None) -> tuple:
    """``(batch_size, lr, lr_schedule, transform)``: each the caller's value, else the model's
    recipe (``default_fit``), else :data:`FIT_DEFAULTS`; ``transform=False`` means none."""
    d = {**FIT_DEFAULTS, **getattr(model, "default_fit", {})}
    given = {"batch_size": batch_size, "lr": lr, "lr_schedule": lr_schedule, "transform": transform}
    out = {k: d[k] if v is None else v for k, v in given.items()}
    return out["batch_size"], out["lr"], out["lr_schedule"], out["transform"] or None


def _checked_data(model, data) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` from ``data``, checked for the model; ``y`` is dropped for an unconditional model."""
    x, y = as_tensors(data)
    if not torch.isfinite(x).all():
        raise ValueError("data contains NaN or infinite values")
    if hasattr(model, "check_images"):
        model.check_images(x)
    conditional = getattr(model, "n_classes", None) is not None
    if conditional and y is None:
        raise ValueError(f"{type(model).__name__} is conditional: data must carry labels")
    return x, (y if conditional else None)


def _lr_schedulers(optimizers, lr_schedule: str | None, n_steps: int) -> list:
    """``"cosine"``: every optimiser's rate decays from ``lr`` to 0 along a half cosine."""
    if lr_schedule != "cosine":
        return []
    decay = lambda k: 0.5 * (1 + math.cos(math.pi * min(k, n_steps) / n_steps))
    return [torch.optim.lr_scheduler.LambdaLR(opt, decay) for opt in optimizers]


class _Run:
    """One training run: draws batches, takes optimiser steps, and keeps the last good
    parameters (every 50 steps) so that a diverging run stops with them restored."""

    def __init__(self, model, x, y, gen: torch.Generator, lr: float, n_steps: int):
        self.model, self.x, self.y, self.gen, self.lr, self.n_steps = model, x, y, gen, lr, n_steps
        self.optimizers = model.configure_optimizers(lr)
        self.schedulers: list = []
        cuda = x.device.type == "cuda"
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
        self.good_state, self.good_step = self._state(), 0

    def _state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def step(self, step: int, batch_size: int, transform) -> dict[str, float]:
        idx = torch.randint(0, len(self.x), (min(batch_size, len(self.x)),), generator=self.gen)
        idx = idx.to(self.x.device)
        xb = self.x[idx]
        if transform is not None:
            xb = transform(xb, self.gen)
        yb = self.y[idx] if self.y is not None else None
        with self.autocast:
            logs = self.model.training_step(xb, yb, self.optimizers)
        self._guard(step, logs)
        for sched in self.schedulers:
            sched.step()
        return logs

    def _guard(self, step: int, logs: dict[str, float]) -> None:
        if not all(math.isfinite(v) for v in logs.values()):
            self.model.load_state_dict(self.good_state)
            bad = ", ".join(f"{k}={v}" for k, v in logs.items() if not math.isfinite(v))
            raise TrainingDiverged(
                f"training diverged at step {step} ({bad}); the model holds its last good "
                f"parameters from step {self.good_step}. Lower the learning rate (lr={self.lr}) and retry."
            )
        at_checkpoint = step % 50 == 0 or step == self.n_steps
        if at_checkpoint and all(torch.isfinite(p).all() for p in self.model.parameters()):
            self.good_state, self.good_step = self._state(), step


def _record(history: History, model, step, logs, n_steps, log_every, snapshot, snapshot_every) -> None:
    """Append the step's logs (every ``log_every`` steps) and snapshots to ``history``."""
    last = step == n_steps
    if step % log_every == 0 or last:
        history.steps.append(step)
        for k, v in logs.items():
            history.logs.setdefault(k, []).append(float(v))
    if snapshot is not None and (step % snapshot_every == 0 or last):
        model.eval()
        with torch.no_grad():
            history.snapshots.append((step, _to_cpu(snapshot(model))))
        model.train()


def _show(bar, step: int, logs: dict[str, float]) -> None:
    if bar is not None:
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:3]})


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def _rng_state() -> dict[str, Any]:
    """torch's global random state (CPU and each GPU) as training leaves it."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: dict[str, Any]) -> None:
    """Leave torch's global random state as training would have: a loading cell and a training
    cell then build the same initial weights for the next model (part of its cache key)."""
    torch.set_rng_state(state["cpu"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([c.cpu() for c in cuda])


def _save(model, history: History, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    blob = {"format": _CACHE_FORMAT, "state_dict": state, "history": history.state(), "rng": _rng_state()}
    try:
        torch.save(blob, tmp)
    except RuntimeError as exc:  # torch reports a failed open as RuntimeError
        raise OSError(str(exc)) from exc
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint


def _load(model, path: Path, dev) -> History | None:
    try:
        blob = torch.load(path, map_location=dev, weights_only=False)
        model.load_state_dict(blob["state_dict"])
        h = blob["history"]
        _set_rng_state(blob["rng"])
    except Exception as exc:  # corrupt or stale checkpoint: retrain instead of crashing
        warnings.warn(
            f"ignoring unreadable checkpoint {path.name} ({type(exc).__name__}: {exc}); retraining",
            stacklevel=3,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return History(
        logs=h["logs"], steps=h["steps"], snapshots=h.get("snapshots", []), seconds=h["seconds"], loaded=True
    )


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


__all__ = [
    "DEFAULT_STEPS",
    "History",
    "TrainingDiverged",
    "as_tensors",
    "cache_key",
    "callable_fingerprint",
    "class_fingerprint",
    "code_fingerprint",
    "count_parameters",
    "fit",
    "weights_fingerprint",
]
