"""Benchmarks of chapter 05: ICM (slide's loop vs checkerboard) and graph cut.

Loopy BP on the grid (against pgmax, measured, and the per-message loop) lives in
``bench_grid_bp.py``.

- ICM on the horse (328×400): time per sweep of the slide's pixel-by-pixel Python loop
  against the vectorised checkerboard update.
- Graph cut (exact MAP) on the horse; the peer is the slide's ICM loop run to convergence.
"""

from __future__ import annotations

import time

import numpy as np


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(profile: str) -> list[dict]:
    from pgm_lab import ising

    rows = []
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
