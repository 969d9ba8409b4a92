"""Chapter 01: the joint of a Bayesian network and ancestral sampling, against pgmpy."""

from __future__ import annotations

import time
import warnings

from pgm_lab import factorization as fz


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench(profile: str) -> list[dict]:
    from pgmpy.inference import VariableElimination
    from pgmpy.sampling import BayesianModelSampling

    k = 4 if profile != "smoke" else 3
    model = fz.bayesian_network(fz.SEVEN_NODE_EDGES, cardinality=k, rng=0)
    order = list(fz.joint_table(model)[0])
    repeats = 3 if profile != "smoke" else 1
    ours_joint = _best_of(lambda: fz.joint_table(model), repeats)
    ve = VariableElimination(model)
    peer_joint = _best_of(lambda: ve.query(order, joint=True, show_progress=False), repeats)

    n = {"smoke": 10_000, "quick": 200_000, "full": 1_000_000}[profile]
    ours_sample = _best_of(lambda: fz.ancestral_sample(model, n, rng=0), repeats)
    sampler = BayesianModelSampling(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_sample = _best_of(lambda: sampler.forward_sample(size=n, show_progress=False, seed=0), repeats)
    return [
        {
            "what": f"joint table of the 7-node network, K={k}",
            "ours": ours_joint,
            "peer": peer_joint,
            "unit": "s",
            "peer_name": "pgmpy VariableElimination",
            "goal": "faster",
        },
        {
            "what": f"{n:,} ancestral samples, 7-node network, K={k}",
            "ours": ours_sample,
            "peer": peer_sample,
            "unit": "s",
            "peer_name": "pgmpy forward_sample",
            "goal": "faster",
        },
    ]


if __name__ == "__main__":
    for row in bench("quick"):
        print(row)
