"""The pgmax side of the grid-BP benchmark; runs inside ``.venv-peers/pgmax``, not in ours.

``python pgmax_grid.py IN.npz`` reads ``theta`` (the timed grid), ``theta_check`` (a small
grid), ``beta``, ``damping``, ``sweeps``, ``repeats`` and ``check_sweeps``, builds the same
Ising model p(x) ∝ exp(Σ θ_i x_i + Σ β x_i x_j) as a pgmax factor graph (state 0 is
x = −1, state 1 is x = +1), and prints one JSON object: ``sweeps_per_s`` (the best of
``repeats`` timed runs of ``sweeps`` damped sum-product iterations, after a warm-up run
that compiles), ``seconds``, ``compile_s``, and ``p_plus_check``, p(x_i = +1) on the small
grid after ``check_sweeps`` iterations. Only numpy, jax and pgmax are imported here.
"""

import json
import sys
import time

import jax
import numpy as np
import pgmax
from pgmax import fgraph, fgroup, infer, vgroup


def build(theta, beta):
    """pgmax's BP functions and initial arrays for the grid with field ``theta``."""
    h, w = theta.shape
    x = vgroup.NDVarArray(num_states=2, shape=(h, w))
    fg = fgraph.FactorGraph(variable_groups=x)
    pairs = [[x[r, c], x[r + 1, c]] for r in range(h - 1) for c in range(w)]
    pairs += [[x[r, c], x[r, c + 1]] for r in range(h) for c in range(w - 1)]
    fg.add_factors(
        fgroup.PairwiseFactorGroup(
            variables_for_factors=pairs,
            log_potential_matrix=beta * np.array([[1.0, -1.0], [-1.0, 1.0]]),
        )
    )
    bp = infer.build_inferer(fg.bp_state, backend="bp")
    evidence = np.stack([-theta, theta], axis=-1)  # log ψ_i(x_i) = θ_i x_i
    arrays = bp.init(evidence_updates={x: jax.device_put(evidence)})
    return bp, arrays, x


def run(bp, arrays, sweeps, damping):
    out = bp.run(arrays, num_iters=sweeps, damping=damping, temperature=1.0)
    jax.block_until_ready(out.ftov_msgs)
    return out


def main(path):
    data = np.load(path)
    beta, damping = float(data["beta"]), float(data["damping"])
    sweeps, repeats = int(data["sweeps"]), int(data["repeats"])
    bp, arrays, _ = build(data["theta"], beta)
    t0 = time.perf_counter()
    run(bp, arrays, sweeps, damping)  # compiles
    compile_s = time.perf_counter() - t0
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(bp, arrays, sweeps, damping)
        seconds.append(time.perf_counter() - t0)
    bp_c, arrays_c, x_c = build(data["theta_check"], beta)
    out = run(bp_c, arrays_c, int(data["check_sweeps"]), damping)
    p_plus = np.asarray(infer.get_marginals(bp_c.get_beliefs(out))[x_c])[..., 1]
    result = {
        "peer": f"pgmax {pgmax.__version__}, jax {jax.__version__}",
        "sweeps_per_s": sweeps / min(seconds),
        "seconds": seconds,
        "compile_s": compile_s,
        "p_plus_check": p_plus.tolist(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
