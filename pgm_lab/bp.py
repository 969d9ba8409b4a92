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
slide's m_ji, which is how the result labels it. Messages are kept in log space and
renormalised after every update, so a 10,000-node chain neither underflows nor
overflows. ``kind="max"`` replaces the sum by a max (max-product) and decodes a MAP
assignment; on trees both are exact (Pearl 1988), on graphs with cycles the same updates
give loopy BP (Yedidia, Freeman and Weiss 2003), optionally damped.

Schedules (消息传递顺序):

- ``"parallel"``: in every round each message is computed from the previous round's
  messages (the slide's 同时并行传递); on a tree this needs as many rounds as the
  longest path and sends every message in every round;
- ``"serial"``: collect towards a root, then distribute away from it, one message at a
  time (the slide's 深度优先传递); on a tree one sweep sends each message exactly once.
  On graphs with cycles the same depth-first order is repeated until convergence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
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
_SCHEDULES = ("parallel", "serial")


# --------------------------------------------------------------------------------------
# Model -> plain arrays
# --------------------------------------------------------------------------------------
@dataclass
class _Model:
    """A discrete model as arrays: variables, cardinalities, state names and log-factors."""

    variables: list
    card: list[int]
    states: dict  # variable -> list of state names
    factors: list[tuple[tuple[int, ...], np.ndarray]]  # (variable indices, log-table), every factor

    @property
    def index(self) -> dict:
        return {v: i for i, v in enumerate(self.variables)}


def _log(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if not (values.min() >= 0 and np.isfinite(values.sum())):
        raise ValueError("factor values must be finite and non-negative")
    with np.errstate(divide="ignore"):
        return np.log(values)


def _parse_model(model) -> _Model:
    """Turn a pgmpy DiscreteMarkovNetwork, FactorGraph or DiscreteBayesianNetwork into ``_Model``."""
    try:
        from pgmpy.factors.discrete import DiscreteFactor
    except ImportError as exc:  # pragma: no cover - pgmpy is a dependency
        raise ValueError("pgmpy is needed to read models") from exc

    name = type(model).__name__
    if hasattr(model, "get_cpds") and not hasattr(model, "get_factors"):
        cpds = model.get_cpds()
        if not cpds:
            raise ValueError(f"the {name} has no CPDs: add them with add_cpds before running BP")
        factors = [cpd.to_factor() for cpd in cpds]
        order = list(model.nodes())
    elif hasattr(model, "get_factors"):
        factors = list(model.get_factors())
        if not factors:
            raise ValueError(f"the {name} has no factors: add them with add_factors before running BP")
        order = [n for n in model.nodes() if not isinstance(n, DiscreteFactor)]
    else:
        raise ValueError(
            f"expected a pgmpy DiscreteMarkovNetwork, FactorGraph or DiscreteBayesianNetwork, got {name}"
        )

    card: dict = {}
    states: dict = {}
    for f in factors:
        for v, k in zip(f.variables, f.cardinality):
            names = list(f.state_names.get(v, range(int(k)))) if f.state_names else list(range(int(k)))
            if v in card and card[v] != int(k):
                raise ValueError(
                    f"variable {v!r} has cardinality {card[v]} in one factor and {int(k)} in another"
                )
            card.setdefault(v, int(k))
            states.setdefault(v, names)
    for v in order:
        if v not in card:
            raise ValueError(f"variable {v!r} appears in no factor, so its states are unknown")
    in_order = set(order)
    variables = order + [v for v in card if v not in in_order]
    idx = {v: i for i, v in enumerate(variables)}
    out = []
    for f in factors:
        scope = tuple(idx[v] for v in f.variables)
        out.append((scope, _log(np.asarray(f.values, dtype=float).reshape([card[v] for v in f.variables]))))
    return _Model(variables, [card[v] for v in variables], states, out)


def factor_list(model) -> list[tuple[tuple, np.ndarray]]:
    """The model's factors as ``(variables, table)`` pairs (tables as numpy arrays); see chapter 04."""
    m = _parse_model(model)
    return [(tuple(m.variables[i] for i in scope), np.exp(lt)) for scope, lt in m.factors]


def _evidence_indices(m: _Model, evidence) -> dict[int, int]:
    """Map ``{variable: state name or index}`` to ``{variable index: state index}``."""
    if evidence is None:
        return {}
    if not isinstance(evidence, dict):
        raise ValueError(f"evidence must be a dict {{variable: state}}, got {type(evidence).__name__}")
    idx = m.index
    out = {}
    for var, state in evidence.items():
        if var not in idx:
            raise ValueError(
                f"evidence names unknown variable {var!r}; the model's variables are {m.variables}"
            )
        names = m.states[var]
        if state in names:
            k = names.index(state)
        elif isinstance(state, (int, np.integer)) and not isinstance(state, bool) and 0 <= state < len(names):
            k = int(state)
        else:
            raise ValueError(
                f"evidence gives unknown state {state!r} for variable {var!r}; its states are {names}"
            )
        out[idx[var]] = k
    return out


# --------------------------------------------------------------------------------------
# log-space helpers
# --------------------------------------------------------------------------------------
def _reduce(a: np.ndarray, axes: tuple[int, ...], kind: str) -> np.ndarray:
    """log Σ exp (kind="sum") or max (kind="max") over ``axes``; safe with -inf entries."""
    if not axes:
        return a
    mx = a.max(axis=axes)
    if kind == "max":
        return mx
    safe = np.where(np.isfinite(mx), mx, 0.0)
    shape = list(a.shape)
    for ax in axes:
        shape[ax] = 1
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - safe.reshape(shape)).sum(axis=axes)) + safe


def _normalise(logm: np.ndarray) -> np.ndarray:
    """Shift a log-vector so that its exponent sums to one."""
    mx = logm.max()
    if not np.isfinite(mx):
        raise ValueError(
            "a message is zero for every state: the evidence has probability zero under the model"
        )
    return logm - (mx + np.log(np.exp(logm - mx).sum()))


def _damp(new: np.ndarray, old: np.ndarray, d: float) -> np.ndarray:
    if d == 0.0:
        return new
    with np.errstate(divide="ignore"):
        return _normalise(np.logaddexp(np.log1p(-d) + new, np.log(d) + old))


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

    def __repr__(self) -> str:
        return (
            f"BPResult(kind={self.kind!r}, schedule={self.schedule!r}, converged={self.converged}, "
            f"iterations={self.iterations}, n_messages={self.n_messages}, variables={len(self.marginals)})"
        )


# --------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------
def _factor_label(m: _Model, scope) -> str:
    return "f(" + ",".join(str(m.variables[i]) for i in scope) + ")"


def belief_propagation(
    model,
    evidence: dict | None = None,
    *,
    kind: str = "sum",
    schedule: str = "parallel",
    max_iters: int = 100,
    tol: float = 1e-10,
    damping: float = 0.0,
    trace: bool = False,
    root=None,
) -> BPResult:
    """Sum-product (``kind="sum"``) or max-product (``kind="max"``) belief propagation; see chapter 04.

    ``model``: a pgmpy ``DiscreteMarkovNetwork``, ``FactorGraph`` or ``DiscreteBayesianNetwork``
    (its CPDs become factors). ``evidence``: ``{variable: state name or state index}``.
    ``schedule``: ``"parallel"`` (flooding: every message from the last round's messages) or
    ``"serial"`` (collect to ``root``, then distribute: depth-first). Exact on trees; on graphs
    with cycles runs loopy BP for at most ``max_iters`` rounds/sweeps until no message moves
    by more than ``tol``; ``damping`` d mixes each new message with the old one,
    m ← (1−d)·m_new + d·m_old. On a tree without damping, stops as soon as every message
    has heard from its whole subtree.

    Returns a :class:`BPResult`.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {_SCHEDULES}, got {schedule!r}")
    if not isinstance(max_iters, (int, np.integer)) or isinstance(max_iters, bool) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
    if not (tol >= 0):
        raise ValueError(f"tol must be non-negative, got {tol!r}")
    if not (0.0 <= damping < 1.0):
        raise ValueError(f"damping must be in [0, 1), got {damping!r}")

    m = _parse_model(model)
    ev = _evidence_indices(m, evidence)
    n = len(m.variables)

    # Single-variable factors and evidence form each variable's local term ψ_j (log).
    prior = [np.zeros(k) for k in m.card]
    big: list[tuple[tuple[int, ...], np.ndarray]] = []
    for scope, lt in m.factors:
        if len(scope) == 1:
            prior[scope[0]] = prior[scope[0]] + lt
        else:
            big.append((scope, lt))
    big = _merge_factors(big)
    for v, k in ev.items():
        clamp = np.full(m.card[v], -np.inf)
        clamp[k] = 0.0
        prior[v] = prior[v] + clamp
    for v in range(n):
        if not np.isfinite(prior[v].max()):
            raise ValueError(
                f"variable {m.variables[v]!r} has zero potential in every state (check its factors and the evidence)"
            )

    # Factor graph adjacency: var_nb[v] = list of (factor, position of v in the factor).
    var_nb: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for a, (scope, _) in enumerate(big):
        for p, v in enumerate(scope):
            var_nb[v].append((a, p))
    # Messages, log space, normalised: fv[a][p] factor a -> its p-th variable, vf[a][p] the reverse.
    # (messages are replaced, never modified in place, so the uniform start can be shared)
    log_uniform = {k: np.full(k, -np.log(k)) for k in set(m.card)}
    uniform = {k: np.full(k, 1.0 / k) for k in set(m.card)}
    fv = [[log_uniform[m.card[v]] for v in scope] for scope, _ in big]
    # vf is kept as probabilities (linear, sums to one): factor updates multiply it into
    # exp(log f - max log f), a table in [0, 1], and take the log of the sum afterwards.
    vf = [[uniform[m.card[v]] for v in scope] for scope, _ in big]
    lin = []
    for scope, lt in big:
        top = lt.max()
        if not np.isfinite(top):
            raise ValueError(f"factor {_factor_label(m, scope)} is zero for every joint state")
        lin.append(np.exp(lt - top))
    # ready[a][p]: the message has heard from every node behind it (exact on trees).
    fv_ready = [[False] * len(scope) for scope, _ in big]
    vf_ready = [[False] * len(scope) for scope, _ in big]

    def sources(a: int, p: int):
        scope = big[a][0]
        if len(scope) == 2:
            return m.variables[scope[1 - p]]
        return _factor_label(m, scope)

    def var_send(v: int, targets, out_vf, out_ready, src_fv, src_ready) -> None:
        """n_{v→f} = ψ_v Π_{g≠f} m_{g→v} for each target factor (prefix/suffix sums of logs)."""
        nb = var_nb[v]
        d = len(nb)
        if d == 0:
            return
        inc = [src_fv[a][p] for a, p in nb]
        rdy = [src_ready[a][p] for a, p in nb]
        if d == 1:
            excl = [prior[v]]
        elif d == 2:
            excl = [prior[v] + inc[1], prior[v] + inc[0]]
        else:
            prefix = [prior[v]]
            for i in range(d - 1):
                prefix.append(prefix[-1] + inc[i])
            excl = [None] * d
            acc = None
            for i in range(d - 1, -1, -1):
                excl[i] = prefix[i] if acc is None else prefix[i] + acc
                acc = inc[i] if acc is None else acc + inc[i]
        n_not = rdy.count(False)
        for i in targets:
            a, p = nb[i]
            s = excl[i]
            top = s.max()
            if top == -np.inf:
                raise ValueError(
                    "a message is zero for every state: the evidence has probability zero under the model"
                )
            e = np.exp(s - top)
            out_vf[a][p] = e / e.sum()
            out_ready[a][p] = n_not == 0 or (n_not == 1 and not rdy[i])

    def factor_send(a: int, targets, out_fv, out_ready, src_vf, src_ready):
        """m_{f→i} = Σ_{x_f \\ x_i} f Π_{j≠i} n_{j→f} (max instead of Σ for max-product)."""
        scope = big[a][0]
        table = lin[a]
        k = len(scope)
        for p in targets:
            if k == 2:
                other = src_vf[a][1 - p]
                if is_sum:
                    r = table @ other if p == 0 else other @ table
                else:
                    r = (table * other).max(axis=1) if p == 0 else (table * other[:, None]).max(axis=0)
            else:
                t = table
                for q in range(k):
                    if q != p:
                        shape = [1] * k
                        shape[q] = m.card[scope[q]]
                        t = t * src_vf[a][q].reshape(shape)
                axes = tuple(q for q in range(k) if q != p)
                r = t.sum(axis=axes) if is_sum else t.max(axis=axes)
            total = r.sum()
            if not total > 0:
                raise ValueError(
                    "a message is zero for every state: the evidence has probability zero under the model"
                )
            new = np.log(r / total)
            out_fv[a][p] = _damp(new, fv[a][p], damping) if damping else new
            out_ready[a][p] = all(src_ready[a][q] for q in range(k) if q != p)

    # Is the factor graph a forest?  (#edges == #nodes - #components)
    n_edges = sum(len(s) for s, _ in big)
    comp = _components(n, big)
    is_tree = n_edges == (n + len(big)) - comp

    steps: list[list[Message]] | None = [] if trace else None
    n_messages = 0
    converged = False
    iterations = 0
    delta = np.inf

    is_sum = kind == "sum"

    def record(a: int, ps) -> list[Message]:
        return [
            Message(sources(a, p), m.variables[big[a][0][p]], np.exp(fv[a][p]), bool(fv_ready[a][p]))
            for p in ps
        ]

    def finished(it: int, old) -> tuple[bool, float]:
        """Stop when every message has heard from its whole subtree (exact; trees, no damping)
        or, after the first round, when no message moved by more than ``tol``."""
        if damping == 0.0 and all(all(r) for r in fv_ready):
            return True, 0.0
        change = _max_change(fv, old)
        return it > 1 and change < tol, change

    with np.errstate(divide="ignore"):  # log(0) = -inf is a legitimate message entry
        if not big:
            converged = True
        elif schedule == "parallel":
            all_var_targets = [list(range(len(var_nb[v]))) for v in range(n)]
            for it in range(1, max_iters + 1):
                old = fv
                new_vf = [list(row) for row in vf]
                new_vf_ready = [list(row) for row in vf_ready]
                for v in range(n):
                    var_send(v, all_var_targets[v], new_vf, new_vf_ready, fv, fv_ready)
                vf, vf_ready = new_vf, new_vf_ready
                new_fv = [list(row) for row in fv]
                new_fv_ready = [list(row) for row in fv_ready]
                step = []
                for a, (scope, _) in enumerate(big):
                    factor_send(a, range(len(scope)), new_fv, new_fv_ready, vf, vf_ready)
                    n_messages += len(scope)
                fv, fv_ready = new_fv, new_fv_ready
                if trace:
                    for a, (scope, _) in enumerate(big):
                        step.extend(record(a, range(len(scope))))
                    steps.append(step)
                iterations = it
                converged, delta = finished(it, old)
                if converged:
                    break
        else:
            order = _dfs_order(n, var_nb, big, m, root)
            for it in range(1, max_iters + 1):
                old = [list(row) for row in fv]
                for u, targets in order:
                    if u < n:
                        var_send(u, targets, vf, vf_ready, fv, fv_ready)
                    else:
                        u -= n
                        factor_send(u, targets, fv, fv_ready, vf, vf_ready)
                        n_messages += len(targets)
                        if trace:
                            steps.append(record(u, targets))
                iterations = it
                converged, delta = finished(it, old)
                if converged:
                    break

    # Beliefs: p_i(x_i) ∝ ψ_i(x_i) Π_{f ∋ i} m_{f→i}(x_i)
    log_belief = []
    marginals = {}
    for v in range(n):
        b = prior[v].copy()
        for a, p in var_nb[v]:
            b = b + fv[a][p]
        b = _normalise(b)
        log_belief.append(b)
        marginals[m.variables[v]] = np.exp(b)

    messages = {}
    edges = []
    for a, (scope, _) in enumerate(big):
        for p, v in enumerate(scope):
            key = (sources(a, p), m.variables[v])
            messages[key] = np.exp(fv[a][p])
            edges.append(key)

    map_state = map_index = None
    if kind == "max":
        if is_tree:
            idx = _decode_tree(n, var_nb, big, vf, log_belief, m, root)
        else:
            idx = [int(np.argmax(b)) for b in log_belief]
        map_index = {m.variables[v]: idx[v] for v in range(n)}
        map_state = {m.variables[v]: m.states[m.variables[v]][idx[v]] for v in range(n)}

    return BPResult(
        marginals=marginals,
        converged=converged,
        iterations=iterations,
        n_messages=n_messages,
        kind=kind,
        schedule=schedule,
        messages=messages,
        trace=steps,
        map_state=map_state,
        map_index=map_index,
        variables=list(m.variables),
        edges=edges,
        factor_nodes=[_factor_label(m, s) for s, _ in big if len(s) > 2],
        is_tree=is_tree,
        max_change=float(delta) if np.isfinite(delta) else 0.0,
    )


def _expand(lt: np.ndarray, scope: tuple[int, ...], target: tuple[int, ...]) -> np.ndarray:
    """Broadcast a log-table over ``scope`` to the axes of ``target`` (``scope`` ⊆ ``target``)."""
    where = [target.index(v) for v in scope]
    t = np.transpose(lt, np.argsort(where))
    shape = [1] * len(target)
    for i, pos in enumerate(sorted(where)):
        shape[pos] = t.shape[i]
    return t.reshape(shape)


def _merge_factors(big) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Multiply every factor whose variables are a subset of another factor's into that factor.

    Two factors on the same pair, or a Bayesian network's p(b|a) beside p(c|a,b), would
    otherwise form a short cycle in the factor graph and make exact BP loopy.
    """
    order = sorted(range(len(big)), key=lambda a: -len(big[a][0]))
    kept: list[list] = []
    holders: dict[int, list[int]] = {}
    for a in order:
        scope, lt = big[a]
        target = None
        for b in holders.get(scope[0], []):
            if set(scope) <= set(kept[b][0]):
                target = b
                break
        if target is None:
            for v in scope:
                holders.setdefault(v, []).append(len(kept))
            kept.append([scope, lt])
        else:
            kept[target][1] = kept[target][1] + _expand(lt, scope, kept[target][0])
    return [(sc, lt) for sc, lt in kept]


def _max_change(fv, old) -> float:
    """Largest change of any factor-to-variable message, in probabilities."""
    return max(
        (
            float(np.max(np.abs(np.exp(x) - np.exp(y))))
            for row, orow in zip(fv, old)
            for x, y in zip(row, orow)
        ),
        default=0.0,
    )


def _components(n: int, big) -> int:
    """Number of connected components of the factor graph (variables + multi-variable factors)."""
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for scope, _ in big:
        r0 = find(scope[0])
        for v in scope[1:]:
            r = find(v)
            if r != r0:
                parent[r] = r0
    return len({find(v) for v in range(n)})


def _dfs_order(n: int, var_nb, big, m: _Model, root):
    """Depth-first collect/distribute order over the factor graph.

    Nodes are variables ``0..n-1`` and factors ``n + a``. Collect: in reverse pre-order each
    node sends to its neighbours earlier in the order (on a tree: its parent). Distribute:
    in pre-order each node sends to its neighbours later in the order (its children).
    Returns a list of ``(node, targets)`` where targets index the node's neighbour list
    (variable) or scope (factor).
    """
    if root is not None:
        if root not in m.index:
            raise ValueError(f"root {root!r} is not a variable of the model")
        r = m.index[root]
        starts = [r, *(v for v in range(n) if v != r)]
    else:
        starts = list(range(n))
    adj = [[n + a for a, _ in var_nb[v]] for v in range(n)] + [list(scope) for scope, _ in big]
    total = len(adj)
    pos = [-1] * total
    pre: list[int] = []
    for s in starts:
        if pos[s] >= 0:
            continue
        stack = [s]
        while stack:
            u = stack.pop()
            if pos[u] >= 0:
                continue
            pos[u] = len(pre)
            pre.append(u)
            stack.extend(w for w in reversed(adj[u]) if pos[w] < 0)
    order = []
    for u in reversed(pre):  # collect
        pu = pos[u]
        t = [i for i, w in enumerate(adj[u]) if pos[w] < pu]
        if t:
            order.append((u, t))
    for u in pre:  # distribute
        pu = pos[u]
        t = [i for i, w in enumerate(adj[u]) if pos[w] > pu]
        if t:
            order.append((u, t))
    return order


def _decode_tree(n, var_nb, big, vf, log_belief, m, root) -> list[int]:
    """Exact MAP on a forest by back-tracking from each root through the max-product messages."""
    x = [-1] * n
    starts = list(range(n))
    if root is not None:
        r = m.index[root]
        starts = [r] + [v for v in starts if v != r]
    seen_f = set()
    for s in starts:
        if x[s] >= 0:
            continue
        x[s] = int(np.argmax(log_belief[s]))
        stack = [s]
        while stack:
            v = stack.pop()
            for a, p in var_nb[v]:
                if a in seen_f:
                    continue
                seen_f.add(a)
                scope, lt = big[a]
                k = len(scope)
                t = np.take(lt, x[v], axis=p)  # fix the decoded parent
                others = [q for q in range(k) if q != p]
                for j, q in enumerate(others):
                    shape = [1] * (k - 1)
                    shape[j] = m.card[scope[q]]
                    with np.errstate(divide="ignore"):
                        t = t + np.log(vf[a][q]).reshape(shape)
                best = np.unravel_index(int(np.argmax(t)), t.shape)
                for j, q in enumerate(others):
                    x[scope[q]] = int(best[j])
                    stack.append(scope[q])
    return x


# --------------------------------------------------------------------------------------
# References: brute force and the slide's three-node chain
# --------------------------------------------------------------------------------------
def _joint_log(m: _Model, ev: dict[int, int], max_states: float) -> np.ndarray:
    total = float(np.prod(m.card))
    if total > max_states:
        raise ValueError(f"brute force needs {total:.3g} joint states, more than max_states={max_states:.3g}")
    n = len(m.variables)
    joint = np.zeros(m.card)
    for scope, lt in m.factors:
        shape = [1] * n
        for v in scope:
            shape[v] = m.card[v]
        # move table axes to the joint's variable order
        perm = np.argsort(scope)
        joint = joint + np.transpose(lt, perm).reshape(shape)
    for v, k in ev.items():
        mask = np.full(m.card[v], -np.inf)
        mask[k] = 0.0
        shape = [1] * n
        shape[v] = m.card[v]
        joint = joint + mask.reshape(shape)
    return joint


def brute_force_marginals(model, evidence=None, *, kind: str = "sum", max_states: float = 2e7) -> dict:
    """Marginals by summing the full joint table (|x|^N terms): the reference BP must match.

    ``kind="max"`` gives normalised max-marginals. See chapter 04.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    m = _parse_model(model)
    ev = _evidence_indices(m, evidence)
    joint = _joint_log(m, ev, max_states)
    if not np.isfinite(joint.max()):
        raise ValueError("the evidence has probability zero under the model")
    n = len(m.variables)
    out = {}
    for v in range(n):
        axes = tuple(a for a in range(n) if a != v)
        out[m.variables[v]] = np.exp(_normalise(_reduce(joint, axes, kind)))
    return out


def brute_force_map(model, evidence=None, *, max_states: float = 2e7) -> tuple[dict, float]:
    """The most probable joint state (by enumeration) and its unnormalised log-probability."""
    m = _parse_model(model)
    ev = _evidence_indices(m, evidence)
    joint = _joint_log(m, ev, max_states)
    best = np.unravel_index(int(np.argmax(joint)), joint.shape)
    return {m.variables[v]: int(best[v]) for v in range(len(m.variables))}, float(joint[best])


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
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=old,
            ax=ax,
            edge_color="0.55",
            arrows=True,
            arrowsize=12,
            connectionstyle="arc3,rad=0.15",
            node_size=500,
        )
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=provisional,
            ax=ax,
            edge_color="orange",
            width=1.6,
            arrows=True,
            arrowsize=13,
            connectionstyle="arc3,rad=0.15",
            node_size=500,
        )
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=final,
            ax=ax,
            edge_color="crimson",
            width=2.2,
            arrows=True,
            arrowsize=16,
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
