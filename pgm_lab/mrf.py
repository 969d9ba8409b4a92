"""Markov random fields (马尔可夫随机场): cliques, potentials, Z and the Markov properties.

See chapter 03. An undirected graph G with maximal cliques C carries the distributions

    P(Y) = (1/Z) Π_C ψ_C(Y_C),      Z = Σ_Y Π_C ψ_C(Y_C),      ψ_C ≥ 0            (因子分解)

and with positive potentials ψ_C = exp{−E(Y_C)} the Boltzmann form (玻尔兹曼分布)
P(Y) = exp{−Σ_C E(Y_C)} / Z. Hammersley–Clifford (Hammersley & Clifford 1971; Besag 1974): a
*positive* P satisfies the graph's conditional independencies exactly when it factorises so.

This module computes cliques and maximal cliques (团, 最大团; Bron–Kerbosch), builds a pgmpy
``DiscreteMarkovNetwork`` from clique potentials, evaluates Z (规范化因子 / 划分函数) by brute
force over all K^N configurations, computes local conditionals without Z, checks the
pairwise, local and global Markov properties of a distribution numerically, and moralises a
directed graph. "Potentials" below means any of: a pgmpy ``DiscreteMarkovNetwork`` (or
``FactorGraph``) with factors, a list of pgmpy ``DiscreteFactor``, or a dict mapping a scope
(tuple of variable names) to a numpy array with one axis per variable of the scope.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .graphs import as_graph
from .independence import separated
from .numeric_independence import IndependenceGap, Joint, as_joint, independence_gap
from .pgmpy_adapter import FactorArrays, check_table_size, factor_arrays, from_tables

__all__ = [
    "MarkovCheck",
    "boltzmann",
    "check_markov_properties",
    "cliques",
    "draw_cliques",
    "energy_from_potential",
    "factorization_obstruction",
    "global_markov",
    "joint",
    "local_conditional",
    "local_markov",
    "markov_network",
    "maximal_cliques",
    "moralize",
    "moussouris_example",
    "pairwise_markov",
    "partition_function",
    "potential_from_energy",
    "random_potentials",
    "unnormalized",
]

# --------------------------------------------------------------------------------------------
# cliques
# --------------------------------------------------------------------------------------------


def _undirected(graph) -> nx.Graph:
    g = as_graph(graph)
    if g.is_directed():
        raise ValueError(
            "cliques are defined on an undirected graph; moralize a directed one first (moralize)"
        )
    return g


def _neighbour_sets(g: nx.Graph) -> tuple[list, dict, dict]:
    nodes = list(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    nbrs = {n: set(g.adj[n]) - {n} for n in nodes}
    return nodes, index, nbrs


def cliques(graph) -> list[tuple]:
    """Every clique (团) of an undirected graph: node subsets whose members are all adjacent.

    Each clique is grown only by neighbours that come later in the node order, so each is
    listed once. Returned smallest first, nodes in the graph's order. See chapter 03.
    """
    g = _undirected(graph)
    nodes, index, nbrs = _neighbour_sets(g)
    out: list[tuple] = []
    stack = [((u,), {v for v in nbrs[u] if index[v] > index[u]}) for u in reversed(nodes)]
    while stack:
        clique, cand = stack.pop()
        out.append(clique)
        for v in sorted(cand, key=index.__getitem__, reverse=True):
            stack.append(((*clique, v), {w for w in cand & nbrs[v] if index[w] > index[v]}))
    out.sort(key=lambda c: (len(c), [index[n] for n in c]))
    return out


def maximal_cliques(graph) -> list[tuple]:
    """The maximal cliques (最大团): cliques that no further node of the graph can join.

    Bron–Kerbosch with pivoting. Returned smallest first, nodes in the graph's order. See chapter 03.
    """
    g = _undirected(graph)
    nodes, index, nbrs = _neighbour_sets(g)
    out: list[tuple] = []
    stack = [(set(), set(nodes), set())]  # (R, P, X)
    while stack:
        r, p, x = stack.pop()
        if not p and not x:
            out.append(tuple(sorted(r, key=index.__getitem__)))
            continue
        pivot = max(p | x, key=lambda u: len(p & nbrs[u]))
        for v in list(p - nbrs[pivot]):
            stack.append((r | {v}, p & nbrs[v], x & nbrs[v]))
            p = p - {v}
            x = x | {v}
    out.sort(key=lambda c: (len(c), [index[n] for n in c]))
    return out


# --------------------------------------------------------------------------------------------
# potentials, energies, Z
# --------------------------------------------------------------------------------------------


def _potentials(model, variables=None) -> FactorArrays:
    """The potentials as factor arrays (:mod:`pgm_lab.pgmpy_adapter`), in ``variables``' order."""
    if isinstance(model, FactorArrays):
        pots = model
    elif isinstance(model, dict):
        if not model:
            raise ValueError("no potentials given")
        pots = from_tables(list(model.items()), what="potentials")
    elif isinstance(model, Iterable) and not isinstance(model, (str, bytes, np.ndarray)):
        pots = factor_arrays(model)  # a pgmpy network, factor graph or list of DiscreteFactor
    else:
        raise ValueError(
            "potentials must be a pgmpy DiscreteMarkovNetwork, a list of DiscreteFactor or a dict "
            f"scope -> array; got {type(model).__name__}"
        )
    if variables is not None:
        variables = tuple(variables)
        if set(variables) != set(pots.card) or len(variables) != len(pots.card):
            raise ValueError(
                f"variables {variables!r} must list exactly the potentials' variables {sorted(pots.card)!r}"
            )
        pots = FactorArrays(variables, pots.card, pots.states, pots.factors)
    return pots


def potential_from_energy(energy) -> np.ndarray:
    """ψ_C(Y_C) = exp{−E(Y_C)}: a potential from an energy table (energy function 能量函数)."""
    energy = np.asarray(energy, dtype=float)
    if np.any(np.isnan(energy)):
        raise ValueError("the energy table has nan entries")
    return np.exp(-energy)


def energy_from_potential(psi) -> np.ndarray:
    """E(Y_C) = −log ψ_C(Y_C) (``inf`` where ψ_C = 0); negative potentials are refused."""
    psi = np.asarray(psi, dtype=float)
    if np.any(psi < 0) or np.any(np.isnan(psi)):
        raise ValueError(
            f"the potential has a negative or nan entry (min {np.nanmin(psi):.3g}); ψ_C must be ≥ 0"
        )
    with np.errstate(divide="ignore"):
        return -np.log(psi)


def markov_network(potentials, graph=None):
    """A pgmpy ``DiscreteMarkovNetwork`` from clique potentials ψ_C (see chapter 03).

    ``potentials``: a dict scope -> array (or a list of ``DiscreteFactor``). Every scope becomes
    a clique of the network (its variables pairwise joined). With ``graph`` given, the network
    has exactly its nodes and edges and each scope must be a clique of it. A potential with a
    negative, nan or infinite entry raises ``ValueError``.
    """
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.models import DiscreteMarkovNetwork

    pots = _potentials(potentials)
    net = DiscreteMarkovNetwork()
    if graph is not None:
        g = _undirected(graph)
        extra = [v for v in pots.card if v not in g]
        if extra:
            raise ValueError(f"the potentials mention variables {extra!r} that are not nodes of the graph")
        for scope, _ in pots.factors:
            for u, v in itertools.combinations(scope, 2):
                if not g.has_edge(u, v):
                    raise ValueError(
                        f"the potential on {scope!r} is not on a clique of the graph (no edge {u!r}–{v!r})"
                    )
        net.add_nodes_from(g.nodes)
        net.add_edges_from(g.edges)
        lonely = [n for n in g.nodes if n not in pots.card]
        if lonely:
            raise ValueError(f"no potential mentions the nodes {lonely!r}; give each a potential")
    else:
        net.add_nodes_from(pots.variables)
        for scope, _ in pots.factors:
            net.add_edges_from(itertools.combinations(scope, 2))
    net.add_factors(
        *[DiscreteFactor(list(scope), list(arr.shape), arr.copy()) for scope, arr in pots.factors]
    )
    return net


def random_potentials(graph, states=2, *, seed=None, scale: float = 1.0) -> dict:
    """Random positive potentials ψ_C = exp(−E_C), E_C ~ N(0, scale²), on the maximal cliques."""
    g = _undirected(graph)
    rng = np.random.default_rng(seed)
    card = {n: states for n in g.nodes} if not isinstance(states, dict) else dict(states)
    return {c: np.exp(-rng.normal(0.0, scale, size=[card[v] for v in c])) for c in maximal_cliques(g)}


def unnormalized(potentials, variables=None) -> tuple[np.ndarray, tuple]:
    """The table Π_C ψ_C(Y_C) over all K^N configurations and its axis names (no Z)."""
    pots = _potentials(potentials, variables)
    return pots.joint(), pots.variables


def partition_function(potentials, *, method: str = "vectorized") -> float:
    """Z = Σ_Y Π_C ψ_C(Y_C) by brute force over all K^N configurations (see chapter 03).

    ``method="vectorized"`` builds the K^N table with numpy broadcasting and sums it;
    ``method="loop"`` visits the configurations one at a time in Python (the textbook double
    loop). Both cost Θ(K^N · |C|): exponential in the number of variables.
    """
    pots = _potentials(potentials)
    if method == "vectorized":
        table, _ = unnormalized(pots)
        return float(table.sum())
    if method == "loop":
        check_table_size(pots.card.values(), "the Python loop over configurations", limit=2**22)
        pos = {v: i for i, v in enumerate(pots.variables)}
        lookups = [(arr, [pos[v] for v in scope]) for scope, arr in pots.factors]
        z = 0.0
        for y in itertools.product(*[range(pots.card[v]) for v in pots.variables]):
            term = 1.0
            for arr, idx in lookups:
                term *= arr[tuple(y[i] for i in idx)]
            z += term
        return float(z)
    raise ValueError(f"method must be 'vectorized' or 'loop', got {method!r}")


def joint(potentials, variables=None) -> Joint:
    """P(Y) = Π_C ψ_C(Y_C) / Z as a normalised :class:`~pgm_lab.numeric_independence.Joint`."""
    table, names = unnormalized(potentials, variables)
    if not table.sum() > 0:
        raise ValueError("every configuration has zero potential: Z = 0, no distribution")
    return Joint(table, names)


def boltzmann(energies, variables=None) -> Joint:
    """The Boltzmann distribution P(Y) = exp{−Σ_C E(Y_C)} / Z from clique energies.

    ``energies``: dict scope -> energy table. Computed in the log domain (the total energy is
    shifted by its minimum before exponentiating), so large energies do not overflow.
    """
    if not isinstance(energies, dict) or not energies:
        raise ValueError("energies must be a non-empty dict scope -> energy table")
    scopes = {
        (k,) if not isinstance(k, tuple) else k: np.asarray(v, dtype=float) for k, v in energies.items()
    }
    for scope, e in scopes.items():
        if e.ndim != len(scope):
            raise ValueError(f"the energy on {scope!r} has {e.ndim} axes; expected {len(scope)}")
        if np.any(np.isnan(e)) or np.any(e == -np.inf):
            raise ValueError(f"the energy on {scope!r} has nan or -inf entries")
    pots = _potentials({s: np.ones_like(e) for s, e in scopes.items()}, variables)
    check_table_size(pots.card.values())
    total = np.zeros([pots.card[v] for v in pots.variables])
    pos = {v: i for i, v in enumerate(pots.variables)}
    for scope, e in scopes.items():
        axes = [pos[v] for v in scope]
        order = np.argsort(axes)
        shape = [1] * len(pots.variables)
        for v in scope:
            shape[pos[v]] = pots.card[v]
        total = total + np.transpose(e, order).reshape(shape)
    finite = np.isfinite(total)
    if not finite.any():
        raise ValueError("every configuration has infinite energy: no distribution")
    shifted = np.where(finite, total - total[finite].min(), np.inf)
    return Joint(np.exp(-shifted), pots.variables)


def local_conditional(potentials, node, assignment: dict) -> np.ndarray:
    """P(Y_v | Y_rest = assignment) from the potentials that contain v only: no Z needed.

        P(y_v | y_rest) = Π_{C ∋ v} ψ_C(y_v, y_{C∖v}) / Σ_{y_v'} Π_{C ∋ v} ψ_C(y_v', y_{C∖v})

    Every factor without v and Z itself cancel between numerator and denominator, so the cost
    is K_v · (number of cliques containing v), not K^N. ``assignment`` maps the other variables
    (at least v's neighbours) to state indices. See chapter 03.
    """
    pots = _potentials(potentials)
    if not isinstance(node, Hashable) or node not in pots.card:
        raise ValueError(f"unknown variable {node!r}; the potentials mention {list(pots.variables)!r}")
    if node in assignment:
        raise ValueError(
            f"assignment gives a value to {node!r} itself; it must hold the other variables only"
        )
    scores = np.ones(pots.card[node])
    for scope, arr in pots.factors:
        if node not in scope:
            continue
        index: list = []
        for v in scope:
            if v == node:
                index.append(slice(None))
                continue
            if v not in assignment:
                raise ValueError(f"assignment lacks {v!r}, which shares a potential with {node!r}")
            s = assignment[v]
            if not isinstance(s, (int, np.integer)) or not 0 <= s < pots.card[v]:
                raise ValueError(f"state {s!r} of {v!r} is not an index in 0..{pots.card[v] - 1}")
            index.append(int(s))
        scores = scores * arr[tuple(index)]
    total = scores.sum()
    if not total > 0:
        raise ValueError(f"every state of {node!r} has zero potential under this assignment")
    return scores / total


# --------------------------------------------------------------------------------------------
# the three Markov properties, numerically
# --------------------------------------------------------------------------------------------


@dataclass
class MarkovCheck:
    """The statements a Markov property asks of a distribution and how far each is from holding.

    ``statements``: one :class:`~pgm_lab.numeric_independence.IndependenceGap` per statement
    A ⊥ B | C; ``holds``: all of them hold; ``worst``: the statement with the largest violation.
    """

    name: str
    statements: list = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return all(s.holds for s in self.statements)

    @property
    def worst(self) -> IndependenceGap | None:
        return max(self.statements, key=lambda s: s.max_abs_diff, default=None)

    def __str__(self) -> str:
        n_ok = sum(s.holds for s in self.statements)
        worst = self.worst
        tail = f"; largest violation {worst.max_abs_diff:.2e} at {_stmt(worst)}" if worst else ""
        return f"{self.name} Markov property: {n_ok}/{len(self.statements)} statements hold{tail}"


def _stmt(s: IndependenceGap) -> str:
    f = lambda xs: "{" + ", ".join(map(str, xs)) + "}"
    return f"{f(s.a)} ⊥ {f(s.b)} | {f(s.c)}"


def _joint_and_graph(distribution, graph) -> tuple[Joint, nx.Graph]:
    g = _undirected(graph)
    j = as_joint(distribution)
    if set(j.variables) != set(g.nodes):
        raise ValueError(
            f"the distribution's variables {list(j.variables)!r} differ from the graph's nodes {list(g.nodes)!r}"
        )
    return j, g


def pairwise_markov(distribution, graph, *, tol: float = 1e-9) -> MarkovCheck:
    """成对马尔可夫性: Y_u ⊥ Y_v | Y_O for every non-adjacent pair u, v (O: all other nodes)."""
    j, g = _joint_and_graph(distribution, graph)
    nodes = list(g.nodes)
    out = MarkovCheck("pairwise")
    for u, v in itertools.combinations(nodes, 2):
        if not g.has_edge(u, v):
            rest = [n for n in nodes if n not in (u, v)]
            out.statements.append(independence_gap(j, u, v, rest, tol=tol))
    return out


def local_markov(distribution, graph, *, tol: float = 1e-9) -> MarkovCheck:
    """局部马尔可夫性: Y_v ⊥ Y_O | Y_W for every node v, W its neighbours, O all other nodes."""
    j, g = _joint_and_graph(distribution, graph)
    out = MarkovCheck("local")
    for v in g.nodes:
        w = [n for n in g.nodes if n in g.adj[v] and n != v]
        o = [n for n in g.nodes if n != v and n not in w]
        if o:
            out.statements.append(independence_gap(j, v, o, w, tol=tol))
    return out


def global_markov(distribution, graph, *, tol: float = 1e-9, max_nodes: int = 14) -> MarkovCheck:
    """全局马尔可夫性: Y_A ⊥ Y_B | Y_C whenever C separates A from B in the graph.

    Every separation statement follows (by decomposition) from one where A and B are whole
    connected components of G − C, so for each subset C (2^N of them) we test each pair of
    components of G − C. Returns those statements. ``max_nodes`` guards the 2^N loop.
    """
    j, g = _joint_and_graph(distribution, graph)
    nodes = list(g.nodes)
    if len(nodes) > max_nodes:
        raise ValueError(
            f"global_markov enumerates 2^N separators; {len(nodes)} nodes > max_nodes={max_nodes}"
        )
    out = MarkovCheck("global")
    for r in range(len(nodes) - 1):
        for c in itertools.combinations(nodes, r):
            comps = [
                sorted(k, key=nodes.index) for k in nx.connected_components(g.subgraph(set(nodes) - set(c)))
            ]
            comps.sort(key=lambda k: nodes.index(k[0]))
            for a, b in itertools.combinations(comps, 2):
                assert separated(g, a, b, c)
                out.statements.append(independence_gap(j, a, b, list(c), tol=tol))
    return out


def check_markov_properties(distribution, graph, *, tol: float = 1e-9) -> dict[str, MarkovCheck]:
    """The pairwise, local and global Markov checks of ``distribution`` on ``graph`` (chapter 03)."""
    return {
        "pairwise": pairwise_markov(distribution, graph, tol=tol),
        "local": local_markov(distribution, graph, tol=tol),
        "global": global_markov(distribution, graph, tol=tol),
    }


def factorization_obstruction(distribution, graph) -> tuple | None:
    """A witness that ``distribution`` cannot factorise over the graph's maximal cliques, or None.

    If P = Π_C ψ_C / Z and a configuration y has P(y) = 0, some ψ_C(y_C) = 0, so no configuration
    with P > 0 can agree with y on that clique C. Returns the first zero-probability y (as a
    dict) whose restriction y_C to *every* maximal clique also occurs in a configuration of
    positive probability: then every factorisation would give P(y) > 0, a contradiction. None
    means this test finds no obstruction (positive distributions never have one). See the
    positivity discussion of chapter 03.
    """
    j, g = _joint_and_graph(distribution, graph)
    names = j.variables
    support = np.argwhere(j.values > 0)
    seen = []
    for clique in maximal_cliques(g):
        axes = [names.index(v) for v in clique]
        seen.append((axes, {tuple(row[axes]) for row in support}))
    for y in np.argwhere(j.values == 0):
        if all(tuple(y[axes]) in s for axes, s in seen):
            return {v: int(k) for v, k in zip(names, y)}
    return None


def moussouris_example() -> tuple[Joint, nx.Graph]:
    """A distribution with zeros that has every independence of the 4-cycle but does not factorise.

    The 4-cycle Y1 — Y2 — Y3 — Y4 — Y1 with binary variables and P uniform on eight
    configurations (Moussouris 1974; Koller & Friedman 2009, Example 4.4). It satisfies the
    pairwise, local and global Markov properties, yet ``factorization_obstruction`` finds a
    zero-probability configuration every clique of which is seen with positive probability:
    Hammersley–Clifford needs P > 0. Returns (joint, graph). See chapter 03.
    """
    support = [
        (0, 0, 0, 0),
        (1, 0, 0, 0),
        (1, 1, 0, 0),
        (1, 1, 1, 0),
        (0, 0, 0, 1),
        (0, 0, 1, 1),
        (0, 1, 1, 1),
        (1, 1, 1, 1),
    ]
    table = np.zeros((2, 2, 2, 2))
    for y in support:
        table[y] = 1.0
    names = ("Y1", "Y2", "Y3", "Y4")
    return Joint(table, names), nx.cycle_graph(names)


# --------------------------------------------------------------------------------------------
# from directed to undirected
# --------------------------------------------------------------------------------------------


def moralize(dag) -> nx.Graph:
    """The moral graph (道德图) of a DAG: marry the parents of every node, drop the directions.

    Each factor p(x_i | pa_i) lives on {x_i} ∪ pa_i, which is a clique of the moral graph, so a
    Bayesian network's distribution factorises over it (as a Markov network with ψ = the CPDs
    and Z = 1). See chapter 03.
    """
    g = as_graph(dag)
    if not g.is_directed():
        raise ValueError("moralize needs a directed acyclic graph; the graph is undirected")
    m = nx.Graph()
    m.add_nodes_from(g.nodes)
    m.add_edges_from(g.edges)
    for n in g.nodes:
        m.add_edges_from(itertools.combinations(list(g.predecessors(n)), 2))
    return m


def draw_cliques(graph, groups=None, *, pos=None, ax=None, title=None, colors=None):
    """Draw an undirected graph with each clique of ``groups`` shaded (default: maximal cliques)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon
    from scipy.spatial import ConvexHull

    from .draw import draw_graph

    g = _undirected(graph)
    groups = maximal_cliques(g) if groups is None else [tuple(c) for c in groups]
    unknown = sorted({repr(n) for c in groups for n in c if n not in g})
    if unknown:
        raise ValueError(f"groups mention nodes {', '.join(unknown)} that are not in the graph")
    pos = nx.spring_layout(g, seed=0) if pos is None else pos
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.5))
    colors = colors or plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xy = np.array([pos[n] for n in g.nodes], dtype=float).reshape(-1, 2)
    span = float(np.ptp(xy, axis=0).max()) if len(xy) > 1 else 1.0
    radius = 0.09 * (span or 1.0)
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    circle = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for k, clique in enumerate(groups):
        # the clique's convex hull grown by a disk (Minkowski sum): a rounded region around its nodes
        pts = (np.array([pos[n] for n in clique], dtype=float)[:, None, :] + circle[None]).reshape(-1, 2)
        hull = pts[ConvexHull(pts).vertices]
        ax.add_patch(
            Polygon(hull, closed=True, facecolor=colors[k % len(colors)], edgecolor="none", alpha=0.3)
        )
    draw_graph(g, pos, ax, title=title)
    return ax
