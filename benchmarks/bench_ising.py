"""Benchmarks of chapter 05: grid loopy BP, ICM (slide's loop vs checkerboard) and graph cut.

- Loopy BP sweeps per second on a 256×256 binary grid (β = 1, θ from a noisy image), our
  torch scalar-message form against (a) the textbook per-message numpy loop
  (:func:`pgm_lab.grid_bp.grid_bp_loop`), measured in the same run, and (b) pgmax 0.6.1,
  which cannot be installed here: its 89 sweeps/s on 2 cores is *quoted* from the issue,
  not measured.
- ICM on the horse (328×400): time per sweep of the slide's pixel-by-pixel Python loop
  against the vectorised checkerboard update.
- Graph cut (exact MAP) on the horse; the peer is the slide's ICM loop run to convergence.
"""

from __future__ import annotations

import time

import numpy as np

PGMAX_QUOTED_SWEEPS_PER_S = 89.0  # from the issue: pgmax 0.6.1 + jax 0.4.30, 256x256, 2 cores
GRID = {"smoke": 32, "quick": 256, "full": 256}
NAIVE_SWEEPS = {"smoke": 1, "quick": 1, "full": 2}


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(profile: str) -> list[dict]:
    import torch

    from pgm_lab import ising
    from pgm_lab.config import device
    from pgm_lab.grid_bp import grid_bp, grid_bp_loop

    rows = []
    n = GRID[profile]
    rng = np.random.default_rng(0)
    x_true = np.where(np.add.outer(np.arange(n), np.arange(n)) < n, 1, -1)  # two regions
    y = ising.flip_noise(x_true, 0.1, rng)
    theta = 2.1 * y.astype(float)
    dev = device()
    dtype = torch.float32
    sweeps = 100 if profile != "smoke" else 20

    for kind in ("max", "sum"):
        # torch's default intra-op threads can lose to one thread on a small, shared machine:
        # report the better of 1 and the default (and say which)
        default_threads = torch.get_num_threads()
        best = (0.0, default_threads)
        try:
            for threads in sorted({1, default_threads}):
                torch.set_num_threads(threads)
                grid_bp(
                    theta, 1.0, kind=kind, schedule="parallel", max_iters=2, tol=0, device=dev, dtype=dtype
                )
                for _ in range(3):
                    r = grid_bp(
                        theta,
                        1.0,
                        kind=kind,
                        schedule="parallel",
                        max_iters=sweeps,
                        tol=0,
                        device=dev,
                        dtype=dtype,
                    )
                    best = max(best, (sweeps / r.seconds, threads))
        finally:
            torch.set_num_threads(default_threads)
        ours, threads = best
        where = f"{dev.type}, {threads} thread{'s' if threads > 1 else ''}" if dev.type == "cpu" else dev.type
        k = NAIVE_SWEEPS[profile]
        naive_s = _best(lambda kind=kind, k=k: grid_bp_loop(theta, 1.0, kind=kind, n_sweeps=k), 1) / k
        rows.append(
            {
                "what": f"loopy {kind}-product BP, {n}x{n} grid, parallel sweeps/s on {where} (float32): "
                "ours vs per-message numpy loop (same run)",
                "ours": ours,
                "peer": 1.0 / naive_s,
                "unit": "sweeps/s",
                "goal": "much faster",
                "higher_is_better": True,
            }
        )
        if n != 256:  # the quoted figure is for 256x256 only
            continue
        rows.append(
            {
                "what": f"loopy {kind}-product BP, {n}x{n} grid, sweeps/s on {where}: ours vs pgmax 0.6.1 "
                "QUOTED from the issue (89 sweeps/s on 2 cores, not measured here)",
                "ours": ours,
                "peer": PGMAX_QUOTED_SWEEPS_PER_S,
                "unit": "sweeps/s",
                "goal": ">= 5x",
                "higher_is_better": True,
            }
        )

    horse = ising.horse(step=1 if profile != "smoke" else 2)
    yh = ising.flip_noise(horse, 0.1, np.random.default_rng(0))
    p = {"h": 0.0, "beta": 1.0, "eta": 2.1}
    loop = ising.icm(yh, method="loop", max_sweeps=1, **p)
    loop_sweep = min(
        loop.seconds, *(ising.icm(yh, method="loop", max_sweeps=1, **p).seconds for _ in range(2))
    )
    vec_sweep = min(ising.icm(yh, method="checkerboard", max_sweeps=1, **p).seconds for _ in range(5))
    rows.append(
        {
            "what": f"ICM, one sweep over the horse {yh.shape[0]}x{yh.shape[1]}: vectorised checkerboard "
            "vs the slide's pixel-by-pixel Python loop",
            "ours": vec_sweep,
            "peer": loop_sweep,
            "unit": "s",
            "goal": ">= 50x",
        }
    )
    gc = _best(lambda: ising.graph_cut(yh, **p), 5)
    icm_loop_full = _best(lambda: ising.icm(yh, method="loop", **p), 1)
    rows.append(
        {
            "what": f"graph cut (exact MAP) on the horse {yh.shape[0]}x{yh.shape[1]} vs the slide's ICM loop "
            "to convergence (peer); goal is absolute",
            "ours": gc,
            "peer": icm_loop_full,
            "unit": "s",
            "goal": "< 0.050 s",
        }
    )
    return rows


if __name__ == "__main__":
    import sys

    for row in bench(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(row)
