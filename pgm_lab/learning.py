"""Learning a Bayesian network from complete data (学习问题; see chapter 01).

Parameter learning (参数学习). For a DAG with parent sets pa_i and N fully observed samples
x^(1), ..., x^(N), let N_ijk be the number of samples with x_i = k and pa_i in its j-th
configuration, N_ij = Σ_k N_ijk. Then

    maximum likelihood (最大似然估计):   θ̂_ijk = N_ijk / N_ij
    Bayesian, Dirichlet(α, ..., α) prior on every column θ_ij· (global and local parameter
    independence): posterior Dirichlet(α + N_ij1, ..., α + N_ijK_i), posterior mean
                                        θ̃_ijk = (N_ijk + α) / (N_ij + K_i α).

α = 1 is the uniform prior on each column (Laplace's rule; pgmpy's ``prior_type="K2"``);
pgmpy's default ``"BDeu"`` prior spreads an equivalent sample size instead and differs.

Structure learning (图结构学习) by a score. The log-likelihood of the data,

    log p(D | θ, G) = Σ_n Σ_i log θ_i[x_i^(n) | pa_i^(n)],

only grows when edges are added (more parents never lower its maximum), so the BIC score
subtracts a penalty per free parameter:

    BIC(G) = log p(D | θ̂_G, G) − (log N / 2) · dim(G),   dim(G) = Σ_i (K_i − 1) Π_{j∈pa_i} K_j.

Data layout used by every function here:

- ``cards``: a mapping ``{node: K}``; node ``v`` takes the states ``0, ..., K_v − 1``. Its key
  order is the column order of array samples and the order of parents in every table.
- ``edges``: an iterable of ``(parent, child)`` pairs over nodes of ``cards`` (a DAG).
- ``samples``: a pandas DataFrame with one column per node (exactly the nodes of ``cards``, in
  any order), a dict ``{node: 1-D array}`` (what ``factorization.ancestral_sample`` returns), or
  an integer array of shape (N, M) whose columns follow the order of ``cards``.
- CPD tables: a dict ``{node: array}``; the table of ``v`` has shape ``(K_v, K_p1, ..., K_pk)``
  and holds p(x_v | pa_v) at ``table[x_v, x_p1, ..., x_pk]``, where ``p1, ..., pk`` are the
  parents of ``v`` in the order of ``cards`` (see :func:`parents`). Every table sums to 1 over
  its first axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from .factorization import check_dag

__all__ = [
    "bayesian_cpds",
    "bic_score",
    "cpd_tables",
    "family_counts",
    "log_likelihood",
    "mle_cpds",
    "n_parameters",
    "parents",
    "sample_array",
    "to_bayesian_network",
]


def _check_cards(cards) -> dict:
    if not isinstance(cards, Mapping):
        raise ValueError(f"cards must be a dict {{node: number of states}}, got {type(cards).__name__}")
    if not cards:
        raise ValueError("cards is empty: give the number of states of every node")
    out = {}
    for v, k in cards.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"the number of states of {v!r} must be an integer >= 1, got {k!r}")
        out[v] = int(k)
    return out


def parents(edges: Iterable, cards: Mapping) -> dict:
    """``{node: tuple of parents}`` with the parents in the order of ``cards``.

    ``ValueError`` for an edge that is not a pair, a node that is not a key of ``cards``, a
    self-loop or a directed cycle (the message names the cycle).
    """
    cards = _check_cards(cards)
    edges = list(edges)
    for e in edges:
        if not isinstance(e, (tuple, list)) or len(e) != 2:
            raise ValueError(f"an edge is a (parent, child) pair, got {e!r}")
        for v in e:
            if v not in cards:
                raise ValueError(f"edge {tuple(e)!r} names the unknown node {v!r} (not a key of cards)")
    g = check_dag(edges, nodes=list(cards))
    rank = {v: i for i, v in enumerate(cards)}
    return {v: tuple(sorted(g.predecessors(v), key=rank.__getitem__)) for v in cards}


def sample_array(samples, cards: Mapping) -> np.ndarray:
    """The samples as an int64 array of shape (N, M), columns in the order of ``cards``.

    Accepts a DataFrame, a dict of 1-D arrays or an (N, M) array (see the module docstring);
    ``ValueError`` names the problem: an empty sample, a wrong shape, missing or unknown
    columns, missing or non-integer values, or a state outside ``0..K−1`` (node and row).
    """
    cards = _check_cards(cards)
    names = list(cards)
    if hasattr(samples, "columns") and hasattr(samples, "to_numpy"):  # a pandas DataFrame
        samples = {c: samples[c].to_numpy() for c in samples.columns}
    array = _columns_array(samples, cards) if isinstance(samples, Mapping) else _matrix_array(samples, names)
    if array.shape[0] == 0:
        raise ValueError("the sample is empty: learning needs at least one sample (N >= 1)")
    array = _integer_states(array, names)
    _check_state_range(array, cards)
    return array


def _columns_array(samples: Mapping, cards: dict) -> np.ndarray:
    """Stack a dict of 1-D columns, one per node of ``cards`` and in its order, into (N, M)."""
    names = list(cards)
    missing = [v for v in names if v not in samples]
    unknown = [c for c in samples if c not in cards]
    if missing:
        raise ValueError(f"the samples have no column for the nodes {missing!r}")
    if unknown:
        raise ValueError(f"the samples have columns {unknown!r} that are not nodes of cards")
    cols = [np.asarray(samples[v]) for v in names]
    for v, col in zip(names, cols):
        if col.ndim != 1:
            raise ValueError(f"the samples of {v!r} must be a 1-D array, got shape {col.shape}")
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(f"the columns have different lengths {sorted(lengths)}")
    return np.column_stack(cols) if cols[0].size else np.empty((0, len(names)))


def _matrix_array(samples, names: list) -> np.ndarray:
    """An (N, M) array-like with one column per node in ``names``."""
    array = np.asarray(samples)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ValueError(
            f"samples must have shape (N, {len(names)}): one column per node of cards "
            f"{names!r}; got shape {array.shape}"
        )
    return array


def _integer_states(array: np.ndarray, names: list) -> np.ndarray:
    """``array`` as int64 when every value is a whole number (floats such as 1.0 are fine)."""
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"states must be integers 0..K-1, got values of dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)):
            row, col = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"missing or non-finite value for node {names[col]!r} in row {row}")
        if not np.all(array == np.round(array)):
            row, col = np.argwhere(array != np.round(array))[0]
            raise ValueError(
                f"states must be integers: node {names[col]!r} has {array[row, col]!r} in row {row}"
            )
    return array.astype(np.int64)


def _check_state_range(array: np.ndarray, cards: dict) -> None:
    """Every state x of node i lies in 0..K_i−1; the error names the first bad node and row."""
    names = list(cards)
    k = np.array([cards[v] for v in names])
    bad = (array < 0) | (array >= k)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"node {names[col]!r} has state {array[row, col]} in row {row}, outside 0..{k[col] - 1}"
            f" ({int(bad[:, col].sum())} such rows)"
        )


def family_counts(edges: Iterable, cards: Mapping, samples) -> dict:
    """The sufficient statistics N_ijk: ``{node: int array of shape (K_i, K_p1, ..., K_pk)}``."""
    cards = _check_cards(cards)
    pa = parents(edges, cards)
    x = sample_array(samples, cards)
    column = {v: i for i, v in enumerate(cards)}
    out = {}
    for v in cards:
        family = (v, *pa[v])
        shape = tuple(cards[u] for u in family)
        codes = np.ravel_multi_index(tuple(x[:, column[u]] for u in family), shape)
        out[v] = np.bincount(codes, minlength=math.prod(shape)).reshape(shape)
    return out


def mle_cpds(edges: Iterable, cards: Mapping, samples) -> dict:
    """Maximum-likelihood CPDs θ̂_ijk = N_ijk / N_ij (see chapter 01).

    A parent configuration that never occurs in the sample (N_ij = 0) leaves its column
    undetermined; it gets the uniform column 1/K_i, as pgmpy's estimators do.
    """
    out = {}
    for v, n in family_counts(edges, cards, samples).items():
        totals = n.sum(axis=0, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[v] = np.where(totals > 0, n / totals, 1.0 / n.shape[0])
    return out


def bayesian_cpds(edges: Iterable, cards: Mapping, samples, pseudo_count: float = 1.0) -> dict:
    """Posterior-mean CPDs under a symmetric Dirichlet(α) prior: (N_ijk + α) / (N_ij + K_i α).

    α = ``pseudo_count`` > 0 is added to every count; α = 1 is the uniform prior on each column
    (pgmpy: ``prior_type="dirichlet", pseudo_counts=α``, or ``"K2"`` for α = 1). See chapter 01.
    """
    alpha = pseudo_count
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise ValueError(f"pseudo_count must be a positive number, got {alpha!r}")
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"pseudo_count must be a positive finite number, got {alpha!r}")
    out = {}
    for v, n in family_counts(edges, cards, samples).items():
        post = n + float(alpha)
        out[v] = post / post.sum(axis=0, keepdims=True)
    return out


def _check_tables(cpds, pa: dict, cards: dict, atol: float = 1e-8) -> dict:
    out = {}
    for v in cards:
        table = np.asarray(cpds[v], dtype=float)
        want = (cards[v], *(cards[p] for p in pa[v]))
        if table.shape != want:
            raise ValueError(
                f"the CPD of {v!r} must have shape {want} (its states, then its parents "
                f"{list(pa[v])!r}); got {table.shape}"
            )
        if not np.all(np.isfinite(table)) or table.min() < 0:
            raise ValueError(f"the CPD of {v!r} has negative or non-finite entries")
        sums = table.sum(axis=0)
        if np.any(np.abs(sums - 1) > atol):
            worst = float(sums.flat[np.argmax(np.abs(sums - 1))])
            raise ValueError(
                f"the CPD of {v!r} does not sum to 1 over the states of {v!r} (a column sums to {worst:.6g})"
            )
        out[v] = table
    return out


def log_likelihood(edges: Iterable, cpds: Mapping, samples) -> float:
    """log p(D | θ, G) = Σ_n Σ_i log θ_i[x_i^(n) | pa_i^(n)], in nats (see chapter 01).

    ``cpds`` is a dict of tables in the module's layout; its key order plays the role of
    ``cards`` (column order of array samples, order of parents). ``-inf`` when a sample has
    probability 0 under ``cpds``.
    """
    if not isinstance(cpds, Mapping) or not cpds:
        raise ValueError("cpds must be a non-empty dict {node: table}")
    cards = {}
    for v, t in cpds.items():
        t = np.asarray(t)
        if t.ndim < 1 or t.shape[0] < 1:
            raise ValueError(f"the CPD of {v!r} must have at least one axis (the states of {v!r})")
        cards[v] = int(t.shape[0])
    pa = parents(edges, cards)
    tables = _check_tables(cpds, pa, cards)
    x = sample_array(samples, cards)
    column = {v: i for i, v in enumerate(cards)}
    total = 0.0
    with np.errstate(divide="ignore"):
        for v in cards:
            probs = tables[v][tuple(x[:, column[u]] for u in (v, *pa[v]))]
            total += float(np.log(probs).sum())
    return total


def n_parameters(edges: Iterable, cards: Mapping) -> int:
    """Free parameters dim(G) = Σ_i (K_i − 1) Π_{j∈pa_i} K_j (see chapter 01)."""
    cards = _check_cards(cards)
    pa = parents(edges, cards)
    return int(sum((cards[v] - 1) * math.prod(cards[p] for p in pa[v]) for v in cards))


def bic_score(edges: Iterable, cards: Mapping, samples) -> float:
    """BIC(G) = log p(D | θ̂_G, G) − (log N / 2) · dim(G) with θ̂_G the ML CPDs (see chapter 01).

    Every node counts all of its ``K`` states, observed or not (pgmpy's ``BIC`` agrees when
    given ``state_names`` with all states). Higher is better.
    """
    cards = _check_cards(cards)
    x = sample_array(samples, cards)
    ll = log_likelihood(edges, mle_cpds(edges, cards, x), x)
    return ll - 0.5 * math.log(x.shape[0]) * n_parameters(edges, cards)


def cpd_tables(model, nodes: Iterable | None = None) -> dict:
    """The CPDs of a pgmpy Bayesian network in this module's layout.

    ``nodes`` fixes the node order (default ``model.nodes``), and so the order of parents.
    """
    nodes = list(model.nodes) if nodes is None else list(nodes)
    if sorted(map(str, nodes)) != sorted(map(str, model.nodes)) or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes must list every node of the model once: {sorted(map(str, model.nodes))}")
    cards = {}
    for v in nodes:
        if model.get_cpds(v) is None:
            raise ValueError(f"node {v!r} has no CPD")
        cards[v] = int(model.get_cardinality(v))
    pa = parents(list(model.edges), cards)
    out = {}
    for v in nodes:
        cpd = model.get_cpds(v)
        values = cpd.get_values().reshape(cpd.cardinality)  # axes: cpd.variables
        out[v] = np.transpose(values, [list(cpd.variables).index(u) for u in (v, *pa[v])])
    return out


def to_bayesian_network(edges: Iterable, cpds: Mapping):
    """A pgmpy ``DiscreteBayesianNetwork`` holding tables given in this module's layout."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    edges = list(edges)
    cards = {v: int(np.asarray(t).shape[0]) for v, t in cpds.items()}
    pa = parents(edges, cards)
    tables = _check_tables(cpds, pa, cards)
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(cards)
    model.add_edges_from(edges)
    for v in cards:
        model.add_cpds(
            TabularCPD(
                v,
                cards[v],
                tables[v].reshape(cards[v], -1),
                evidence=list(pa[v]) or None,
                evidence_card=[cards[p] for p in pa[v]] or None,
            )
        )
    return model
