import itertools

import networkx as nx
import numpy as np
import pytest
from pgmpy.inference import VariableElimination

from pgm_lab import factorization as fz


def random_dag(n, p, rng):
    order = rng.permutation(n)
    return [
        (f"v{order[i]}", f"v{order[j]}") for i, j in itertools.combinations(range(n), 2) if rng.random() < p
    ]


@pytest.mark.parametrize("seed", range(20))
def test_joint_is_product_of_cpds_and_matches_pgmpy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    nodes = [f"v{i}" for i in range(n)]
    cards = {v: int(rng.integers(1, 4)) for v in nodes}
    model = fz.bayesian_network(random_dag(n, 0.5, rng), cardinality=cards, nodes=nodes, rng=rng)
    order, joint = fz.joint_table(model)
    assert joint.shape == tuple(cards[v] for v in order)
    assert np.isclose(joint.sum(), 1.0)
    ref = VariableElimination(model).query(order, joint=True, show_progress=False)
    ref_values = ref.values.transpose([ref.variables.index(v) for v in order])
    np.testing.assert_allclose(joint, ref_values, atol=1e-12)
    # brute force: product of CPD entries for every state
    for state in itertools.product(*(range(cards[v]) for v in order)):
        value = dict(zip(order, state))
        prob = 1.0
        for v in order:
            cpd = model.get_cpds(v)
            prob *= cpd.get_values().reshape(cpd.cardinality)[tuple(value[u] for u in cpd.variables)]
        assert np.isclose(joint[state], prob)


def test_joint_table_custom_order_and_errors():
    model = fz.bayesian_network([("a", "b")], rng=0)
    order, joint = fz.joint_table(model, order=["b", "a"])
    assert order == ["b", "a"]
    np.testing.assert_allclose(joint, fz.joint_table(model)[1].T)
    with pytest.raises(ValueError, match="every node exactly once"):
        fz.joint_table(model, order=["a"])


def test_chain_rule_factors_rebuild_joint():
    rng = np.random.default_rng(3)
    joint = rng.dirichlet(np.ones(24)).reshape(2, 3, 4)
    f = fz.chain_rule_factors(joint)
    rebuilt = f[0][:, None, None] * f[1][:, :, None] * f[2]
    np.testing.assert_allclose(rebuilt, joint)
    joint[0] = 0  # zero-probability conditioning events give zero conditionals, not NaN
    joint /= joint.sum()
    assert np.all(np.isfinite(fz.chain_rule_factors(joint)[2]))


def test_parameter_counts():
    model = fz.bayesian_network(fz.SEVEN_NODE_EDGES, rng=0)
    assert fz.count_parameters(model) == 1 + 1 + 1 + 8 + 4 + 2 + 4
    assert fz.full_joint_parameters([2] * 7) == 127
    for k, m in itertools.product(range(1, 6), range(1, 8)):
        chain = fz.markov_chain(m, k, rng=0)
        stored = sum(c.get_values().size - c.get_values().shape[1] for c in chain.get_cpds())
        assert fz.markov_chain_parameters(k, m) == fz.count_parameters(chain) == stored


@pytest.mark.parametrize(("k", "m"), [(0, 3), (3, 0), (-1, 2), (2.5, 3), (True, 3)])
def test_markov_chain_rejects_bad_sizes(k, m):
    with pytest.raises(ValueError, match=r"[KM] must be an integer >= 1"):
        fz.markov_chain_parameters(k, m)
    with pytest.raises(ValueError, match=r"[KM] must be an integer >= 1"):
        fz.markov_chain(m, k)


def test_cycle_is_named():
    with pytest.raises(ValueError, match=r"directed cycle a -> b -> c -> a"):
        fz.bayesian_network([("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(ValueError, match="self-loop"):
        fz.bayesian_network([("a", "a")])
    with pytest.raises(ValueError, match="undirected"):
        fz.check_dag(nx.Graph([("a", "b")]))


def test_bad_cpds_are_named():
    with pytest.raises(ValueError, match=r"CPD of 'a': column 0 sums to 1\.1, not 1"):
        fz.bayesian_network([("a", "b")], cpds={"a": [[0.5], [0.6]]})
    with pytest.raises(ValueError, match="negative"):
        fz.bayesian_network([("a", "b")], cpds={"a": [[1.5], [-0.5]]})
    with pytest.raises(ValueError, match=r"CPD of 'b' has 1 columns; its parents \['a'\]"):
        fz.bayesian_network([("a", "b")], cpds={"b": [[0.5], [0.5]]})
    with pytest.raises(ValueError, match="unknown nodes"):
        fz.bayesian_network([("a", "b")], cpds={"z": [[1.0]]})
    with pytest.raises(ValueError, match="cardinality of 'a'"):
        fz.bayesian_network([("a", "b")], cardinality={"a": 0, "b": 2})
    with pytest.raises(ValueError, match="no cardinality"):
        fz.bayesian_network([("a", "b")], cardinality={"a": 2})
    with pytest.raises(ValueError, match="positive integers"):
        fz.full_joint_parameters([2, 0])


def test_validate_network_catches_edited_cpd():
    model = fz.bayesian_network([("a", "b")], rng=0)
    model.get_cpds("a").values[:] = 0.7
    with pytest.raises(ValueError, match="CPD of 'a'"):
        fz.joint_table(model)
    model.remove_cpds(model.get_cpds("a"))
    with pytest.raises(ValueError, match="node 'a' has no CPD"):
        fz.joint_table(model)


def test_ancestral_sampling_matches_joint():
    model = fz.bayesian_network(fz.SEVEN_NODE_EDGES, cardinality=3, rng=2)
    order, joint = fz.joint_table(model)
    n = 400_000
    s = fz.ancestral_sample(model, n, rng=0)
    codes = np.ravel_multi_index([s[v] for v in order], joint.shape)
    emp = np.bincount(codes, minlength=joint.size).reshape(joint.shape) / n
    assert 0.5 * np.abs(emp - joint).sum() < 0.03
    # a single marginal to much tighter accuracy
    np.testing.assert_allclose(
        np.bincount(s["x7"], minlength=3) / n, joint.sum(axis=tuple(range(6))), atol=4e-3
    )
    with pytest.raises(ValueError, match="positive integer"):
        fz.ancestral_sample(model, 0)


def test_enumerate_states():
    assert list(fz.enumerate_states([2, 1, 2])) == [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1)]
