"""Belief propagation (信念传播算法) on discrete pgmpy models: sum-product and max-product.

See chapter 04. The slides write the message that node j sends to its neighbour i as

    m_ji(x_i) = Σ_{x_j} ψ_ij(x_i, x_j) Π_{k ∈ η(j) \\ i} m_kj(x_j),

and the marginal of node i as the normalised product of everything it receives,
p_i(x_i) ∝ Π_{j ∈ η(i)} m_ji(x_i). This module runs the same rule on the factor graph
(因子图) of any discrete pgmpy model (Kschischang et al. 2001): a factor f sends to one of
its variables i

    m_{f→i}(x_i) = Σ_{x_f \\ x_i} f(x_f) Π_{j ∈ f \\ i} n_{j→f}(x_j),
    n_{j→f}(x_j) = ψ_j(x_j) Π_{g ∋ j, g ≠ f} m_{g→j}(x_j),

where ψ_j collects the single-variable factors of j (the slide's ψ_j(y_j, x_j) with y_j
observed) and the evidence. For a pairwise factor ψ_ij the message m_{ψ_ij→i} *is* the
slide's m_ji, which is how the result labels it. Every message is renormalised to sum one,
so a 10,000-node chain neither underflows nor overflows. ``kind="max"`` replaces the sum
by a max (max-product) and decodes a MAP assignment; on trees both are exact (Pearl 1988),
on graphs with cycles the same updates give loopy BP (Yedidia, Freeman and Weiss 2003).

The pieces: :mod:`pgm_lab.pgmpy_adapter` reads the model, :mod:`pgm_lab.factor_graph`
lays it out as index arrays, :mod:`pgm_lab.bp_schedules` holds the message rule and one
driver per schedule (消息传递顺序):

- ``"serial"`` (the slide's 深度优先传递): collect towards a root, then distribute away
  from it; on a tree (forest) one sweep sends each message exactly once, 2(n−1) messages
  on an n-node pairwise tree. On graphs with cycles the sweep repeats until convergence.
- ``"parallel"`` (the slide's 同时并行传递): in every round each message is computed from
  the previous round's messages; on a tree this takes as many rounds as the longest path.
- ``None`` (default): the cheapest exact choice, ``"serial"`` on a forest, and on a graph
  with cycles ``"parallel"`` damped by :data:`LOOPY_DAMPING` (m ← ½ m_new + ½ m_old).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import bp_schedules as sched
from .factor_graph import FactorGraph, build
from .pgmpy_adapter import MAX_TABLE_ENTRIES, FactorArrays, factor_arrays

__all__ = [
    "LOOPY_DAMPING",
    "BPResult",
    "Message",
    "animate_trace",
    "belief_propagation",
    "brute_force_map",
    "brute_force_marginals",
    "chain3_messages",
    "factor_list",
]

_KINDS = ("sum", "max")
_SCHEDULES = (None, "parallel", "serial")
#: damping d of the default schedule on a graph with cycles: m ← (1 − d) m_new + d m_old
LOOPY_DAMPING = 0.5


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One factor-to-variable message: ``source`` is the other variable of a pairwise factor
    (so the message is the slide's m_{source,target}) or the factor's label otherwise.
    ``final``: the message has already heard from every node behind it (on a tree it will not
    change any more)."""

    source: Any
    target: Any
    values: np.ndarray
    final: bool = True


@dataclass
class BPResult:
    """What :func:`belief_propagation` returns (see chapter 04).

    ``marginals``: variable -> normalised vector (max-marginals for ``kind="max"``) in the
    model's state order; ``converged`` and ``iterations`` (rounds or sweeps); ``n_messages``
    (factor-to-variable messages computed, i.e. the slide's m_ji for pairwise models);
    ``schedule``: the schedule that ran (``"serial"`` or ``"parallel"``) and ``damping``;
    ``messages``: final messages keyed ``(source, target)``; ``trace``: list of steps (one
    per round for ``parallel``, one per sending factor for ``serial``), each a list of
    :class:`Message`, when ``trace=True``; ``map_state`` / ``map_index``: MAP assignment
    for ``kind="max"``.
    """

    marginals: dict
    converged: bool
    iterations: int
    n_messages: int
    kind: str
    schedule: str
    messages: dict
    trace: list | None = None
    map_state: dict | None = None
    map_index: dict | None = None
    variables: list = field(default_factory=list)
    edges: list = field(default_factory=list)  # (source, target) of every message, with factor labels
    factor_nodes: list = field(default_factory=list)  # labels of factors with more than two variables
    is_tree: bool = True
    max_change: float = 0.0
    damping: float = 0.0

    def __repr__(self) -> str:
        return (
            f"BPResult(kind={self.kind!r}, schedule={self.schedule!r}, converged={self.converged}, "
            f"iterations={self.iterations}, n_messages={self.n_messages}, variables={len(self.marginals)})"
        )


# --------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------
def belief_propagation(
    model,
    evidence: dict | None = None,
    *,
    kind: str = "sum",
    schedule: str | None = None,
    max_iters: int = 100,
    tol: float = 1e-10,
    damping: float | None = None,
    trace: bool = False,
    root=None,
) -> BPResult:
    """Sum-product (``kind="sum"``) or max-product (``kind="max"``) belief propagation; see chapter 04.

    ``model``: a pgmpy ``DiscreteMarkovNetwork``, ``FactorGraph`` or ``DiscreteBayesianNetwork``
    (its CPDs become factors). ``evidence``: ``{variable: state name or state index}``.
    Every message follows m_ji(x_i) = Σ_{x_j} ψ_ij(x_i, x_j) Π_{k ∈ η(j)\\i} m_kj(x_j).
    ``schedule``: ``None`` picks the cheapest exact one: ``"serial"`` (collect to ``root``,
    then distribute) on a tree, ``"parallel"`` with damping :data:`LOOPY_DAMPING` = 0.5 on
    a graph with cycles; ``"parallel"`` or ``"serial"`` force one (undamped unless
    ``damping`` is given). ``damping`` d: m ← (1−d)·m_new + d·m_old. On cycles BP runs at
    most ``max_iters`` rounds/sweeps until no message moves by more than ``tol``.

    Returns a :class:`BPResult`.
    """
    _check_options(kind, schedule, max_iters, tol, damping)
    fa = factor_arrays(model)
    g = build(fa, _evidence_indices(fa, evidence))
    r = _root_index(fa, root)
    tree = g.is_forest()
    name, d = _resolve(schedule, damping, tree)
    is_sum = kind == "sum"
    if name == "serial" and tree and d == 0.0:
        run = sched.two_pass(g, r, is_sum, trace)
    elif name == "serial":
        run = sched.serial(
            g, sched.MessageState.uniform(g), r, is_sum, max_iters=max_iters, tol=tol, damping=d, trace=trace
        )
    else:
        run = sched.parallel(
            g, sched.MessageState.uniform(g), is_sum, max_iters=max_iters, tol=tol, damping=d, trace=trace
        )
    return _result(g, run, kind, name, d, tree, r)


def _check_options(kind, schedule, max_iters, tol, damping) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {_SCHEDULES}, got {schedule!r}")
    if not isinstance(max_iters, (int, np.integer)) or isinstance(max_iters, bool) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
    if not (tol >= 0):
        raise ValueError(f"tol must be non-negative, got {tol!r}")
    if damping is not None and not (0.0 <= damping < 1.0):
        raise ValueError(f"damping must be in [0, 1), got {damping!r}")


def _resolve(schedule, damping, tree: bool) -> tuple[str, float]:
    """The schedule to run and its damping (see :func:`belief_propagation`)."""
    if schedule is None:
        schedule = "serial" if tree else "parallel"
        if damping is None:
            damping = 0.0 if tree else LOOPY_DAMPING
    return schedule, float(damping or 0.0)


def _evidence_indices(fa: FactorArrays, evidence) -> dict[int, int]:
    """Map ``{variable: state name or index}`` to ``{variable index: state index}``."""
    if evidence is None:
        return {}
    if not isinstance(evidence, dict):
        raise ValueError(f"evidence must be a dict {{variable: state}}, got {type(evidence).__name__}")
    index = {v: i for i, v in enumerate(fa.variables)}
    out = {}
    for var, state in evidence.items():
        k = fa.state_index(var, state)  # raises on an unknown variable or state
        out[index[var]] = k
    return out


def _root_index(fa: FactorArrays, root) -> int | None:
    if root is None:
        return None
    if root not in fa.card:
        raise ValueError(f"root {root!r} is not a variable of the model")
    return list(fa.variables).index(root)


def _result(g: FactorGraph, run: sched.Run, kind: str, name: str, d: float, tree: bool, root) -> BPResult:
    """Package marginals, messages, trace and (for max-product) the MAP state."""
    st = run.state
    bel = run.beliefs if run.beliefs is not None else sched.beliefs(g, st.fv)
    names = g.variables
    map_state = map_index = None
    if kind == "max":
        idx = _decode_tree(g, st.vf, bel, root) if tree else [int(np.argmax(b)) for b in bel]
        map_index = {names[v]: idx[v] for v in range(g.n_vars)}
        map_state = {names[v]: g.states[names[v]][idx[v]] for v in range(g.n_vars)}
    edges = [(g.source(e), names[g.edge_var[e]]) for e in range(g.n_edges)]
    steps = None
    if run.trace is not None:
        steps = [
            [
                Message(edges[e][0], edges[e][1], vals, bool(fin))
                for e, vals, fin in zip(s.edges, s.values, s.final)
            ]
            for s in run.trace
        ]
    return BPResult(
        marginals=dict(zip(names, bel)),
        converged=run.converged,
        iterations=run.iterations,
        n_messages=st.n_messages,
        kind=kind,
        schedule=name,
        messages=dict(zip(edges, st.fv)),
        trace=steps,
        map_state=map_state,
        map_index=map_index,
        variables=list(names),
        edges=edges,
        factor_nodes=[g.label(a) for a, s in enumerate(g.scopes) if len(s) > 2],
        is_tree=tree,
        max_change=float(run.max_change) if np.isfinite(run.max_change) else 0.0,
        damping=d,
    )


def _decode_tree(g: FactorGraph, vf: list, bel: list, root) -> list[int]:
    """Exact MAP on a forest: fix the root at its max-marginal's argmax, then back-track
    outwards, each factor choosing its other variables given the decoded one."""
    n = g.n_vars
    x = [-1] * n
    starts = list(range(n)) if root is None else [root, *(v for v in range(n) if v != root)]
    seen = set()
    for s in starts:
        if x[s] >= 0:
            continue
        x[s] = int(np.argmax(bel[s]))
        stack = [s]
        while stack:
            v = stack.pop()
            for e in g.var_edges[v]:
                a = g.edge_factor[e]
                if a in seen:
                    continue
                seen.add(a)
                others = _decode_factor(g, a, g.edge_pos[e], x[v], vf)
                for u, k in others.items():
                    x[u] = k
                    stack.append(u)
    return x


def _decode_factor(g: FactorGraph, a: int, p: int, state: int, vf: list) -> dict:
    """argmax over factor ``a``'s other variables of f(x_f) Π n_{j→f}(x_j), x at position p fixed."""
    scope, first = g.scopes[a], g.first[a]
    t = np.take(g.tables[a], state, axis=p)
    others = [q for q in range(len(scope)) if q != p]
    for j, q in enumerate(others):
        shape = [1] * len(others)
        shape[j] = g.card[scope[q]]
        t = t * vf[first + q].reshape(shape)
    best = np.unravel_index(int(np.argmax(t)), t.shape)
    return {scope[q]: int(best[j]) for j, q in enumerate(others)}


def factor_list(model) -> list[tuple[tuple, np.ndarray]]:
    """The model's factors as ``(variables, table)`` pairs (tables as numpy arrays); see chapter 04."""
    return [(scope, table.copy()) for scope, table in factor_arrays(model).factors]


# --------------------------------------------------------------------------------------
# References: brute force and the slide's three-node chain
# --------------------------------------------------------------------------------------
def _joint(model, evidence, max_states: float) -> tuple[FactorArrays, np.ndarray, float]:
    """The joint table Π_C ψ_C × evidence indicators, each ψ_C scaled to max 1, and the
    log of the scale taken out (Σ_C log max ψ_C)."""
    fa = factor_arrays(model)
    ev = _evidence_indices(fa, evidence)
    tops = [float(t.max()) for _, t in fa.factors]
    scaled = FactorArrays(
        fa.variables,
        fa.card,
        fa.states,
        tuple((s, t / m if m > 0 else t) for (s, t), m in zip(fa.factors, tops)),
    )
    joint = scaled.joint(limit=max_states)
    for v, k in ev.items():
        mask = np.zeros(joint.shape[v])
        mask[k] = 1.0
        shape = [1] * joint.ndim
        shape[v] = mask.size
        joint = joint * mask.reshape(shape)
    with np.errstate(divide="ignore"):
        offset = float(np.sum(np.log(tops)))
    return fa, joint, offset


def brute_force_marginals(
    model, evidence=None, *, kind: str = "sum", max_states: float = MAX_TABLE_ENTRIES
) -> dict:
    """Marginals by summing the full joint table (|x|^N terms): the reference BP must match.

    ``kind="max"`` gives normalised max-marginals. Tables above ``max_states`` entries raise
    :class:`~pgm_lab.pgmpy_adapter.TableTooLargeError`. See chapter 04.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    fa, joint, _ = _joint(model, evidence, max_states)
    if not joint.max() > 0:
        raise ValueError("the evidence has probability zero under the model")
    n = joint.ndim
    out = {}
    for v, name in enumerate(fa.variables):
        axes = tuple(a for a in range(n) if a != v)
        r = joint.sum(axis=axes) if kind == "sum" else joint.max(axis=axes)
        out[name] = r / r.sum()
    return out


def brute_force_map(model, evidence=None, *, max_states: float = MAX_TABLE_ENTRIES) -> tuple[dict, float]:
    """The most probable joint state (by enumeration) and its unnormalised log-probability."""
    fa, joint, offset = _joint(model, evidence, max_states)
    best = np.unravel_index(int(np.argmax(joint)), joint.shape)
    with np.errstate(divide="ignore"):
        logp = float(np.log(joint[best])) + offset
    return {v: int(best[i]) for i, v in enumerate(fa.variables)}, logp


def chain3_messages(phi12, phi23, psi1, psi2, psi3) -> dict[str, np.ndarray]:
    """The slide's messages on the three-node chain x1 - x2 - x3 with observed y1, y2, y3.

    ``phi12[x1, x2]``, ``phi23[x2, x3]`` are the pairwise potentials, ``psi_i[x_i]`` the
    potentials ψ_i(y_i, x_i) with y_i fixed. Nodes 4, 5, 6 are y1, y2, y3. Returns

    m63 = ψ3, m52 = ψ2, m41 = ψ1 (the slide prints ψ2 here, a typo),
    m32(x2) = Σ_{x3} φ23(x2, x3) m63(x3),
    m21(x1) = Σ_{x2} φ12(x1, x2) m52(x2) m32(x2),
    p(x1|y) = m41(x1) m21(x1) / Z(y)   (key ``"p1"``), and ``"Z"``. See chapter 04.
    """
    phi12, phi23 = np.asarray(phi12, float), np.asarray(phi23, float)
    psi1, psi2, psi3 = (np.asarray(p, float) for p in (psi1, psi2, psi3))
    if phi12.ndim != 2 or phi23.ndim != 2:
        raise ValueError("phi12 and phi23 must be 2-D tables")
    if phi12.shape != (psi1.size, psi2.size) or phi23.shape != (psi2.size, psi3.size):
        raise ValueError(
            f"shapes do not fit: phi12 {phi12.shape}, phi23 {phi23.shape}, psi sizes {psi1.size}, {psi2.size}, {psi3.size}"
        )
    m63, m52, m41 = psi3.copy(), psi2.copy(), psi1.copy()
    m32 = phi23 @ m63
    m21 = phi12 @ (m52 * m32)
    unnorm = m41 * m21
    z = unnorm.sum()
    return {"m63": m63, "m52": m52, "m41": m41, "m32": m32, "m21": m21, "p1": unnorm / z, "Z": np.float64(z)}


# --------------------------------------------------------------------------------------
# Animation of a message trace
# --------------------------------------------------------------------------------------
def animate_trace(
    result: BPResult, *, pos=None, interval: int = 700, title: str | None = None, figsize=(6, 4)
):
    """Animate ``result.trace`` (run BP with ``trace=True``): each frame shows the messages of one
    step as arrows, red when the message is final (it has heard from its whole subtree) and
    orange while it is still provisional; messages sent earlier are grey. Returns a matplotlib
    ``FuncAnimation`` for :func:`pgm_lab.viz.show_animation`. See chapter 04.
    """
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.animation import FuncAnimation

    if not result.trace:
        raise ValueError("the result has no trace: run belief_propagation(..., trace=True)")
    g = nx.DiGraph()
    g.add_nodes_from(result.variables)
    factor_nodes = set(result.factor_nodes)
    g.add_nodes_from(factor_nodes)
    for s, t in result.edges:
        g.add_edge(s, t)
    und = g.to_undirected()
    if pos is None:
        pos = nx.kamada_kawai_layout(und) if und.number_of_nodes() > 2 else nx.spring_layout(und, seed=0)
    fig, ax = plt.subplots(figsize=figsize)
    sent: list[tuple] = []
    label = title or f"{result.schedule} schedule"

    def draw(k):
        ax.clear()
        ax.set_axis_off()
        var_nodes = [v for v in g.nodes if v not in factor_nodes]
        nx.draw_networkx_edges(und, pos, ax=ax, edge_color="0.85", width=2)
        nx.draw_networkx_nodes(
            g, pos, nodelist=var_nodes, ax=ax, node_color="white", edgecolors="black", node_size=500
        )
        if factor_nodes:
            nx.draw_networkx_nodes(
                g, pos, nodelist=list(factor_nodes), ax=ax, node_shape="s", node_color="0.3", node_size=150
            )
        nx.draw_networkx_labels(g, pos, labels={v: str(v) for v in var_nodes}, ax=ax, font_size=9)
        step = result.trace[k]
        now = [(msg.source, msg.target) for msg in step]
        final = [(msg.source, msg.target) for msg in step if msg.final]
        provisional = [(msg.source, msg.target) for msg in step if not msg.final]
        if k == 0:
            sent.clear()
        old = [e for e in dict.fromkeys(sent) if e not in now]
        # messages sent before (grey), provisional this round (orange), final (crimson)
        for edges, colour, width, arrowsize in (
            (old, "0.55", 1.0, 12),
            (provisional, "orange", 1.6, 13),
            (final, "crimson", 2.2, 16),
        ):
            nx.draw_networkx_edges(
                g,
                pos,
                edgelist=edges,
                ax=ax,
                edge_color=colour,
                width=width,
                arrows=True,
                arrowsize=arrowsize,
                connectionstyle="arc3,rad=0.15",
                node_size=500,
            )
        sent.extend(now)
        total = sum(len(s) for s in result.trace[: k + 1])
        ax.set_title(
            f"{label}: step {k + 1}/{len(result.trace)}, messages so far {total}\n"
            f"red: final ({len(final)}), orange: provisional ({len(provisional)})",
            fontsize=10,
        )

    anim = FuncAnimation(fig, draw, frames=len(result.trace), interval=interval, repeat=False)
    return anim
