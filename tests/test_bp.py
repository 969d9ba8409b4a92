"""Tests of pgm_lab.bp (chapter 04): exactness on trees, schedules, max-product, loopy BP, errors."""

from __future__ import annotations

import string

import networkx as nx
import numpy as np
import pytest
from pgmpy.factors.discrete import DiscreteFactor, TabularCPD
from pgmpy.inference import VariableElimination
from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork, FactorGraph

from pgm_lab import bp


# ----------------------------------------------------------------------------- helpers
def einsum_joint(factors, variables, card, evidence=None):
    """Independent reference: the normalised joint table by one einsum over all factors."""
    letters = {v: string.ascii_letters[i] for i, v in enumerate(variables)}
    ops, subs = [], []
    for f in factors:
        ops.append(np.asarray(f.values, float).reshape(f.cardinality))
        subs.append("".join(letters[v] for v in f.variables))
    for v, k in (evidence or {}).items():
        ind = np.zeros(card[v])
        ind[k] = 1.0
        ops.append(ind)
        subs.append(letters[v])
    out = "".join(letters[v] for v in variables)
    joint = np.einsum(",".join(subs) + "->" + out, *ops)
    return joint / joint.sum()


def marginals_of(joint, variables):
    n = len(variables)
    return {v: joint.sum(axis=tuple(a for a in range(n) if a != i)) for i, v in enumerate(variables)}


def random_tree_mn(rng, n, *, kmax=4, unary_p=0.5, spread=1.0):
    """Random tree-shaped Markov network with varied cardinalities (2..kmax)."""
    g = nx.random_labeled_tree(n, seed=int(rng.integers(2**31))) if n > 1 else nx.empty_graph(1)
    card = {v: int(rng.integers(2, kmax + 1)) for v in g.nodes}
    m = DiscreteMarkovNetwork()
    m.add_nodes_from(g.nodes)
    m.add_edges_from(g.edges)
    fs = [
        DiscreteFactor([u, v], [card[u], card[v]], np.exp(spread * rng.normal(size=card[u] * card[v])))
        for u, v in g.edges
    ]
    fs += [
        DiscreteFactor([v], [card[v]], np.exp(rng.normal(size=card[v])))
        for v in g.nodes
        if rng.random() < unary_p or n == 1
    ]
    m.add_factors(*fs)
    return m, card, fs


def random_factor_tree(rng, n_factors):
    """Random factor graph whose factors have 2 or 3 variables and which is a tree; string states."""
    card = {"v0": int(rng.integers(2, 4))}
    factors = []
    for _ in range(n_factors):
        anchor = list(card)[int(rng.integers(len(card)))]
        new = [f"v{len(card) + i}" for i in range(int(rng.integers(1, 3)))]
        for v in new:
            card[v] = int(rng.integers(2, 4))
        scope = [anchor, *new]
        rng.shuffle(scope)
        size = int(np.prod([card[v] for v in scope]))
        names = {v: [f"s{k}" for k in range(card[v])] for v in scope}
        factors.append(
            DiscreteFactor(scope, [card[v] for v in scope], rng.random(size) + 0.01, state_names=names)
        )
    fg = FactorGraph()
    fg.add_nodes_from(list(card))
    fg.add_factors(*factors)
    fg.add_edges_from([(v, f) for f in factors for v in f.variables])
    return fg, card, factors


def random_evidence(rng, card, p=0.3):
    return {v: int(rng.integers(card[v])) for v in card if rng.random() < p}


# ----------------------------------------------------------------------------- exactness
def test_random_trees_match_brute_force_both_schedules():
    rng = np.random.default_rng(0)
    worst = 0.0
    for trial in range(300):
        n = int(rng.integers(1, 9))
        m, card, fs = random_tree_mn(rng, n)
        ev = random_evidence(rng, card) if trial % 2 else None
        variables = list(m.nodes())
        ref = marginals_of(einsum_joint(fs, variables, card, ev), variables)
        for schedule in ("parallel", "serial"):
            res = bp.belief_propagation(m, ev, schedule=schedule)
            assert res.converged and res.is_tree
            for v in variables:
                assert res.marginals[v].shape == (card[v],)
                worst = max(worst, float(np.abs(res.marginals[v] - ref[v]).max()))
    assert worst < 1e-8


def test_random_factor_trees_with_named_states_and_evidence():
    rng = np.random.default_rng(1)
    for trial in range(150):
        fg, card, fs = random_factor_tree(rng, int(rng.integers(1, 5)))
        ev_idx = random_evidence(rng, card)
        ev_names = {v: f"s{k}" for v, k in ev_idx.items()}
        variables = list(card)
        ref = marginals_of(einsum_joint(fs, variables, card, ev_idx), variables)
        res = bp.belief_propagation(fg, ev_names, schedule="serial" if trial % 2 else "parallel")
        assert res.converged
        for v in variables:
            np.testing.assert_allclose(res.marginals[v], ref[v], atol=1e-10, rtol=0)
        for v, k in ev_idx.items():
            assert res.marginals[v][k] == pytest.approx(1.0)


def test_brute_force_helper_matches_einsum():
    rng = np.random.default_rng(2)
    m, card, fs = random_tree_mn(rng, 6)
    ev = {next(iter(card)): 1}
    ref = marginals_of(einsum_joint(fs, list(m.nodes()), card, ev), list(m.nodes()))
    got = bp.brute_force_marginals(m, ev)
    for v in ref:
        np.testing.assert_allclose(got[v], ref[v], atol=1e-12)


def test_matches_normalised_pgmpy_variable_elimination():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m, card, _ = random_tree_mn(rng, int(rng.integers(2, 10)))
        ev = random_evidence(rng, card, p=0.2)
        res = bp.belief_propagation(m, ev, schedule="serial")
        ve = VariableElimination(m)
        for v in m.nodes():
            if v in ev:
                continue
            q = ve.query([v], evidence=ev or None, show_progress=False)
            ref = q.values / q.values.sum()  # pgmpy leaves Markov-network marginals unnormalised
            np.testing.assert_allclose(res.marginals[v], ref, atol=1e-8)


def test_bayesian_network_polytree_matches_variable_elimination():
    bn = DiscreteBayesianNetwork([("a", "c"), ("b", "c"), ("c", "d"), ("c", "e")])
    rng = np.random.default_rng(4)

    def cpd(var, k, parents=(), pcard=()):
        cols = int(np.prod(pcard)) if parents else 1
        t = rng.random((k, cols)) + 0.1
        return TabularCPD(
            var, k, t / t.sum(0), evidence=list(parents) or None, evidence_card=list(pcard) or None
        )

    bn.add_cpds(cpd("a", 2), cpd("b", 3), cpd("c", 2, ("a", "b"), (2, 3)), cpd("d", 3, ("c",), (2,)))
    bn.add_cpds(cpd("e", 2, ("c",), (2,)))
    ev = {"d": 2}
    res = bp.belief_propagation(bn, ev, schedule="serial")
    assert res.is_tree and res.converged
    ve = VariableElimination(bn)
    for v in "abce":
        q = ve.query([v], evidence=ev, show_progress=False)
        np.testing.assert_allclose(res.marginals[v], q.values / q.values.sum(), atol=1e-10)


def test_bayesian_network_with_state_names():
    bn = DiscreteBayesianNetwork([("rain", "wet"), ("sprinkler", "wet")])
    yn = ["no", "yes"]
    bn.add_cpds(
        TabularCPD("rain", 2, [[0.8], [0.2]], state_names={"rain": yn}),
        TabularCPD("sprinkler", 2, [[0.6], [0.4]], state_names={"sprinkler": yn}),
        TabularCPD(
            "wet",
            2,
            [[1.0, 0.1, 0.2, 0.01], [0.0, 0.9, 0.8, 0.99]],
            evidence=["rain", "sprinkler"],
            evidence_card=[2, 2],
            state_names={"wet": yn, "rain": yn, "sprinkler": yn},
        ),
    )
    res = bp.belief_propagation(bn, {"wet": "yes"})
    # explaining away: p(rain=yes | wet=yes) by Bayes' rule
    p_wet_given_rain = np.array([0.6 * 0.0 + 0.4 * 0.9, 0.6 * 0.8 + 0.4 * 0.99])  # rain = no, yes
    post = np.array([0.8, 0.2]) * p_wet_given_rain
    np.testing.assert_allclose(res.marginals["rain"], post / post.sum(), atol=1e-12)
    assert res.marginals["wet"][1] == pytest.approx(1.0)
    mx = bp.belief_propagation(bn, {"wet": "yes"}, kind="max")
    assert set(mx.map_state.values()) <= {"no", "yes"} and mx.map_state["wet"] == "yes"
    with pytest.raises(ValueError, match="unknown state 'maybe'"):
        bp.belief_propagation(bn, {"wet": "maybe"})


def test_duplicate_scope_factors_are_merged_so_bp_stays_exact():
    rng = np.random.default_rng(5)
    m = DiscreteMarkovNetwork([("a", "b"), ("b", "c")])
    fs = [
        DiscreteFactor(["a", "b"], [2, 3], rng.random(6)),
        DiscreteFactor(["b", "a"], [3, 2], rng.random(6)),
        DiscreteFactor(["b", "c"], [3, 2], rng.random(6)),
    ]
    m.add_factors(*fs)
    res = bp.belief_propagation(m)
    assert res.is_tree
    ref = marginals_of(einsum_joint(fs, ["a", "b", "c"], {"a": 2, "b": 3, "c": 2}), ["a", "b", "c"])
    for v in "abc":
        np.testing.assert_allclose(res.marginals[v], ref[v], atol=1e-12)


# ----------------------------------------------------------------------------- schedules
def chain_mn(n, k=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    m = DiscreteMarkovNetwork([(i, i + 1) for i in range(n - 1)])
    fs = [DiscreteFactor([i, i + 1], [k, k], np.exp(scale * rng.normal(size=k * k))) for i in range(n - 1)]
    # pgmpy's add_factors rebuilds set(nodes) for every factor (quadratic: 10 s for 10,000 nodes)
    m.factors.extend(fs)
    return m, fs


def test_schedules_message_counts_and_rounds_on_a_chain():
    n = 7
    m, _ = chain_mn(n)
    par = bp.belief_propagation(m, schedule="parallel", trace=True)
    ser = bp.belief_propagation(m, schedule="serial", trace=True)
    assert ser.iterations == 1 and ser.n_messages == 2 * (n - 1)
    assert par.iterations == n - 1 and par.n_messages == (n - 1) * 2 * (n - 1)
    assert len(par.trace) == par.iterations and all(len(s) == 2 * (n - 1) for s in par.trace)
    assert sum(len(s) for s in ser.trace) == ser.n_messages
    # in round t of the parallel schedule, t messages in each direction have heard from their end
    assert [sum(msg.final for msg in s) for s in par.trace] == [2 * t for t in range(1, n)]
    assert all(msg.final for s in ser.trace for msg in s)
    # depth-first: collect towards the root (node 0) first, then distribute away from it
    first = [(msg.source, msg.target) for step in ser.trace for msg in step]
    assert first[: n - 1] == [(i + 1, i) for i in reversed(range(n - 1))]
    assert first[n - 1 :] == [(i, i + 1) for i in range(n - 1)]
    for v in m.nodes():
        np.testing.assert_allclose(par.marginals[v], ser.marginals[v], atol=1e-13)
        for key in par.messages:
            np.testing.assert_allclose(par.messages[key], ser.messages[key], atol=1e-13)


def test_root_choice_changes_order_not_result():
    m, _ = chain_mn(5, seed=3)
    a = bp.belief_propagation(m, schedule="serial", root=0, trace=True)
    b = bp.belief_propagation(m, schedule="serial", root=4, trace=True)
    # the collect phase ends with the message into the root
    assert a.trace[3][0].target == 0 and b.trace[3][0].target == 4
    assert a.trace[0][0].source == 4 and b.trace[0][0].source == 0
    for v in m.nodes():
        np.testing.assert_allclose(a.marginals[v], b.marginals[v], atol=1e-13)


def forward_backward(fs, n, k):
    """Independent normalised forward-backward on a chain of pairwise factors."""
    alpha = [np.ones(k) / k]
    for f in fs:
        a = alpha[-1] @ f.values.reshape(k, k)
        alpha.append(a / a.sum())
    beta = [np.ones(k) / k]
    for f in reversed(fs):
        b = f.values.reshape(k, k) @ beta[-1]
        beta.append(b / b.sum())
    beta = beta[::-1]
    out = []
    for i in range(n):
        p = alpha[i] * beta[i]
        out.append(p / p.sum())
    return out


def test_ten_thousand_node_chain_is_finite_and_normalised():
    n, k = 10_000, 3
    m, fs = chain_mn(n, k, seed=7, scale=4.0)  # potentials from e^-16 to e^16
    res = bp.belief_propagation(m, schedule="serial")
    assert res.converged
    ref = forward_backward(fs, n, k)
    for i in (0, 1, n // 2, n - 1):
        np.testing.assert_allclose(res.marginals[i], ref[i], atol=1e-10)
    stacked = np.stack([res.marginals[i] for i in range(n)])
    assert np.all(np.isfinite(stacked)) and np.allclose(stacked.sum(1), 1.0, atol=1e-12)


# ----------------------------------------------------------------------------- max-product
def score(fs, assignment):
    return sum(np.log(f.values[tuple(assignment[v] for v in f.variables)]) for f in fs)


def test_max_product_map_equals_brute_force():
    rng = np.random.default_rng(8)
    for trial in range(150):
        n = int(rng.integers(1, 8))
        m, card, fs = random_tree_mn(rng, n, spread=2.0)
        ev = random_evidence(rng, card, p=0.2) if trial % 3 == 0 else None
        variables = list(m.nodes())
        joint = einsum_joint(fs, variables, card, ev)
        best = np.unravel_index(np.argmax(joint), joint.shape)
        ref = dict(zip(variables, map(int, best)))
        res = bp.belief_propagation(m, ev, kind="max", schedule="serial" if trial % 2 else "parallel")
        assert score(fs, res.map_index) == pytest.approx(score(fs, ref), abs=1e-9)
        # max-marginals: max over the other variables of the joint
        mm = bp.brute_force_marginals(m, ev, kind="max")
        for i, v in enumerate(variables):
            axes = tuple(a for a in range(n) if a != i)
            r = joint.max(axis=axes)
            np.testing.assert_allclose(res.marginals[v], r / r.sum(), atol=1e-10)
            np.testing.assert_allclose(mm[v], r / r.sum(), atol=1e-12)


def test_max_product_decodes_ties_consistently():
    # x1 = x2 with equal preference: two MAP states, the max-marginals are flat,
    # argmax per node could mix them; back-tracking must not.
    m = DiscreteMarkovNetwork([("a", "b"), ("b", "c")])
    same = np.array([[1.0, 0.01], [0.01, 1.0]])
    m.add_factors(DiscreteFactor(["a", "b"], [2, 2], same), DiscreteFactor(["b", "c"], [2, 2], same))
    res = bp.belief_propagation(m, kind="max", schedule="serial")
    x = res.map_index
    assert x["a"] == x["b"] == x["c"]
    bf, logp = bp.brute_force_map(m)
    assert bf["a"] == bf["b"] == bf["c"] and logp == pytest.approx(0.0)


def test_map_state_uses_state_names():
    fg, card, _ = random_factor_tree(np.random.default_rng(9), 3)
    res = bp.belief_propagation(fg, kind="max")
    assert all(res.map_state[v] == f"s{res.map_index[v]}" for v in card)


# ----------------------------------------------------------------------------- loopy
def cycle_mn(n, coupling, field=0.3, seed=0):
    rng = np.random.default_rng(seed)
    m = DiscreteMarkovNetwork([(i, (i + 1) % n) for i in range(n)])
    j = np.array([[np.exp(coupling), np.exp(-coupling)], [np.exp(-coupling), np.exp(coupling)]])
    fs = [DiscreteFactor([i, (i + 1) % n], [2, 2], j) for i in range(n)]
    fs += [DiscreteFactor([i], [2], np.exp(field * rng.normal() * np.array([1.0, -1.0]))) for i in range(n)]
    m.add_factors(*fs)
    return m


def test_loopy_bp_on_a_cycle_close_when_weak_far_when_strong():
    weak, strong = cycle_mn(5, 0.2), cycle_mn(5, 2.0)
    errs = {}
    for name, m in (("weak", weak), ("strong", strong)):
        res = bp.belief_propagation(m, schedule="parallel", max_iters=500)  # undamped
        assert not res.is_tree and res.converged and res.iterations > 5 and res.damping == 0.0
        ref = bp.brute_force_marginals(m)
        errs[name] = max(float(np.abs(res.marginals[v] - ref[v]).max()) for v in ref)
        # the default on a graph with cycles: parallel rounds damped by 0.5, same fixed point
        default = bp.belief_propagation(m, max_iters=2000)
        assert default.schedule == "parallel" and default.damping == bp.LOOPY_DAMPING == 0.5
        assert default.converged and default.iterations > res.iterations
        for v in ref:
            np.testing.assert_allclose(default.marginals[v], res.marginals[v], atol=1e-9)
    assert errs["weak"] < 2e-3
    assert errs["strong"] > 10 * errs["weak"]


def test_loopy_serial_parallel_and_damped_reach_the_same_fixed_point():
    m = cycle_mn(6, 0.5, seed=1)
    a = bp.belief_propagation(m, schedule="parallel", max_iters=1000, tol=1e-13)
    b = bp.belief_propagation(m, schedule="serial", max_iters=1000, tol=1e-13)
    c = bp.belief_propagation(m, schedule="parallel", damping=0.5, max_iters=2000, tol=1e-13)
    assert a.converged and b.converged and c.converged
    assert c.iterations > a.iterations
    for v in m.nodes():
        np.testing.assert_allclose(a.marginals[v], b.marginals[v], atol=1e-9)
        np.testing.assert_allclose(a.marginals[v], c.marginals[v], atol=1e-9)


def test_loopy_reports_not_converged_when_stopped_early():
    res = bp.belief_propagation(cycle_mn(5, 1.0), max_iters=2)
    assert not res.converged and res.iterations == 2 and res.max_change > 0


# ----------------------------------------------------------------------------- slide chain, trace
def test_chain3_messages_match_formulas_and_general_bp():
    rng = np.random.default_rng(10)
    phi12, phi23 = rng.random((3, 2)) + 0.1, rng.random((2, 4)) + 0.1
    psi1, psi2, psi3 = rng.random(3) + 0.1, rng.random(2) + 0.1, rng.random(4) + 0.1
    msg = bp.chain3_messages(phi12, phi23, psi1, psi2, psi3)
    np.testing.assert_allclose(msg["m32"], [sum(phi23[a, c] * psi3[c] for c in range(4)) for a in range(2)])
    np.testing.assert_allclose(
        msg["m21"], [sum(phi12[x, a] * psi2[a] * msg["m32"][a] for a in range(2)) for x in range(3)]
    )
    brute = np.einsum("a,ab,b,bc,c->a", psi1, phi12, psi2, phi23, psi3)
    np.testing.assert_allclose(msg["p1"], brute / brute.sum())
    assert msg["Z"] == pytest.approx(brute.sum())
    m = DiscreteMarkovNetwork([(1, 2), (2, 3)])
    m.add_factors(
        DiscreteFactor([1, 2], [3, 2], phi12),
        DiscreteFactor([2, 3], [2, 4], phi23),
        DiscreteFactor([1], [3], psi1),
        DiscreteFactor([2], [2], psi2),
        DiscreteFactor([3], [4], psi3),
    )
    res = bp.belief_propagation(m, schedule="serial", root=1)
    np.testing.assert_allclose(res.messages[(3, 2)], msg["m32"] / msg["m32"].sum())
    np.testing.assert_allclose(res.messages[(2, 1)], msg["m21"] / msg["m21"].sum())
    np.testing.assert_allclose(res.marginals[1], msg["p1"])
    with pytest.raises(ValueError, match="shapes"):
        bp.chain3_messages(phi12, phi23, psi2, psi2, psi3)


def test_animate_trace_builds_one_frame_per_step():
    import matplotlib

    matplotlib.use("Agg")
    m, _ = chain_mn(4)
    res = bp.belief_propagation(m, schedule="serial", trace=True)
    anim = bp.animate_trace(res)
    assert len(list(anim.new_frame_seq())) == len(res.trace) == 6
    from pgm_lab.viz import show_animation

    html = show_animation(anim).data
    assert html.count("data:image/png;base64") == 6
    with pytest.raises(ValueError, match="trace"):
        bp.animate_trace(bp.belief_propagation(m))


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    m, _ = chain_mn(3)
    with pytest.raises(ValueError, match="unknown variable 'zz'"):
        bp.belief_propagation(m, {"zz": 0})
    with pytest.raises(ValueError, match="unknown state 7 for variable 1"):
        bp.belief_propagation(m, {1: 7})
    with pytest.raises(ValueError, match="no factors"):
        bp.belief_propagation(DiscreteMarkovNetwork([("a", "b")]))
    with pytest.raises(ValueError, match="no CPDs"):
        bp.belief_propagation(DiscreteBayesianNetwork([("a", "b")]))
    with pytest.raises(ValueError, match="kind"):
        bp.belief_propagation(m, kind="mean")
    with pytest.raises(ValueError, match="schedule"):
        bp.belief_propagation(m, schedule="random")
    with pytest.raises(ValueError, match="damping"):
        bp.belief_propagation(m, damping=1.0)
    with pytest.raises(ValueError, match="max_iters"):
        bp.belief_propagation(m, max_iters=0)
    with pytest.raises(ValueError, match="root"):
        bp.belief_propagation(m, schedule="serial", root="nope")
    with pytest.raises(ValueError, match="pgmpy"):
        bp.belief_propagation(nx.Graph())
    z = DiscreteMarkovNetwork([("a", "b")])
    z.add_factors(DiscreteFactor(["a", "b"], [2, 2], [1.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="probability zero"):
        bp.belief_propagation(z, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="probability zero"):
        bp.belief_propagation(z, {"a": 1})
    fg, _, _ = random_factor_tree(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match="unknown state 'x9'"):
        bp.belief_propagation(fg, {"v0": "x9"})


# ----------------------------------------------------------------------------- default schedule (issue 16)
def random_forest_mn(rng, n):
    """Two random trees side by side (a forest): the default must treat it as a tree."""
    m1, card1, fs1 = random_tree_mn(rng, n)
    m2, card2, fs2 = random_tree_mn(rng, n)
    rename = {v: v + 100 for v in card2}
    fs2 = [DiscreteFactor([rename[v] for v in f.variables], f.cardinality, f.values) for f in fs2]
    m = DiscreteMarkovNetwork()
    m.add_nodes_from([*card1, *rename.values()])
    m.add_edges_from([*m1.edges(), *((rename[u], rename[v]) for u, v in m2.edges())])
    m.add_factors(*fs1, *fs2)
    return m, {**card1, **{rename[v]: k for v, k in card2.items()}}, fs1 + fs2


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_default_two_pass_on_random_trees_matches_brute_force_and_parallel(kind):
    rng = np.random.default_rng(20 if kind == "sum" else 21)
    for trial in range(120):
        n = int(rng.integers(1, 8))
        m, card, fs = (random_forest_mn if trial % 4 == 0 else random_tree_mn)(rng, n)
        ev = random_evidence(rng, card, p=0.25) if trial % 2 else None
        variables = list(m.nodes())
        joint = einsum_joint(fs, variables, card, ev)
        res = bp.belief_propagation(m, ev, kind=kind)
        par = bp.belief_propagation(m, ev, kind=kind, schedule="parallel")
        assert res.schedule == "serial" and res.is_tree and res.converged and res.iterations == 1
        assert res.n_messages == 2 * sum(1 for f in fs if len(f.variables) == 2)
        for i, v in enumerate(variables):
            axes = tuple(a for a in range(len(variables)) if a != i)
            r = joint.sum(axis=axes) if kind == "sum" else joint.max(axis=axes)
            np.testing.assert_allclose(res.marginals[v], r / r.sum(), atol=1e-10, rtol=0)
            np.testing.assert_allclose(res.marginals[v], par.marginals[v], atol=1e-12, rtol=0)
        for key, msg in res.messages.items():
            np.testing.assert_allclose(msg, par.messages[key], atol=1e-12, rtol=0)
        if kind == "max":
            best = np.unravel_index(np.argmax(joint), joint.shape)
            assert score(fs, res.map_index) == pytest.approx(score(fs, dict(zip(variables, map(int, best)))))


def test_default_on_factor_trees_with_three_variable_factors():
    rng = np.random.default_rng(22)
    for _ in range(60):
        fg, card, fs = random_factor_tree(rng, int(rng.integers(1, 5)))
        ev = random_evidence(rng, card)
        ref = marginals_of(einsum_joint(fs, list(card), card, ev), list(card))
        res = bp.belief_propagation(fg, ev)
        assert res.schedule == "serial" and res.iterations == 1
        for v in card:
            np.testing.assert_allclose(res.marginals[v], ref[v], atol=1e-10, rtol=0)


def test_star_with_many_leaves_uses_exclusive_products_exactly():
    """A hub with 40 leaves: the hub's outgoing messages exclude one of 40 incoming each."""
    rng = np.random.default_rng(23)
    leaves = 40
    m = DiscreteMarkovNetwork([(0, j) for j in range(1, leaves + 1)])
    pair = [rng.uniform(0.05, 3.0, (3, 2)) for _ in range(leaves)]
    unary = [rng.uniform(0.05, 3.0, 3)] + [rng.uniform(0.05, 3.0, 2) for _ in range(leaves)]
    m.factors.extend(DiscreteFactor([0, j], [3, 2], pair[j - 1]) for j in range(1, leaves + 1))
    m.factors.extend(DiscreteFactor([v], [len(u)], u) for v, u in enumerate(unary))
    # independent: given the hub x0 the leaves are independent, so p(x0) ∝ ψ0 Π_j (ψ_0j ψ_j summed)
    into_hub = [pair[j] @ unary[j + 1] for j in range(leaves)]
    log_hub = np.log(unary[0]) + np.sum(np.log(into_hub), axis=0)
    hub = np.exp(log_hub - log_hub.max())
    hub /= hub.sum()
    for root in (None, 0, 7):
        res = bp.belief_propagation(m, root=root)
        np.testing.assert_allclose(res.marginals[0], hub, atol=1e-12)
        for j in (1, 17, leaves):
            # p(x_j) = Σ_x0 p(x0) p(x_j | x0), p(x_j | x0) ∝ ψ_0j(x0, x_j) ψ_j(x_j)
            cond = pair[j - 1] * unary[j]
            cond = cond / cond.sum(axis=1, keepdims=True)
            np.testing.assert_allclose(res.marginals[j], hub @ cond, atol=1e-12)


def test_default_on_a_150_node_chain_is_one_collect_and_one_distribute():
    n = 150
    m, fs = chain_mn(n, k=2, seed=11)
    res = bp.belief_propagation(m)
    assert (res.schedule, res.iterations, res.n_messages, res.damping) == ("serial", 1, 2 * (n - 1), 0.0)
    ref = forward_backward(fs, n, 2)
    for i in range(n):
        np.testing.assert_allclose(res.marginals[i], ref[i], atol=1e-12)


def test_explicit_damping_on_a_tree_still_exact():
    m, card, fs = random_tree_mn(np.random.default_rng(24), 6)
    ref = marginals_of(einsum_joint(fs, list(m.nodes()), card), list(m.nodes()))
    for schedule in ("serial", "parallel"):
        res = bp.belief_propagation(m, schedule=schedule, damping=0.3, max_iters=500, tol=1e-14)
        assert res.converged and res.damping == 0.3
        for v in m.nodes():
            np.testing.assert_allclose(res.marginals[v], ref[v], atol=1e-10)


def test_loopy_default_reaches_the_undamped_answer_on_a_grid():
    g = nx.grid_2d_graph(3, 3)
    rng = np.random.default_rng(25)
    m = DiscreteMarkovNetwork(list(g.edges))
    m.add_factors(*[DiscreteFactor([u, v], [2, 2], np.exp(0.3 * rng.normal(size=4))) for u, v in g.edges])
    m.add_factors(*[DiscreteFactor([v], [2], np.exp(rng.normal(size=2))) for v in g.nodes])
    old = bp.belief_propagation(m, schedule="parallel", max_iters=1000, tol=1e-13)
    new = bp.belief_propagation(m, max_iters=1000, tol=1e-13)
    assert not new.is_tree and new.schedule == "parallel" and new.damping == 0.5
    assert old.converged and new.converged
    for v in g.nodes:
        np.testing.assert_allclose(new.marginals[v], old.marginals[v], atol=1e-10)


def test_brute_force_refuses_a_table_too_large_to_tabulate():
    from pgm_lab.pgmpy_adapter import TableTooLargeError

    m, _ = chain_mn(30, k=2)
    with pytest.raises(TableTooLargeError, match="too many"):
        bp.brute_force_marginals(m)
    with pytest.raises(ValueError, match="entries"):
        bp.brute_force_map(m, max_states=1000)
