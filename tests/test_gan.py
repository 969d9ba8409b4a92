"""GANs (chapter 09): the value function, both generator losses, D*, mode counting, the models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pgm_lab as pl
from pgm_lab.models.gan import (
    GAN,
    ConditionalGAN,
    MLPDiscriminator,
    discriminator_loss,
    generator_loss,
    mode_coverage,
    optimal_discriminator,
    value_function,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


REAL = torch.tensor([2.0, 0.5, -1.0, 3.0])
FAKE = torch.tensor([-2.0, 0.0, 1.0])


def test_value_function_equals_its_formula():
    d_real, d_fake = torch.sigmoid(REAL), torch.sigmoid(FAKE)
    expected = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
    assert torch.allclose(value_function(REAL, FAKE), expected, atol=1e-6)
    assert torch.allclose(discriminator_loss(REAL, FAKE), -expected, atol=1e-6)
    # stable for confident discriminators where the probabilities round to 0 or 1
    assert math.isfinite(float(value_function(torch.tensor([100.0]), torch.tensor([-100.0]))))
    assert abs(float(value_function(torch.tensor([100.0]), torch.tensor([-100.0])))) < 1e-6


def test_generator_losses_equal_their_formulas():
    d_fake = torch.sigmoid(FAKE)
    assert torch.allclose(generator_loss(FAKE, "minimax"), torch.log(1 - d_fake).mean(), atol=1e-6)
    assert torch.allclose(generator_loss(FAKE, "nonsaturating"), -torch.log(d_fake).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="loss"):
        generator_loss(FAKE, "wasserstein")


def test_minimax_gradient_vanishes_where_nonsaturating_does_not():
    logits = torch.tensor([-8.0, 0.0, 8.0], requires_grad=True)  # D(G(z)) ≈ 3e-4, 0.5, 1
    (g_mm,) = torch.autograd.grad(generator_loss(logits, "minimax"), logits)
    (g_ns,) = torch.autograd.grad(generator_loss(logits, "nonsaturating"), logits)
    d = torch.sigmoid(logits.detach())
    assert torch.allclose(g_mm, -d / 3, atol=1e-7)  # d/dl log(1 − σ(l)) = −σ(l)
    assert torch.allclose(g_ns, -(1 - d) / 3, atol=1e-7)  # d/dl −log σ(l) = −(1 − σ(l))
    assert abs(float(g_mm[0])) < 1e-3 < abs(float(g_ns[0]))  # D confident the fake is fake


def test_optimal_discriminator_formula_and_edge_cases():
    pd, pg = np.array([0.2, 0.0, 0.0, 3.0]), np.array([0.6, 1.0, 0.0, 1.0])
    assert np.allclose(optimal_discriminator(pd, pg), [0.25, 0.0, 0.5, 0.75])
    assert torch.allclose(
        optimal_discriminator(torch.tensor(pd), torch.tensor(pg)), torch.tensor([0.25, 0, 0.5, 0.75]).double()
    )
    with pytest.raises(ValueError, match="non-negative"):
        optimal_discriminator([-0.1], [0.2])


def test_trained_discriminator_approaches_d_star():
    """Maximising V over D with the generator fixed gives p_data / (p_data + p_g) (1-D, few seconds)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(4000, 1, generator=g) * 0.5 + 1.0  # p_data = N(1, 0.5²)
    fake = torch.randn(4000, 1, generator=g) * 1.0 - 0.5  # p_g = N(−0.5, 1)
    d = MLPDiscriminator(1, hidden=32, layers=2)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(400):
        loss = discriminator_loss(d(real), d(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = torch.linspace(-1.0, 2.0, 31)[:, None]

    def normal_pdf(x, mu, s):
        return torch.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    d_star = optimal_discriminator(normal_pdf(grid, 1.0, 0.5), normal_pdf(grid, -0.5, 1.0)).squeeze(1)
    with torch.no_grad():
        d_hat = torch.sigmoid(d(grid))
    assert float((d_hat - d_star).abs().max()) < 0.08


def test_mode_coverage_counts():
    centres = pl.data.toy2d_centres("ring")
    rng = np.random.default_rng(0)
    pts = np.concatenate([centres[k] + 0.05 * rng.standard_normal((100, 2)) for k in (0, 3, 5)])
    far = np.zeros((30, 2))  # the centre of the ring: near no mode
    r = mode_coverage(np.concatenate([pts, far]), centres, 0.05)
    assert r["covered"] == 3
    # within 3σ of a 2-D Gaussian's centre: 1 − e^{−9/2} ≈ 98.9% of its samples
    assert all(95 <= r["counts"][k] <= 100 for k in (0, 3, 5)) and sum(r["counts"]) <= 300
    assert math.isclose(r["good"], sum(r["counts"]) / 330)
    # a mode with fewer than min_share of the samples is not covered
    few = np.concatenate([pts, centres[1] + 0.01 * rng.standard_normal((2, 2))])
    assert mode_coverage(few, centres, 0.05, min_share=0.02)["covered"] == 3
    with pytest.raises(ValueError, match="share d"):
        mode_coverage(np.zeros((3, 3)), centres, 0.05)


def test_gan_shapes_ranges_and_bad_input():
    torch.manual_seed(0)
    img = GAN((1, 8, 8))
    x = img.sample(6, generator=0)
    assert x.shape == (6, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal(x, img.sample(6, generator=0))
    vec = GAN((2,))
    assert vec.sample(5).shape == (5, 2)
    assert vec.discriminate(torch.randn(5, 2)).shape == (5,)
    with pytest.raises(ValueError, match="divisible by 4"):
        GAN((1, 6, 6))
    with pytest.raises(ValueError, match="loss"):
        GAN((2,), loss="hinge")
    with pytest.raises(ValueError, match="shaped"):
        img.discriminate(torch.rand(3, 1, 7, 7))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        img.discriminate(torch.rand(3, 1, 8, 8) + 1)
    with pytest.raises(ValueError, match="z must"):
        img.sample(3, z=torch.randn(3, 5))
    with pytest.raises(ValueError, match="unconditional"):
        img.sample(2, labels=[1, 2])


def test_training_step_alternates_and_logs():
    torch.manual_seed(0)
    m = GAN((2,), loss="minimax", hidden=16, layers=2)
    opts = m.configure_optimizers(1e-3)
    assert len(opts) == 2
    assert {id(p) for p in opts[0].param_groups[0]["params"]} == {id(p) for p in m.G.parameters()}
    assert {id(p) for p in opts[1].param_groups[0]["params"]} == {id(p) for p in m.D.parameters()}
    g0 = [p.detach().clone() for p in m.G.parameters()]
    d0 = [p.detach().clone() for p in m.D.parameters()]
    logs = m.training_step(torch.randn(32, 2), None, opts)
    assert set(logs) == {"loss_D", "loss_G", "D_real", "D_fake", "grad_G"}
    assert all(math.isfinite(v) for v in logs.values()) and 0 < logs["D_real"] < 1
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, m.D.parameters()))


def test_gan_learns_a_gaussian_through_fit():
    g = torch.Generator().manual_seed(0)
    target = torch.tensor([1.0, -1.0])
    data = target + 0.2 * torch.randn(2000, 2, generator=g)
    m = GAN((2,), hidden=32, layers=2)
    start = float((m.sample(500, generator=0).mean(0) - target).norm())
    h = pl.train.fit(
        m,
        data,
        steps=600,
        lr=1e-3,
        cache=False,
        progress=False,
        snapshot=lambda model: model.sample(500, generator=0),
        snapshot_every=60,
    )
    assert {"loss_D", "loss_G", "D_real", "D_fake", "grad_G"} <= set(h.logs)
    # GAN training oscillates around the data: average the generator's last snapshots
    late = torch.stack([s.mean(0) for _, s in h.snapshots[-5:]]).mean(0)
    assert start > 1.0 and float((late - target).norm()) < 0.3
    assert float(h.snapshots[-1][1].std(0).max()) < 0.6
    # at the equilibrium the discriminator cannot tell: D ≈ 1/2 on both
    assert abs(np.mean(h["D_real"][-100:]) - 0.5) < 0.1 and abs(np.mean(h["D_fake"][-100:]) - 0.5) < 0.1


def test_conditional_gan_requires_and_uses_labels():
    with pytest.raises(ValueError, match="n_classes"):
        ConditionalGAN((1, 8, 8))
    torch.manual_seed(0)
    m = ConditionalGAN((1, 8, 8), n_classes=10)
    with pytest.raises(ValueError, match="labels"):
        m.sample(3)
    with pytest.raises(ValueError, match="labels must lie"):
        m.sample(2, labels=[0, 10])
    z = torch.randn(2, m.z_dim)
    a = m.sample(2, labels=[1, 1], z=z)
    b = m.sample(2, labels=[7, 7], z=z)
    assert a.shape == (2, 1, 8, 8) and not torch.allclose(a, b)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    assert m.discriminate(x, y).shape == (16,)
    h = pl.train.fit(m, (x, y), steps=2, cache=False, progress=False)
    assert len(h["loss_D"]) == 2
    vec = ConditionalGAN((2,), n_classes=3)
    assert vec.sample(4, labels=[0, 1, 2, 0]).shape == (4, 2)


def test_discriminator_head_start_freezes_the_generator():
    torch.manual_seed(0)
    m = GAN((2,), hidden=16, layers=2, d_warmup=3)
    opts = m.configure_optimizers(1e-2)
    g0 = [p.detach().clone() for p in m.G.parameters()]
    for _ in range(3):
        logs = m.training_step(torch.randn(32, 2), None, opts)
        assert logs["grad_G"] > 0  # the gradient is measured ...
    assert all(torch.equal(a, b) for a, b in zip(g0, m.G.parameters()))  # ... but not applied
    m.training_step(torch.randn(32, 2), None, opts)
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.G.parameters()))
    with pytest.raises(ValueError, match="d_warmup"):
        GAN((2,), d_warmup=-1)


def test_minibatch_std_feature_sees_diversity():
    torch.manual_seed(0)
    m = GAN((1, 8, 8), mbstd=True)
    same = torch.rand(1, 1, 8, 8).expand(16, 1, 8, 8)
    varied = torch.rand(16, 1, 8, 8)
    feats = {}
    hook = m.D.out.register_forward_hook(lambda mod, inp, out: feats.setdefault(len(feats), inp[0]))
    with torch.no_grad():
        m.D(same * 2 - 1)
        m.D(varied * 2 - 1)
    hook.remove()
    # the appended channel (last 2×2 block of features) holds the batch standard deviation
    assert float(feats[0][:, -4:].abs().max()) == 0.0
    assert float(feats[1][:, -4:].min()) > 0.0
    assert GAN((1, 8, 8), mbstd=False).D.out.in_features == 64 * 4
    sn = GAN((1, 8, 8), spectral=True)
    assert sn.sample(2).shape == (2, 1, 8, 8) and sn.D(torch.zeros(2, 1, 8, 8)).shape == (2,)


def test_generator_ema_and_vector_minibatch_std():
    torch.manual_seed(0)
    m = GAN((2,), hidden=16, layers=2, ema=0.9, mbstd=True)
    assert m.sampler is m.G_ema and m.D.out.in_features == 17
    opts = m.configure_optimizers(1e-2)
    before = [p.detach().clone() for p in m.G_ema.parameters()]
    m.training_step(torch.randn(32, 2), None, opts)
    d = min(0.9, 1 / 10)
    for e, b, p in zip(m.G_ema.parameters(), before, m.G.parameters()):
        assert torch.allclose(e, d * b + (1 - d) * p.detach(), atol=1e-6)
    z = torch.randn(4, m.z_dim)
    with torch.no_grad():
        assert torch.allclose(m.sample(4, z=z), m.G_ema(z))
    assert GAN((2,)).sampler is not None and GAN((2,)).D.out.in_features == 128
    with pytest.raises(ValueError, match="ema"):
        GAN((2,), ema=0.0)


def test_g_steps_takes_several_generator_steps_per_discriminator_step():
    torch.manual_seed(0)
    m = GAN((2,), hidden=16, layers=2, g_steps=3, ema=None)
    opt_g, opt_d = m.configure_optimizers(1e-2)
    m.training_step(torch.randn(32, 2), None, [opt_g, opt_d])
    # Adam's step counter: one update of D, three of G
    assert opt_d.state[next(m.D.parameters())]["step"] == 1
    assert opt_g.state[next(m.G.parameters())]["step"] == 3
    assert m.config["g_steps"] == 3 and "g_steps" not in GAN((2,)).config
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="g_steps"):
            GAN((2,), g_steps=bad)
