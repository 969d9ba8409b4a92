"""pgm_lab.learning: parameter learning (ML, Dirichlet posterior mean) and BIC structure scores.

Cross-checked against pgmpy's estimators and scores (the current ``parameter_estimator`` /
``structure_score`` classes and the deprecated ``pgmpy.estimators`` ones), against brute-force
joints and counts, against the Dirichlet posterior computed by scipy and by quadrature, and
every ValueError the module promises.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from pgmpy.inference import VariableElimination
from pgmpy.models import DiscreteBayesianNetwork
from pgmpy.parameter_estimator import DiscreteBayesianEstimator, DiscreteMLE
from pgmpy.structure_score import BIC, LogLikelihood
from scipy import integrate, stats

from pgm_lab import factorization as fz
from pgm_lab import learning as lr


def random_dag(names, p, rng):
    """Edges of a random DAG whose topological order is a random permutation of ``names``."""
    order = [names[i] for i in rng.permutation(len(names))]
    edges = [
        (order[i], order[j]) for i, j in itertools.combinations(range(len(order)), 2) if rng.random() < p
    ]
    return [edges[k] for k in rng.permutation(len(edges))]


def random_network(rng, *, n_min=2, n_max=6, k_max=4):
    """A random pgmpy network, its edges and cards (key order shuffled), and samples from it."""
    n = int(rng.integers(n_min, n_max + 1))
    names = [f"v{i}" for i in range(n)]
    edges = random_dag(names, float(rng.uniform(0.3, 0.8)), rng)
    cards = {v: int(rng.integers(2, k_max + 1)) for v in rng.permutation(names).tolist()}
    model = fz.bayesian_network(edges, cardinality=cards, nodes=names, rng=rng, alpha=0.7)
    return model, edges, cards


def draw(model, n, rng, cards):
    return pd.DataFrame(fz.ancestral_sample(model, n, rng=rng))[list(cards)]


def random_case(seed, n_low, n_high):
    """A random network (model, edges, cards), a sample of n_low..n_high-1 rows, and the rng."""
    rng = np.random.default_rng(seed)
    model, edges, cards = random_network(rng)
    return model, edges, cards, draw(model, int(rng.integers(n_low, n_high)), rng, cards), rng


def pgmpy_dag(edges, cards):
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(cards)
    model.add_edges_from(edges)
    return model


def pgmpy_tables(cpds, edges, cards):
    """pgmpy TabularCPDs (parents sorted by pgmpy) -> our layout, by variable names."""
    model = pgmpy_dag(edges, cards)
    model.add_cpds(*cpds)
    return lr.cpd_tables(model, cards)


def states_of(cards):
    return {v: list(range(k)) for v, k in cards.items()}


def assert_tables_close(a, b, atol=1e-12):
    assert list(a) == list(b)
    for v in a:
        assert a[v].shape == b[v].shape, v
        np.testing.assert_allclose(a[v], b[v], rtol=0, atol=atol, err_msg=str(v))


# ---------------------------------------------------------------- pgmpy cross-checks


@pytest.mark.parametrize("seed", range(12))
def test_mle_matches_pgmpy_estimators(seed):
    _model, edges, cards, data, _rng = random_case(seed, 5, 300)  # small: unseen parent configurations
    mine = lr.mle_cpds(edges, cards, data)
    ref = DiscreteMLE(state_names=states_of(cards)).fit(pgmpy_dag(edges, cards), data).parameters_
    assert_tables_close(mine, pgmpy_tables(ref, edges, cards))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.estimators import MaximumLikelihoodEstimator

        old = MaximumLikelihoodEstimator(pgmpy_dag(edges, cards), data, state_names=states_of(cards))
        assert_tables_close(mine, pgmpy_tables(old.get_parameters(), edges, cards))


@pytest.mark.parametrize("seed", range(12))
def test_bayesian_matches_pgmpy_estimators(seed):
    _model, edges, cards, data, rng = random_case(100 + seed, 1, 200)
    alpha = float(rng.uniform(0.1, 3.0))
    mine = lr.bayesian_cpds(edges, cards, data, pseudo_count=alpha)
    est = DiscreteBayesianEstimator(state_names=states_of(cards), prior_type="dirichlet", pseudo_counts=alpha)
    ref = est.fit(pgmpy_dag(edges, cards), data).parameters_
    assert_tables_close(mine, pgmpy_tables(ref, edges, cards))
    k2 = DiscreteBayesianEstimator(state_names=states_of(cards), prior_type="K2")
    ref_k2 = k2.fit(pgmpy_dag(edges, cards), data).parameters_
    assert_tables_close(lr.bayesian_cpds(edges, cards, data), pgmpy_tables(ref_k2, edges, cards))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.estimators import BayesianEstimator

        old = BayesianEstimator(pgmpy_dag(edges, cards), data, state_names=states_of(cards))
        old_cpds = old.get_parameters(prior_type="dirichlet", pseudo_counts=alpha)
        assert_tables_close(mine, pgmpy_tables(old_cpds, edges, cards))


@pytest.mark.parametrize("seed", range(12))
def test_bic_and_log_likelihood_match_pgmpy_scores(seed):
    rng = np.random.default_rng(200 + seed)
    model, edges, cards = random_network(rng)
    n = int(rng.integers(2, 500))
    data = draw(model, n, rng, cards)
    bic = BIC(data, state_names=states_of(cards))
    loglik = LogLikelihood(data, state_names=states_of(cards))
    names = list(cards)
    candidates = [edges, [], random_dag(names, 0.5, rng), random_dag(names, 0.9, rng)]
    for cand in candidates:
        mine = lr.bic_score(cand, cards, data)
        assert math.isclose(mine, bic.score(pgmpy_dag(cand, cards)), rel_tol=1e-12, abs_tol=1e-9), cand
        ll = lr.log_likelihood(cand, lr.mle_cpds(cand, cards, data), data)
        assert math.isclose(ll, loglik.score(pgmpy_dag(cand, cards)), rel_tol=1e-12, abs_tol=1e-9), cand
        # the penalty is (log N / 2) per free parameter, counted by pgmpy on the fitted network
        fitted = lr.to_bayesian_network(cand, lr.mle_cpds(cand, cards, data))
        assert math.isclose(mine, ll - 0.5 * math.log(n) * fz.count_parameters(fitted), rel_tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.estimators import BIC as OldBIC

        old = OldBIC(data, state_names=states_of(cards)).score(pgmpy_dag(edges, cards))
        assert math.isclose(lr.bic_score(edges, cards, data), old, rel_tol=1e-12, abs_tol=1e-9)


# ---------------------------------------------------------------- brute force and theory


@pytest.mark.parametrize("seed", range(10))
def test_log_likelihood_equals_brute_force_joint(seed):
    model, edges, cards, data, _rng = random_case(300 + seed, 1, 100)
    tables = lr.cpd_tables(model, cards)
    names = list(cards)
    ref = VariableElimination(model).query(names, joint=True, show_progress=False)
    joint = ref.values.transpose([ref.variables.index(v) for v in names])
    brute = float(np.log(joint[tuple(data[v].to_numpy() for v in names)]).sum())
    assert math.isclose(lr.log_likelihood(edges, tables, data), brute, rel_tol=1e-10)
    # the ML tables maximise it; the posterior mean and the truth score no higher
    best = lr.log_likelihood(edges, lr.mle_cpds(edges, cards, data), data)
    assert best >= lr.log_likelihood(edges, lr.bayesian_cpds(edges, cards, data), data) - 1e-9
    assert best >= brute - 1e-9


def test_log_likelihood_is_minus_infinity_for_an_impossible_sample():
    cards = {"a": 2, "b": 2}
    cpds = {"a": np.array([1.0, 0.0]), "b": np.array([[0.5, 0.5], [0.5, 0.5]])}
    assert lr.log_likelihood([("a", "b")], cpds, np.array([[1, 0]])) == -np.inf
    assert math.isclose(lr.log_likelihood([("a", "b")], cpds, np.array([[0, 1]])), math.log(0.5))
    assert list(cards) == list(cpds)


@pytest.mark.parametrize("seed", range(6))
def test_family_counts_by_a_loop(seed):
    _model, edges, cards, data, _rng = random_case(400 + seed, 1, 80)
    pa = lr.parents(edges, cards)
    counts = lr.family_counts(edges, cards, data)
    for v in cards:
        want = np.zeros([cards[u] for u in (v, *pa[v])], dtype=int)
        for _, row in data.iterrows():
            want[tuple(int(row[u]) for u in (v, *pa[v]))] += 1
        np.testing.assert_array_equal(counts[v], want)
        assert counts[v].sum() == len(data)


def test_posterior_mean_is_the_dirichlet_posterior_mean():
    """One column, counts N_k: scipy's Dirichlet(α + N) mean, and for K = 2 a quadrature of θ p(θ | D)."""
    rng = np.random.default_rng(5)
    for k in (2, 3, 5):
        x = rng.integers(0, k, size=int(rng.integers(1, 40)))
        alpha = float(rng.uniform(0.2, 4.0))
        mine = lr.bayesian_cpds([], {"x": k}, x[:, None], pseudo_count=alpha)["x"]
        counts = np.bincount(x, minlength=k)
        np.testing.assert_allclose(mine, stats.dirichlet(alpha + counts).mean(), rtol=1e-12)
        if k == 2:  # p(θ | D) ∝ θ^(N1+α−1) (1−θ)^(N0+α−1): mean of θ = p(x = 1) by integration

            def post(t, n1=counts[1], n0=counts[0], a=alpha):
                return t ** (n1 + a - 1) * (1 - t) ** (n0 + a - 1)

            z = integrate.quad(post, 0, 1)[0]
            mean = integrate.quad(lambda t, f=post: t * f(t), 0, 1)[0] / z
            assert math.isclose(mine[1], mean, rel_tol=1e-7)


def test_estimates_converge_to_the_truth():
    rng = np.random.default_rng(7)
    model = fz.bayesian_network(fz.SEVEN_NODE_EDGES, rng=1)
    cards = {f"x{i}": 2 for i in range(1, 8)}
    truth = lr.cpd_tables(model, cards)
    errors = []
    for n in (200, 20_000):
        data = fz.ancestral_sample(model, n, rng=rng)
        ml = lr.mle_cpds(fz.SEVEN_NODE_EDGES, cards, data)
        errors.append(np.mean([np.abs(ml[v] - truth[v]).mean() for v in cards]))
    assert errors[1] < errors[0] / 3 and errors[1] < 0.02


def test_unseen_parent_configuration_gets_a_uniform_column():
    cards = {"a": 3, "b": 4}
    data = np.array([[0, 1], [0, 2], [1, 3]])
    ml = lr.mle_cpds([("a", "b")], cards, data)["b"]  # shape (K_b, K_a)
    np.testing.assert_allclose(ml[:, 2], 0.25)
    np.testing.assert_allclose(ml[:, 0], [0, 0.5, 0.5, 0])
    bayes = lr.bayesian_cpds([("a", "b")], cards, data, pseudo_count=2.0)["b"]
    np.testing.assert_allclose(bayes[:, 0], (np.array([0, 1, 1, 0]) + 2) / (2 + 8))


def test_bic_picks_the_true_edge_only_with_enough_data():
    rng = np.random.default_rng(0)
    cards = {"a": 2, "b": 2}
    a = rng.integers(0, 2, 5000)
    b = np.where(rng.random(5000) < 0.8, a, 1 - a)  # b copies a 80% of the time
    data = np.column_stack([a, b])
    assert lr.bic_score([("a", "b")], cards, data) > lr.bic_score([], cards, data)
    # six samples agreeing four times: N times the empirical mutual information is below log(6)/2
    few = np.array([[0, 0], [0, 1], [1, 1], [1, 0], [0, 0], [1, 1]])
    assert lr.bic_score([("a", "b")], cards, few) < lr.bic_score([], cards, few)
    gain = lr.log_likelihood([("a", "b")], lr.mle_cpds([("a", "b")], cards, few), few)
    gain -= lr.log_likelihood([], lr.mle_cpds([], cards, few), few)
    assert 0 < gain < 0.5 * math.log(6)
    # with independent columns the penalty removes the edge
    data[:, 1] = rng.integers(0, 2, 5000)
    assert lr.bic_score([("a", "b")], cards, data) < lr.bic_score([], cards, data)


# ---------------------------------------------------------------- layouts and conversions


def test_sample_layouts_agree():
    rng = np.random.default_rng(9)
    model, edges, cards = random_network(rng, n_min=4)
    frame = draw(model, 60, rng, cards)
    shuffled = frame[list(rng.permutation(frame.columns))]
    as_dict = {v: frame[v].to_numpy() for v in reversed(list(cards))}
    array = frame.to_numpy()
    ref = lr.mle_cpds(edges, cards, array)
    for samples in (frame, shuffled, as_dict, array.astype(float), array.astype(np.int8)):
        assert_tables_close(lr.mle_cpds(edges, cards, samples), ref, atol=0)
    np.testing.assert_array_equal(lr.sample_array(shuffled, cards), array)


@pytest.mark.parametrize("seed", range(6))
def test_cpd_tables_roundtrip_and_entries(seed):
    rng = np.random.default_rng(500 + seed)
    model, edges, cards = random_network(rng)
    tables = lr.cpd_tables(model, cards)
    pa = lr.parents(edges, cards)
    for v in cards:
        cpd = model.get_cpds(v)
        for state in itertools.product(*(range(cards[u]) for u in (v, *pa[v]))):
            named = dict(zip((v, *pa[v]), state))
            assert tables[v][state] == cpd.get_value(**named)
    back = lr.cpd_tables(lr.to_bayesian_network(edges, tables), cards)
    assert_tables_close(back, tables, atol=0)


def test_parents_follow_the_order_of_cards_and_parameter_count():
    cards = {"c": 2, "a": 3, "b": 4, "d": 2}
    edges = [("a", "d"), ("b", "d"), ("c", "d"), ("a", "b")]
    assert lr.parents(edges, cards) == {"c": (), "a": (), "b": ("a",), "d": ("c", "a", "b")}
    assert lr.n_parameters(edges, cards) == 1 + 2 + 3 * 3 + 1 * 2 * 3 * 4
    model = fz.bayesian_network(edges, cardinality=cards, rng=0)
    assert lr.n_parameters(edges, cards) == fz.count_parameters(model)


# ---------------------------------------------------------------- errors

CARDS = {"a": 2, "b": 3}
EDGES = [("a", "b")]
GOOD = np.array([[0, 2], [1, 0]])


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.empty((0, 2), dtype=int), "empty"),
        (pd.DataFrame({"a": [], "b": []}, dtype=int), "empty"),
        ({"a": [], "b": []}, "empty"),
        (np.array([0, 1]), r"shape \(N, 2\)"),
        (np.zeros((3, 3), dtype=int), r"shape \(N, 2\)"),
        (pd.DataFrame({"a": [0, 1]}), r"no column for the nodes \['b'\]"),
        (pd.DataFrame({"a": [0], "b": [1], "c": [0]}), r"columns \['c'\]"),
        ({"a": [0, 1], "b": [1]}, "different lengths"),
        ({"a": [[0, 1]], "b": [1]}, "1-D"),
        (np.array([[0, 3]]), r"'b' has state 3 in row 0, outside 0..2"),
        (np.array([[0, 1], [-1, 0]]), r"'a' has state -1 in row 1, outside 0..1"),
        (pd.DataFrame({"a": [0, 2, 2], "b": [0, 0, 1]}), r"'a' has state 2 in row 1.*2 such rows"),
        (np.array([[0.5, 1.0]]), "must be integers"),
        (np.array([[0.0, np.nan]]), r"non-finite value for node 'b' in row 0"),
        (np.array([["x", "y"]]), "dtype"),
        (np.array([[True, False]]), "dtype"),
    ],
)
def test_bad_samples_are_refused(samples, message):
    for fn in (
        lambda: lr.mle_cpds(EDGES, CARDS, samples),
        lambda: lr.bayesian_cpds(EDGES, CARDS, samples),
        lambda: lr.bic_score(EDGES, CARDS, samples),
        lambda: lr.family_counts(EDGES, CARDS, samples),
        lambda: lr.log_likelihood(EDGES, lr.mle_cpds(EDGES, CARDS, GOOD), samples),
    ):
        with pytest.raises(ValueError, match=message):
            fn()


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([("a", "b"), ("b", "a")], "directed cycle"),
        ([("a", "b"), ("b", "c"), ("c", "a")], r"directed cycle a -> b -> c -> a"),
        ([("a", "a")], "self-loop"),
        ([("a", "z")], r"unknown node 'z'"),
        ([("a", "b", "c")], r"\(parent, child\) pair"),
        (["ab"], r"\(parent, child\) pair"),
    ],
)
def test_bad_edges_are_refused(edges, message):
    cards = {"a": 2, "b": 2, "c": 2}
    data = np.zeros((2, 3), dtype=int)
    for fn in (lr.mle_cpds, lr.bayesian_cpds, lr.bic_score, lr.family_counts):
        with pytest.raises(ValueError, match=message):
            fn(edges, cards, data)
    with pytest.raises(ValueError, match=message):
        lr.n_parameters(edges, cards)


@pytest.mark.parametrize(
    ("cards", "message"),
    [
        ({}, "cards is empty"),
        ([("a", 2)], "must be a dict"),
        ({"a": 0, "b": 2}, "'a' must be an integer >= 1"),
        ({"a": 2, "b": 2.5}, "'b' must be an integer >= 1"),
        ({"a": True, "b": 2}, "'a' must be an integer >= 1"),
    ],
)
def test_bad_cards_are_refused(cards, message):
    with pytest.raises(ValueError, match=message):
        lr.mle_cpds([], cards, np.zeros((1, 2), dtype=int))


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf"), "1", True, None])
def test_bad_pseudo_count_is_refused(alpha):
    with pytest.raises(ValueError, match="pseudo_count must be a positive"):
        lr.bayesian_cpds(EDGES, CARDS, GOOD, pseudo_count=alpha)


def test_bad_tables_are_refused():
    good = lr.mle_cpds(EDGES, CARDS, GOOD)
    with pytest.raises(ValueError, match=r"CPD of 'b' must have shape \(2, 2\).*got \(2, 3\)"):
        lr.log_likelihood(EDGES, {**good, "b": good["b"].T}, GOOD)  # K_b read as 2
    with pytest.raises(ValueError, match=r"CPD of 'b' must have shape \(3,\).*got \(3, 2\)"):
        lr.log_likelihood([], good, GOOD)  # b's table has a parent axis the graph lacks
    with pytest.raises(ValueError, match="does not sum to 1"):
        lr.log_likelihood(EDGES, {**good, "a": np.array([0.5, 0.6])}, GOOD)
    with pytest.raises(ValueError, match="negative or non-finite"):
        lr.log_likelihood(EDGES, {**good, "a": np.array([1.5, -0.5])}, GOOD)
    with pytest.raises(ValueError, match="non-empty dict"):
        lr.log_likelihood(EDGES, {}, GOOD)
    with pytest.raises(ValueError, match="at least one axis"):
        lr.log_likelihood([], {"a": 1.0}, np.zeros((1, 1), dtype=int))
    with pytest.raises(ValueError, match=r"unknown node 'c'"):
        lr.log_likelihood([("a", "c")], good, GOOD)
    with pytest.raises(ValueError, match="does not sum to 1"):
        lr.to_bayesian_network(EDGES, {**good, "a": np.array([0.2, 0.2])})


def test_cpd_tables_refuses_a_wrong_node_list():
    model = fz.bayesian_network(EDGES, rng=0)
    with pytest.raises(ValueError, match="every node of the model once"):
        lr.cpd_tables(model, ["a"])
    with pytest.raises(ValueError, match="every node of the model once"):
        lr.cpd_tables(model, ["a", "b", "b"])
