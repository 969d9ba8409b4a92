"""Directed factorisation of a joint distribution (see chapter 01).

A Bayesian network (贝叶斯网络) over a DAG G = (V, E) represents

    p(x) = Π_i p(x_i | pa_i),

one conditional probability table (CPD) per node. The helpers here build such networks
with pgmpy (``DiscreteBayesianNetwork`` + ``TabularCPD``), validate them with messages
that name the problem, compute the joint by brute force, count free parameters, and
sample ancestrally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise, product

import networkx as nx
import numpy as np

from .pgmpy_adapter import factor_arrays

#: the slide's 7-node example: p(x1)p(x2)p(x3)p(x4|x1,x2,x3)p(x5|x1,x3)p(x6|x4)p(x7|x4,x5)
SEVEN_NODE_EDGES = (
    ("x1", "x4"),
    ("x2", "x4"),
    ("x3", "x4"),
    ("x1", "x5"),
    ("x3", "x5"),
    ("x4", "x6"),
    ("x4", "x7"),
    ("x5", "x7"),
)


def check_dag(edges_or_graph, nodes: Iterable | None = None) -> nx.DiGraph:
    """Return the edges as a ``networkx.DiGraph``; ``ValueError`` naming a directed cycle if any."""
    if isinstance(edges_or_graph, nx.Graph):
        if not edges_or_graph.is_directed():
            raise ValueError("a Bayesian network needs a directed graph, got an undirected one")
        g = nx.DiGraph(edges_or_graph)
    else:
        g = nx.DiGraph()
        for e in edges_or_graph:
            if len(e) != 2:
                raise ValueError(f"an edge is a (parent, child) pair, got {e!r}")
            if e[0] == e[1]:
                raise ValueError(f"self-loop on {e[0]!r}: a node cannot be its own parent")
            g.add_edge(*e)
    if nodes is not None:
        g.add_nodes_from(nodes)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return g
    path = " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}"
    raise ValueError(f"not a DAG: the graph has a directed cycle {path}")


def check_cpd_table(variable, table: np.ndarray, atol: float = 1e-6) -> np.ndarray:
    """Validate a CPD table of shape (K_child, Π K_parents): entries in [0,1], columns sum to 1."""
    table = np.asarray(table, dtype=float)
    if table.ndim != 2:
        raise ValueError(f"CPD of {variable!r} must be a 2-D table (states x parent configurations)")
    if not np.all(np.isfinite(table)) or table.min() < 0:
        raise ValueError(f"CPD of {variable!r} has negative or non-finite entries")
    sums = table.sum(axis=0)
    bad = np.flatnonzero(np.abs(sums - 1) > atol)
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"CPD of {variable!r}: column {j} sums to {sums[j]:.6g}, not 1 "
            f"({bad.size} of {sums.size} columns do not sum to 1)"
        )
    return table


def random_cpd_table(k: int, n_columns: int, rng: np.random.Generator, alpha: float = 1.0) -> np.ndarray:
    """A (k, n_columns) table whose columns are Dirichlet(alpha) draws."""
    return rng.dirichlet(np.full(k, alpha), size=n_columns).T


def bayesian_network(
    edges: Iterable[tuple],
    cpds: Mapping | None = None,
    *,
    cardinality: int | Mapping = 2,
    nodes: Iterable | None = None,
    rng: np.random.Generator | int | None = 0,
    alpha: float = 1.0,
):
    """Build a pgmpy ``DiscreteBayesianNetwork`` from edges and CPD tables.

    ``cpds`` maps a node to a table of shape (K_node, Π K_parents) whose columns follow
    pgmpy's order (parents in sorted order of ``model.get_parents``, last parent fastest).
    Missing tables are drawn at random (Dirichlet(alpha) columns) from ``rng``.
    """
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    g = check_dag(edges, nodes)
    if isinstance(rng, (int, np.integer)) or rng is None:
        rng = np.random.default_rng(rng)
    cards = _cardinalities(g.nodes, cardinality)
    cpds = dict(cpds or {})
    unknown = set(cpds) - set(g.nodes)
    if unknown:
        raise ValueError(f"CPDs given for unknown nodes {sorted(map(str, unknown))}")
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(g.nodes)
    model.add_edges_from(g.edges)
    tables = []
    for node in nx.topological_sort(g):
        parents = list(model.get_parents(node))
        n_cols = int(np.prod([cards[p] for p in parents])) if parents else 1
        table = cpds.get(node)
        if table is None:
            table = random_cpd_table(cards[node], n_cols, rng, alpha)
        table = check_cpd_table(node, np.asarray(table, dtype=float).reshape(cards[node], -1))
        if table.shape[1] != n_cols:
            raise ValueError(
                f"CPD of {node!r} has {table.shape[1]} columns; its parents {parents} "
                f"with cardinalities {[cards[p] for p in parents]} need {n_cols}"
            )
        tables.append(
            TabularCPD(
                node,
                cards[node],
                table,
                evidence=parents or None,
                evidence_card=[cards[p] for p in parents] or None,
            )
        )
    model.add_cpds(*tables)
    return model


def _cardinalities(nodes, cardinality) -> dict:
    if isinstance(cardinality, Mapping):
        missing = set(nodes) - set(cardinality)
        if missing:
            raise ValueError(f"no cardinality given for nodes {sorted(map(str, missing))}")
        cards = {n: cardinality[n] for n in nodes}
    else:
        cards = dict.fromkeys(nodes, cardinality)
    for n, k in cards.items():
        if int(k) != k or k < 1:
            raise ValueError(f"cardinality of {n!r} must be a positive integer, got {k!r}")
    return {n: int(k) for n, k in cards.items()}


def validate_network(model) -> None:
    """Check a pgmpy Bayesian network: a DAG, one CPD per node, columns summing to 1."""
    check_dag(model)
    for node in model.nodes:
        cpd = model.get_cpds(node)
        if cpd is None:
            raise ValueError(f"node {node!r} has no CPD")
        check_cpd_table(node, cpd.get_values())
        if sorted(cpd.variables[1:], key=str) != sorted(model.get_parents(node), key=str):
            raise ValueError(
                f"CPD of {node!r} conditions on {cpd.variables[1:]} but its parents are {model.get_parents(node)}"
            )


def joint_table(model, order: Sequence | None = None) -> tuple[list, np.ndarray]:
    """The joint p(x) = Π_i p(x_i | pa_i) as a dense array, by multiplying every CPD.

    Returns ``(variables, table)`` with one axis per variable in ``order`` (default:
    topological order). Brute force: only for small networks (a table above
    ``pgm_lab.pgmpy_adapter.MAX_TABLE_ENTRIES`` entries raises ``TableTooLargeError``).
    """
    validate_network(model)
    order = list(order) if order is not None else list(nx.topological_sort(model))
    if set(order) != set(model.nodes) or len(order) != len(model.nodes):
        raise ValueError(f"order must list every node exactly once: {sorted(map(str, model.nodes))}")
    return order, factor_arrays(model).joint(order)


def chain_rule_factors(joint: np.ndarray) -> list[np.ndarray]:
    """Chain rule P(x_1..x_N) = P(x_1) Π_i P(x_i | x_1..x_{i-1}) from a joint table.

    Factor i has the shape of the joint's first i+1 axes and holds P(x_i | x_<i)
    (0 where the conditioning event has probability 0).
    """
    joint = np.asarray(joint, dtype=float)
    factors = []
    for i in range(joint.ndim):
        marg_i = joint.sum(axis=tuple(range(i + 1, joint.ndim)))  # P(x_1..x_i)
        prev = marg_i.sum(axis=-1, keepdims=True)  # P(x_1..x_{i-1})
        with np.errstate(invalid="ignore", divide="ignore"):
            factors.append(np.where(prev > 0, marg_i / prev, 0.0))
    return factors


def count_parameters(model) -> int:
    """Free parameters of the factorised form: Σ_i (K_i − 1) Π_{j∈pa_i} K_j."""
    check_dag(model)
    total = 0
    for node in model.nodes:
        k = model.get_cardinality(node) if model.get_cpds(node) is not None else None
        if k is None:
            raise ValueError(f"node {node!r} has no CPD: cannot count its parameters")
        total += (k - 1) * int(np.prod([model.get_cardinality(p) for p in model.get_parents(node)]))
    return int(total)


def full_joint_parameters(cardinalities: Iterable[int]) -> int:
    """Free parameters of an unrestricted joint table: Π_i K_i − 1."""
    cards = list(cardinalities)
    if not cards or any(int(k) != k or k < 1 for k in cards):
        raise ValueError(f"cardinalities must be positive integers, got {cards!r}")
    return int(np.prod(cards, dtype=object)) - 1


def markov_chain_parameters(K: int, M: int) -> int:
    """Parameter count of an M-node, K-state Markov chain: K − 1 + (M − 1) K (K − 1)."""
    for name, value in (("K", K), ("M", M)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(K - 1 + (M - 1) * K * (K - 1))


def markov_chain(M: int, K: int, *, rng: np.random.Generator | int | None = 0, alpha: float = 1.0):
    """A Markov chain x1 -> x2 -> ... -> xM with K states and random CPDs (pgmpy network)."""
    markov_chain_parameters(K, M)  # validates K and M
    nodes = [f"x{i}" for i in range(1, M + 1)]
    edges = list(pairwise(nodes))
    return bayesian_network(edges, cardinality=K, nodes=nodes, rng=rng, alpha=alpha)


def ancestral_sample(model, n: int, *, rng: np.random.Generator | int | None = 0) -> dict:
    """Draw ``n`` joint samples by visiting nodes in topological order (parents first).

    Returns ``{node: int array of shape (n,)}`` with state indices. Vectorised over samples.
    """
    validate_network(model)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(rng, (int, np.integer)) or rng is None:
        rng = np.random.default_rng(rng)
    out: dict = {}
    for node in nx.topological_sort(model):
        cpd = model.get_cpds(node)
        k = cpd.cardinality[0]
        table = cpd.get_values()  # (k, Π K_parents), last evidence variable fastest
        col = np.zeros(n, dtype=np.int64)
        for var, card in zip(cpd.variables[1:], cpd.cardinality[1:]):
            col = col * card + out[var]
        probs = table[:, col].T  # (n, k)
        u = rng.random((n, 1))
        out[node] = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), k - 1)
    return out


def enumerate_states(cards: Sequence[int]):
    """All joint states of variables with the given cardinalities (brute force helper)."""
    return product(*(range(k) for k in cards))
