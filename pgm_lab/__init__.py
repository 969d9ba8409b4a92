"""pgm_lab: the helper package behind the pgm-lab workbook.

Every chapter starts with ``import pgm_lab as pl; pl.setup()``. Submodules are
imported on first use (``pl.factorization``, ``pl.independence``, ``pl.bp`` …) so
that the core stays light.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .config import (
    PROFILE_NAMES,
    Profile,
    SetupInfo,
    cache_dir,
    device,
    pick,
    profile,
    seed_everything,
    setup,
)

__version__ = "0.1.0"

#: every module of the package, reachable as ``pl.<name>`` (imported on first use)
_SUBMODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))

__all__ = [
    "PROFILE_NAMES",
    "Profile",
    "SetupInfo",
    "cache_dir",
    "device",
    "pick",
    "profile",
    "seed_everything",
    "setup",
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'pgm_lab' has no attribute {name!r}")
