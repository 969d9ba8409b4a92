"""Conditional independence in numbers: joint tables and how far A ⊥ B | C fails.

See chapter 02 (directed graphs) and chapter 03 (Markov random fields). The graph says
``a ⊥ b | c``; this module checks it on an actual distribution, in the slides' two forms

    p(a | b, c) = p(a | c)                      (conditional form)
    p(a, b | c) = p(a | c) p(b | c)             (product form)

and reports the largest violation of each, together with the conditional mutual information

    I(A; B | C) = Σ p(a, b, c) log [ p(a, b, c) p(c) / (p(a, c) p(b, c)) ]  ≥ 0,

which is zero exactly when the independence holds. A distribution is a :class:`Joint`: a
numpy array with one named axis per variable. ``as_joint`` builds one from a pgmpy
``DiscreteFactor``, a Bayesian network with CPDs, a Markov network with factors, or an
array plus axis names; ``random_joint`` draws random parameters for a graph.

Everything is brute force over the full table (K^N entries), which is the point of the
chapters: small graphs, exact numbers.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from .pgmpy_adapter import MAX_TABLE_ENTRIES, check_table_size, factor_arrays

MAX_ENTRIES = MAX_TABLE_ENTRIES  # the one size limit of brute force (pgm_lab.pgmpy_adapter)

__all__ = [
    "MAX_ENTRIES",
    "IndependenceGap",
    "Joint",
    "as_joint",
    "conditional",
    "conditionally_independent",
    "independence_gap",
    "random_bayesian_network",
    "random_joint",
]


@dataclass(frozen=True, eq=False)
class Joint:
    """A normalised joint distribution p(x_1, …, x_N) as a table with named axes.

    ``values[i_1, …, i_N]`` is the probability that ``variables[k]`` takes its state ``i_k``.
    The constructor checks the shape, refuses negative or non-finite entries, and normalises.
    """

    values: np.ndarray
    variables: tuple

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=float)
        variables = tuple(self.variables)
        if values.ndim != len(variables):
            raise ValueError(
                f"the table has {values.ndim} axes but {len(variables)} variable names {variables!r}"
            )
        if len(set(variables)) != len(variables):
            raise ValueError(f"variable names must be distinct, got {variables!r}")
        if not np.all(np.isfinite(values)):
            raise ValueError("the joint table has non-finite entries (nan or inf)")
        if np.any(values < 0):
            raise ValueError(
                f"the joint table has a negative entry ({values.min():.3g}); probabilities are ≥ 0"
            )
        total = values.sum()
        if not total > 0:
            raise ValueError("the joint table sums to zero; it cannot be normalised")
        object.__setattr__(self, "values", values / total)
        object.__setattr__(self, "variables", variables)

    @property
    def cardinality(self) -> dict:
        return dict(zip(self.variables, self.values.shape))

    def axes(self, names: Iterable) -> list[int]:
        return [self.variables.index(n) for n in names]

    def marginal(self, names) -> Joint:
        """p(names): the other variables summed out; axes in the order of ``names``."""
        names = _names(self, names, "names", allow_empty=False)
        keep = self.axes(names)
        drop = tuple(i for i in range(len(self.variables)) if i not in keep)
        table = self.values.sum(axis=drop)
        kept_order = sorted(keep)
        table = np.transpose(table, [kept_order.index(i) for i in keep])
        return Joint(table, names)

    def __repr__(self) -> str:
        card = ", ".join(f"{v}:{k}" for v, k in self.cardinality.items())
        return f"Joint({card})"


def _names(joint: Joint, names, what: str, *, allow_empty: bool) -> tuple:
    if names is None:
        out: tuple = ()
    elif isinstance(names, Hashable) and names in joint.variables:
        out = (names,)
    elif isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise ValueError(f"unknown variable {names!r} in {what}; the joint has {list(joint.variables)}")
    else:
        out = tuple(names)
        unknown = [n for n in out if n not in joint.variables]
        if unknown:
            raise ValueError(
                f"unknown variable(s) {unknown!r} in {what}; the joint has {list(joint.variables)}"
            )
        if len(set(out)) != len(out):
            raise ValueError(f"{what} repeats a variable: {out!r}")
    if not out and not allow_empty:
        raise ValueError(f"{what} is empty: give at least one variable")
    return out


def _einsum_product(tables: list[tuple[np.ndarray, tuple]], variables: tuple) -> np.ndarray:
    """Π_k table_k broadcast over all ``variables`` (numpy einsum with integer axis labels)."""
    label = {v: i for i, v in enumerate(variables)}
    args: list = []
    for arr, names in tables:
        args.extend([arr, [label[n] for n in names]])
    args.append(list(range(len(variables))))
    return np.einsum(*args, optimize=True)


def _check_size(card: dict) -> None:
    check_table_size(card.values())


def as_joint(obj, variables=None) -> Joint:
    """The normalised joint distribution of ``obj``.

    ``obj`` may be a :class:`Joint`; a pgmpy ``DiscreteFactor``; a numpy array with
    ``variables`` naming its axes; a pgmpy ``DiscreteBayesianNetwork`` with CPDs
    (p = Π_i p(x_i | pa_i), chapter 01); or a pgmpy ``DiscreteMarkovNetwork``/``FactorGraph``
    with factors (p = Π_C ψ_C / Z, chapter 03). Model variables keep the model's node order
    unless ``variables`` gives another one.
    """
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph

    if isinstance(obj, Joint):
        joint = obj
    elif isinstance(obj, DiscreteFactor):
        joint = Joint(obj.values, tuple(obj.variables))
    elif isinstance(obj, (DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph)):
        fa = factor_arrays(obj)  # p ∝ Π_C ψ_C, with ψ_i = p(x_i | pa_i) for a Bayesian network
        joint = Joint(fa.joint(), fa.variables)
    elif isinstance(obj, np.ndarray) or (isinstance(obj, (list, tuple)) and variables is not None):
        if variables is None:
            raise ValueError("a numpy joint table needs `variables`, one name per axis")
        return Joint(np.asarray(obj, dtype=float), tuple(variables))
    else:
        raise ValueError(
            "as_joint accepts a Joint, a pgmpy DiscreteFactor/DiscreteBayesianNetwork/"
            f"DiscreteMarkovNetwork, or a numpy array with variable names; got {type(obj).__name__}"
        )
    if variables is not None:
        order = tuple(variables)
        if len(order) != len(joint.variables) or set(order) != set(joint.variables):
            raise ValueError(f"variables {order!r} are not a permutation of {joint.variables!r}")
        joint = joint.marginal(order)
    return joint


@dataclass(frozen=True)
class IndependenceGap:
    """How far ``a ⊥ b | c`` is from holding in a distribution.

    ``product_gap``: max over c with p(c) > 0 of |p(a, b | c) − p(a | c) p(b | c)|;
    ``conditional_gap``: max over (b, c) with p(b, c) > 0 of |p(a | b, c) − p(a | c)|;
    ``cmi``: the conditional mutual information I(A; B | C) in nats; ``holds``: both gaps ≤ ``tol``.
    """

    a: tuple
    b: tuple
    c: tuple
    product_gap: float
    conditional_gap: float
    cmi: float
    holds: bool
    tol: float

    @property
    def max_abs_diff(self) -> float:
        return max(self.product_gap, self.conditional_gap)

    def __str__(self) -> str:
        c = ", ".join(map(str, self.c)) or "∅"
        a = ", ".join(map(str, self.a))
        b = ", ".join(map(str, self.b))
        verdict = "holds" if self.holds else "FAILS"
        return (
            f"{a} ⊥ {b} | {c}: {verdict} (product form gap {self.product_gap:.2e}, "
            f"conditional form gap {self.conditional_gap:.2e}, CMI {self.cmi:.2e} nats)"
        )


def _abc(joint: Joint, a, b, c) -> tuple[tuple, tuple, tuple]:
    a = _names(joint, a, "a", allow_empty=False)
    b = _names(joint, b, "b", allow_empty=False)
    c = _names(joint, c, "c", allow_empty=True)
    for n1, s1, n2, s2 in (("a", a, "b", b), ("a", a, "c", c), ("b", b, "c", c)):
        common = set(s1) & set(s2)
        if common:
            raise ValueError(
                f"{n1} and {n2} overlap in {sorted(map(repr, common))}; the sets must be disjoint"
            )
    return a, b, c


def independence_gap(joint, a, b, c=(), *, tol: float = 1e-9, variables=None) -> IndependenceGap:
    """Test ``a ⊥ b | c`` on a distribution and say by how much it fails (see chapter 02).

    ``joint``: anything :func:`as_joint` accepts; ``a``, ``b``, ``c``: a variable or an iterable
    of variables (disjoint; ``c`` may be empty for marginal independence).
    """
    joint = as_joint(joint, variables)
    a, b, c = _abc(joint, a, b, c)
    m = joint.marginal(a + b + c).values
    shape = m.shape
    na = int(np.prod(shape[: len(a)]))
    nb = int(np.prod(shape[len(a) : len(a) + len(b)]))
    p = m.reshape(na, nb, -1)  # p(a, b, c)
    pc = p.sum(axis=(0, 1))  # p(c)
    pac = p.sum(axis=1)  # p(a, c)
    pbc = p.sum(axis=0)  # p(b, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok_c = pc > 0
        lhs = p[:, :, ok_c] / pc[ok_c]
        rhs = (pac[:, None, ok_c] / pc[ok_c]) * (pbc[None, :, ok_c] / pc[ok_c])
        product_gap = float(np.max(np.abs(lhs - rhs))) if lhs.size else 0.0
        pa_given_c = pac / np.where(ok_c, pc, 1.0)  # p(a | c), (na, nc)
        pa_given_bc = p / np.where(pbc > 0, pbc, 1.0)[None]  # p(a | b, c), (na, nb, nc)
        diff = np.abs(pa_given_bc - pa_given_c[:, None, :])
        conditional_gap = float(np.max(diff[:, pbc > 0])) if np.any(pbc > 0) else 0.0
        ratio = p * pc[None, None] / (pac[:, None, :] * pbc[None, :, :])
        terms = np.where(p > 0, p * np.log(np.where(p > 0, ratio, 1.0)), 0.0)
    cmi = max(float(terms.sum()), 0.0)
    holds = product_gap <= tol and conditional_gap <= tol
    return IndependenceGap(a, b, c, product_gap, conditional_gap, cmi, holds, tol)


def conditionally_independent(joint, a, b, c=(), *, tol: float = 1e-9, variables=None) -> bool:
    """``True`` when a ⊥ b | c holds in the distribution up to ``tol`` (see ``independence_gap``)."""
    return independence_gap(joint, a, b, c, tol=tol, variables=variables).holds


def conditional(joint, target, given=(), *, variables=None) -> np.ndarray:
    """The table p(target | given), axes ordered ``(*target, *given)``.

    Entries whose conditioning event has probability zero are ``nan``. With ``given`` empty
    this is the marginal p(target). See chapter 02 (Markov blanket in numbers).
    """
    joint = as_joint(joint, variables)
    target = _names(joint, target, "target", allow_empty=False)
    given = _names(joint, given, "given", allow_empty=True)
    common = set(target) & set(given)
    if common:
        raise ValueError(f"target and given overlap in {sorted(map(repr, common))}")
    m = joint.marginal(target + given).values
    denom = m.sum(axis=tuple(range(len(target))), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, m / np.where(denom > 0, denom, 1.0), np.nan)


def _states(graph, states) -> dict:
    if isinstance(states, dict):
        missing = [n for n in graph.nodes if n not in states]
        if missing:
            raise ValueError(f"states gives no number of states for {missing!r}")
        out = dict(states)
    else:
        out = {n: states for n in graph.nodes}
    for n, k in out.items():
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"the number of states of {n!r} must be a positive integer, got {k!r}")
    return out


def random_bayesian_network(dag, states=2, *, seed=None, concentration: float = 1.0):
    """A pgmpy ``DiscreteBayesianNetwork`` on ``dag`` with random CPDs.

    Each column p(x_i | pa_i = j) is drawn from a symmetric Dirichlet(``concentration``), so
    every independence the graph does not imply fails with probability one. ``states``: one
    number for every node or a dict node -> number. See chapter 02.
    """
    from .factorization import bayesian_network
    from .graphs import as_graph

    g = as_graph(dag)
    if not g.is_directed():
        raise ValueError("random_bayesian_network needs a directed acyclic graph")
    if not concentration > 0:
        raise ValueError(f"concentration must be positive, got {concentration!r}")
    card = _states(g, states)
    return bayesian_network(
        list(g.edges), cardinality=card, nodes=list(g.nodes), rng=seed, alpha=concentration
    )


def random_joint(graph, states=2, *, seed=None, concentration: float = 1.0, scale: float = 1.0) -> Joint:
    """A random distribution that factorises over ``graph``.

    Directed graph: p = Π_i p(x_i | pa_i) with Dirichlet CPDs (``random_bayesian_network``).
    Undirected graph: p ∝ Π_C ψ_C(x_C) over the maximal cliques with ψ_C = exp(−E_C) and
    energies E_C ~ N(0, ``scale``²), so p is strictly positive. See chapters 02 and 03.
    """
    from .graphs import as_graph

    g = as_graph(graph)
    card = _states(g, states)
    _check_size(card)
    if g.is_directed():
        return as_joint(random_bayesian_network(g, card, seed=seed, concentration=concentration))
    import networkx as nx

    rng = np.random.default_rng(seed)
    names = tuple(g.nodes)
    tables = []
    for clique in nx.find_cliques(g):
        clique = tuple(sorted(clique, key=names.index))
        energy = rng.normal(0.0, scale, size=[card[v] for v in clique])
        tables.append((np.exp(-energy), clique))
    return Joint(_einsum_product(tables, names), names)
