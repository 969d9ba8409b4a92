"""The factor graph (因子图) that belief propagation runs on, as index arrays (chapter 04).

:func:`build` turns a :class:`~pgm_lab.pgmpy_adapter.FactorArrays` and the evidence into a
:class:`FactorGraph`: variables 0..n−1 with their local term ψ_j(x_j) (the single-variable
factors times the evidence indicator), factors 0..F−1 on two or more variables, and one
*edge* per (factor, variable) pair. Edges are numbered factor by factor, so factor ``a``
owns edges ``first[a] .. first[a] + len(scope) − 1`` in scope order, and ``var_edges[v]``
lists the edges of variable ``v``. Every message of BP lives on an edge: m_{f→i} and
n_{i→f} (see :mod:`pgm_lab.bp_schedules`).

Tables are kept as probabilities scaled to a maximum of one. A factor whose variables are
a subset of another factor's is multiplied into that factor first: two factors on the
same pair (or a Bayesian network's p(b|a) beside p(c|a,b)) would otherwise form a short
cycle and make exact BP loopy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .pgmpy_adapter import FactorArrays

__all__ = ["FactorGraph", "build", "dfs_preorder"]

_max = np.maximum.reduce  # without numpy's Python-level wrapper: many tiny tables
_sum = np.add.reduce


@dataclass(eq=False)
class FactorGraph:
    """Variables, factors and edges of a discrete model, ready for message passing.

    ``variables``/``card``/``states``: names, numbers of states, state names (variable
    order of the model). ``prior[v]``: ψ_v, normalised. ``scopes[a]``: variable indices of
    factor ``a``; ``tables[a]``: its table scaled to max 1. ``edge_var[e]``,
    ``edge_factor[e]``, ``edge_pos[e]``: the variable, factor and position in the scope of
    edge ``e``; ``first[a]``: factor ``a``'s first edge; ``factor_edges[a]``/``var_edges[v]``: the
    edges of factor ``a`` (in scope order) and of variable ``v``.
    ``toward[e]``: for a pairwise factor, its table oriented so that ``toward[e] @ x``
    sums out the other variable (the slide's Σ_{x_j} ψ_ij(x_i, x_j) x(x_j)).
    """

    variables: list
    card: list
    states: dict
    prior: list
    scopes: list
    tables: list
    edge_var: list
    edge_factor: list
    edge_pos: list
    first: list
    var_edges: list
    toward: list
    factor_edges: list

    @property
    def n_vars(self) -> int:
        return len(self.variables)

    @property
    def n_edges(self) -> int:
        return len(self.edge_var)

    def is_forest(self) -> bool:
        """True when the factor graph has no cycle: #edges = #nodes − #components."""
        n_nodes = self.n_vars + len(self.scopes)
        return self.n_edges == n_nodes - _components(self.n_vars, self.scopes)

    def label(self, a: int) -> str:
        """Name of factor ``a`` for messages and figures, e.g. ``f(a,b,c)``."""
        return "f(" + ",".join(str(self.variables[i]) for i in self.scopes[a]) + ")"

    def source(self, e: int):
        """Who sends the message on edge ``e``: the other variable of a pairwise factor
        (so the message is the slide's m_ji) or the factor's label."""
        a = self.edge_factor[e]
        scope = self.scopes[a]
        if len(scope) == 2:
            return self.variables[scope[1 - self.edge_pos[e]]]
        return self.label(a)


def _expand(table: np.ndarray, scope: tuple, target: tuple) -> np.ndarray:
    """Broadcast a table over ``scope`` to the axes of ``target`` (``scope`` ⊆ ``target``)."""
    where = [target.index(v) for v in scope]
    t = np.transpose(table, np.argsort(where))
    shape = [1] * len(target)
    for i, pos in enumerate(sorted(where)):
        shape[pos] = t.shape[i]
    return t.reshape(shape)


def _merge(factors: list) -> list:
    """Multiply every factor whose scope is a subset of another factor's into that one."""
    keys = [frozenset(scope) for scope, _ in factors]
    if len(set(keys)) == len(keys) and all(len(k) == 2 for k in keys):
        return factors  # distinct pairs: no scope contains another
    order = sorted(range(len(factors)), key=lambda a: -len(factors[a][0]))
    kept: list[list] = []
    holders: dict[int, list[int]] = {}
    for a in order:
        scope, table = factors[a]
        target = next((b for b in holders.get(scope[0], []) if keys[a] <= set(kept[b][0])), None)
        if target is None:
            for v in scope:
                holders.setdefault(v, []).append(len(kept))
            kept.append([scope, table])
        else:
            kept[target][1] = kept[target][1] * _expand(table, scope, kept[target][0])
    return [(scope, table) for scope, table in kept]


def _local_terms(fa: FactorArrays, index: dict, evidence: dict) -> tuple[list, list]:
    """ψ_v for each variable (single-variable factors × evidence) and the larger factors."""
    prior: list = [None] * len(fa.variables)
    big = []
    for scope, table in fa.factors:
        if len(scope) == 1:
            v = index[scope[0]]
            prior[v] = table if prior[v] is None else prior[v] * table
        else:
            big.append((tuple(index[v] for v in scope), table))
    for v, p in enumerate(prior):
        if p is None:
            prior[v] = np.ones(fa.card[fa.variables[v]])
    for v, k in evidence.items():
        clamp = np.zeros(len(prior[v]))
        clamp[k] = 1.0
        prior[v] = prior[v] * clamp
    prior, totals = _rescaled(prior, _sum)
    for v in np.flatnonzero(~(totals > 0)):
        raise ValueError(
            f"variable {fa.variables[v]!r} has zero potential in every state (check its factors and the evidence)"
        )
    return prior, big


def build(fa: FactorArrays, evidence: dict | None = None) -> FactorGraph:
    """The factor graph of ``fa`` with ``evidence`` ``{variable index: state index}``."""
    variables = list(fa.variables)
    index = {v: i for i, v in enumerate(variables)}
    prior, big = _local_terms(fa, index, evidence or {})
    big = _merge(big)
    scopes = [scope for scope, _ in big]
    tables, tops = _rescaled([table for _, table in big], _max)
    for a in np.flatnonzero(~(tops > 0)):
        raise ValueError(
            f"factor f({','.join(str(variables[i]) for i in scopes[a])}) is zero for every joint state"
        )
    sizes = [len(scope) for scope in scopes]
    first = list(itertools.accumulate([0, *sizes[:-1]])) if sizes else []
    edge_var = [v for scope in scopes for v in scope]
    var_edges: list = [[] for _ in variables]
    for e, v in enumerate(edge_var):
        var_edges[v].append(e)
    return FactorGraph(
        variables=variables,
        card=[fa.card[v] for v in variables],
        states=fa.states,
        prior=prior,
        scopes=scopes,
        tables=tables,
        edge_var=edge_var,
        edge_factor=[a for a, k in enumerate(sizes) for _ in range(k)],
        edge_pos=[p for k in sizes for p in range(k)],
        first=first,
        var_edges=var_edges,
        toward=[(t if p == 0 else t.T) if k == 2 else None for t, k in zip(tables, sizes) for p in range(k)],
        factor_edges=[list(range(f, f + k)) for f, k in zip(first, sizes)],
    )


def _rescaled(arrays: list, reduce) -> tuple[list, np.ndarray]:
    """Each array divided by ``reduce`` of its entries (sum or max), batched by shape, and
    those totals; arrays whose total is not positive are returned unchanged."""
    groups: dict = {}
    for i, t in enumerate(arrays):
        groups.setdefault(t.shape, []).append(i)
    out = list(arrays)
    totals = np.zeros(len(arrays))
    for shape, idx in groups.items():
        stack = np.stack([arrays[i] for i in idx])
        tot = reduce(stack.reshape(len(idx), -1), axis=1)
        totals[idx] = tot
        safe = np.where(tot > 0, tot, 1.0).reshape((-1,) + (1,) * len(shape))
        for j, t in zip(idx, stack / safe):
            out[j] = t
    return out, totals


def _components(n: int, scopes) -> int:
    """Number of connected components of the factor graph (union-find over the scopes)."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for scope in scopes:
        r0 = find(scope[0])
        for v in scope[1:]:
            r = find(v)
            if r != r0:
                parent[r] = r0
    return len({find(v) for v in range(n)})


def dfs_preorder(g: FactorGraph, root: int | None = None) -> tuple[list, list]:
    """Depth-first pre-order of the factor graph's nodes and each node's position in it.

    Nodes are variables ``0..n−1`` and factors ``n + a``; the search starts at ``root``
    (default variable 0) and then at each variable not reached yet (one tree per
    connected component). Returns ``(pre, pos)``.
    """
    n = g.n_vars
    adj = [[n + g.edge_factor[e] for e in g.var_edges[v]] for v in range(n)]
    adj += [list(scope) for scope in g.scopes]
    starts = list(range(n)) if root is None else [root, *(v for v in range(n) if v != root)]
    pos = [-1] * len(adj)
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
    return pre, pos
