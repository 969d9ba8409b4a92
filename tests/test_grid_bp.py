"""Tests of pgm_lab.grid_bp (chapter 05): scalar-message loopy BP on binary grids."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from pgmpy.factors.discrete import DiscreteFactor
from pgmpy.models import DiscreteMarkovNetwork

from pgm_lab import bp
from pgm_lab import grid_bp as grid_bp_module
from pgm_lab.grid_bp import grid_bp, grid_bp_loop

F64 = torch.float64  # the default is float32; exact comparisons run in double precision


def enumerate_grid(theta, bv, bh):
    """Exact p(x_i=+1) and the MAP image by listing all 2^(HW) images."""
    H, W = theta.shape
    X = np.array(list(itertools.product([-1, 1], repeat=H * W)), dtype=float).reshape(-1, H, W)
    logp = (X * theta).sum((1, 2))
    logp += (bv * X[:, :-1, :] * X[:, 1:, :]).sum((1, 2)) + (bh * X[:, :, :-1] * X[:, :, 1:]).sum((1, 2))
    p = np.exp(logp - logp.max())
    p /= p.sum()
    return (p[:, None, None] * (X == 1)).sum(0), X[np.argmax(logp)], logp


def couplings(beta, H, W):
    if not isinstance(beta, tuple):
        return np.full((H - 1, W), float(beta)), np.full((H, W - 1), float(beta))
    return np.asarray(beta[0], float), np.asarray(beta[1], float)


def grid_markov_network(theta, bv, bh):
    """The same model as a pgmpy Markov network, for the general BP code."""
    H, W = theta.shape
    m = DiscreteMarkovNetwork()
    m.add_nodes_from([(r, c) for r in range(H) for c in range(W)])
    fs = []
    s = np.array([-1.0, 1.0])
    for r in range(H):
        for c in range(W):
            fs.append(DiscreteFactor([(r, c)], [2], np.exp(theta[r, c] * s)))
            if r + 1 < H:
                m.add_edge((r, c), (r + 1, c))
                fs.append(DiscreteFactor([(r, c), (r + 1, c)], [2, 2], np.exp(bv[r, c] * np.outer(s, s))))
            if c + 1 < W:
                m.add_edge((r, c), (r, c + 1))
                fs.append(DiscreteFactor([(r, c), (r, c + 1)], [2, 2], np.exp(bh[r, c] * np.outer(s, s))))
    m.add_factors(*fs)
    return m


@pytest.mark.parametrize("schedule", ["parallel", "checkerboard"])
@pytest.mark.parametrize("beta", [0.3, 1.5, 20.0])
def test_chain_1xW_is_exact(schedule, beta):
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta = rng.normal(size=(1, 7)) * 2
        bv, bh = couplings(beta, 1, 7)
        p, xmap, _ = enumerate_grid(theta, bv, bh)
        res = grid_bp(theta, beta, schedule=schedule, max_iters=200, tol=1e-13, device="cpu", dtype=F64)
        assert res.converged
        np.testing.assert_allclose(res.p_plus, p, atol=1e-10)
        mx = grid_bp(
            theta, beta, kind="max", schedule=schedule, max_iters=200, tol=1e-13, device="cpu", dtype=F64
        )
        np.testing.assert_array_equal(mx.x, xmap)


def test_column_chain_Hx1_is_exact():
    theta = np.random.default_rng(1).normal(size=(6, 1))
    p, _, _ = enumerate_grid(theta, *couplings(0.8, 6, 1))
    res = grid_bp(theta, 0.8, max_iters=100, tol=1e-13, device="cpu", dtype=F64)
    np.testing.assert_allclose(res.p_plus, p, atol=1e-10)


def test_tiny_loopy_grids_are_close_for_weak_coupling_and_not_exact_for_strong():
    rng = np.random.default_rng(2)
    weak, strong = [], []
    for _ in range(5):
        theta = rng.normal(size=(3, 3)) * 0.5
        for beta, store in ((0.1, weak), (0.9, strong)):
            p, _, _ = enumerate_grid(theta, *couplings(beta, 3, 3))
            res = grid_bp(theta, beta, max_iters=500, tol=1e-12, device="cpu", dtype=F64)
            assert res.converged
            store.append(np.abs(res.p_plus - p).max())
    assert max(weak) < 5e-3
    assert max(strong) > 1e-2


def test_max_product_on_tiny_grids_never_beats_the_exact_map():
    rng = np.random.default_rng(3)
    agree = 0
    for _ in range(20):
        theta = rng.normal(size=(3, 4))
        beta = float(rng.uniform(0.1, 1.0))
        bv, bh = couplings(beta, 3, 4)
        _, xmap, _ = enumerate_grid(theta, bv, bh)

        def score(x, theta=theta, bv=bv, bh=bh):
            return (theta * x).sum() + (bv * x[:-1] * x[1:]).sum() + (bh * x[:, :-1] * x[:, 1:]).sum()

        res = grid_bp(theta, beta, kind="max", max_iters=200, damping=0.3, device="cpu", dtype=F64)
        assert score(res.x) <= score(xmap) + 1e-12
        agree += int(np.array_equal(res.x, xmap))
    assert agree >= 15  # loopy max-product finds the MAP on most tiny random instances


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_parallel_schedule_equals_general_bp_message_for_message(kind):
    rng = np.random.default_rng(4)
    theta = rng.normal(size=(3, 4))
    beta = (rng.normal(size=(2, 4)), rng.normal(size=(3, 3)))  # mixed-sign couplings
    bv, bh = couplings(beta, 3, 4)
    m = grid_markov_network(theta, bv, bh)
    for k in (1, 2, 5, 12):
        ref = bp.belief_propagation(m, kind=kind, schedule="parallel", damping=0.0, max_iters=k, tol=0.0)
        got = grid_bp(
            theta, beta, kind=kind, schedule="parallel", max_iters=k, tol=0.0, device="cpu", dtype=F64
        )
        for (r, c), v in ref.marginals.items():
            assert got.p_plus[r, c] == pytest.approx(v[1], abs=1e-10)


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_textbook_loop_equals_vectorised(kind):
    theta = np.random.default_rng(5).normal(size=(4, 5))
    for n in (1, 3):
        loop = grid_bp_loop(theta, 0.7, kind=kind, n_sweeps=n)
        vec = grid_bp(theta, 0.7, kind=kind, schedule="parallel", max_iters=n, tol=0, device="cpu", dtype=F64)
        np.testing.assert_allclose(loop, vec.belief, atol=1e-12)


def test_schedules_and_damping_reach_the_same_fixed_point():
    theta = np.random.default_rng(6).normal(size=(8, 9))
    runs = [
        grid_bp(theta, 0.4, schedule="parallel", max_iters=500, tol=1e-12, device="cpu", dtype=F64),
        grid_bp(theta, 0.4, schedule="checkerboard", max_iters=500, tol=1e-12, device="cpu", dtype=F64),
        grid_bp(
            theta, 0.4, schedule="parallel", damping=0.5, max_iters=2000, tol=1e-12, device="cpu", dtype=F64
        ),
    ]
    assert all(r.converged for r in runs)
    assert runs[1].iterations < runs[0].iterations < runs[2].iterations
    for r in runs[1:]:
        np.testing.assert_allclose(r.belief, runs[0].belief, atol=1e-9)


def test_float32_callback_and_history():
    theta = np.random.default_rng(7).normal(size=(16, 16))
    seen = []
    res = grid_bp(
        theta,
        0.5,
        dtype=torch.float32,
        device="cpu",
        max_iters=30,
        tol=1e-5,
        callback=lambda it, b: seen.append(it) or float(b.abs().mean()),
    )
    ref = grid_bp(theta, 0.5, device="cpu", max_iters=30, tol=1e-5)
    assert seen == list(range(1, res.iterations + 1)) and len(res.history) == res.iterations
    assert len(res.changes) == res.iterations and res.changes[-1] < 1e-5
    np.testing.assert_allclose(res.belief, ref.belief, atol=1e-4)
    assert set(np.unique(res.x)) <= {-1, 1} and res.x.dtype == np.int8


def test_not_converged_when_stopped_early():
    theta = np.random.default_rng(8).normal(size=(10, 10))
    res = grid_bp(theta, 1.0, max_iters=2, device="cpu")
    assert not res.converged and res.iterations == 2


def test_errors():
    theta = np.zeros((3, 3))
    with pytest.raises(ValueError, match="kind"):
        grid_bp(theta, 1.0, kind="mean", device="cpu")
    with pytest.raises(ValueError, match="schedule"):
        grid_bp(theta, 1.0, schedule="random", device="cpu")
    with pytest.raises(ValueError, match="2-D"):
        grid_bp(np.zeros(4), 1.0, device="cpu")
    with pytest.raises(ValueError, match="beta_vertical"):
        grid_bp(theta, (np.zeros((3, 3)), np.zeros((3, 2))), device="cpu")
    with pytest.raises(ValueError, match="finite"):
        grid_bp(theta, float("nan"), device="cpu")
    with pytest.raises(ValueError, match="damping"):
        grid_bp(theta, 1.0, damping=1.0, device="cpu")
    with pytest.raises(ValueError, match="theta must be finite"):
        grid_bp(np.full((2, 2), np.inf), 1.0, device="cpu")
    with pytest.raises(ValueError, match="kind"):
        grid_bp_loop(theta, 1.0, kind="x")


def checkerboard_loop(theta, bv, bh, n_sweeps, damping):
    """Checkerboard sum-product BP pixel by pixel: black senders, then white, damped (float64)."""
    H, W = theta.shape
    beta = {}
    for r in range(H):
        for c in range(W):
            if r + 1 < H:
                beta[(r, c), (r + 1, c)] = beta[(r + 1, c), (r, c)] = bv[r, c]
            if c + 1 < W:
                beta[(r, c), (r, c + 1)] = beta[(r, c + 1), (r, c)] = bh[r, c]
    mu = dict.fromkeys(beta, 0.0)  # mu[j, i]: message from j to i
    nbrs = {(r, c): [j for (j, i) in beta if i == (r, c)] for r in range(H) for c in range(W)}
    for _ in range(n_sweeps):
        for colour in (0, 1):
            new = {}
            for (j, i), b in beta.items():
                if sum(j) % 2 == colour:
                    cav = theta[j] + sum(mu[k, j] for k in nbrs[j] if k != i)
                    new[j, i] = (1 - damping) * np.arctanh(np.tanh(b) * np.tanh(cav)) + damping * mu[j, i]
            mu.update(new)
    return np.array(
        [[theta[r, c] + sum(mu[j, (r, c)] for j in nbrs[r, c]) for c in range(W)] for r in range(H)]
    )


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (2, 3), (3, 5), (5, 2), (4, 6)])
def test_checkerboard_equals_a_pixel_by_pixel_loop_on_every_shape(shape):
    rng = np.random.default_rng(sum(shape))
    theta = rng.normal(size=shape)
    beta = (rng.normal(size=(shape[0] - 1, shape[1])), rng.normal(size=(shape[0], shape[1] - 1)))
    for k, d in ((1, 0.0), (3, 0.0), (4, 0.3)):
        ref = checkerboard_loop(theta, *beta, k, d)
        got = grid_bp(theta, beta, max_iters=k, tol=0, damping=d, device="cpu", dtype=F64)
        np.testing.assert_allclose(got.belief, ref, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 5), (5, 2)])
def test_parallel_schedule_equals_general_bp_on_odd_shapes(shape):
    rng = np.random.default_rng(9)
    theta = rng.normal(size=shape)
    beta = (rng.normal(size=(shape[0] - 1, shape[1])), rng.normal(size=(shape[0], shape[1] - 1)))
    m = grid_markov_network(theta, *beta)
    for kind in ("sum", "max"):
        ref = bp.belief_propagation(m, kind=kind, schedule="parallel", damping=0.0, max_iters=4, tol=0.0)
        got = grid_bp(
            theta, beta, kind=kind, schedule="parallel", max_iters=4, tol=0, device="cpu", dtype=F64
        )
        for (r, c), v in ref.marginals.items():
            assert got.p_plus[r, c] == pytest.approx(v[1], abs=1e-10)


def test_default_float32_is_within_1e5_of_float64_and_converges_at_the_default_tol():
    theta = 2.1 * np.random.default_rng(10).choice([-1.0, 1.0], size=(64, 48))
    for kind in ("sum", "max"):
        f32 = grid_bp(theta, 1.0, kind=kind, max_iters=200, device="cpu")
        f64 = grid_bp(theta, 1.0, kind=kind, max_iters=200, device="cpu", dtype=F64)
        assert f32.converged and f64.converged
        np.testing.assert_allclose(f32.belief, f64.belief, atol=1e-5)


def test_strong_coupling_in_float32_takes_the_log_cosh_form_and_stays_exact():
    rng = np.random.default_rng(11)
    theta = rng.normal(size=(1, 7)) * 2
    for beta in (20.0, -60.0):
        p, xmap, _ = enumerate_grid(theta, *couplings(beta, 1, 7))
        res = grid_bp(theta, beta, max_iters=50, tol=1e-7, device="cpu")
        np.testing.assert_allclose(res.p_plus, p, atol=1e-6)
        np.testing.assert_array_equal(res.x, xmap)


def test_threads_from_pgm_lab_threads_give_identical_results(monkeypatch):
    theta = np.random.default_rng(12).normal(size=(37, 23))
    one = grid_bp(theta, 0.6, max_iters=7, tol=0, damping=0.2, device="cpu")
    monkeypatch.setenv("PGM_LAB_THREADS", "3")
    three = grid_bp(theta, 0.6, max_iters=7, tol=0, damping=0.2, device="cpu")
    np.testing.assert_array_equal(one.belief, three.belief)
    assert one.changes == three.changes
    monkeypatch.setenv("PGM_LAB_THREADS", "zero")
    with pytest.raises(ValueError, match="PGM_LAB_THREADS"):
        grid_bp(theta, 0.6, device="cpu")


def test_torch_backend_gives_the_numpy_results(monkeypatch):
    """The GPU path is the same code on torch tensors; run it on the CPU here."""
    theta = np.random.default_rng(13).normal(size=(9, 8))
    beta = (np.random.default_rng(14).normal(size=(8, 8)), np.full((9, 7), 0.5))
    runs = {}
    for name in ("numpy", "torch"):
        if name == "torch":
            monkeypatch.setattr(
                grid_bp_module,
                "_backend",
                lambda device, dtype: grid_bp_module._Torch(F64, torch.device("cpu")),
            )
        for kind in ("sum", "max"):
            for schedule in ("checkerboard", "parallel"):
                seen = []
                r = grid_bp(
                    theta,
                    beta,
                    kind=kind,
                    schedule=schedule,
                    max_iters=6,
                    tol=1e-9,
                    damping=0.1,
                    device="cpu",
                    dtype=F64,
                    callback=lambda it, b, seen=seen: seen.append(type(b)),
                )
                assert seen and all(t is torch.Tensor for t in seen)
                runs[name, kind, schedule] = r.belief
    for key, b in runs.items():
        if key[0] == "torch":
            np.testing.assert_allclose(b, runs[("numpy", *key[1:])], atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    theta = 2.1 * np.random.default_rng(15).choice([-1.0, 1.0], size=(128, 96))
    cpu = grid_bp(theta, 1.0, max_iters=30, tol=0, damping=0.5, device="cpu", dtype=F64)
    gpu = grid_bp(theta, 1.0, max_iters=30, tol=0, damping=0.5, device="cuda", dtype=F64)
    np.testing.assert_allclose(gpu.belief, cpu.belief, atol=1e-10)


def test_dtype_errors():
    with pytest.raises(ValueError, match="dtype"):
        grid_bp(np.zeros((3, 3)), 1.0, device="cpu", dtype=torch.int32)


def test_benchmark_without_the_peer_environment_says_so_and_skips(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_grid_bp.py"
    spec = importlib.util.spec_from_file_location("bench_grid_bp_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.PEERS.PEERS = tmp_path / "nothing-here"  # no environment: never created here
    theta = 2.1 * np.random.default_rng(16).choice([-1.0, 1.0], size=(16, 16))
    (row,) = bench._pgmax_rows(theta, theta[:8, :8], 16)
    assert "SKIPPED" in row["what"] and "make bench-peers" in row["what"]
    assert np.isnan(row["peer"]) and row["ours"] > 0
