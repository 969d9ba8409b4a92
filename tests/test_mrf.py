"""Tests of pgm_lab.mrf (chapter 03)."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from pgmpy.base import DAG
from pgmpy.factors.discrete import DiscreteFactor
from pgmpy.models import DiscreteBayesianNetwork

from pgm_lab import mrf
from pgm_lab import numeric_independence as ni

SLIDE_EDGES = [("Y1", "Y2"), ("Y2", "Y3"), ("Y3", "Y4"), ("Y4", "Y2"), ("Y1", "Y3")]


@pytest.fixture
def slide_graph():
    g = nx.Graph()
    g.add_nodes_from(["Y1", "Y2", "Y3", "Y4"])
    g.add_edges_from(SLIDE_EDGES)
    return g


# ------------------------------------------------------------------------- cliques


def test_slide_cliques(slide_graph):
    two = {frozenset(e) for e in SLIDE_EDGES}
    got = mrf.cliques(slide_graph)
    assert {frozenset(c) for c in got if len(c) == 2} == two
    assert {frozenset(c) for c in got if len(c) == 3} == {
        frozenset({"Y1", "Y2", "Y3"}),
        frozenset({"Y2", "Y3", "Y4"}),
    }
    assert mrf.maximal_cliques(slide_graph) == [("Y1", "Y2", "Y3"), ("Y2", "Y3", "Y4")]


def test_cliques_match_networkx():
    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(1, 14))
        g = nx.gnp_random_graph(n, float(rng.uniform(0.1, 0.8)), seed=int(rng.integers(1 << 30)))
        ours = mrf.cliques(g)
        assert len(ours) == len(set(map(frozenset, ours)))
        assert set(map(frozenset, ours)) == set(map(frozenset, nx.enumerate_all_cliques(g)))
        assert [len(c) for c in ours] == sorted(len(c) for c in ours)
        maxi = mrf.maximal_cliques(g)
        assert len(maxi) == len(set(map(frozenset, maxi)))
        assert set(map(frozenset, maxi)) == set(map(frozenset, nx.find_cliques(g)))


def test_clique_errors():
    with pytest.raises(ValueError, match="undirected"):
        mrf.cliques(nx.DiGraph([(0, 1)]))
    with pytest.raises(ValueError, match="undirected"):
        mrf.maximal_cliques(nx.DiGraph([(0, 1)]))


# ------------------------------------------------------------------------- potentials and Z


def test_partition_function_three_ways(slide_graph):
    pots = mrf.random_potentials(slide_graph, 3, seed=1)
    net = mrf.markov_network(pots, slide_graph)
    assert set(net.edges) | {(v, u) for u, v in net.edges} >= set(SLIDE_EDGES)
    z_vec = mrf.partition_function(net)
    z_loop = mrf.partition_function(pots, method="loop")
    assert np.isclose(z_vec, z_loop)
    assert np.isclose(z_vec, net.get_partition_function())
    # explicit double sum over all 3^4 configurations
    total = 0.0
    for y in itertools.product(range(3), repeat=4):
        s = dict(zip(["Y1", "Y2", "Y3", "Y4"], y))
        term = 1.0
        for scope, psi in pots.items():
            term *= psi[tuple(s[v] for v in scope)]
        total += term
    assert np.isclose(z_vec, total)
    with pytest.raises(ValueError, match="method"):
        mrf.partition_function(pots, method="magic")


def test_joint_and_boltzmann_agree(slide_graph):
    rng = np.random.default_rng(2)
    energies = {c: rng.normal(size=(2,) * len(c)) for c in mrf.maximal_cliques(slide_graph)}
    pots = {c: mrf.potential_from_energy(e) for c, e in energies.items()}
    j1 = mrf.joint(pots)
    j2 = mrf.boltzmann(energies)
    assert j1.variables == j2.variables
    assert np.allclose(j1.values, j2.values)
    # P(Y) = exp(-sum E) / Z entry by entry
    z = mrf.partition_function(pots)
    for y in itertools.product(range(2), repeat=4):
        s = dict(zip(j1.variables, y))
        e = sum(en[tuple(s[v] for v in c)] for c, en in energies.items())
        assert np.isclose(j1.values[y], np.exp(-e) / z)
    # huge energies: the log-domain computation does not overflow
    big = {c: 800.0 * e for c, e in energies.items()}
    jb = mrf.boltzmann(big)
    assert np.all(np.isfinite(jb.values)) and np.isclose(jb.values.sum(), 1.0)
    assert np.allclose(mrf.energy_from_potential(pots[("Y1", "Y2", "Y3")]), energies[("Y1", "Y2", "Y3")])


def test_local_conditional_needs_no_z(slide_graph):
    pots = mrf.random_potentials(slide_graph, {"Y1": 2, "Y2": 3, "Y3": 2, "Y4": 4}, seed=3)
    j = mrf.joint(pots)
    for node in j.variables:
        others = [v for v in j.variables if v != node]
        full = ni.conditional(j, node, others)
        for y in itertools.product(*[range(j.cardinality[v]) for v in others]):
            local = mrf.local_conditional(pots, node, dict(zip(others, y)))
            assert np.allclose(local, full[(slice(None), *y)])
    # only the neighbours are needed: Y1's blanket is {Y2, Y3}
    assert mrf.local_conditional(pots, "Y1", {"Y2": 0, "Y3": 1}).shape == (2,)
    with pytest.raises(ValueError, match="lacks 'Y3'"):
        mrf.local_conditional(pots, "Y1", {"Y2": 0})
    with pytest.raises(ValueError, match="itself"):
        mrf.local_conditional(pots, "Y1", {"Y1": 0, "Y2": 0, "Y3": 0})
    with pytest.raises(ValueError, match="not an index"):
        mrf.local_conditional(pots, "Y1", {"Y2": 7, "Y3": 0})
    with pytest.raises(ValueError, match="unknown variable"):
        mrf.local_conditional(pots, "Y9", {})


def test_potential_errors(slide_graph):
    good = np.ones((2, 2))
    with pytest.raises(ValueError, match="negative entry"):
        mrf.markov_network({("a", "b"): np.array([[1.0, -0.5], [0.2, 1.0]])})
    with pytest.raises(ValueError, match="negative entry"):
        mrf.partition_function([DiscreteFactor(["a"], [2], [1.0, -1.0])])
    with pytest.raises(ValueError, match="negative"):
        mrf.energy_from_potential([0.5, -0.1])
    with pytest.raises(ValueError, match="non-finite"):
        mrf.markov_network({("a", "b"): np.array([[1.0, np.nan], [0.2, 1.0]])})
    with pytest.raises(ValueError, match="axes"):
        mrf.markov_network({("a", "b", "c"): good})
    with pytest.raises(ValueError, match="states"):
        mrf.markov_network({("a", "b"): good, ("b", "c"): np.ones((3, 2))})
    with pytest.raises(ValueError, match="repeats"):
        mrf.markov_network({("a", "a"): good})
    with pytest.raises(ValueError, match="not on a clique"):
        mrf.markov_network({("Y1", "Y4"): good}, slide_graph)
    with pytest.raises(ValueError, match="no potential mentions"):
        mrf.markov_network({("Y1", "Y2"): good}, slide_graph)
    with pytest.raises(ValueError, match="no potentials"):
        mrf.partition_function({})
    with pytest.raises(ValueError, match="potentials must be"):
        mrf.partition_function(3.0)
    with pytest.raises(ValueError, match="too many"):
        mrf.partition_function({(i, i + 1): good for i in range(40)})
    with pytest.raises(ValueError, match="Z = 0"):
        mrf.joint({("a", "b"): np.zeros((2, 2))})
    # a single-variable scope may be written without a tuple
    assert np.isclose(mrf.partition_function({"a": np.array([1.0, 2.0])}), 3.0)


# ------------------------------------------------------------------------- Markov properties


def test_factorising_distributions_satisfy_all_three_properties():
    rng = np.random.default_rng(4)
    for trial in range(25):
        n = int(rng.integers(3, 7))
        g = nx.gnp_random_graph(n, 0.5, seed=trial)
        j = mrf.joint(mrf.random_potentials(g, 2, seed=trial, scale=1.5), variables=list(g.nodes))
        for check in mrf.check_markov_properties(j, g).values():
            assert check.holds, str(check)


def test_non_factorising_distribution_fails_them(slide_graph):
    rng = np.random.default_rng(5)
    j = ni.Joint(rng.random((2, 2, 2, 2)), ("Y1", "Y2", "Y3", "Y4"))
    checks = mrf.check_markov_properties(j, slide_graph)
    for check in checks.values():
        assert not check.holds and check.worst.max_abs_diff > 1e-3
    assert len(checks["pairwise"].statements) == 1  # only Y1, Y4 are not adjacent
    assert "0/1 statements hold" in str(checks["pairwise"])


def test_global_markov_statements_on_a_chain():
    g = nx.path_graph(["A", "B", "C", "D"])
    j = mrf.joint(mrf.random_potentials(g, 2, seed=0))
    check = mrf.global_markov(j, g)
    assert check.holds
    stmts = {(s.a, s.b, s.c) for s in check.statements}
    assert (("A",), ("C", "D"), ("B",)) in stmts
    assert (("A",), ("D",), ("B", "C")) in stmts
    assert all(mrf.separated(g, s.a, s.b, s.c) for s in check.statements)


def test_markov_check_errors(slide_graph):
    j = ni.Joint(np.ones((2, 2)), ("Y1", "Y2"))
    with pytest.raises(ValueError, match="differ from the graph"):
        mrf.pairwise_markov(j, slide_graph)
    with pytest.raises(ValueError, match="max_nodes"):
        big = nx.path_graph(16)
        mrf.global_markov(ni.Joint(np.ones((1,) * 16), tuple(range(16))), big)


def test_positivity_matters():
    j, g = mrf.moussouris_example()
    for check in mrf.check_markov_properties(j, g).values():
        assert check.holds
    witness = mrf.factorization_obstruction(j, g)
    assert witness is not None
    y = tuple(witness[v] for v in j.variables)
    assert j.values[y] == 0
    # a positive factorising distribution has no obstruction
    jp = mrf.joint(mrf.random_potentials(g, 2, seed=0))
    assert mrf.factorization_obstruction(jp, g) is None


# ------------------------------------------------------------------------- moralisation


def test_moralize_matches_pgmpy_and_keeps_the_distribution():
    rng = np.random.default_rng(6)
    for _ in range(60):
        n = int(rng.integers(2, 10))
        order = rng.permutation(n)
        edges = [
            (int(order[i]), int(order[k]))
            for i, k in itertools.combinations(range(n), 2)
            if rng.random() < 0.35
        ]
        dag = DAG(edges)
        dag.add_nodes_from(range(n))
        m = mrf.moralize(dag)
        assert {frozenset(e) for e in m.edges} == {frozenset(e) for e in dag.moralize().edges}
        assert set(m.nodes) == set(range(n))
    # a BN's CPDs are potentials on cliques of the moral graph: same joint, Z = 1
    bn = ni.random_bayesian_network(nx.DiGraph([("a", "e"), ("f", "e"), ("f", "b"), ("e", "c")]), 2, seed=0)
    moral = mrf.moralize(bn)
    net = mrf.markov_network(list(bn.get_cpds()), moral)
    assert np.isclose(mrf.partition_function(net), 1.0)
    assert np.allclose(mrf.joint(net, variables=list(bn.nodes)).values, ni.as_joint(bn).values)
    with pytest.raises(ValueError, match="directed acyclic"):
        mrf.moralize(nx.Graph([(0, 1)]))
    with pytest.raises(ValueError, match="directed cycle"):
        mrf.moralize(nx.DiGraph([(0, 1), (1, 0)]))
    assert isinstance(bn, DiscreteBayesianNetwork)


def test_draw_cliques(slide_graph):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = {"Y1": (0, 0), "Y2": (1, 1), "Y3": (1, -1), "Y4": (2, 0)}
    ax = mrf.draw_cliques(slide_graph, pos=pos, title="maximal cliques")
    assert len(ax.patches) == 2 and ax.get_title() == "maximal cliques"
    plt.close(ax.figure)
    ax = mrf.draw_cliques(slide_graph, [("Y1",), ("Y1", "Y2")], pos=pos)
    assert len(ax.patches) == 2
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="not in the graph"):
        mrf.draw_cliques(slide_graph, [("Y1", "Q")], pos=pos)
