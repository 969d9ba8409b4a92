"""Message passing on a :class:`~pgm_lab.factor_graph.FactorGraph`: the message rule and one
driver per schedule (消息传递顺序); see chapter 04 and :mod:`pgm_lab.bp`.

On every edge (factor f, variable i) live two messages, kept as probability vectors
normalised to sum one:

    m_{f→i}(x_i) = Σ_{x_f \\ x_i} f(x_f) Π_{j ∈ f \\ i} n_{j→f}(x_j)     (max for max-product)
    n_{j→f}(x_j) = ψ_j(x_j) Π_{g ∋ j, g ≠ f} m_{g→j}(x_j).

For a pairwise factor ψ_ij, m_{ψ_ij→i} is the slide's m_ji. Drivers:

- :func:`two_pass`: a forest, one collect pass towards the root and one distribute pass
  away from it along a depth-first order; 2(n−1) factor messages on an n-node tree;
- :func:`parallel`: flooding rounds, every message from the previous round's messages,
  with damping m ← (1−d) m_new + d m_old; on a tree it stops once every message has heard
  from its whole subtree;
- :func:`serial`: the depth-first collect/distribute order repeated until convergence
  (on a graph with cycles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .factor_graph import FactorGraph, dfs_preorder

__all__ = ["MessageState", "Step", "beliefs", "parallel", "serial", "two_pass"]

ZERO_MESSAGE = "a message is zero for every state: the evidence has probability zero under the model"


@dataclass(eq=False)
class MessageState:
    """The messages on every edge: ``fv[e]`` = m_{f→i}, ``vf[e]`` = n_{i→f} (normalised).

    ``fv_ready[e]``/``vf_ready[e]``: the message has heard from every node behind it (on
    a tree it is final). ``n_messages``: factor-to-variable messages computed so far.
    """

    fv: list
    vf: list
    fv_ready: list
    vf_ready: list
    n_messages: int = 0

    @classmethod
    def uniform(cls, g: FactorGraph) -> MessageState:
        flat = {k: np.full(k, 1.0 / k) for k in set(g.card)}
        start = [flat[g.card[v]] for v in g.edge_var]  # replaced, never modified in place
        ne = g.n_edges
        return cls(list(start), list(start), [False] * ne, [False] * ne)


@dataclass(frozen=True)
class Step:
    """One step of a trace: the factor-to-variable messages on ``edges`` just sent."""

    edges: tuple
    values: tuple
    final: tuple


# ------------------------------------------------------------------------- the message rule
_sum = np.add.reduce  # r.sum() without numpy's Python-level wrapper (tiny vectors)


def _normalised(r: np.ndarray) -> np.ndarray:
    total = _sum(r)
    if not total > 0:
        raise ValueError(ZERO_MESSAGE)
    return r / total


def factor_message(g: FactorGraph, e: int, vf: list, is_sum: bool) -> np.ndarray:
    """m_{f→i} on edge ``e`` from the incoming n_{j→f} of the factor's other edges."""
    a, p = g.edge_factor[e], g.edge_pos[e]
    first = g.first[a]
    scope = g.scopes[a]
    if len(scope) == 2:
        x = vf[first + 1 - p]
        r = g.toward[e] @ x if is_sum else (g.toward[e] * x).max(axis=1)
        return _normalised(r)
    t = g.tables[a]
    k = len(scope)
    for q in range(k):
        if q != p:
            shape = [1] * k
            shape[q] = g.card[scope[q]]
            t = t * vf[first + q].reshape(shape)
    axes = tuple(q for q in range(k) if q != p)
    return _normalised(t.sum(axis=axes) if is_sum else t.max(axis=axes))


def exclusive_products(base: np.ndarray, msgs: list) -> list:
    """[base · Π_{j≠i} msgs[j] for each i], normalised: prefix and suffix products, O(d)."""
    d = len(msgs)
    if d == 1:
        return [base]
    if d == 2:
        return [_normalised(base * msgs[1]), _normalised(base * msgs[0])]
    prefix = [base]
    for m in msgs[:-1]:
        prefix.append(_normalised(prefix[-1] * m))
    out = [None] * d
    suffix = None
    for i in range(d - 1, -1, -1):
        out[i] = prefix[i] if suffix is None else _normalised(prefix[i] * suffix)
        suffix = msgs[i] if suffix is None else _normalised(suffix * msgs[i])
    return out


def variable_messages(
    g: FactorGraph, v: int, st: MessageState, vf: list, vf_ready: list, targets=None
) -> None:
    """n_{v→f} from the messages ``st.fv`` that ``v`` receives, written into ``vf`` for the
    factors on ``targets`` (default: every edge of ``v``)."""
    edges = g.var_edges[v]
    if not edges:
        return
    outs = exclusive_products(g.prior[v], [st.fv[e] for e in edges])
    n_not = sum(not st.fv_ready[e] for e in edges)
    wanted = None if targets is None else set(targets)
    for e, out in zip(edges, outs):
        if wanted is None or e in wanted:
            vf[e] = out
            vf_ready[e] = n_not == 0 or (n_not == 1 and not st.fv_ready[e])


def factor_messages(g: FactorGraph, a: int, targets, st: MessageState, is_sum: bool, damping: float) -> None:
    """m_{a→i} on each of factor ``a``'s edges ``targets``, damped: (1−d) new + d old."""
    first, k = g.first[a], len(g.scopes[a])
    for e in targets:
        new = factor_message(g, e, st.vf, is_sum)
        st.fv[e] = new if not damping else (1.0 - damping) * new + damping * st.fv[e]
        st.fv_ready[e] = all(st.vf_ready[first + q] for q in range(k) if first + q != e)
    st.n_messages += len(targets)


def beliefs(g: FactorGraph, fv: list) -> list:
    """p_i(x_i) ∝ ψ_i(x_i) Π_{f ∋ i} m_{f→i}(x_i), normalised, for every variable."""
    out = []
    for v in range(g.n_vars):
        b = g.prior[v]
        for e in g.var_edges[v]:
            b = b * fv[e]
        out.append(_normalised(b))
    return out


def _step(g: FactorGraph, st: MessageState, edges) -> Step:
    edges = tuple(edges)
    return Step(edges, tuple(st.fv[e] for e in edges), tuple(st.fv_ready[e] for e in edges))


def max_change(new: list, old: list) -> float:
    """Largest change of any factor-to-variable message, in probabilities."""
    return max((float(np.abs(x - y).max()) for x, y in zip(new, old)), default=0.0)


# ------------------------------------------------------------------------- drivers
@dataclass
class Run:
    """What a driver returns: the final messages, rounds/sweeps, convergence, trace."""

    state: MessageState
    iterations: int
    converged: bool
    max_change: float
    trace: list | None
    beliefs: list | None = None


@dataclass
class TreePlan:
    """The collect/distribute order of a forest as index lists (see :func:`two_pass`).

    ``pre``: depth-first pre-order of the nodes (variables ``v``, factors ``n + a``);
    ``up[a]``: the edge from factor ``a`` to its parent variable; ``parent_edge[v]``: the
    edge from ``v``'s parent factor (−1 at a root); ``kids[v]``: edges to ``v``'s child
    factors; ``down[a]``: edges from factor ``a`` to its child variables.
    """

    pre: list
    up: list
    parent_edge: list
    kids: list
    down: list

    @classmethod
    def of(cls, g: FactorGraph, root: int | None) -> TreePlan:
        n = g.n_vars
        pre, pos = dfs_preorder(g, root)
        up = [-1] * len(g.scopes)
        parent_edge = [-1] * n
        kids: list = [[] for _ in range(n)]
        down: list = [[] for _ in g.scopes]
        for a, edges in enumerate(g.factor_edges):
            here = pos[n + a]
            for e in edges:
                v = g.edge_var[e]
                if pos[v] < here:
                    up[a] = e
                    kids[v].append(e)
                else:
                    parent_edge[v] = e
                    down[a].append(e)
        return cls(pre, up, parent_edge, kids, down)


def two_pass(g: FactorGraph, root: int | None, is_sum: bool, trace: bool) -> Run:
    """Exact BP on a forest: collect towards ``root``, then distribute (one depth-first sweep).

    Collect: in reverse depth-first order each factor sends to its parent variable the
    message built from its children's n_{j→f} = ψ_j Π (messages from j's own children).
    Distribute: in depth-first order each variable passes ψ_v × (message from its parent)
    × (messages from its other children) down, and each factor sends to its children.
    2(n−1) factor messages on a pairwise tree of n variables; beliefs come for free.
    """
    n = g.n_vars
    plan = TreePlan.of(g, root)
    st = MessageState.uniform(g)
    st.fv_ready = st.vf_ready = [True] * g.n_edges
    steps: list | None = [] if trace else None
    acc = list(g.prior)  # ψ_v × messages from v's child factors, complete after collect
    for u in reversed(plan.pre):  # collect
        if u >= n:
            e_up = plan.up[u - n]
            _collect(g, st, e_up, acc, plan.kids, plan.down[u - n], is_sum)
            if trace:
                steps.append(_step(g, st, (e_up,)))
    for u in plan.pre:  # distribute
        if u < n:
            _pass_down(g, st, u, plan)
            continue
        children = plan.down[u - n]
        for e in children:
            st.fv[e] = factor_message(g, e, st.vf, is_sum)
        if trace and children:
            steps.append(_step(g, st, children))
    st.n_messages = g.n_edges  # one message up and k−1 down per factor of k variables
    bel = [acc[v] if plan.parent_edge[v] < 0 else acc[v] * st.fv[plan.parent_edge[v]] for v in range(n)]
    return Run(st, 1, True, 0.0, steps, [_normalised(b) for b in bel])


def _collect(
    g: FactorGraph, st: MessageState, e_up: int, acc: list, acc_kids: list, children: list, is_sum: bool
) -> None:
    """A factor sends up on ``e_up``: its children's n_{j→f} = acc[j], then m_{f→parent}."""
    for e in children:
        st.vf[e] = acc[g.edge_var[e]]
    m = factor_message(g, e_up, st.vf, is_sum)
    st.fv[e_up] = m
    parent = g.edge_var[e_up]
    acc[parent] = acc[parent] * m  # a product of normalised vectors: renormalise at the end
    if len(acc_kids[parent]) > 2:  # many factors: renormalise so the product cannot underflow
        acc[parent] = _normalised(acc[parent])


def _pass_down(g: FactorGraph, st: MessageState, v: int, plan: TreePlan) -> None:
    """n_{v→f} for each child factor f of ``v``: ψ_v × parent's message × other children's."""
    kids = plan.kids[v]
    if not kids:
        return
    pe = plan.parent_edge[v]
    base = g.prior[v] if pe < 0 else g.prior[v] * st.fv[pe]  # scale is irrelevant downstream
    if len(kids) == 1:
        st.vf[kids[0]] = base
        return
    for e, out in zip(kids, exclusive_products(base, [st.fv[e] for e in kids])):
        st.vf[e] = out


def parallel(
    g: FactorGraph, st: MessageState, is_sum: bool, *, max_iters: int, tol: float, damping: float, trace: bool
) -> Run:
    """Flooding: in round t every message is computed from round t−1's messages."""
    steps: list | None = [] if trace else None
    change, converged, it = np.inf, False, 0
    for it in range(1, max_iters + 1):
        old = st.fv
        vf, vf_ready = list(st.vf), list(st.vf_ready)
        for v in range(g.n_vars):
            variable_messages(g, v, st, vf, vf_ready)
        st.vf, st.vf_ready = vf, vf_ready
        st.fv, st.fv_ready = list(st.fv), list(st.fv_ready)
        for a, edges in enumerate(g.factor_edges):
            factor_messages(g, a, edges, st, is_sum, damping)
        if trace:
            steps.append(_step(g, st, range(g.n_edges)))
        converged, change = _finished(st, old, it, tol, damping)
        if converged:
            break
    return Run(st, it, converged, change, steps)


def serial(
    g: FactorGraph,
    st: MessageState,
    root: int | None,
    is_sum: bool,
    *,
    max_iters: int,
    tol: float,
    damping: float,
    trace: bool,
) -> Run:
    """The depth-first collect/distribute sweep, repeated until no message moves by ``tol``."""
    order = _sweep_order(g, root)
    steps: list | None = [] if trace else None
    change, converged, it = np.inf, False, 0
    n = g.n_vars
    for it in range(1, max_iters + 1):
        old = list(st.fv)
        for u, targets in order:
            if u < n:
                variable_messages(g, u, st, st.vf, st.vf_ready, targets)
            else:
                factor_messages(g, u - n, targets, st, is_sum, damping)
                if trace:
                    steps.append(_step(g, st, targets))
        converged, change = _finished(st, old, it, tol, damping)
        if converged:
            break
    return Run(st, it, converged, change, steps)


def _node_edges(g: FactorGraph, u: int) -> list:
    """Edges of node ``u`` (variable ``u < n`` or factor ``u − n``)."""
    n = g.n_vars
    return g.var_edges[u] if u < n else g.factor_edges[u - n]


def _far_end(g: FactorGraph, u: int, e: int) -> int:
    """The node at the other end of edge ``e`` from node ``u``."""
    n = g.n_vars
    return n + g.edge_factor[e] if u < n else g.edge_var[e]


def _sweep_order(g: FactorGraph, root: int | None) -> list:
    """``(node, edges)``: collect in reverse depth-first order to earlier neighbours, then
    distribute in depth-first order to later ones (variables ``v``, factors ``n + a``)."""
    pre, pos = dfs_preorder(g, root)
    order = []
    for u in reversed(pre):
        t = [e for e in _node_edges(g, u) if pos[_far_end(g, u, e)] < pos[u]]
        if t:
            order.append((u, t))
    for u in pre:
        t = [e for e in _node_edges(g, u) if pos[_far_end(g, u, e)] > pos[u]]
        if t:
            order.append((u, t))
    return order


def _finished(st: MessageState, old: list, it: int, tol: float, damping: float) -> tuple[bool, float]:
    """Stop when every message has heard from its whole subtree (exact: trees, no damping)
    or, after the first round, when no message moved by more than ``tol``."""
    if damping == 0.0 and all(st.fv_ready):
        return True, 0.0
    change = max_change(st.fv, old)
    return it > 1 and change < tol, change
