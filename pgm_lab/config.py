"""Run-time configuration shared by every chapter: profile, device, seeding and cache.

A *profile* scales the work a chapter does (see DESIGN.md):

- ``smoke``: CI and nbval; seconds per training cell, every code path exercised;
- ``quick``: a 2-core laptop CPU; about a minute per training cell;
- ``full``: a GPU; the best a chapter can show in minutes.

``PGM_LAB_PROFILE`` chooses; unset, a CUDA machine gets ``full`` and any other ``quick``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

PROFILE_NAMES = ("smoke", "quick", "full")
_DESCRIPTIONS = {
    "smoke": "CI: seconds per training cell, every code path exercised",
    "quick": "laptop CPU: about a minute per training cell",
    "full": "GPU: the best each chapter can show in minutes",
}


@dataclass(frozen=True)
class Profile:
    """A named amount of work; ``pick`` selects the value that belongs to it."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {self.name!r}: valid profiles are {', '.join(PROFILE_NAMES)}")

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.name]

    def pick(self, smoke: Any, quick: Any, full: Any) -> Any:
        """Return the argument named after this profile."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.name]

    def __str__(self) -> str:
        return self.name


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return torch.cuda.is_available()


def profile(name: str | None = None) -> Profile:
    """The active profile: ``name`` if given, else ``$PGM_LAB_PROFILE``, else by hardware."""
    if name is None:
        name = os.environ.get("PGM_LAB_PROFILE", "").strip()
    if not name:
        name = "full" if _cuda_available() else "quick"
    return Profile(name.lower() if name.lower() in PROFILE_NAMES else name)


def pick(smoke: Any, quick: Any, full: Any, *, profile_name: str | None = None) -> Any:
    """Shortcut for ``profile().pick(smoke, quick, full)``: per-profile sizes in a chapter."""
    return profile(profile_name).pick(smoke, quick, full)


def device():
    """``torch.device('cuda')`` when a GPU is present, else CPU; ``$PGM_LAB_DEVICE`` overrides."""
    import torch

    wanted = os.environ.get("PGM_LAB_DEVICE", "").strip()
    if wanted:
        try:
            dev = torch.device(wanted)
        except RuntimeError as exc:
            raise ValueError(f"PGM_LAB_DEVICE={wanted!r} is not a torch device: {exc}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("PGM_LAB_DEVICE asks for cuda but no CUDA device is available")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cache_dir(create: bool = True) -> Path:
    """Directory for checkpoints and cached evaluation models (``$PGM_LAB_CACHE``).

    A folder that cannot be created is not an error: a warning says so once, and training
    goes on without caching (see :func:`warn_cache_unwritable`).
    """
    raw = os.environ.get("PGM_LAB_CACHE", "").strip()
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "pgm_lab"
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            warn_cache_unwritable(path, exc)
    return path


_WARNED_CACHES: set[str] = set()


def warn_cache_unwritable(path: Path, exc: OSError) -> None:
    """Warn (once per folder) that the checkpoint cache cannot be written: models train uncached."""
    if str(path) in _WARNED_CACHES:
        return
    _WARNED_CACHES.add(str(path))
    import warnings

    reason = exc.strerror or type(exc).__name__
    warnings.warn(
        f"the checkpoint cache {path} is not writable ({reason}): models are trained but not "
        "cached; set PGM_LAB_CACHE to a writable folder to keep them",
        stacklevel=3,
    )


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global state and torch (CPU and CUDA)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    import torch

    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


class SetupInfo(NamedTuple):
    profile: Profile
    device: Any
    seed: int


def setup(seed: int = 0, *, quiet: bool = False) -> SetupInfo:
    """Prepare a chapter: seed everything, enable TF32 on CUDA, set plot defaults.

    Prints and returns the profile, device and seed.
    """
    import torch

    prof = profile()
    dev = device()
    threads = os.environ.get("PGM_LAB_THREADS", "").strip()
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"PGM_LAB_THREADS must be a positive integer, got {threads!r}")
        torch.set_num_threads(int(threads))
    seed_everything(seed)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    _plot_defaults()
    if not quiet:
        print(f"pgm_lab: profile={prof.name} ({prof.description}), device={dev}, seed={seed}")
    return SetupInfo(prof, dev, int(seed))


def _plot_defaults() -> None:
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "figure.figsize": (6.0, 4.0),
            "axes.grid": False,
            "animation.embed_limit": 50.0,
        }
    )
