"""One way in from pgmpy: a discrete model as plain factor arrays (chapters 01-04).

A discrete graphical model is a list of factors ψ_C(x_C) ≥ 0, one table per scope C, and
its distribution is p(x) = (1/Z) Π_C ψ_C(x_C). A Bayesian network is the special case
ψ_i = p(x_i | pa_i) with Z = 1 (chapter 01); a Markov network carries clique potentials
(chapter 03); a factor graph names the factors as nodes (chapter 04). :func:`factor_arrays`
turns any of them into a :class:`FactorArrays` (variables, numbers of states, state names
and tables), which is what ``bp``, ``mrf``, ``numeric_independence`` and
``factorization`` compute with. :meth:`FactorArrays.joint` multiplies the tables into the
full K^N joint table, refused with :class:`TableTooLargeError` above
:data:`MAX_TABLE_ENTRIES` entries: the one size limit of brute force in ``pgm_lab``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import networkx as nx
import numpy as np

__all__ = [
    "MAX_TABLE_ENTRIES",
    "FactorArrays",
    "TableTooLargeError",
    "check_table_size",
    "factor_arrays",
    "from_tables",
]

#: the largest table brute force agrees to build: 2**26 float64 entries, about 0.5 GB
MAX_TABLE_ENTRIES = 2**26


class TableTooLargeError(ValueError):
    """A joint table would have more than :data:`MAX_TABLE_ENTRIES` entries."""


def check_table_size(
    cards: Iterable[int], what: str = "the joint table", limit: float | None = None
) -> float:
    """Return Π_i K_i, the number of entries of a table over variables with K_i states.

    Raises :class:`TableTooLargeError` when it exceeds ``limit`` (default
    :data:`MAX_TABLE_ENTRIES`).
    """
    limit = MAX_TABLE_ENTRIES if limit is None else limit
    size = float(np.prod([float(k) for k in cards])) if cards else 1.0
    if size > limit:
        raise TableTooLargeError(
            f"{what} would have {size:.3g} entries: too many to tabulate (limit {limit:.3g}); "
            "brute force needs a small model"
        )
    return size


@dataclass(frozen=True, eq=False)
class FactorArrays:
    """A discrete model as arrays: p(x) ∝ Π_C ψ_C(x_C).

    ``variables``: the model's variables in its node order; ``card``: variable -> number
    of states K; ``states``: variable -> list of state names (indices 0..K-1 where the
    model names none); ``factors``: tuple of ``(scope, table)`` with ``scope`` a tuple of
    variables and ``table`` a float array with one axis per scope variable, entries ≥ 0.
    """

    variables: tuple
    card: dict
    states: dict
    factors: tuple

    def state_index(self, variable, state) -> int:
        """Index of ``state`` (a state name, or an index 0..K-1) of ``variable``."""
        if variable not in self.card:
            raise ValueError(
                f"unknown variable {variable!r}; the model's variables are {list(self.variables)}"
            )
        names = self.states[variable]
        if state in names:
            return names.index(state)
        if isinstance(state, (int, np.integer)) and not isinstance(state, bool) and 0 <= state < len(names):
            return int(state)
        raise ValueError(f"unknown state {state!r} for variable {variable!r}; its states are {names}")

    def joint(self, order=None, limit: float | None = None) -> np.ndarray:
        """Π_C ψ_C over every configuration (unnormalised), one axis per variable of ``order``.

        Raises :class:`TableTooLargeError` above ``limit`` (default :data:`MAX_TABLE_ENTRIES`).
        """
        order = tuple(self.variables if order is None else order)
        if set(order) != set(self.variables) or len(order) != len(self.variables):
            raise ValueError(f"order {order!r} must list each of the variables {list(self.variables)} once")
        check_table_size([self.card[v] for v in order], limit=limit)
        label = {v: i for i, v in enumerate(order)}
        args: list = []
        for scope, table in self.factors:
            args.extend([table, [label[v] for v in scope]])
        args.append(list(range(len(order))))
        return np.einsum(*args, optimize=len(self.factors) > 2)


def _describe(model) -> str:
    return type(model).__name__


def _pgmpy_items(model) -> tuple[list, list, dict]:
    """``(items, order, names)``: (scope, values, state names) per factor, node order, kind."""
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph

    name = _describe(model)
    if isinstance(model, DiscreteBayesianNetwork):
        cpds = model.get_cpds()
        if not cpds:
            raise ValueError(f"the {name} has no CPDs: add them with add_cpds")
        have = {c.variable for c in cpds}
        missing = [n for n in model.nodes() if n not in have]
        if missing:
            raise ValueError(f"the {name} has no CPD for {missing!r}")
        factors, order = cpds, list(model.nodes())
    elif isinstance(model, (DiscreteMarkovNetwork, FactorGraph)):
        factors = list(model.get_factors())
        if not factors:
            raise ValueError(f"the {name} has no factors: add them with add_factors")
        order = [n for n in model.nodes() if not isinstance(n, DiscreteFactor)]
    elif isinstance(model, DiscreteFactor):
        factors, order = [model], list(model.variables)
    elif isinstance(model, Iterable) and not isinstance(model, (str, bytes, dict, np.ndarray, nx.Graph)):
        factors, order = list(model), []
        for f in factors:
            if not isinstance(f, DiscreteFactor):
                raise ValueError(f"a list of factors must hold pgmpy DiscreteFactors, got {_describe(f)}")
    else:
        raise ValueError(
            "expected a pgmpy DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph, "
            f"DiscreteFactor or a list of DiscreteFactors, got {name}"
        )
    items = [(tuple(f.variables), f.values, f.state_names) for f in factors]
    return items, order, name


def factor_arrays(model) -> FactorArrays:
    """The factors of a pgmpy model as a :class:`FactorArrays` (see chapters 01, 03, 04).

    ``model``: a ``DiscreteBayesianNetwork`` with a CPD per node (factors p(x_i | pa_i)), a
    ``DiscreteMarkovNetwork`` or ``FactorGraph`` with factors, one ``DiscreteFactor`` or a
    list of them. Variables keep the model's node order; every variable must appear in a
    factor, with the same number of states everywhere, and tables must be finite and ≥ 0.
    """
    items, order, name = _pgmpy_items(model)
    return from_tables(
        [(scope, values) for scope, values, _ in items],
        order,
        state_names=[names for _, _, names in items],
        what=name,
    )


def _table(values, scope: tuple) -> np.ndarray:
    if len(set(scope)) != len(scope):
        raise ValueError(f"the scope {scope!r} repeats a variable")
    table = np.asarray(values, dtype=float)
    if table.ndim != len(scope):
        raise ValueError(
            f"the factor on {scope!r} has {table.ndim} axes; expected one per variable ({len(scope)})"
        )
    return table


def _check_entries(tables: list[tuple[tuple, np.ndarray]]) -> None:
    """Refuse nan, inf and negative entries, naming the first factor that has one."""
    flat = np.concatenate([t.ravel() for _, t in tables])
    if np.isfinite(flat).all() and not (flat < 0).any():
        return
    for scope, t in tables:
        if not np.isfinite(t).all():
            raise ValueError(f"the factor on {scope!r} has non-finite entries (nan or inf)")
        if (t < 0).any():
            raise ValueError(
                f"the factor on {scope!r} has a negative entry ({t.min():.3g}); potentials must be ≥ 0"
            )


def from_tables(items, order=(), *, state_names=None, what: str = "model") -> FactorArrays:
    """A :class:`FactorArrays` from ``(scope, table)`` pairs (scope: a variable or a tuple).

    ``order``: variables listed first, in this order (the others follow in order of first
    appearance); each must appear in some factor. ``state_names``: per item, a dict
    variable -> list of names (pgmpy's ``state_names``), or ``None``.
    """
    if not items:
        raise ValueError(f"the {what} has no factors")
    tables: list[tuple[tuple, np.ndarray]] = []
    card: dict = {}
    states: dict = {}
    for k, (scope, values) in enumerate(items):
        scope = tuple(scope) if isinstance(scope, tuple) or not isinstance(scope, Hashable) else (scope,)
        table = _table(values, scope)
        names = state_names[k] if state_names is not None else None
        for v, n in zip(scope, table.shape):
            if card.setdefault(v, n) != n:
                raise ValueError(f"variable {v!r} has {card[v]} states in one factor and {n} in another")
            if v not in states:
                states[v] = list(names[v]) if names and v in names else list(range(n))
        tables.append((scope, table))
    _check_entries(tables)
    order = list(order)
    lonely = [v for v in order if v not in card]
    if lonely:
        raise ValueError(
            f"no factor mentions the variables {lonely!r} (the {what}'s states for them are unknown)"
        )
    seen = set(order)
    variables = tuple(order + [v for v in card if v not in seen])
    return FactorArrays(variables, card, states, tuple(tables))
