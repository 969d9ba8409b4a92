"""Peer libraries in their own virtual environments, measured in the same run as ours.

pgmax 0.6.1 needs jax 0.4.30 and numpy < 2 (newer jax removed an API it uses), which cannot
live in pgm_lab's environment, so it gets ``.venv-peers/pgmax``. :func:`create` makes it
(``python -m venv`` + pip with the pins below); :func:`run_pgmax_grid` runs
``pgmax_grid.py`` there as a subprocess and returns its JSON. Neither ever raises for a
missing or broken peer: they return ``None`` and a reason, and the benchmark row says it
was skipped. ``python benchmarks/peers/venv.py`` creates the environment (``make bench-peers``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = ROOT / ".venv-peers"
PINS = {"pgmax": ["pgmax==0.6.1", "jax==0.4.30", "jaxlib==0.4.30", "numpy<2"]}


def python_of(name: str) -> Path:
    return PEERS / name / "bin" / "python"


def _reason_file(name: str) -> Path:
    return PEERS / f"{name}.unavailable"


def _ok(name: str) -> bool:
    py = python_of(name)
    if not py.exists():
        return False
    probe = subprocess.run([str(py), "-c", f"import {name}"], capture_output=True, timeout=300)
    return probe.returncode == 0


def create(name: str = "pgmax", timeout: float = 1800) -> tuple[Path | None, str]:
    """Make ``.venv-peers/<name>`` with the pinned packages; (its python, "") or (None, why not)."""
    if _ok(name):
        return python_of(name), ""
    PEERS.mkdir(exist_ok=True)
    (PEERS / ".gitignore").write_text("*\n")  # never committed
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(PEERS / name)],
        [str(python_of(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS[name]],
    ]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            return _fail(name, f"{' '.join(cmd[:4])}: {err}")
        if done.returncode != 0:
            tail = [line for line in done.stderr.splitlines() if not line.startswith("WARNING")][-1:]
            return _fail(name, f"{' '.join(cmd[:4])} failed: {' | '.join(tail)}")
    if not _ok(name):
        return _fail(name, f"import {name} fails in {PEERS / name}")
    _reason_file(name).unlink(missing_ok=True)
    return python_of(name), ""


def _fail(name: str, reason: str) -> tuple[None, str]:
    shutil.rmtree(PEERS / name, ignore_errors=True)  # no half-made environment left behind
    _reason_file(name).write_text(reason + "\n")
    return None, reason


def available(name: str = "pgmax") -> tuple[Path | None, str]:
    """The peer's python if its environment exists (never creates it), else (None, why not)."""
    why = _reason_file(name)
    if why.exists():
        return None, f"{PEERS / name} could not be created: {why.read_text().strip()}"
    if python_of(name).exists():
        return python_of(name), ""
    return None, f"no {PEERS / name} (`make bench-peers` creates it)"


def run_pgmax_grid(theta, theta_check, *, beta, damping, sweeps, repeats, check_sweeps, timeout=900):
    """Run ``pgmax_grid.py`` in the peer environment: (its JSON dict, "") or (None, why not)."""
    py, why = available("pgmax")
    if py is None:
        return None, why
    with tempfile.TemporaryDirectory(prefix="pgm-lab-peer-") as tmp:
        path = Path(tmp) / "in.npz"
        np.savez(path, theta=theta, theta_check=theta_check, beta=beta, damping=damping,
                 sweeps=sweeps, repeats=repeats, check_sweeps=check_sweeps)  # fmt: skip
        try:
            done = subprocess.run(
                [str(py), str(HERE / "pgmax_grid.py"), str(path)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"pgmax run failed: {err}"
    if done.returncode != 0:
        return None, f"pgmax run failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


if __name__ == "__main__":
    py, reason = create("pgmax")
    print(
        f"pgmax environment: {py}"
        if py
        else f"pgmax environment NOT created ({reason}); its rows are skipped"
    )
