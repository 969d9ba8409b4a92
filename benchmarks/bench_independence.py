"""d-separation on large random DAGs: ``pgm_lab.independence.d_separated`` vs pgmpy ``is_dconnected``.

Both answer "is x d-separated from y given Z?" on the same pgmpy ``DAG`` with the same queries;
the answers are checked to agree. Ours is the Bayes-ball reachability of chapter 02 restricted
to the ancestral set of {x, y} ∪ Z, with early exit; by default every call also checks the whole
graph for a directed cycle (O(|V| + |E|)), and a second row shows the walk alone. pgmpy's
``active_trail_nodes`` walks every reachable state of the whole graph and keeps the observed nodes
in a list. Times are per query (best of 3), median over the queries.
"""

from __future__ import annotations

import timeit

import numpy as np


def random_dag(n: int, mean_parents: float, rng: np.random.Generator):
    """A random DAG on 0..n-1: node i draws Poisson(mean_parents) parents among 0..i-1."""
    from pgmpy.base import DAG

    edges = []
    for i in range(1, n):
        k = min(i, int(rng.poisson(mean_parents)))
        for p in rng.choice(i, size=k, replace=False):
            edges.append((int(p), i))
    dag = DAG(edges)
    dag.add_nodes_from(range(n))
    return dag


def _time(fn) -> float:
    """Best of three single runs, in seconds."""
    return min(timeit.repeat(fn, number=1, repeat=3))


def bench(profile: str) -> list[dict]:
    from pgm_lab.independence import d_separated

    n_queries = {"smoke": 4, "quick": 20, "full": 60}.get(profile, 20)
    rng = np.random.default_rng(0)
    rows = []
    for n in (1_000, 10_000):
        dag = random_dag(n, 1.5, rng)
        n_obs = max(5, n // 100)
        ours_t, bare_t, peer_t, n_sep = [], [], [], 0
        for _ in range(n_queries):
            picked = rng.choice(n, size=2 + n_obs, replace=False)
            x, y, zs = int(picked[0]), int(picked[1]), [int(v) for v in picked[2:]]
            a = d_separated(dag, x, y, zs)
            b = not dag.is_dconnected(x, y, observed=zs)
            if a != b:
                raise AssertionError(f"d_separated disagrees with pgmpy on n={n}, x={x}, y={y}")
            n_sep += a
            ours_t.append(_time(lambda x=x, y=y, zs=zs, dag=dag: d_separated(dag, x, y, zs)))
            bare_t.append(
                _time(lambda x=x, y=y, zs=zs, dag=dag: d_separated(dag, x, y, zs, check_acyclic=False))
            )
            peer_t.append(_time(lambda x=x, y=y, zs=zs, dag=dag: dag.is_dconnected(x, y, observed=zs)))
        peer = float(np.median(peer_t)) * 1e3
        label = f"random DAG n={n:,}, |Z|={n_obs} ({n_sep}/{n_queries} separated)"
        for what, times, goal in (
            (f"d-separation query, {label}", ours_t, "≥ 1x (linear time, same answers)"),
            (f"same queries, n={n:,}, graph checked once (check_acyclic=False)", bare_t, "≥ 1x"),
        ):
            rows.append(
                {
                    "what": what,
                    "ours": float(np.median(times)) * 1e3,
                    "peer": peer,
                    "unit": "ms/query",
                    "goal": goal,
                    "peer_name": "pgmpy is_dconnected",
                }
            )
    return rows


if __name__ == "__main__":
    for row in bench("quick"):
        print(row)
