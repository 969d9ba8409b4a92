"""AutoEncoder, VAE and ConditionalVAE: KL, ELBO <= log-likelihood, IW bound, sampling, labels."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pgm_lab import metrics
from pgm_lab.models import VAE, AutoEncoder, ConditionalVAE


def _binary(n, shape=(1, 2, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *shape, generator=g) < 0.4).float()


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_kl_term_matches_monte_carlo(prior):
    torch.manual_seed(0)
    model = ConditionalVAE((1, 4, 4), n_classes=3, latent_dim=3, hidden=16, prior=prior)
    x, y = _binary(5, (1, 4, 4)), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        mu, logvar = model.encode(x, y)
        kl = model.kl(mu, logvar, y)
        mu_p, logvar_p = model.prior(y)
        z = model.reparameterize(mu.expand(100_000, *mu.shape), logvar.expand(100_000, *logvar.shape))
        mc = (
            metrics.gaussian_log_density(z, mu, logvar) - metrics.gaussian_log_density(z, mu_p, logvar_p)
        ).mean(0)
    assert torch.allclose(kl, mc, atol=0.03)
    if prior == "standard":
        assert torch.allclose(kl, metrics.gaussian_kl(mu, logvar))


def test_quadrature_is_exact_for_a_linear_gaussian_decoder():
    torch.manual_seed(0)
    model = VAE((1, 1, 2), latent_dim=1, hidden=8, decoder="gaussian", sigma=0.5)
    lin = nn.Linear(1, 2)
    model.decoder = lin  # q(x|z) = N(Wz + b, σ² I), q(z) = N(0, 1)  =>  q(x) = N(b, WWᵀ + σ² I)
    x = torch.rand(4, 1, 1, 2)
    cov = lin.weight @ lin.weight.T + 0.25 * torch.eye(2)
    exact = torch.distributions.MultivariateNormal(lin.bias, cov).log_prob(x.view(4, 2))
    with torch.no_grad():
        quad = model.log_likelihood_by_quadrature(x, n_grid=2001, limit=8.0)
    assert torch.allclose(quad, exact, atol=1e-4)


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("latent_dim", [1, 2])
def test_elbo_below_log_likelihood_and_iw_in_between(decoder, latent_dim, tmp_path, monkeypatch):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    from pgm_lab.train import fit

    torch.manual_seed(0)
    x = _binary(64)
    model = VAE((1, 2, 2), latent_dim=latent_dim, hidden=16, decoder=decoder, sigma=0.5)
    fit(model, x, steps=60, lr=1e-2, progress=False, cache=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        log_px = model.log_likelihood_by_quadrature(x[:8], n_grid=401 if latent_dim == 1 else 201)
        elbo = model.elbo_terms(x[:8], n_samples=4000, generator=g)["elbo"]
        iw = model.iw_log_likelihood(x[:8], k=4000, generator=g)
    assert (elbo <= log_px + 5e-3).all()  # up to Monte Carlo error
    assert (iw <= log_px + 0.02).all() and (iw >= elbo - 0.02).all()
    assert torch.allclose(iw, log_px, atol=0.05)  # K = 4000 is nearly exact on this tiny model
    # a worse encoder leaves log q(x) unchanged and widens the gap, KL(p(z|x) || true posterior)
    with torch.no_grad():
        model.encoder[-1].bias[:latent_dim] += 1.5
        worse = model.elbo_terms(x[:8], n_samples=4000, generator=g)["elbo"]
        assert torch.allclose(
            model.log_likelihood_by_quadrature(x[:8], n_grid=401 if latent_dim == 1 else 201), log_px
        )
    assert (worse < log_px - 0.1).all() and (worse < elbo).all()
    if decoder == "bernoulli":  # a distribution over the 16 binary images sums to one
        allx = torch.tensor([[(k >> b) & 1 for b in range(4)] for k in range(16)], dtype=torch.float32)
        with torch.no_grad():
            total = torch.logsumexp(model.log_likelihood_by_quadrature(allx.view(16, 1, 2, 2)), 0)
        assert float(total) == pytest.approx(0.0, abs=1e-3)


def test_elbo_terms_and_loss_logs():
    torch.manual_seed(0)
    model = VAE((1, 4, 4), latent_dim=2, hidden=16, beta=2.0)
    x = _binary(8, (1, 4, 4))
    torch.manual_seed(1)
    t = model.elbo_terms(x)
    assert torch.allclose(t["elbo"], -(t["recon"] + t["kl"])) and (t["kl"] >= 0).all()
    torch.manual_seed(1)
    loss, logs = model.loss(x)
    assert float(loss.detach()) == pytest.approx(logs["recon"] + 2.0 * logs["kl"], rel=1e-5)
    assert logs["elbo"] == pytest.approx(-(logs["recon"] + logs["kl"]), rel=1e-5)


def test_reparameterisation_statistics_and_gradients():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    z = VAE.reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), mu.detach(), atol=0.02) and torch.allclose(
        z.std(0), torch.tensor([1.0, 2.0]), atol=0.02
    )
    z.pow(2).mean(0).sum().backward()  # E[z²] = μ² + σ²: d/dμ = 2μ, d/dlogσ² = σ²
    assert torch.allclose(mu.grad, 2 * mu.detach(), atol=0.05)
    assert torch.allclose(logvar.grad, torch.tensor([1.0, 4.0]), atol=0.1)


def test_training_reduces_the_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    from pgm_lab import data
    from pgm_lab.train import fit

    x = data.digits(binarize=True).tensors[0][:256]
    model = VAE(latent_dim=4, hidden=32)
    h = fit(model, x, steps=80, lr=3e-3, progress=False)
    assert set(h.logs) >= {"loss", "recon", "kl", "elbo"}
    assert h["elbo"][-1] > h["elbo"][0] + 5
    ae = AutoEncoder(latent_dim=4, hidden=32)
    h = fit(ae, x, steps=80, lr=3e-3, progress=False)
    assert h["recon"][-1] < h["recon"][0] - 5


def test_trained_vae_beats_independent_pixels_and_its_bound_is_a_bound(tmp_path, monkeypatch):
    """After 300 steps the VAE's held-out log-likelihood (importance-weighted, K = 64) beats the
    best independent-pixel model (computed independently), and it lies above the ELBO."""
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    from pgm_lab import data, metrics
    from pgm_lab.train import fit

    torch.manual_seed(0)
    train_x = data.digits(binarize=True, split="train").tensors[0]
    test_x = data.digits(binarize=True, split="test").tensors[0][:200]
    model = VAE(latent_dim=4, hidden=32)
    fit(model, train_x, steps=300, lr=3e-3, progress=False, cache=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        log_lik = float(model.iw_log_likelihood(test_x, k=64, generator=g).mean())
        elbo = float(model.elbo_terms(test_x, n_samples=16, generator=g)["elbo"].mean())
    baseline = metrics.independent_bernoulli_nll(train_x, test_x)
    assert -log_lik < baseline - 0.5, (-log_lik, baseline)
    assert elbo < log_lik < elbo + 5


@pytest.mark.parametrize(
    "make",
    [
        lambda: VAE(),
        lambda: VAE(decoder="gaussian"),
        lambda: VAE(decoder="gaussian", sigma=None),
        lambda: AutoEncoder(),
        lambda: VAE((1, 16, 16), latent_dim=2),
    ],
)
def test_unconditional_samples_shapes_and_ranges(make):
    torch.manual_seed(0)
    model = make()
    for kw in ({}, {"mean": False}) if isinstance(model, VAE) else ({},):
        s = model.sample(5, generator=torch.Generator().manual_seed(0), **kw)
        assert s.shape == (5, *model.image_shape) and float(s.min()) >= 0 and float(s.max()) <= 1
    if isinstance(model, VAE) and model.decoder_kind == "bernoulli":
        assert set(model.sample(5, mean=False).unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=[0, 1])
    x = torch.rand(3, *model.image_shape)
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_conditional_vae_labels(prior):
    torch.manual_seed(0)
    model = ConditionalVAE(n_classes=10, prior=prior)
    s = model.sample(4, labels=[0, 1, 2, 3])
    assert s.shape == (4, 1, 8, 8) and 0 <= float(s.min()) and float(s.max()) <= 1
    assert model.sample(3, labels=7).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="conditional: pass labels"):
        model.sample(2)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model.sample(2, labels=[0, 10])
    with pytest.raises(ValueError, match="conditional: pass labels"):
        model.loss(torch.rand(2, 1, 8, 8))
    x = torch.rand(2, 1, 8, 8)
    assert model.iw_log_likelihood(x, torch.tensor([1, 2]), k=5).shape == (2,)
    if prior == "learned":
        mu0, _ = model.prior(torch.tensor([0]))
        mu1, _ = model.prior(torch.tensor([1]))
        assert not torch.allclose(mu0, mu1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        ConditionalVAE()
    with pytest.raises(ValueError, match="prior='learned'"):
        VAE(prior="learned")
    with pytest.raises(ValueError, match="prior must be"):
        VAE(n_classes=2, prior="flat")
    with pytest.raises(ValueError, match="decoder must be"):
        VAE(decoder="poisson")
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(latent_dim=0)
    with pytest.raises(ValueError, match="sigma"):
        VAE(decoder="gaussian", sigma=-1.0)
    model = VAE(latent_dim=3)
    with pytest.raises(ValueError, match="latent_dim <= 2"):
        model.log_likelihood_by_quadrature(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.encode(torch.rand(2, 1, 8, 8) - 2)
    with pytest.raises(ValueError, match="shaped"):
        model.encode(torch.rand(2, 64))
    with pytest.raises(ValueError, match="z must be"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="k must be"):
        model.iw_log_likelihood(torch.rand(2, 1, 8, 8), k=0)
