"""Tests of pgm_lab.independence and pgm_lab.numeric_independence (chapter 02)."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from pgmpy.base import DAG
from pgmpy.factors.discrete import DiscreteFactor
from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph

from pgm_lab import independence as ind
from pgm_lab import numeric_independence as ni

SLIDE = [("a", "e"), ("f", "e"), ("f", "b"), ("e", "c")]


def random_dag(rng, n, p):
    """A random DAG on nodes 0..n-1: edges go forward in a random order with probability p."""
    order = rng.permutation(n)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for i, j in itertools.combinations(range(n), 2):
        if rng.random() < p:
            g.add_edge(int(order[i]), int(order[j]))
    return g


def pgmpy_dag(g):
    dag = DAG(g.edges)
    dag.add_nodes_from(g.nodes)
    return dag


def random_query(rng, n, max_z):
    nodes = rng.permutation(n)
    nx_, ny = rng.integers(1, 3, size=2)
    nz = rng.integers(0, max_z + 1)
    xs = [int(v) for v in nodes[:nx_]]
    ys = [int(v) for v in nodes[nx_ : nx_ + ny]]
    zs = [int(v) for v in nodes[nx_ + ny : nx_ + ny + nz]]
    return xs, ys, zs


# ------------------------------------------------------------------------- d-separation


def test_slide_example():
    g = nx.DiGraph(SLIDE)
    assert not ind.d_separated(g, "a", "b", "c")
    assert ind.d_separated(g, "a", "b", "f")
    assert ind.d_separated(g, "a", "b")  # head-to-head at e, nothing observed
    assert not ind.d_separated(g, "a", "b", "e")
    (trail,) = ind.active_trails(g, "a", "b", "c")
    assert trail.active and trail.arrows == "a → e ← f → b"
    assert trail.kinds == (ind.HEAD_TO_HEAD, ind.TAIL_TO_TAIL)
    (trail,) = ind.active_trails(g, "a", "b", "f")
    assert not trail.active and set(trail.blocked_at) == {"e", "f"}


def test_three_structures():
    fork = nx.DiGraph([("c", "a"), ("c", "b")])
    chain = nx.DiGraph([("a", "c"), ("c", "b")])
    collider = nx.DiGraph([("a", "c"), ("b", "c"), ("c", "d")])
    for g in (fork, chain):
        assert not ind.d_separated(g, "a", "b") and ind.d_separated(g, "a", "b", "c")
    assert ind.d_separated(collider, "a", "b")
    assert not ind.d_separated(collider, "a", "b", "c")
    assert not ind.d_separated(collider, "a", "b", "d")  # explaining away through a descendant


def test_d_separated_matches_pgmpy_and_networkx_on_random_dags():
    rng = np.random.default_rng(0)
    disagreements = 0
    n_sep = n_con = 0
    for _ in range(300):
        n = int(rng.integers(3, 13))
        g = random_dag(rng, n, float(rng.uniform(0.1, 0.5)))
        dag = pgmpy_dag(g)
        xs, ys, zs = random_query(rng, n, max_z=min(4, n - 3))
        ours = ind.d_separated(g, xs, ys, zs)
        pgmpy_says = not any(dag.is_dconnected(x, y, observed=zs) for x in xs for y in ys)
        assert ours == nx.is_d_separator(g, set(xs), set(ys), set(zs))
        disagreements += ours != pgmpy_says
        n_sep += ours
        n_con += not ours
        # the pgmpy model itself is accepted as the graph
        assert ind.d_separated(dag, xs, ys, zs) == ours
        assert ind.d_separated(g, xs, ys, zs, check_acyclic=False) == ours
    assert disagreements == 0
    assert n_sep > 30 and n_con > 30  # both verdicts were exercised


def test_d_connected_nodes_match_pgmpy_active_trail_nodes():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(3, 12))
        g = random_dag(rng, n, 0.3)
        dag = pgmpy_dag(g)
        xs, _, zs = random_query(rng, n, max_z=3)
        x = xs[0]
        expected = dag.active_trail_nodes(x, observed=zs)[x] - {x}
        assert ind.d_connected_nodes(g, x, zs) == expected


def test_active_trails_agree_with_d_separated():
    rng = np.random.default_rng(2)
    for _ in range(120):
        n = int(rng.integers(3, 8))
        g = random_dag(rng, n, 0.45)
        x, y, *rest = (int(v) for v in rng.permutation(n))
        zs = rest[: int(rng.integers(0, len(rest) + 1))]
        trails = ind.active_trails(g, x, y, zs)
        assert len(trails) == len(list(nx.all_simple_paths(g.to_undirected(), x, y)))
        assert ind.d_separated(g, x, y, zs) == (not any(t.active for t in trails))
        for t in trails:
            assert t.active == (not t.blocked_at)
            assert t.nodes[0] == x and t.nodes[-1] == y
            assert len(t.kinds) == len(t.nodes) - 2


def test_dseparation_table():
    g = nx.DiGraph(SLIDE)
    table = ind.dseparation_table(g, "f")
    nodes = [n for n in g.nodes if n != "f"]
    assert len(table) == len(nodes) * (len(nodes) - 1) // 2
    for (u, v), sep in table.items():
        assert sep == ind.d_separated(g, u, v, "f")


def test_undirected_separation():
    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(3, 10))
        g = nx.gnp_random_graph(n, 0.35, seed=int(rng.integers(1 << 30)))
        x, y, *rest = (int(v) for v in rng.permutation(n))
        zs = rest[: int(rng.integers(0, len(rest) + 1))]
        h = g.subgraph(set(g) - set(zs))
        expected = not nx.has_path(h, x, y)
        assert ind.separated(g, x, y, zs) == expected
        assert ind.d_separated(g, x, y, zs) == expected  # undirected: d-separation is separation
        trails = ind.active_trails(g, x, y, zs)
        assert expected == (not any(t.active for t in trails))


# ------------------------------------------------------------------------- Markov blanket


def test_markov_blanket_matches_pgmpy():
    rng = np.random.default_rng(4)
    for _ in range(100):
        n = int(rng.integers(2, 15))
        g = random_dag(rng, n, 0.3)
        dag = pgmpy_dag(g)
        for v in g.nodes:
            assert ind.markov_blanket(g, v) == set(dag.get_markov_blanket(v))


def test_markov_blanket_undirected_and_pgmpy_models():
    mn = DiscreteMarkovNetwork([("a", "b"), ("b", "c"), ("c", "d")])
    assert ind.markov_blanket(mn, "b") == {"a", "c"}
    assert ind.separated(mn, "a", "d", "b") and not ind.separated(mn, "a", "d")
    assert ind.d_connected_nodes(mn, "a", "c") == {"b"}
    bn = DiscreteBayesianNetwork(SLIDE)
    assert ind.markov_blanket(bn, "e") == {"a", "f", "c"}
    assert ind.markov_blanket(bn, "b") == {"f"}


def test_markov_blanket_makes_node_independent_of_rest_numerically():
    rng = np.random.default_rng(5)
    for seed in range(6):
        g = random_dag(rng, 6, 0.4)
        j = ni.random_joint(g, 2, seed=seed)
        for v in g.nodes:
            mb = ind.markov_blanket(g, v)
            rest = [n for n in g.nodes if n != v and n not in mb]
            if rest:
                assert ni.independence_gap(j, v, rest, sorted(mb)).holds
            # the blanket is minimal: without any one member m, v and m are d-connected
            for m in mb:
                smaller = sorted(mb - {m})
                assert not ind.d_separated(g, v, [*rest, m], smaller)
                assert not ni.independence_gap(j, v, [*rest, m], smaller).holds
            # p(x_i | all others) equals p(x_i | blanket)
            others = [n for n in g.nodes if n != v]
            full = ni.conditional(j, v, others)
            blanket = ni.conditional(j, v, sorted(mb))
            idx = [others.index(m) + 1 for m in sorted(mb)]
            expanded = np.moveaxis(
                blanket.reshape(blanket.shape + (1,) * (len(others) - len(mb))),
                list(range(1, len(mb) + 1)),
                idx,
            )
            assert np.allclose(full, np.broadcast_to(expanded, full.shape))


# ------------------------------------------------------------------------- numeric independence


def test_d_separation_matches_numeric_independence_under_random_cpds():
    rng = np.random.default_rng(6)
    checked_sep = checked_dep = 0
    for trial in range(60):
        n = int(rng.integers(3, 7))
        g = random_dag(rng, n, 0.4)
        j = ni.random_joint(g, states=int(rng.integers(2, 4)), seed=trial)
        for _ in range(4):
            xs, ys, zs = random_query(rng, n, max_z=n - 3)
            gap = ni.independence_gap(j, xs, ys, zs)
            if ind.d_separated(g, xs, ys, zs):
                assert gap.holds and gap.cmi < 1e-12, (g.edges, xs, ys, zs, gap)
                checked_sep += 1
            else:
                # random Dirichlet CPDs are faithful with probability one
                assert not gap.holds and gap.cmi > 1e-12, (g.edges, xs, ys, zs, gap)
                checked_dep += 1
    assert checked_sep > 40 and checked_dep > 40


def test_independence_gap_forms_and_cmi():
    rng = np.random.default_rng(7)
    pa, pb_c, pc = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(2), size=4), rng.dirichlet(np.ones(4))
    # p(a, b, c) = p(c) p(a | c) p(b | c) with a random p(a | c): a ⊥ b | c holds, a ⊥ b fails
    pa_c = rng.dirichlet(np.ones(3), size=4)
    table = np.einsum("c,ca,cb->abc", pc, pa_c, pb_c)
    j = ni.Joint(table, ("a", "b", "c"))
    g = ni.independence_gap(j, "a", "b", "c")
    assert g.holds and g.product_gap < 1e-15 and g.conditional_gap < 1e-15 and g.cmi < 1e-15
    g0 = ni.independence_gap(j, "a", "b")
    assert not g0.holds and g0.cmi > 0
    # the CMI equals H(A|C) - H(A|B,C), computed another way
    pab = table.sum(axis=2)
    mi = sum(
        pab[i, k] * np.log(pab[i, k] / (pab[i].sum() * pab[:, k].sum())) for i in range(3) for k in range(2)
    )
    assert np.isclose(g0.cmi, mi)
    # full independence: product of marginals
    indep = ni.Joint(np.einsum("a,b->ab", pa, rng.dirichlet(np.ones(2))), ("a", "b"))
    assert ni.conditionally_independent(indep, "a", "b")
    assert "holds" in str(g) and "FAILS" in str(g0)


def test_zero_probability_conditioning_values_are_skipped():
    table = np.zeros((2, 2, 3))
    table[:, :, :2] = np.random.default_rng(8).random((2, 2, 2))
    table[:, :, 0] = np.outer([0.2, 0.8], [0.5, 0.5])  # a ⊥ b at c = 0
    table[:, :, 1] = np.outer([0.3, 0.7], [0.1, 0.9])  # and at c = 1; c = 2 never happens
    gap = ni.independence_gap(ni.Joint(table, "abc"), "a", "b", "c")
    assert gap.holds
    cond = ni.conditional(ni.Joint(table, "abc"), "a", "c")
    assert np.isnan(cond[:, 2]).all() and np.allclose(cond[:, :2].sum(axis=0), 1)


def test_as_joint_sources_agree():
    rng = np.random.default_rng(9)
    bn = ni.random_bayesian_network(nx.DiGraph(SLIDE), {"a": 2, "e": 3, "f": 2, "b": 2, "c": 3}, seed=1)
    j = ni.as_joint(bn)
    assert j.values.shape == tuple(j.cardinality[v] for v in j.variables)
    assert np.isclose(j.values.sum(), 1.0)
    # the joint equals the product of the CPDs, checked entry by entry
    cpd = {c.variable: c for c in bn.get_cpds()}
    for idx in itertools.product(*[range(k) for k in j.values.shape]):
        s = dict(zip(j.variables, idx))
        prod = 1.0
        for c in cpd.values():
            prod *= c.values[tuple(s[u] for u in c.variables)]
        assert np.isclose(j.values[idx], prod)
    f = DiscreteFactor(["x", "y"], [2, 3], rng.random(6))
    jf = ni.as_joint(f)
    assert np.allclose(jf.values, f.values / f.values.sum())
    jr = ni.as_joint(f.values, ["x", "y"])
    assert np.allclose(jr.values, jf.values)
    swapped = ni.as_joint(jf, ["y", "x"])
    assert np.allclose(swapped.values, jf.values.T)
    mn = DiscreteMarkovNetwork([("x", "y")])
    mn.add_factors(f)
    assert np.allclose(ni.as_joint(mn).values, jf.values)


def test_numeric_errors():
    j = ni.Joint(np.ones((2, 2)), ("a", "b"))
    with pytest.raises(ValueError, match="negative"):
        ni.Joint(np.array([[0.5, -0.1], [0.3, 0.3]]), ("a", "b"))
    with pytest.raises(ValueError, match="axes"):
        ni.Joint(np.ones((2, 2)), ("a",))
    with pytest.raises(ValueError, match="distinct"):
        ni.Joint(np.ones((2, 2)), ("a", "a"))
    with pytest.raises(ValueError, match="sums to zero"):
        ni.Joint(np.zeros((2, 2)), ("a", "b"))
    with pytest.raises(ValueError, match="non-finite"):
        ni.Joint(np.array([[np.nan, 1], [1, 1]]), ("a", "b"))
    with pytest.raises(ValueError, match="unknown variable"):
        ni.independence_gap(j, "a", "z")
    with pytest.raises(ValueError, match="overlap"):
        ni.independence_gap(j, "a", ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        ni.independence_gap(j, [], "b")
    with pytest.raises(ValueError, match="needs `variables`"):
        ni.as_joint(np.ones((2, 2)))
    with pytest.raises(ValueError, match="permutation"):
        ni.as_joint(j, ["a", "c"])
    with pytest.raises(ValueError, match="as_joint accepts"):
        ni.as_joint("not a table")
    with pytest.raises(ValueError, match="positive integer"):
        ni.random_joint(nx.DiGraph([(0, 1)]), states=0)
    with pytest.raises(ValueError, match="no CPD"):
        ni.as_joint(DiscreteBayesianNetwork([("a", "b")]))
    with pytest.raises(ValueError, match="entries"):
        ni.random_joint(nx.empty_graph(40), states=2)


# ------------------------------------------------------------------------- bad input


def test_graph_errors():
    g = nx.DiGraph(SLIDE)
    with pytest.raises(ValueError, match="unknown node 'z'"):
        ind.d_separated(g, "a", "z")
    with pytest.raises(ValueError, match="unknown node"):
        ind.d_separated(g, ["a", "zz"], "b")
    with pytest.raises(ValueError, match="unknown node"):
        ind.d_separated(g, "a", "b", ["q"])
    with pytest.raises(ValueError, match="overlap"):
        ind.d_separated(g, "a", ["b", "a"])
    with pytest.raises(ValueError, match="overlap"):
        ind.d_separated(g, "a", "b", ["a", "c"])
    with pytest.raises(ValueError, match="overlap"):
        ind.d_separated(g, "a", "b", "b")
    with pytest.raises(ValueError, match="empty"):
        ind.d_separated(g, [], "b")
    cyclic = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")])
    for call in (
        lambda: ind.d_separated(cyclic, "a", "c"),
        lambda: ind.markov_blanket(cyclic, "a"),
        lambda: ind.active_trails(cyclic, "a", "c"),
    ):
        with pytest.raises(ValueError, match="directed cycle"):
            call()
    with pytest.raises(ValueError, match="networkx"):
        ind.d_separated({"a": ["b"]}, "a", "b")
    with pytest.raises(ValueError, match="FactorGraph"):
        ind.d_separated(FactorGraph(), "a", "b")
    with pytest.raises(ValueError, match="undirected"):
        ind.separated(g, "a", "b", "c")
    with pytest.raises(ValueError, match="unknown node"):
        ind.markov_blanket(g, "nope")
    with pytest.raises(ValueError, match="one node x"):
        ind.active_trails(g, ["a", "c"], "b")
    with pytest.raises(ValueError, match="max_trails"):
        ind.active_trails(nx.complete_graph(8), 0, 1, max_trails=50)


def test_tuple_nodes_are_single_nodes():
    g = nx.DiGraph([((0, 0), (0, 1)), ((0, 1), (1, 1))])
    assert not ind.d_separated(g, (0, 0), (1, 1))
    assert ind.d_separated(g, (0, 0), (1, 1), (0, 1))
    assert ind.d_separated(g, [(0, 0)], [(1, 1)], [(0, 1)])


# ------------------------------------------------------------------------- figures and widget


def test_plot_and_explorer():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = nx.DiGraph(SLIDE)
    fig = ind.plot_dseparation(g, "c", "a", "b")
    assert "a, b d-connected given {c}" in fig.axes[0].get_title()
    plt.close(fig)
    fig = ind.plot_dseparation(g, "f", "a", "b")
    assert "a, b d-separated given {f}" in fig.axes[0].get_title()
    cells = [t.get_text() for t in fig.axes[1].texts]
    assert cells.count("⊥") == 2 * sum(ind.dseparation_table(g, "f").values())
    plt.close(fig)

    w = ind.dseparation_explorer(g, x="a", y="b")
    assert "d-separated" in w.report.value  # nothing observed: e is an unobserved collider
    before_img, before = w.figure.value, w.report.value
    w.observed["c"].value = True
    assert "d-connected" in w.report.value and w.report.value != before
    assert w.figure.value != before_img
    w.observed["f"].value = True
    assert "d-separated" in w.report.value
    w.y.value = "f"  # observed node picked: the widget asks for another
    assert "Pick two different" in w.report.value
    with pytest.raises(ValueError, match="unknown node"):
        ind.dseparation_explorer(g, x="zz")
