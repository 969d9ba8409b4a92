"""Benchmark of pgm_lab.bp (chapter 04): all marginals of a chain and of a random tree, K = 4.

Peers, measured in the same run on the same pgmpy model: pgmpy's ``BeliefPropagation``
(junction-tree calibration, then each variable's marginal from a clique belief) and
pgmpy's ``VariableElimination`` (one query per variable, normalised). pgmpy's
calibration grows faster than linearly with the number of nodes (over 15 s for 300
nodes on 2 shared cores here), so the size is capped by profile; the size is in "what".
"""

from __future__ import annotations

import time

import networkx as nx
import numpy as np

SIZES = {"smoke": 60, "quick": 300, "full": 500}  # pgmpy at 1,000 nodes ran > 25 min here


def _model(kind: str, n: int, k: int = 4, seed: int = 0):
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.models import DiscreteMarkovNetwork

    rng = np.random.default_rng(seed)
    edges = (
        [(i, i + 1) for i in range(n - 1)]
        if kind == "chain"
        else list(nx.random_labeled_tree(n, seed=seed).edges)
    )
    m = DiscreteMarkovNetwork(edges)
    # add_factors checks set(nodes) once per factor (quadratic); append to the same list directly
    m.factors.extend(DiscreteFactor([u, v], [k, k], rng.random(k * k) + 0.1) for u, v in edges)
    m.factors.extend(DiscreteFactor([v], [k], rng.random(k) + 0.1) for v in range(n))
    return m


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _pgmpy_bp_marginals(m) -> dict:
    from pgmpy.inference import BeliefPropagation

    bp = BeliefPropagation(m)
    bp.calibrate()
    beliefs = bp.get_clique_beliefs()
    out = {}
    for clique, factor in beliefs.items():
        for v in clique:
            if v not in out:
                f = factor.marginalize([u for u in clique if u != v], inplace=False)
                out[v] = f.values / f.values.sum()
    return out


def _pgmpy_ve_marginals(m) -> dict:
    from pgmpy.inference import VariableElimination

    ve = VariableElimination(m)
    out = {}
    for v in m.nodes():
        q = ve.query([v], show_progress=False)
        out[v] = q.values / q.values.sum()
    return out


def bench(profile: str) -> list[dict]:
    from pgm_lab.bp import belief_propagation

    n = SIZES[profile]
    rows = []
    for kind in ("chain", "tree"):
        m = _model(kind, n)
        ours_t, ours = _best(lambda m=m: belief_propagation(m, schedule="serial"), 3)
        for peer_name, peer_fn in (
            ("BeliefPropagation", _pgmpy_bp_marginals),
            ("VariableElimination", _pgmpy_ve_marginals),
        ):
            peer_t, peer = _best(lambda m=m, f=peer_fn: f(m), 1)
            err = max(float(np.abs(ours.marginals[v] - peer[v]).max()) for v in peer)
            if err > 1e-8:
                raise AssertionError(f"ours and pgmpy {peer_name} disagree by {err:.2e} on the {kind}")
            rows.append(
                {
                    "what": f"all marginals, {n}-node {kind} (random potentials), K=4: ours vs pgmpy {peer_name}",
                    "ours": ours_t,
                    "peer": peer_t,
                    "unit": "s",
                    "goal": ">= 300x" if peer_name == "BeliefPropagation" else "faster",
                }
            )
    return rows


if __name__ == "__main__":
    import sys

    for row in bench(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(row)
