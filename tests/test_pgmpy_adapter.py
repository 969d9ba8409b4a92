"""Tests of pgm_lab.pgmpy_adapter: one way from pgmpy models to factor arrays, one size limit."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from pgmpy.factors.discrete import DiscreteFactor, TabularCPD
from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph

from pgm_lab import bp, factorization, mrf, numeric_independence
from pgm_lab.pgmpy_adapter import (
    MAX_TABLE_ENTRIES,
    FactorArrays,
    TableTooLargeError,
    check_table_size,
    factor_arrays,
    from_tables,
)


def small_bn():
    bn = DiscreteBayesianNetwork([("a", "c"), ("b", "c")])
    bn.add_cpds(
        TabularCPD("a", 2, [[0.3], [0.7]], state_names={"a": ["lo", "hi"]}),
        TabularCPD("b", 3, [[0.2], [0.5], [0.3]]),
        TabularCPD(
            "c",
            2,
            np.array([[0.1, 0.4, 0.8, 0.6, 0.5, 0.9], [0.9, 0.6, 0.2, 0.4, 0.5, 0.1]]),
            ["a", "b"],
            [2, 3],
        ),
    )
    return bn


def test_bayesian_network_joint_is_the_product_of_cpds():
    bn = small_bn()
    fa = factor_arrays(bn)
    assert fa.variables == tuple(bn.nodes())  # the model's node order
    assert fa.card == {"a": 2, "b": 3, "c": 2} and fa.states["a"] == ["lo", "hi"]
    joint = fa.joint(("a", "b", "c"))
    pa, pb = np.array([0.3, 0.7]), np.array([0.2, 0.5, 0.3])
    pc = bn.get_cpds("c").get_values().reshape(2, 2, 3)  # c, a, b
    ref = np.einsum("a,b,cab->abc", pa, pb, pc)
    np.testing.assert_allclose(joint, ref, atol=1e-15)
    assert joint.sum() == pytest.approx(1.0)
    assert fa.state_index("a", "hi") == 1 and fa.state_index("b", 2) == 2
    with pytest.raises(ValueError, match="unknown state 'mid'"):
        fa.state_index("a", "mid")
    with pytest.raises(ValueError, match="unknown variable 'z'"):
        fa.state_index("z", 0)


def test_markov_network_factor_graph_and_factor_lists_agree():
    rng = np.random.default_rng(0)
    f1 = DiscreteFactor(["x", "y"], [2, 3], rng.random(6))
    f2 = DiscreteFactor(["y", "z"], [3, 2], rng.random(6))
    mn = DiscreteMarkovNetwork([("x", "y"), ("y", "z")])
    mn.add_factors(f1, f2)
    fg = FactorGraph()
    fg.add_nodes_from(["x", "y", "z"])
    fg.add_factors(f1, f2)
    fg.add_edges_from([(v, f) for f in (f1, f2) for v in f.variables])
    ref = np.einsum("xy,yz->xyz", f1.values, f2.values)
    for model in (mn, fg, [f1, f2]):
        fa = factor_arrays(model)
        np.testing.assert_allclose(fa.joint(("x", "y", "z")), ref, atol=1e-15)
    assert factor_arrays(fg).variables == ("x", "y", "z")
    np.testing.assert_allclose(factor_arrays(f1).joint(), f1.values)


def test_from_tables_orders_and_checks():
    fa = from_tables([(("b", "a"), np.ones((3, 2))), ("c", np.array([1.0, 2.0]))], order=["a"])
    assert fa.variables == ("a", "b", "c") and fa.card == {"a": 2, "b": 3, "c": 2}
    assert fa.joint().shape == (2, 3, 2)
    with pytest.raises(ValueError, match="repeats"):
        from_tables([(("a", "a"), np.ones((2, 2)))])
    with pytest.raises(ValueError, match="axes"):
        from_tables([(("a", "b"), np.ones(2))])
    with pytest.raises(ValueError, match="3 states in one factor and 2"):
        from_tables([(("a", "b"), np.ones((2, 3))), (("b",), np.ones(2))])
    with pytest.raises(ValueError, match="negative entry"):
        from_tables([(("a",), np.array([1.0, -1.0]))])
    with pytest.raises(ValueError, match="non-finite"):
        from_tables([(("a",), np.array([1.0, np.inf]))])
    with pytest.raises(ValueError, match="no factor mentions the variables \\['d'\\]"):
        from_tables([(("a",), np.ones(2))], order=["a", "d"])
    with pytest.raises(ValueError, match="no factors"):
        from_tables([])
    with pytest.raises(ValueError, match="order"):
        fa.joint(("a", "b"))


def test_bad_models_are_named():
    with pytest.raises(ValueError, match="no CPDs"):
        factor_arrays(DiscreteBayesianNetwork([("a", "b")]))
    bn = DiscreteBayesianNetwork([("a", "b")])
    bn.add_cpds(TabularCPD("a", 2, [[0.5], [0.5]]))
    with pytest.raises(ValueError, match="no CPD for \\['b'\\]"):
        factor_arrays(bn)
    with pytest.raises(ValueError, match="no factors"):
        factor_arrays(DiscreteMarkovNetwork([("a", "b")]))
    lonely = DiscreteMarkovNetwork([("a", "b")])
    lonely.add_node("c")
    lonely.add_factors(DiscreteFactor(["a", "b"], [2, 2], np.ones(4)))
    with pytest.raises(ValueError, match="no factor mentions the variables \\['c'\\]"):
        factor_arrays(lonely)
    for bad in (nx.Graph([(0, 1)]), 3.0, "ab", {"a": 1}, [np.ones(2)]):
        with pytest.raises(ValueError, match="pgmpy"):
            factor_arrays(bad)


def test_one_size_limit_and_one_error_everywhere():
    assert numeric_independence.MAX_ENTRIES == MAX_TABLE_ENTRIES == 2**26
    assert check_table_size([2] * 26) == 2.0**26
    with pytest.raises(TableTooLargeError, match="too many to tabulate"):
        check_table_size([2] * 27)
    assert issubclass(TableTooLargeError, ValueError)
    n = 30
    mn = DiscreteMarkovNetwork([(i, i + 1) for i in range(n - 1)])
    mn.add_factors(*[DiscreteFactor([i, i + 1], [2, 2], np.ones(4)) for i in range(n - 1)])
    bn = factorization.bayesian_network([(i, i + 1) for i in range(n - 1)], cardinality=2, rng=0)
    calls = [
        lambda: factor_arrays(mn).joint(),
        lambda: bp.brute_force_marginals(mn),
        lambda: mrf.partition_function(mn),
        lambda: numeric_independence.as_joint(mn),
        lambda: numeric_independence.as_joint(bn),
        lambda: factorization.joint_table(bn),
    ]
    for call in calls:
        with pytest.raises(TableTooLargeError, match=r"1\.07e\+09 entries"):
            call()


def test_the_modules_read_models_through_the_adapter():
    bn = small_bn()
    ref = factor_arrays(bn).joint(("a", "b", "c"))
    j = numeric_independence.as_joint(bn).marginal(("a", "b", "c")).values
    np.testing.assert_allclose(j, ref / ref.sum(), atol=1e-15)
    _, table = factorization.joint_table(bn, order=["a", "b", "c"])
    np.testing.assert_allclose(table, ref, atol=1e-15)
    marg = bp.brute_force_marginals(bn)
    np.testing.assert_allclose(marg["c"], ref.sum(axis=(0, 1)), atol=1e-15)
    assert isinstance(mrf._potentials(bn), FactorArrays)
