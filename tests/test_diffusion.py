"""Diffusion models (chapter 08): schedules, the forward process, L_simple, samplers, guidance."""

from __future__ import annotations

import math

import pytest
import torch

import pgm_lab as pl
from pgm_lab.models.diffusion import (
    DDPM,
    ConditionalDDPM,
    NoiseSchedule,
    check_betas,
    cosine_betas,
    linear_betas,
    make_betas,
)
from pgm_lab.models.unet import MLPDenoiser, UNet, sinusoidal_embedding
from pgm_lab.train import TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- schedules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [[0.1, 1.0], [0.0, 0.1], [-0.1], [0.2, float("nan")], [], [[0.1, 0.2]]])
def test_betas_outside_open_unit_interval_rejected(bad):
    with pytest.raises(ValueError, match=r"β|betas"):
        check_betas(bad)
    if bad and not isinstance(bad[0], list):
        with pytest.raises(ValueError):
            NoiseSchedule(bad)


def test_linear_schedule_endpoints_and_unknown_name():
    b = linear_betas(1000)
    assert b.shape == (1000,)
    assert math.isclose(float(b[0]), 1e-4) and math.isclose(float(b[-1]), 0.02)
    with pytest.raises(ValueError, match="schedule"):
        make_betas("quadratic", 10)
    with pytest.raises(ValueError, match="T"):
        linear_betas(0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_alpha_bar_monotone_and_products(kind):
    s = NoiseSchedule.make(kind, 500)
    a_bar = s.alpha_bars.double()
    assert torch.all(a_bar[1:] < a_bar[:-1]), "ᾱ_t must decrease strictly"
    assert 0 < float(a_bar[-1]) < float(a_bar[0]) < 1
    assert float(s.alpha_bar(0)) == 1.0
    # α_t = 1 − β_t and ᾱ_t = Π α_i
    assert torch.allclose(s.alphas, 1 - s.betas)
    assert torch.allclose(a_bar, torch.cumprod(1 - s.betas.double(), 0), rtol=1e-5)


def test_cosine_schedule_follows_its_formula():
    T, s = 200, 0.008
    a_bar = torch.cumprod(1 - cosine_betas(T, s=s), 0)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    # away from the clipped last steps the product of the β's reproduces f(t)/f(0)
    assert torch.allclose(a_bar[: T - 5], (f / f0)[: T - 5], rtol=1e-6)


@pytest.mark.parametrize("t", [0, 101, -3, 2.5])
def test_t_outside_range_rejected(t):
    s = NoiseSchedule.make("linear", 100)
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="t "):
        s.q_sample(x0, t)


# -- the forward process -----------------------------------------------------------------------
def test_q_sample_matches_iterated_chain_in_mean_and_variance():
    s = NoiseSchedule.make("linear", 200, beta_1=1e-3, beta_T=0.05)
    n = 40_000
    x0 = torch.full((n, 1), 1.5)
    chain = s.forward_chain(x0, generator=torch.Generator().manual_seed(0))  # (T+1, n, 1)
    assert chain.shape == (201, n, 1)
    g = torch.Generator().manual_seed(1)
    for t in (1, 5, 50, 200):
        a_bar = float(s.alpha_bar(t))
        mean, var = math.sqrt(a_bar) * 1.5, 1 - a_bar
        closed = s.q_sample(x0, t, generator=g)
        se_mean = math.sqrt(var / n)
        se_var = var * math.sqrt(2 / n)
        for xs in (chain[t], closed):
            assert abs(float(xs.mean()) - mean) < 5 * se_mean
            assert abs(float(xs.var()) - var) < 5 * se_var


def test_q_sample_is_the_closed_form_formula():
    s = NoiseSchedule.make("cosine", 50)
    x0 = torch.rand(6, 1, 4, 4)
    eps = torch.randn_like(x0)
    t = torch.tensor([1, 2, 10, 25, 49, 50])
    got = s.q_sample(x0, t, eps)
    a_bar = torch.cumprod(1 - s.betas, 0)[t - 1].view(-1, 1, 1, 1)
    assert torch.allclose(got, a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps, atol=1e-6)
    with pytest.raises(ValueError, match="eps"):
        s.q_sample(x0, t, eps[:, :, :2])
    with pytest.raises(ValueError, match="one per sample"):
        s.q_sample(x0, torch.tensor([1, 2]), eps)


def test_one_forward_step_formula():
    s = NoiseSchedule(torch.tensor([0.1, 0.2, 0.3]))
    x = torch.tensor([[1.0, -2.0]])
    eps = torch.tensor([[0.5, 0.25]])
    got = s.q_step(x, 2, eps)
    assert torch.allclose(got, math.sqrt(0.8) * x + math.sqrt(0.2) * eps)


# -- networks ----------------------------------------------------------------------------------
def test_unet_shapes_null_class_and_size():
    net = UNet((1, 8, 8), n_classes=10)
    x = torch.randn(3, 1, 8, 8)
    out = net(x, torch.tensor([1, 500, 1000]), torch.tensor([0, 9, 10]))  # 10 = null class
    assert out.shape == x.shape
    assert 250_000 < sum(p.numel() for p in net.parameters()) < 500_000
    with pytest.raises(ValueError, match="labels"):
        net(x, 3, torch.tensor([0, 1, 11]))
    with pytest.raises(ValueError, match="expects x"):
        net(torch.randn(3, 1, 7, 7), 3)
    with pytest.raises(ValueError, match="divisible"):
        UNet((1, 6, 6), mults=(1, 2, 2))
    assert UNet((1, 28, 28), mults=(1, 2, 2), base=8)(torch.randn(2, 1, 28, 28), 5).shape == (2, 1, 28, 28)
    assert MLPDenoiser(2)(torch.randn(5, 2), torch.arange(1, 6)).shape == (5, 2)
    additive = UNet((1, 8, 8), n_classes=10, scale_shift=False)
    assert additive(x, 7, torch.tensor([1, 2, 3])).shape == x.shape
    assert sum(p.numel() for p in additive.parameters()) < sum(p.numel() for p in net.parameters())


def test_sinusoidal_embedding_distinguishes_steps():
    e = sinusoidal_embedding(torch.arange(1, 101), 32)
    assert e.shape == (100, 32)
    d = torch.cdist(e, e) + torch.eye(100)
    assert float(d.min()) > 1e-3
    with pytest.raises(ValueError):
        sinusoidal_embedding(torch.arange(3), 7)


# -- the model ---------------------------------------------------------------------------------
def test_loss_is_l_simple_and_starts_near_one():
    torch.manual_seed(0)
    m = DDPM((1, 8, 8), T=100)
    x = torch.rand(32, 1, 8, 8)
    torch.manual_seed(5)
    loss, logs = m.loss(x)
    assert loss.dim() == 0 and logs == {}
    # replay the same random draws: t ~ U{1..T}, ε ~ N(0, I)
    torch.manual_seed(5)
    t = torch.randint(1, 101, (32,))
    eps = torch.randn(32, 1, 8, 8)
    x0 = 2 * x - 1
    a_bar = m.schedule.alpha_bar(t).view(-1, 1, 1, 1)
    manual = ((eps - m.net(a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps, t)) ** 2).mean()
    assert torch.allclose(loss, manual, atol=1e-6)
    # the output layer starts at zero, so ε̂ = 0 and L_simple = E‖ε‖²/D ≈ 1
    assert abs(float(loss.detach()) - 1.0) < 0.1


def test_x_prev_parameterisation_loss_and_mean():
    m = DDPM((2,), T=20, prediction="x_prev", hidden=16, layers=1)
    loss, _ = m.loss(torch.randn(64, 2))
    assert loss.dim() == 0 and torch.isfinite(loss)
    x_t = torch.randn(4, 2)
    # the mean of p(x_{t−1}|x_t) recomputed from the implied ε̂ equals f_θ(x_t, t)
    eps = m.predict_noise(x_t, 7)
    s = m.schedule
    mu = (x_t - s.beta(7) / torch.sqrt(1 - s.alpha_bar(7)) * eps) / torch.sqrt(s.alpha(7))
    assert torch.allclose(mu, m.denoiser(x_t, torch.tensor([7])), atol=1e-4)
    with pytest.raises(ValueError, match="prediction"):
        DDPM(prediction="x0")


def test_sample_shapes_ranges_chain_and_ddim():
    torch.manual_seed(0)
    m = DDPM((1, 8, 8), T=10, base=8).eval()
    x = m.sample(5, generator=0)
    assert x.shape == (5, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    x2, chain = m.sample(5, generator=0, return_chain=True)
    assert sorted(chain) == list(range(11))
    assert torch.equal(chain[0], x2) and torch.equal(x, x2)
    d1 = m.sample(3, method="ddim", steps=4, generator=1)
    d2, dchain = m.sample(3, method="ddim", steps=4, generator=1, return_chain=True)
    assert torch.equal(d1, d2)  # deterministic given x_T
    assert sorted(dchain, reverse=True) == m.ddim_times(4) == [10, 8, 5, 2, 0]
    v = DDPM((2,), T=10, hidden=16, layers=1).sample(7, generator=0)
    assert v.shape == (7, 2)
    with pytest.raises(ValueError, match="ancestral"):
        m.sample(2, steps=5)
    with pytest.raises(ValueError, match="method"):
        m.sample(2, method="euler")
    with pytest.raises(ValueError, match="n must"):
        m.sample(0)
    with pytest.raises(ValueError, match="unconditional"):
        m.sample(2, labels=[1, 2])


def test_ancestral_step_is_algorithm_2():
    torch.manual_seed(0)
    m = DDPM((2,), T=10, hidden=16, layers=1, sigma="beta").eval()
    x_t = torch.randn(5, 2)
    s = m.schedule
    eps = m.predict_noise(x_t, 4)
    expected = (x_t - (1 - s.alpha(4)) / torch.sqrt(1 - s.alpha_bar(4)) * eps) / torch.sqrt(s.alpha(4))
    assert torch.allclose(m.predict_mean(x_t, 4), expected, atol=1e-6)
    assert torch.allclose(m.sigma(4), torch.sqrt(s.beta(4)))
    post = DDPM((2,), T=10, hidden=16, layers=1, sigma="posterior")
    b_tilde = (1 - s.alpha_bar(3)) / (1 - s.alpha_bar(4)) * s.beta(4)
    assert torch.allclose(post.sigma(4) ** 2, b_tilde)


def test_ema_weights_follow_the_trained_weights():
    torch.manual_seed(0)
    m = DDPM((2,), T=10, hidden=8, layers=1, ema=0.9)
    assert m.denoiser is m.ema_net and DDPM((2,), T=10, hidden=8, layers=1, ema=None).denoiser is not None
    opt = m.configure_optimizers(1e-2)
    assert {id(p) for p in opt[0].param_groups[0]["params"]} == {id(p) for p in m.net.parameters()}
    before = [p.detach().clone() for p in m.ema_net.parameters()]
    m.training_step(torch.randn(32, 2), None, opt)
    d = min(0.9, 1 / 10)  # warm-up decay at the first update
    for e, b, p in zip(m.ema_net.parameters(), before, m.net.parameters()):
        assert torch.allclose(e, d * b + (1 - d) * p.detach(), atol=1e-6)
    assert int(m.ema_updates) == 1
    with pytest.raises(ValueError, match="ema"):
        DDPM((2,), ema=1.0)


def test_bad_inputs_raise_value_error():
    m = DDPM((1, 8, 8), T=10, base=8)
    with pytest.raises(ValueError, match="shaped"):
        m.loss(torch.rand(4, 1, 7, 7))
    with pytest.raises(ValueError, match="shaped"):
        m.predict_noise(torch.rand(4, 64), 3)
    with pytest.raises(ValueError, match="t must lie"):
        m.predict_noise(torch.rand(4, 1, 8, 8), 11)
    with pytest.raises(ValueError, match="image_shape"):
        DDPM((8, 8))
    with pytest.raises(ValueError, match="β"):
        NoiseSchedule([0.5, 1.2])


def test_conditional_requires_classes_and_guidance_convention():
    with pytest.raises(ValueError, match="n_classes"):
        ConditionalDDPM((1, 8, 8))
    torch.manual_seed(0)
    m = ConditionalDDPM((1, 8, 8), n_classes=10, T=20, base=8)
    # give the zero-initialised output layer weights so conditional and null predictions differ
    torch.nn.init.normal_(m.denoiser.conv_out.weight, std=0.1)
    x_t, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 7, 9])
    cond = m.denoiser(x_t, torch.tensor([5]), y)
    uncond = m.denoiser(x_t, torch.tensor([5]), torch.full((4,), 10))
    assert not torch.allclose(cond, uncond)
    assert torch.allclose(m.predict_noise(x_t, 5, y, guidance=0.0), cond, atol=1e-6)
    assert torch.allclose(m.predict_noise(x_t, 5, None), uncond, atol=1e-6)
    assert torch.allclose(m.predict_noise(x_t, 5, y, guidance=-1.0), uncond, atol=1e-5)
    assert torch.allclose(m.predict_noise(x_t, 5, y, guidance=2.0), 3 * cond - 2 * uncond, atol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        m.sample(4)
    with pytest.raises(ValueError, match="labels must lie"):
        m.sample(2, labels=[0, 10])
    out = m.sample(4, labels=y, guidance=1.0, method="ddim", steps=5, generator=0)
    assert out.shape == (4, 1, 8, 8) and 0 <= float(out.min()) and float(out.max()) <= 1
    # labels are dropped with probability p_uncond during training: the null class is learnt
    assert m.p_uncond == 0.1
    no_drop = DDPM((1, 8, 8), n_classes=10, T=20, base=8, p_uncond=0.0)
    with pytest.raises(ValueError, match="p_uncond"):
        no_drop.predict_noise(x_t, 5, y, guidance=1.0)


def test_label_dropout_rate():
    m = ConditionalDDPM((2,), n_classes=3, T=10, hidden=8, layers=1, p_uncond=0.3)
    seen = []
    orig = m.net.forward

    def spy(x, t, y=None):
        seen.append(y.clone())
        return orig(x, t, y)

    m.net.forward = spy
    torch.manual_seed(0)
    m.loss(torch.randn(4000, 2), torch.zeros(4000, dtype=torch.long))
    frac_null = float((seen[0] == 3).float().mean())
    assert abs(frac_null - 0.3) < 0.03


def test_training_learns_a_2d_gaussian():
    data = torch.tensor([2.0, -1.0]) + 0.1 * torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)  # the initial weights: without a seed they depend on the tests run before
    m = DDPM((2,), T=50, hidden=64, layers=2)
    # 1,200 steps with a cosine decay: the sample std lay within 0.104-0.115 for six initial
    # seeds; 600 constant-lr steps left some seeds at 0.2-0.33
    h = pl.train.fit(
        m, data, steps=1200, batch_size=128, lr=3e-3, lr_schedule="cosine", cache=False, progress=False
    )
    assert h["loss"][-1] < h["loss"][0]
    x = m.sample(1000, generator=0)
    assert torch.allclose(x.mean(0), torch.tensor([2.0, -1.0]), atol=0.06)
    std = x.std(0)  # the data's is 0.1; the std error of this estimate is about 0.003
    assert float(std.min()) > 0.08 and float(std.max()) < 0.14, std


class _Exploding(DDPM):
    """A DDPM whose loss turns NaN at the fourth step (as an overflowing run would)."""

    calls = 0

    def loss(self, x, y=None):
        loss, logs = super().loss(x, y)
        self.calls += 1
        return (loss * float("nan") if self.calls >= 4 else loss), logs


def test_nan_loss_stops_training_with_last_good_parameters():
    m = _Exploding((2,), T=10, hidden=8, layers=1)
    with pytest.raises(TrainingDiverged, match="diverged at step 4"):
        pl.train.fit(m, torch.randn(64, 2), steps=10, cache=False, progress=False)
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_fit_trains_images_and_conditional_model():
    x = torch.rand(64, 1, 8, 8)
    y = torch.randint(0, 10, (64,))
    m = ConditionalDDPM((1, 8, 8), n_classes=10, T=20, base=8)
    h = pl.train.fit(m, (x, y), steps=3, cache=False, progress=False)
    assert len(h["loss"]) == 3 and all(math.isfinite(v) for v in h["loss"])
    with pytest.raises(ValueError, match="labels"):
        pl.train.fit(ConditionalDDPM((1, 8, 8), n_classes=10, T=20, base=8), x, steps=1, cache=False)


# -- the variational bound, its weights and the optimal noise predictor (chapter 08) -----------
def test_gaussian_kl_matches_torch_distributions():
    from pgm_lab.models.diffusion import gaussian_kl

    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(50, generator=g).double(), torch.randn(50, generator=g).double()
    v1, v2 = (torch.rand(50, generator=g).double() + 0.05 for _ in range(2))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, v1.sqrt()), torch.distributions.Normal(m2, v2.sqrt())
    )
    assert torch.allclose(gaussian_kl(m1, v1, m2, v2), ref, atol=1e-12)
    with pytest.raises(ValueError, match="variances"):
        gaussian_kl(0.0, 0.0, 0.0, 1.0)


def test_discretized_gaussian_is_a_distribution_over_the_levels():
    from scipy.stats import norm

    from pgm_lab.models.diffusion import discretized_gaussian_log_likelihood as dgll

    g = torch.Generator().manual_seed(1)
    for levels in (2, 17, 256):
        grid = torch.linspace(-1, 1, levels, dtype=torch.float64)
        for _ in range(3):
            mean = float(torch.randn((), generator=g)) * 0.8
            std = float(torch.rand((), generator=g)) * 0.3 + 1e-3
            logp = dgll(grid, torch.full_like(grid, mean), std, levels)
            assert math.isclose(float(logp.exp().sum()), 1.0, abs_tol=1e-9)
            # an inner level, against scipy's normal cdf
            k, delta = levels // 2, 1 / (levels - 1)
            if 0 < k < levels - 1:
                ref = norm.cdf(float(grid[k]) + delta, mean, std) - norm.cdf(
                    float(grid[k]) - delta, mean, std
                )
                if ref > 1e-10:
                    assert math.isclose(float(logp[k].exp()), ref, rel_tol=1e-6)
    far = dgll(torch.tensor([0.0]), torch.tensor([0.9]), 1e-3, 17)  # far tail: finite, very negative
    assert torch.isfinite(far).all() and float(far) < -1e4
    with pytest.raises(ValueError, match="grid"):
        dgll(torch.tensor([0.05]), torch.tensor([0.0]), 0.1, 17)
    with pytest.raises(ValueError, match="levels"):
        dgll(torch.tensor([0.0]), torch.tensor([0.0]), 0.1, 1)
    with pytest.raises(ValueError, match="std"):
        dgll(torch.tensor([0.0]), torch.tensor([0.0]), 0.0, 17)


@pytest.mark.parametrize("sigma", ["beta", "posterior"])
def test_vlb_term_is_weighted_l_simple_term_plus_constant(sigma):
    """KL(q(x_{t−1}|x_t,x_0) ‖ p_θ) computed from the means equals λ_t ‖ε − ε_θ‖² + C_t."""
    from pgm_lab.models.diffusion import gaussian_kl, lsimple_weights

    s = NoiseSchedule.make("linear", T=50)
    betas = linear_betas(50)  # float64: ᾱ_t = α_t ᾱ_{t−1} holds to rounding
    bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])
    if sigma == "beta":
        s2 = betas.clone()
    else:
        s2 = (1 - bar[:-1]) / (1 - bar[1:]) * betas
        s2[0] = betas[0]  # β̃_1 = 0: use β_1 at t = 1
    lam = lsimple_weights(s, s2)
    g = torch.Generator().manual_seed(2)
    for t in (2, 10, 50):
        x0, eps, eps_hat = (torch.randn(8, 3, generator=g).double() for _ in range(3))
        a_bar, a_bar_prev = bar[t], bar[t - 1]
        b, a = betas[t - 1], 1 - betas[t - 1]
        x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
        mean_q = (a_bar_prev.sqrt() * b * x0 + a.sqrt() * (1 - a_bar_prev) * x_t) / (1 - a_bar)
        var_q = (1 - a_bar_prev) / (1 - a_bar) * b
        mean_p = (x_t - b / (1 - a_bar).sqrt() * eps_hat) / a.sqrt()
        kl = gaussian_kl(mean_q, var_q, mean_p, s2[t - 1]).sum(1)
        const = 0.5 * 3 * (torch.log(s2[t - 1] / var_q) + var_q / s2[t - 1] - 1)
        expected = lam[t - 1] * ((eps - eps_hat) ** 2).sum(1) + const
        assert torch.allclose(kl, expected, rtol=1e-6)  # λ_t from float32 β_t
    with pytest.raises(ValueError, match="sigma2"):
        lsimple_weights(s, torch.ones(3))


def _trajectory_bound(model, x, levels, n_rep, gen):
    """−log p_θ(x_{0:T}) + log q(x_{1:T} | x_0) on trajectories of the forward chain (no KLs)."""
    from pgm_lab.models.diffusion import discretized_gaussian_log_likelihood

    s = model.schedule
    x0 = model.to_model_space(x).repeat(n_rep, *([1] * (x.dim() - 1)))
    n = x0.shape[0]
    xs = [x0]
    log_q = torch.zeros(n, dtype=torch.float64)
    for t in range(1, s.T + 1):
        nxt = s.q_step(xs[-1], t, torch.randn(x0.shape, generator=gen))
        b = s.beta(t).double()
        log_q += (
            torch.distributions.Normal((1 - b).sqrt() * xs[-1].double(), b.sqrt())
            .log_prob(nxt.double())
            .reshape(n, -1)
            .sum(1)
        )
        xs.append(nxt)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(xs[-1].double()).reshape(n, -1).sum(1)
    with torch.no_grad():
        for t in range(s.T, 1, -1):
            mean = model.predict_mean(xs[t], t).double()
            std = model.sigma(t).double()
            log_p += torch.distributions.Normal(mean, std).log_prob(xs[t - 1].double()).reshape(n, -1).sum(1)
        mean = model.predict_mean(xs[1], 1).double()
        std = model.sigma(1).double()
        if levels is None:
            dec = torch.distributions.Normal(mean, std).log_prob(x0.double())
        else:
            dec = discretized_gaussian_log_likelihood(x0.double(), mean, std, levels)
        log_p += dec.reshape(n, -1).sum(1)
    return log_q - log_p


@pytest.mark.parametrize("kind", ["vector", "image"])
def test_variational_bound_equals_the_trajectory_bound_in_expectation(kind):
    """The KL form of L_vlb and the plain trajectory form estimate the same number."""
    from pgm_lab.models.diffusion import variational_bound

    torch.manual_seed(0)
    if kind == "vector":
        model = DDPM((2,), T=8, schedule="linear", hidden=16, layers=1, ema=None)
        x = torch.randn(4, 2) * 0.5 + 0.3
        levels, n_rep = None, 3000
    else:
        model = DDPM((1, 2, 2), T=8, base=4, mults=(1, 2), ema=None)
        x = torch.randint(0, 5, (3, 1, 2, 2)).float() / 4
        levels, n_rep = 5, 3000
    model.schedule = NoiseSchedule(linear_betas(8, beta_1=0.05, beta_T=0.4))
    for p in model.net.parameters():  # a non-trivial network, not the zero-initialised one
        torch.nn.init.normal_(p, std=0.1)
    xr = x.repeat(n_rep, *([1] * (x.dim() - 1)))
    vb = variational_bound(model, xr, levels=levels, generator=1)
    traj = _trajectory_bound(model, x, levels, n_rep, torch.Generator().manual_seed(2))
    se = math.sqrt(float(vb["total"].var()) / len(xr) + float(traj.var()) / len(traj))
    assert abs(float(vb["total"].mean()) - float(traj.mean())) < 5 * se
    assert se < 0.05 * abs(float(traj.mean()))  # the test has power
    d = x[0].numel()
    assert torch.allclose(vb["bits_per_dim"], vb["total"] / (d * math.log(2)))
    assert torch.allclose(vb["total"], vb["prior"] + vb["terms"].sum(1) + vb["decoder"])
    # a stride gives an unbiased estimate of the same sum
    vs = variational_bound(model, xr, levels=levels, stride=3, generator=3)
    assert int(torch.isnan(vs["terms"][0]).sum()) == model.T - 1 - 3  # blocks {2,3,4} {5,6,7} {8}
    se2 = math.sqrt(float(vb["total"].var()) / len(xr) + float(vs["total"].var()) / len(xr))
    assert abs(float(vb["total"].mean()) - float(vs["total"].mean())) < 5 * se2


def test_variational_bound_rejects_bad_input():
    from pgm_lab.models.diffusion import variational_bound

    img = DDPM((1, 2, 2), T=4, base=4)
    with pytest.raises(ValueError, match="levels"):
        variational_bound(img, torch.zeros(2, 1, 2, 2))
    with pytest.raises(ValueError, match="grid"):
        variational_bound(img, torch.full((2, 1, 2, 2), 0.3), levels=17)
    with pytest.raises(ValueError, match="shaped"):
        variational_bound(img, torch.zeros(2, 2), levels=17)
    with pytest.raises(ValueError, match="stride"):
        variational_bound(img, torch.zeros(2, 1, 2, 2), levels=17, stride=0)
    vec = DDPM((2,), T=4, hidden=8, layers=1)
    with pytest.raises(ValueError, match="levels"):
        variational_bound(vec, torch.zeros(3, 2), levels=17)
    cond = DDPM((2,), n_classes=3, T=4, hidden=8, layers=1)
    with pytest.raises(ValueError, match="unconditional"):
        variational_bound(cond, torch.zeros(3, 2))


def test_gmm_optimal_eps_single_gaussian_and_quadrature():
    from pgm_lab.models.diffusion import gmm_optimal_eps

    s = NoiseSchedule.make("cosine", T=100)
    g = torch.Generator().manual_seed(4)
    # one Gaussian N(c, std² I): E[ε | x_t] = √(1−ᾱ) (x_t − √ᾱ c) / (ᾱ std² + 1 − ᾱ)
    c, std = torch.tensor([[0.7, -1.2]]), 0.4
    x_t, t = torch.randn(6, 2, generator=g), torch.randint(1, 101, (6,), generator=g)
    a = s.alpha_bars.double()[t - 1][:, None]
    ref = (1 - a).sqrt() * (x_t.double() - a.sqrt() * c.double()) / (a * std**2 + 1 - a)
    assert torch.allclose(gmm_optimal_eps(x_t, t, s, c, std), ref, atol=1e-12)
    # a 1-D mixture: E[ε | x_t] by quadrature over x_0
    means, w, std = torch.tensor([[-1.5], [0.2], [2.0]]), torch.tensor([0.2, 0.5, 0.3]), 0.3
    grid = torch.linspace(-5, 5, 200001, dtype=torch.float64)
    prior = sum(
        float(wk) * torch.exp(-0.5 * ((grid - float(mk)) / std) ** 2) for wk, mk in zip(w, means[:, 0])
    )
    for t in (3, 40, 90):
        ab = float(s.alpha_bar(t))
        for xv in (-1.0, 0.4, 2.5):
            like = torch.exp(-0.5 * (xv - math.sqrt(ab) * grid) ** 2 / (1 - ab))
            post = prior * like
            e_x0 = float((grid * post).sum() / post.sum())
            expected = (xv - math.sqrt(ab) * e_x0) / math.sqrt(1 - ab)
            got = float(gmm_optimal_eps(torch.tensor([[xv]]), t, s, means, std, w))
            assert math.isclose(got, expected, abs_tol=1e-6)
    with pytest.raises(ValueError, match="means"):
        gmm_optimal_eps(torch.zeros(2, 2), 5, s, torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match="x_t"):
        gmm_optimal_eps(torch.zeros(2, 3), 5, s, torch.zeros(4, 2), 0.1)
    with pytest.raises(ValueError, match="std"):
        gmm_optimal_eps(torch.zeros(2, 2), 5, s, torch.zeros(4, 2), 0.0)
    with pytest.raises(ValueError, match="weights"):
        gmm_optimal_eps(torch.zeros(2, 2), 5, s, torch.zeros(2, 2), 0.1, [0.7, 0.7])
    with pytest.raises(ValueError, match="t must"):
        gmm_optimal_eps(torch.zeros(2, 2), 0, s, torch.zeros(2, 2), 0.1)


def test_gmm_optimal_eps_beats_any_other_predictor_in_mean_square():
    """E[ε | x_t] minimises E‖ε − f(x_t)‖²: perturbing it raises the Monte Carlo loss."""
    from pgm_lab.models.diffusion import gmm_optimal_eps

    s = NoiseSchedule.make("cosine", T=100)
    g = torch.Generator().manual_seed(5)
    means = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    k = torch.randint(0, 3, (40000,), generator=g)
    x0 = means[k] + 0.1 * torch.randn(40000, 2, generator=g)
    eps = torch.randn(40000, 2, generator=g)
    t = torch.full((40000,), 50)
    x_t = s.q_sample(x0, t, eps)
    best = gmm_optimal_eps(x_t, t, s, means, 0.1)
    loss = ((eps.double() - best) ** 2).mean()
    for f in (0.9 * best, 1.1 * best, best + 0.1, torch.zeros_like(best)):
        assert float(((eps.double() - f) ** 2).mean()) > float(loss)
