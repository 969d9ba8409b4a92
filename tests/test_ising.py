"""Tests of pgm_lab.ising (chapter 05): energy, ICM, graph cut, BP, sampling, images, widget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pgm_lab import ising


def rand_spins(rng, shape, p=0.5):
    return np.where(rng.random(shape) < p, 1, -1).astype(np.int8)


def literal_energy(x, y, h, beta, eta):
    """E(x, y) summed pixel by pixel over each pair {i, j} once, as written on the slide."""
    H, W = x.shape
    e = 0.0
    for r in range(H):
        for c in range(W):
            e += h * x[r, c] - eta * x[r, c] * y[r, c]
            if r + 1 < H:
                e -= beta * x[r, c] * x[r + 1, c]
            if c + 1 < W:
                e -= beta * x[r, c] * x[r, c + 1]
    return e


# (0, 1, 2) and (-0.5, 2, 0.5) contain exact energy ties (kept: the loop keeps x_j); the others avoid
# near-ties that floating-point rounding would break differently in a total-energy computation.
PARAMS = [(0.0, 1.0, 2.1), (0.25, 0.7, 1.1), (-0.5, 2.0, 0.5), (0.2, 0.0, 1.5), (0.0, 1.0, 2.0)]


# ----------------------------------------------------------------------------- energy
@pytest.mark.parametrize("h,beta,eta", PARAMS)
def test_energy_matches_the_slide_formula(h, beta, eta):
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 5), (4, 3), (6, 7)]:
        x, y = rand_spins(rng, shape), rand_spins(rng, shape)
        assert ising.energy(x, y, h=h, beta=beta, eta=eta) == pytest.approx(
            literal_energy(x, y, h, beta, eta)
        )
        terms = ising.energy_terms(x, y, h=h, beta=beta, eta=eta)
        assert sum(terms.values()) == pytest.approx(ising.energy(x, y, h=h, beta=beta, eta=eta))
    ones = np.ones((3, 4), np.int8)
    # all +1 and y = x: D = 12 pixels, 17 neighbour pairs
    assert ising.energy(ones, ones, h=h, beta=beta, eta=eta) == pytest.approx(12 * h - 17 * beta - 12 * eta)


def test_local_field_is_half_the_energy_difference():
    rng = np.random.default_rng(1)
    h, beta, eta = 0.2, 0.8, 1.3
    x, y = rand_spins(rng, (5, 6)), rand_spins(rng, (5, 6))
    a = ising.local_field(x, y, h=h, beta=beta, eta=eta)
    for r, c in [(0, 0), (2, 3), (4, 5), (0, 4)]:
        xp, xm = x.copy(), x.copy()
        xp[r, c], xm[r, c] = 1, -1
        diff = ising.energy(xp, y, h=h, beta=beta, eta=eta) - ising.energy(xm, y, h=h, beta=beta, eta=eta)
        assert diff == pytest.approx(-2 * a[r, c])


# ----------------------------------------------------------------------------- ICM
def literal_icm(y, h, beta, eta, max_sweeps=50):
    """The slide's ICM with the *total* energy computed for both states of every pixel."""
    x = y.copy()
    for _ in range(max_sweeps):
        changed = False
        for r, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
            xp, xm = x.copy(), x.copy()
            xp[r, c], xm[r, c] = 1, -1
            ep = literal_energy(xp, y, h, beta, eta)
            em = literal_energy(xm, y, h, beta, eta)
            new = 1 if ep < em else (-1 if em < ep else x[r, c])
            if new != x[r, c]:
                x[r, c], changed = new, True
        if not changed:
            break
    return x


def is_local_minimum(x, y, h, beta, eta):
    a = ising.local_field(x, y, h=h, beta=beta, eta=eta)
    return bool(np.all(x * a >= 0))  # flipping any single pixel cannot lower E


@pytest.mark.parametrize("h,beta,eta", PARAMS)
def test_icm_loop_is_the_slide_algorithm(h, beta, eta):
    rng = np.random.default_rng(2)
    for shape in [(3, 4), (5, 5)]:
        y = rand_spins(rng, shape)
        res = ising.icm(y, h=h, beta=beta, eta=eta, method="loop")
        np.testing.assert_array_equal(res.x, literal_icm(y, h, beta, eta))


@pytest.mark.parametrize("method", ["loop", "checkerboard"])
@pytest.mark.parametrize("h,beta,eta", PARAMS)
def test_icm_energy_never_increases_and_ends_in_a_local_minimum(method, h, beta, eta):
    rng = np.random.default_rng(3)
    x_true = ising.horse(step=8)
    y = ising.flip_noise(x_true, 0.15, rng)
    res = ising.icm(y, h=h, beta=beta, eta=eta, method=method)
    assert res.converged and res.changes[-1] == 0
    assert len(res.energies) == res.sweeps + 1
    assert res.energies[0] == pytest.approx(ising.energy(y, y, h=h, beta=beta, eta=eta))
    assert np.all(np.diff(res.energies) <= 1e-9)
    assert res.energies[-1] == pytest.approx(ising.energy(res.x, y, h=h, beta=beta, eta=eta))
    assert is_local_minimum(res.x, y, h, beta, eta)


def test_checkerboard_icm_applies_the_rule_to_one_colour_at_a_time():
    rng = np.random.default_rng(4)
    h, beta, eta = 0.1, 1.0, 1.2
    y = rand_spins(rng, (7, 9))
    x = y.astype(float)
    black = (np.add.outer(np.arange(7), np.arange(9)) % 2) == 0
    for _ in range(50):
        old = x.copy()
        for mask in (black, ~black):
            a = ising.local_field(x, y, h=h, beta=beta, eta=eta)
            new = np.where(a > 0, 1.0, np.where(a < 0, -1.0, x))
            x = np.where(mask, new, x)
        if np.array_equal(x, old):
            break
    res = ising.icm(y, h=h, beta=beta, eta=eta, method="checkerboard")
    np.testing.assert_array_equal(res.x, x.astype(np.int8))


def test_icm_matches_prml_reference_on_the_horse():
    x = ising.horse()
    y = ising.flip_noise(x, 0.1, np.random.default_rng(0))
    icm_err = ising.pixel_error(ising.icm(y, h=0, beta=1.0, eta=2.1).x, x)
    gc = ising.graph_cut(y, h=0, beta=1.0, eta=2.1)
    gc_err = ising.pixel_error(gc, x)
    assert 0.025 < icm_err < 0.05  # PRML: about 4%
    assert gc_err < 0.01  # PRML: under 1%


# ----------------------------------------------------------------------------- graph cut
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 4), (4, 4), (1, 9)])
def test_graph_cut_reaches_the_brute_force_minimum(shape):
    rng = np.random.default_rng(5)
    for _ in range(8):
        y = rand_spins(rng, shape)
        h, beta, eta = float(rng.normal() * 0.5), float(rng.uniform(0, 2)), float(rng.uniform(0, 3))
        x_gc = ising.graph_cut(y, h=h, beta=beta, eta=eta)
        _, e_min = ising.brute_force_map(y, h=h, beta=beta, eta=eta)
        assert ising.energy(x_gc, y, h=h, beta=beta, eta=eta) == pytest.approx(e_min, abs=1e-9)


def test_graph_cut_never_worse_than_icm_or_loopy_bp():
    rng = np.random.default_rng(6)
    x_true = ising.horse(step=6)
    for _ in range(6):
        y = ising.flip_noise(x_true, float(rng.uniform(0.02, 0.3)), rng)
        h, beta, eta = float(rng.normal() * 0.3), float(rng.uniform(0.2, 2)), float(rng.uniform(0.5, 3))
        e_gc = ising.energy(ising.graph_cut(y, h=h, beta=beta, eta=eta), y, h=h, beta=beta, eta=eta)
        for method in ("loop", "checkerboard"):
            assert e_gc <= ising.icm(y, h=h, beta=beta, eta=eta, method=method).energies[-1] + 1e-9
        bp = ising.loopy_bp(y, h=h, beta=beta, eta=eta, device="cpu", damping=0.2)
        assert e_gc <= ising.energy(bp.x, y, h=h, beta=beta, eta=eta) + 1e-9


def test_loopy_bp_tracks_energy_and_gets_close_to_graph_cut():
    x_true = ising.horse(step=4)
    y = ising.flip_noise(x_true, 0.1, np.random.default_rng(7))
    res = ising.loopy_bp(y, h=0, beta=1.0, eta=2.1, track_energy=True, device="cpu")
    assert len(res.history) == res.iterations
    assert res.history[-1] == pytest.approx(ising.energy(res.x, y, h=0, beta=1.0, eta=2.1))
    e_gc = ising.energy(ising.graph_cut(y, h=0, beta=1.0, eta=2.1), y, h=0, beta=1.0, eta=2.1)
    assert res.history[-1] - e_gc < 0.002 * abs(e_gc)


# ----------------------------------------------------------------------------- posterior
def exact_posterior_mean(y, h, beta, eta):
    H, W = y.shape
    X = np.array(list(itertools.product([-1, 1], repeat=H * W)), dtype=float).reshape(-1, H, W)
    e = np.array([literal_energy(x, y, h, beta, eta) for x in X])
    p = np.exp(-(e - e.min()))
    p /= p.sum()
    return (p[:, None, None] * X).sum(0)


def test_gibbs_estimates_the_posterior_mean():
    rng = np.random.default_rng(8)
    y = rand_spins(rng, (3, 3))
    h, beta, eta = 0.1, 0.5, 0.6
    exact = exact_posterior_mean(y, h, beta, eta)
    res = ising.gibbs(y, h=h, beta=beta, eta=eta, n_sweeps=10000, burn_in=100, rng=0)
    assert np.abs(res.mean - exact).max() < 0.05  # Monte Carlo error at 10,000 sweeps is about 0.02
    np.testing.assert_allclose(res.p_plus, (1 + res.mean) / 2)
    assert len(res.energies) == 10000


def test_mean_field_is_a_fixed_point_and_close_for_weak_coupling():
    rng = np.random.default_rng(9)
    y = rand_spins(rng, (3, 3))
    h, beta, eta = 0.1, 0.2, 0.6
    res = ising.mean_field(y, h=h, beta=beta, eta=eta, tol=1e-12, max_iters=1000)
    assert res.converged
    m = res.mean
    np.testing.assert_allclose(m, np.tanh(-h + beta * ising.neighbour_sum(m) + eta * y), atol=1e-10)
    assert np.abs(m - exact_posterior_mean(y, h, beta, eta)).max() < 0.05


# ----------------------------------------------------------------------------- images, noise
def test_images_and_noise():
    x = ising.horse()
    assert x.shape == (328, 400) and x.dtype == np.int8 and set(np.unique(x)) == {-1, 1}
    assert 0.3 < np.mean(x == -1) < 0.36  # the horse is about a third of the picture
    assert ising.horse(step=2).shape == (164, 200)
    t = ising.text_image("AB", size=(40, 80), font_size=30)
    assert t.shape == (40, 80) and 0.02 < np.mean(t == -1) < 0.5
    assert not np.array_equal(t, ising.text_image("XY", size=(40, 80), font_size=30))
    y = ising.flip_noise(x, 0.1, np.random.default_rng(0))
    assert 0.095 < ising.pixel_error(y, x) < 0.105
    np.testing.assert_array_equal(ising.flip_noise(x, 0.0, 1), x)
    np.testing.assert_array_equal(ising.flip_noise(x, 1.0, 1), -x)
    np.testing.assert_array_equal(ising.flip_noise(x, 0.2, 5), ising.flip_noise(x, 0.2, 5))


def test_compare_methods_and_parameter_grid():
    x = ising.horse(step=8)
    y = ising.flip_noise(x, 0.1, 0)
    rows = ising.compare_methods(x, y, h=0, beta=1.0, eta=2.1)
    assert [r["method"] for r in rows] == ["icm-loop", "icm", "graph_cut", "loopy_bp"]
    by = {r["method"]: r for r in rows}
    assert by["graph_cut"]["energy"] <= min(r["energy"] for r in rows) + 1e-9
    errs, imgs = ising.parameter_grid(x, y, [0.0, 1.0], [0.5, 2.0, 3.0])
    assert errs.shape == (2, 3) and len(imgs) == 2 and imgs[1][2].shape == x.shape
    # β = 0 with η > 0 gives back y: nothing couples the pixels
    assert errs[0, 1] == pytest.approx(ising.pixel_error(y, x))


def test_denoise_explorer_widget_reacts_to_sliders():
    import matplotlib

    matplotlib.use("Agg")
    x = ising.horse(step=8)
    y = ising.flip_noise(x, 0.1, 0)
    w = ising.denoise_explorer(x, y)
    first = dict(w.result)
    assert first["energy"] == pytest.approx(
        ising.energy(ising.graph_cut(y, h=0, beta=1.0, eta=2.1), y, h=0, beta=1.0, eta=2.1)
    )
    beta_slider = next(c for c in w.children if getattr(c, "description", "") == "β")
    beta_slider.value = 0.0
    assert w.result["pixel error"] == pytest.approx(ising.pixel_error(y, x))
    assert w.result != first
    with pytest.raises(ValueError, match="method"):
        ising.denoise_explorer(x, y, method="magic")


# ----------------------------------------------------------------------------- errors
def test_bad_input_raises_value_error_naming_the_problem():
    y = np.ones((3, 3), np.int8)
    with pytest.raises(ValueError, match="only -1 and \\+1"):
        ising.energy(np.zeros((3, 3)), y, h=0, beta=1, eta=1)
    with pytest.raises(ValueError, match="y must contain only"):
        ising.icm(np.full((3, 3), 2), h=0, beta=1, eta=1)
    with pytest.raises(ValueError, match="boolean"):
        ising.graph_cut(np.ones((3, 3), bool), h=0, beta=1, eta=1)
    with pytest.raises(ValueError, match="beta must be non-negative"):
        ising.graph_cut(y, h=0, beta=-0.5, eta=1)
    with pytest.raises(ValueError, match="beta must be non-negative"):
        ising.icm(y, h=0, beta=-1, eta=1)
    with pytest.raises(ValueError, match="same shape"):
        ising.energy(np.ones((3, 4)), y, h=0, beta=1, eta=1)
    with pytest.raises(ValueError, match="same shape"):
        ising.pixel_error(np.ones((2, 3)), y)
    with pytest.raises(ValueError, match="2-D"):
        ising.graph_cut(np.ones(5), h=0, beta=1, eta=1)
    with pytest.raises(ValueError, match="h must be a finite number"):
        ising.energy(y, y, h=float("nan"), beta=1, eta=1)
    with pytest.raises(ValueError, match="method"):
        ising.icm(y, h=0, beta=1, eta=1, method="fast")
    with pytest.raises(ValueError, match="probability"):
        ising.flip_noise(y, 1.5)
    with pytest.raises(ValueError, match="too many"):
        ising.brute_force_map(np.ones((5, 5), np.int8), h=0, beta=1, eta=1)
    with pytest.raises(ValueError, match="burn_in"):
        ising.gibbs(y, h=0, beta=1, eta=1, n_sweeps=10, burn_in=10)
