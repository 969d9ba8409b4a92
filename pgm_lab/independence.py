"""Conditional independence read off a graph: d-separation, separation, Markov blankets.

See chapter 02 (directed graphs: 条件独立性, D-separation, 马尔可夫毯) and chapter 03
(undirected graphs: 全局马尔可夫性 = graph separation).

Directed graphs (贝叶斯网络). A trail between node sets A and B is *blocked* by the observed set C
when it contains a node n such that

- the trail meets n head-to-tail (a → n → b) or tail-to-tail (a ← n → b) and n ∈ C, or
- the trail meets n head-to-head (a → n ← b) and neither n nor any descendant of n is in C.

A and B are d-separated by C (A ⊥ B | C) when every trail between them is blocked. ``d_separated``
decides this in time linear in the size of the graph with the reachability ("Bayes ball")
algorithm of Koller & Friedman (2009, Algorithm 3.1): it walks the graph once over the states
(node, direction of arrival) and never enumerates trails. ``active_trails`` enumerates the trails
of a small graph one by one and says why each is active or blocked, as the slides do.

Undirected graphs (马尔可夫随机场). A and B are separated by C when every path from A to B passes
through C (``separated``); the Markov blanket of a node is its neighbours.

Numeric counterparts (a joint table and how far ``A ⊥ B | C`` fails in numbers) live in
:mod:`pgm_lab.numeric_independence` and are re-exported here.

References: Pearl (1988); Bishop (2006, §8.2); Koller & Friedman (2009, §3.3).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import networkx as nx

from .draw import draw_graph, layered_layout
from .graphs import as_graph  # re-exported: chapters call independence.as_graph
from .numeric_independence import (  # re-exported: the numeric side of chapter 02
    IndependenceGap,
    Joint,
    as_joint,
    conditional,
    conditionally_independent,
    independence_gap,
    random_bayesian_network,
    random_joint,
)

__all__ = [
    "IndependenceGap",
    "Joint",
    "Trail",
    "active_trails",
    "as_graph",
    "as_joint",
    "conditional",
    "conditionally_independent",
    "d_connected_nodes",
    "d_separated",
    "dseparation_explorer",
    "dseparation_table",
    "independence_gap",
    "markov_blanket",
    "plot_dseparation",
    "random_bayesian_network",
    "random_joint",
    "separated",
]

# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------


def _node_set(graph: nx.Graph, nodes, what: str, *, allow_empty: bool) -> frozenset:
    """A node or an iterable of nodes -> frozenset, every node checked against ``graph``."""
    if nodes is None:
        out: frozenset = frozenset()
    elif isinstance(nodes, Hashable) and nodes in graph:
        out = frozenset([nodes])
    elif isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
        raise ValueError(f"unknown node {nodes!r} in {what}; the graph's nodes are {_show(graph)}")
    else:
        items = list(nodes)
        bad = [n for n in items if not isinstance(n, Hashable)]
        if bad:
            raise ValueError(f"{what} contains unhashable entries {bad!r}; nodes must be hashable")
        unknown = [n for n in items if n not in graph]
        if unknown:
            raise ValueError(
                f"unknown node{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {what}; "
                f"the graph's nodes are {_show(graph)}"
            )
        out = frozenset(items)
    if not out and not allow_empty:
        raise ValueError(f"{what} is empty: give at least one node")
    return out


def _show(graph: nx.Graph, limit: int = 12) -> str:
    nodes = list(graph.nodes)
    text = ", ".join(map(repr, nodes[:limit]))
    return "[" + text + (f", … ({len(nodes)} in all)" if len(nodes) > limit else "") + "]"


def _disjoint(**sets: frozenset) -> None:
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sets[a] & sets[b]
            if common:
                raise ValueError(
                    f"{a} and {b} overlap in {sorted(map(repr, common))}; the node sets must be disjoint"
                )


def _prepare(graph, xs, ys, zs, check_acyclic: bool = True):
    g = as_graph(graph, check_acyclic=check_acyclic)
    x = _node_set(g, xs, "xs", allow_empty=False)
    y = _node_set(g, ys, "ys", allow_empty=False)
    z = _node_set(g, zs, "zs", allow_empty=True)
    _disjoint(xs=x, ys=y, zs=z)
    return g, x, y, z


# --------------------------------------------------------------------------------------------
# reachability
# --------------------------------------------------------------------------------------------


def _ancestors_of(g: nx.DiGraph, zs: Iterable, known: set | None = None) -> set:
    """Nodes of ``zs`` and all their ancestors (one reverse traversal).

    ``known``: an ancestor-closed set already computed; it is extended, not walked again.
    """
    pred = g.pred
    seen = set() if known is None else set(known)
    stack = [z for z in zs if z not in seen]
    seen.update(stack)
    while stack:
        n = stack.pop()
        for p in pred[n]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def _bayes_ball(
    g: nx.DiGraph, xs: frozenset, zs: frozenset, targets: frozenset = frozenset(), *, ancestral: bool = False
) -> set:
    """Nodes reachable from ``xs`` along trails active given ``zs`` (Koller & Friedman Alg. 3.1).

    States are (node, direction of arrival): *up* (arrived from a child, so the trail leaves
    the node by its tail, or the node is a start) and *down* (arrived from a parent, through
    an arrow head). Each state is expanded at most once, so the cost is O(|V| + |E|). Stops
    early when a node of ``targets`` is reached.

    ``ancestral=True`` walks only the ancestral set An(xs ∪ targets ∪ zs): every node of an
    active trail between xs and targets is an ancestor of xs ∪ targets ∪ zs (a descendant
    outside it would be an unobserved collider with no observed descendant, or would need an
    outgoing edge towards an end node), so the answer for ``targets`` is unchanged while the
    walk usually covers a small part of a large graph.
    """
    pred, succ = g.pred, g.succ
    anc = _ancestors_of(g, zs)
    within = _ancestors_of(g, xs | targets, anc) if ancestral else None
    seen_up: set = set()
    seen_down: set = set()
    reached: set = set()
    up = list(xs)  # states (n, up) still to expand
    down: list = []  # states (n, down) still to expand
    while up or down:
        if up:
            n = up.pop()
            if n in seen_up:
                continue
            seen_up.add(n)
            if n in zs:  # observed, reached from below: head-to-tail / tail-to-tail blocked
                continue
            reached.add(n)
            if n in targets:
                return reached
            # onwards to the parents (leaving by a tail) and to the children
            up.extend(pred[n])
            down.extend(succ[n] if within is None else [c for c in succ[n] if c in within])
        else:
            n = down.pop()
            if n in seen_down:
                continue
            seen_down.add(n)
            if n not in zs:
                reached.add(n)
                if n in targets:
                    return reached
                # head-to-tail: continue downwards
                down.extend(succ[n] if within is None else [c for c in succ[n] if c in within])
            if n in anc:  # head-to-head: open when n or a descendant is observed
                up.extend(pred[n])
    return reached


def _undirected_reach(g: nx.Graph, xs: frozenset, zs: frozenset, targets: frozenset = frozenset()) -> set:
    adj = g.adj
    reached = set(xs)
    stack = list(xs)
    while stack:
        n = stack.pop()
        for m in adj[n]:
            if m not in reached and m not in zs:
                reached.add(m)
                if m in targets:
                    return reached
                stack.append(m)
    return reached


def d_separated(graph, xs, ys, zs=(), *, check_acyclic: bool = True) -> bool:
    """``True`` when every trail between ``xs`` and ``ys`` is blocked by ``zs`` (A ⊥ B | C).

    ``graph``: a DAG (networkx ``DiGraph`` or pgmpy ``DiscreteBayesianNetwork``); an undirected
    graph is accepted too, where d-separation is plain separation (see ``separated``).
    ``xs``, ``ys``, ``zs``: a node or an iterable of nodes; the three sets must be disjoint and
    ``xs``, ``ys`` non-empty (a tuple that is itself a node of the graph is read as that node).
    Linear time in |V| + |E| (Bayes ball restricted to the ancestral
    set of xs ∪ ys ∪ zs). ``check_acyclic=False`` skips the O(|V| + |E|) test for a directed
    cycle when the caller has checked the graph once and asks many queries. See chapter 02.

    >>> g = nx.DiGraph([("a", "e"), ("f", "e"), ("f", "b"), ("e", "c")])
    >>> d_separated(g, "a", "b", "c"), d_separated(g, "a", "b", "f")
    (False, True)
    """
    g, x, y, z = _prepare(graph, xs, ys, zs, check_acyclic)
    reach = _bayes_ball(g, x, z, y, ancestral=True) if g.is_directed() else _undirected_reach(g, x, z, y)
    return not (reach & y)


def d_connected_nodes(graph, xs, zs=()) -> set:
    """Nodes outside ``xs`` and ``zs`` joined to some node of ``xs`` by a trail active given ``zs``.

    Every node not returned (and not in ``xs`` ∪ ``zs``) is d-separated from ``xs`` by ``zs``.
    Same algorithm and cost as ``d_separated``. See chapter 02.
    """
    g = as_graph(graph)
    x = _node_set(g, xs, "xs", allow_empty=False)
    z = _node_set(g, zs, "zs", allow_empty=True)
    _disjoint(xs=x, zs=z)
    reach = _bayes_ball(g, x, z) if g.is_directed() else _undirected_reach(g, x, z)
    return reach - x - z


def separated(ugraph, xs, ys, zs=()) -> bool:
    """Global Markov property's graph test (全局马尔可夫性): does ``zs`` separate ``xs`` from ``ys``?

    True when every path of the undirected graph from a node of ``xs`` to a node of ``ys``
    passes through ``zs``; then Y_A ⊥ Y_B | Y_C for every distribution that factorises over the
    graph. A breadth-first search of the graph with ``zs`` removed, O(|V| + |E|). See chapter 03.
    A directed graph is refused: use ``d_separated``, or moralise first (``pgm_lab.mrf.moralize``).
    """
    g = as_graph(ugraph)
    if g.is_directed():
        raise ValueError(
            "separated needs an undirected graph; for a DAG use d_separated, or separate in the "
            "moral graph of the ancestral set (pgm_lab.mrf.moralize)"
        )
    _, x, y, z = _prepare(g, xs, ys, zs)
    return not (_undirected_reach(g, x, z, y) & y)


def markov_blanket(graph, node) -> set:
    """The Markov blanket (马尔可夫毯) MB_i of ``node``.

    Directed graph: parents ∪ children ∪ co-parents (other parents of the children), so that
    p(x_i | x_{j≠i}) = p(x_i | x_{MB_i}) ∝ p(x_i | pa_i) Π_{k: i ∈ pa_k} p(x_k | pa_k).
    Undirected graph: the neighbours W of the node (局部马尔可夫性). See chapters 02 and 03.
    """
    g = as_graph(graph)
    if not isinstance(node, Hashable) or node not in g:
        raise ValueError(f"unknown node {node!r}; the graph's nodes are {_show(g)}")
    if not g.is_directed():
        return set(g.adj[node]) - {node}
    children = set(g.succ[node])
    blanket = set(g.pred[node]) | children
    for c in children:
        blanket.update(g.pred[c])
    blanket.discard(node)
    return blanket


def dseparation_table(graph, zs=()) -> dict[tuple, bool]:
    """For every unordered pair {u, v} of unobserved nodes: is u ⊥ v | zs by d-separation?

    Keys are pairs in the graph's node order. One reachability pass per node. See chapter 02.
    """
    g = as_graph(graph)
    z = _node_set(g, zs, "zs", allow_empty=True)
    nodes = [n for n in g.nodes if n not in z]
    index = {n: i for i, n in enumerate(nodes)}
    table = {}
    for u in nodes:
        fu = frozenset([u])
        reach = _bayes_ball(g, fu, z) if g.is_directed() else _undirected_reach(g, fu, z)
        for v in nodes:
            if index[v] > index[u]:
                table[(u, v)] = v not in reach
    return table


# --------------------------------------------------------------------------------------------
# trails, one by one
# --------------------------------------------------------------------------------------------

TAIL_TO_TAIL = "tail-to-tail"
HEAD_TO_TAIL = "head-to-tail"
HEAD_TO_HEAD = "head-to-head"


@dataclass(frozen=True)
class Trail:
    """One trail between two nodes and its verdict given the observed set.

    ``nodes``: the trail; ``arrows``: the trail drawn with its edge directions; ``kinds``: for each
    middle node, the way the trail meets it (tail-to-tail, head-to-tail, head-to-head, or
    ``"undirected"``); ``blocked_at``: the middle nodes that block it; ``reason``: one sentence.
    """

    nodes: tuple
    arrows: str
    kinds: tuple
    active: bool
    blocked_at: tuple
    reason: str

    def __str__(self) -> str:
        return f"{self.arrows}: {'ACTIVE' if self.active else 'blocked'} ({self.reason})"


def _arrows(g: nx.Graph, path: list) -> str:
    out = repr(path[0]) if not isinstance(path[0], str) else path[0]
    for u, v in itertools.pairwise(path):
        name = v if isinstance(v, str) else repr(v)
        if not g.is_directed():
            out += f" — {name}"
        else:
            out += f" → {name}" if g.has_edge(u, v) else f" ← {name}"
    return out


def _judge(g: nx.Graph, path: list, z: frozenset, desc: dict) -> Trail:
    """Judge each inner node of the trail ``path`` given the observed set ``z`` (chapter 02)."""
    kinds, blocks, notes = [], [], []
    for prev, n, nxt in zip(path, path[1:], path[2:]):
        kind, blocked, note = _judge_node(g, prev, n, nxt, z, desc)
        kinds.append(kind)
        if blocked:
            blocks.append(n)
        if note is not None:
            notes.append(note)
    return Trail(
        tuple(path), _arrows(g, path), tuple(kinds), not blocks, tuple(blocks), _trail_reason(blocks, notes)
    )


def _judge_node(g: nx.Graph, prev, n, nxt, z: frozenset, desc: dict) -> tuple[str, bool, str | None]:
    """The connection at ``n`` between ``prev`` and ``nxt``, whether it blocks, and why.

    In a Markov network an observed node blocks. In a Bayesian network a tail-to-tail or
    head-to-tail node blocks when observed; a head-to-head node blocks unless it or one of
    its descendants (cached in ``desc``) is observed.
    """
    name = n if isinstance(n, str) else repr(n)
    if not g.is_directed():
        return "undirected", n in z, f"{name} is observed" if n in z else None
    into_from_prev = g.has_edge(prev, n)
    into_from_next = g.has_edge(nxt, n)
    if into_from_prev and into_from_next:
        return _judge_head_to_head(g, n, name, z, desc)
    kind = TAIL_TO_TAIL if not into_from_prev and not into_from_next else HEAD_TO_TAIL
    if n in z:
        return kind, True, f"{name} is {kind} and observed"
    return kind, False, f"{name} is {kind} and unobserved (open)"


def _judge_head_to_head(g: nx.Graph, n, name: str, z: frozenset, desc: dict) -> tuple[str, bool, str]:
    """A head-to-head node ``n`` is open when ``n`` or one of its descendants is in ``z``."""
    if n not in desc:
        desc[n] = nx.descendants(g, n)
    seen = ({n} | desc[n]) & z
    if not seen:
        return HEAD_TO_HEAD, True, f"{name} is head-to-head and neither it nor a descendant is observed"
    who = ", ".join(sorted(map(str, seen)))
    return HEAD_TO_HEAD, False, f"{name} is head-to-head with {who} observed (open)"


def _trail_reason(blocks: list, notes: list[str]) -> str:
    """The trail's verdict in words: the blocking nodes, or every node found open."""
    if blocks:
        return "blocked: " + "; ".join(s for s in notes if "(open)" not in s)
    if notes:
        return "active: " + "; ".join(notes)
    return "active: a direct edge cannot be blocked"


def active_trails(graph, x, y, zs=(), *, max_trails: int = 10_000) -> list[Trail]:
    """Every trail between nodes ``x`` and ``y``, each judged active or blocked given ``zs``.

    Enumerates the simple paths of the skeleton (exponentially many in general: meant for the
    small graphs of the chapters; more than ``max_trails`` raises ``ValueError``). The verdicts
    agree with ``d_separated``: x ⊥ y | zs exactly when no trail is active. Trails come shortest
    first. See chapter 02.
    """
    g, xs, ys, z = _prepare(graph, x, y, zs)
    if len(xs) != 1 or len(ys) != 1:
        raise ValueError("active_trails takes one node x and one node y")
    (x,) = xs
    (y,) = ys
    skeleton = g.to_undirected(as_view=True) if g.is_directed() else g
    trails, desc = [], {}
    for path in nx.all_simple_paths(skeleton, x, y):
        trails.append(_judge(g, path, z, desc))
        if len(trails) > max_trails:
            raise ValueError(f"more than max_trails={max_trails} trails between {x!r} and {y!r}")
    trails.sort(key=lambda t: (len(t.nodes), t.arrows))
    return trails


# --------------------------------------------------------------------------------------------
# drawing and the lecture widget
# --------------------------------------------------------------------------------------------


def _layout(g: nx.Graph) -> dict:
    return layered_layout(g) if g.is_directed() else nx.spring_layout(g, seed=0)


def _oriented(g: nx.Graph, path) -> list[tuple]:
    """The edges of a trail as the graph stores them (u, v) with u → v."""
    return [(u, v) if g.has_edge(u, v) else (v, u) for u, v in itertools.pairwise(path)]


def plot_dseparation(graph, zs=(), x=None, y=None, *, pos=None, axes=None):
    """Static figure of the d-separation explorer (chapter 02).

    Left: the graph with the observed nodes ``zs`` shaded and the active trails between ``x`` and
    ``y`` drawn in red. Right: which pairs of unobserved nodes are d-separated given ``zs``.
    Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    g = as_graph(graph)
    z = _node_set(g, zs, "zs", allow_empty=True)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1.2, 1]})
    else:
        fig = axes[0].figure
    hl, title = [], f"observed: {{{', '.join(sorted(map(str, z)))}}}"
    if x is not None and y is not None:
        trails = active_trails(g, x, y, z)
        live = [t for t in trails if t.active]
        for t in live:
            hl.extend(_oriented(g, t.nodes))
        given = ", ".join(sorted(map(str, z))) or "∅"
        verdict = "d-separated" if not live else "d-connected"
        title = f"{x}, {y} {verdict} given {{{given}}}: {len(live)}/{len(trails)} trails active"
    draw_graph(g, _layout(g) if pos is None else pos, axes[0], observed=z, highlight_edges=hl, title=title)
    nodes = list(g.nodes)
    table = dseparation_table(g, z)
    m = np.full((len(nodes), len(nodes)), np.nan)
    for (u, v), sep in table.items():
        i, j = nodes.index(u), nodes.index(v)
        m[i, j] = m[j, i] = 1.0 if sep else 0.0
    ax = axes[1]
    from matplotlib.colors import ListedColormap

    ax.imshow(np.ma.masked_invalid(m), cmap=ListedColormap(["#f3b7b0", "#b8e0b0"]), vmin=0, vmax=1)
    ax.set_xticks(range(len(nodes)), [str(n) for n in nodes])
    ax.set_yticks(range(len(nodes)), [str(n) for n in nodes])
    for i in range(len(nodes)):
        for j in range(len(nodes)):
            if not np.isnan(m[i, j]):
                ax.text(j, i, "⊥" if m[i, j] else "dep", ha="center", va="center", fontsize=10)
    ax.set_title(
        f"pairs given {{{', '.join(sorted(map(str, z))) or '∅'}}}: ⊥ d-separated, dep d-connected",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def dseparation_explorer(graph, *, pos=None, observed=(), x=None, y=None):
    """Lecture widget (chapter 02): tick observed nodes, pick two nodes, see the verdicts.

    Returns an ``ipywidgets.VBox`` with attributes ``observed`` (one ``ToggleButton`` per node,
    in a dict), ``x`` and ``y`` (``Dropdown``), ``figure`` (an ``Image`` holding the PNG of
    ``plot_dseparation``) and ``report`` (an ``HTML`` listing every trail between x and y and why
    it is active or blocked). Changing a control redraws; the state also works outside a kernel.
    """
    import html

    import ipywidgets as w
    import matplotlib.pyplot as plt

    g = as_graph(graph)
    nodes = list(g.nodes)
    if len(nodes) < 2:
        raise ValueError("the explorer needs a graph with at least two nodes")
    obs0 = _node_set(g, observed, "observed", allow_empty=True)
    pos = _layout(g) if pos is None else pos
    x = nodes[0] if x is None else x
    y = nodes[-1] if y is None else y
    for name, v in (("x", x), ("y", y)):
        if v not in g:
            raise ValueError(f"unknown node {v!r} for {name}; the graph's nodes are {_show(g)}")
    toggles = {
        n: w.ToggleButton(value=n in obs0, description=str(n), layout=w.Layout(width="60px")) for n in nodes
    }
    options = [(str(n), n) for n in nodes]
    xd = w.Dropdown(options=options, value=x, description="x", layout=w.Layout(width="140px"))
    yd = w.Dropdown(options=options, value=y, description="y", layout=w.Layout(width="140px"))
    image = w.Image(format="png")
    report = w.HTML()

    def redraw(*_):
        z = {n for n, t in toggles.items() if t.value}
        xv, yv = xd.value, yd.value
        if xv == yv or xv in z or yv in z:
            report.value = "<p><b>Pick two different unobserved nodes for x and y.</b></p>"
            fig = plot_dseparation(g, z, pos=pos)
        else:
            fig = plot_dseparation(g, z, xv, yv, pos=pos)
            rows = "".join(
                f"<li style='color:{'#c00' if t.active else '#555'}'>{html.escape(str(t))}</li>"
                for t in active_trails(g, xv, yv, z)
            )
            verdict = "d-separated" if d_separated(g, xv, yv, z) else "d-connected"
            report.value = (
                f"<p><b>{html.escape(str(xv))} and {html.escape(str(yv))}: {verdict}</b></p><ul>{rows}</ul>"
            )
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        image.value = buf.getvalue()

    for t in toggles.values():
        t.observe(redraw, names="value")
    xd.observe(redraw, names="value")
    yd.observe(redraw, names="value")
    redraw()
    box = w.VBox(
        [
            w.HBox([w.Label("observed:"), *toggles.values()]),
            w.HBox([xd, yd]),
            image,
            report,
        ]
    )
    box.observed, box.x, box.y, box.figure, box.report = toggles, xd, yd, image, report
    return box
