"""pgm_lab.metrics: likelihood units, ELBO pieces, Fréchet distance and the evaluation classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from pgm_lab import data, metrics


def test_bits_per_dim_round_trip():
    assert metrics.nll_to_bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert metrics.bits_per_dim_to_nll(metrics.nll_to_bits_per_dim(24.7, 64), 64) == pytest.approx(24.7)
    with pytest.raises(ValueError, match="n_dims"):
        metrics.nll_to_bits_per_dim(1.0, 0)


def test_gaussian_kl_closed_form_matches_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g) * 0.5
    kl = metrics.gaussian_kl(mu, logvar)
    q = D.Normal(mu, (0.5 * logvar).exp())
    ref = D.kl_divergence(q, D.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    assert torch.allclose(kl, ref, atol=1e-5)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - D.Normal(0.0, 1.0).log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(kl, mc, atol=0.03)
    assert float(metrics.gaussian_kl(torch.zeros(4), torch.zeros(4))) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        metrics.gaussian_kl(mu, logvar[:, :2])


def test_gaussian_kl_between_and_densities():
    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(4, 6, generator=g) for _ in range(4))
    ref = D.kl_divergence(D.Normal(mq, (0.5 * lq).exp()), D.Normal(mp, (0.5 * lp).exp())).sum(-1)
    assert torch.allclose(metrics.gaussian_kl_between(mq, lq, mp, lp), ref, atol=1e-5)
    zeros = torch.zeros_like(mq)
    assert torch.allclose(metrics.gaussian_kl_between(mq, lq, zeros, zeros), metrics.gaussian_kl(mq, lq))
    z = torch.randn(4, 6, generator=g)
    ref_lp = D.Normal(mq, (0.5 * lq).exp()).log_prob(z).sum(-1)
    assert torch.allclose(metrics.gaussian_log_density(z, mq, lq), ref_lp, atol=1e-5)


def test_decoder_likelihoods():
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float()
    logits = torch.randn(3, 1, 4, 4, generator=g)
    ref = -D.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(metrics.bernoulli_nll(x, logits), ref, atol=1e-5)
    mean, logvar = torch.rand(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    ref = -D.Normal(mean, (0.5 * logvar).exp()).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(metrics.gaussian_nll(x, mean, logvar), ref, atol=1e-4)
    # fixed variance: the NLL is the MSE / (2σ²) plus a constant
    s2 = 0.1
    nll = metrics.gaussian_nll(x, mean, math.log(s2))
    mse = ((x - mean) ** 2).sum((1, 2, 3)) / (2 * s2)
    const = 16 * 0.5 * (math.log(2 * math.pi) + math.log(s2))
    assert torch.allclose(nll, mse + const, atol=1e-4)
    assert torch.allclose(metrics.elbo(nll, mse), -(nll + mse))
    with pytest.raises(ValueError, match="same shape"):
        metrics.bernoulli_nll(x, logits[:, :, :2])


def test_log_mean_exp():
    a = torch.tensor([[0.0, 1000.0], [math.log(3.0), 1000.0]])
    out = metrics.log_mean_exp(a, dim=0)
    assert out[0] == pytest.approx(math.log(2.0)) and out[1] == pytest.approx(1000.0)


def test_independent_bernoulli_nll_matches_manual():
    train = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    test = torch.tensor([[1.0, 0.0]])
    theta = torch.tensor([3 / 5, 2 / 5])  # add-one smoothing
    manual = -(math.log(theta[0]) + math.log(1 - theta[1]))
    assert metrics.independent_bernoulli_nll(train, test) == pytest.approx(manual)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.independent_bernoulli_nll(train * 2, test)
    with pytest.raises(ValueError, match="differ"):
        metrics.independent_bernoulli_nll(train, torch.ones(1, 3))


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20_000, 3))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 2.0])
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(9.0, rel=1e-6)
    # N(0, I) vs N(0, 4 I) in 3-D: 3 (1 + 4 - 2·2) = 3
    b = 2 * rng.standard_normal((20_000, 3))
    assert metrics.frechet_distance(a, b) == pytest.approx(3.0, abs=0.1)
    assert metrics.frechet_distance(torch.as_tensor(a), torch.as_tensor(a + shift)) == pytest.approx(
        9.0, rel=1e-6
    )
    with pytest.raises(ValueError, match="same d"):
        metrics.frechet_distance(a, a[:, :2])
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(a[:1], a)


@pytest.fixture(scope="module")
def classifier():
    return metrics.evaluation_classifier(8)


def test_evaluation_classifier_accuracy_and_cache(classifier):
    """The reported accuracy is on held-out digits, every class is recognised, and the CNN
    is at least as good as an independent reference (scikit-learn's logistic regression)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix

    assert metrics.evaluation_classifier(8) is classifier  # in-process memo
    x_train, y_train = data.digits(split="train").tensors
    x, y = data.digits(split="test").tensors
    with torch.no_grad():
        predicted = classifier(x).argmax(1).numpy()
    confusion = confusion_matrix(y.numpy(), predicted, labels=range(10))
    assert classifier.test_accuracy == pytest.approx(np.trace(confusion) / len(y))
    assert (np.diag(confusion) / confusion.sum(1)).min() > 0.9  # recall of every digit
    reference = LogisticRegression(max_iter=3000).fit(x_train.flatten(1).numpy(), y_train.numpy())
    baseline = reference.score(x.flatten(1).numpy(), y.numpy())
    assert classifier.test_accuracy >= max(0.97, baseline - 0.005), (classifier.test_accuracy, baseline)


def test_score_samples_real_vs_noise(classifier):
    x, y = data.digits(split="all").tensors
    real = x[:300]  # training digits: held out from the test set the distance is measured against
    good = metrics.score_samples(real, y[:300])
    assert good["accuracy"] > 0.95 and good["coverage"] == 10 and sum(good["histogram"]) == 300
    assert good["frechet"] < 2 * good["frechet_floor"] + 1.0
    noise = metrics.score_samples(torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert "accuracy" not in noise
    assert noise["frechet"] > 10 * good["frechet"] and noise["coverage"] < 10
    ones = metrics.score_samples(x[y == 1][:100])
    assert ones["coverage"] <= 2 and np.argmax(ones["histogram"]) == 1


def test_score_samples_errors():
    with pytest.raises(ValueError, match="shaped"):
        metrics.score_samples(torch.rand(10, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.score_samples(torch.rand(10, 1, 8, 8) + 1)
    with pytest.raises(ValueError, match="labels"):
        metrics.score_samples(torch.rand(10, 1, 8, 8), labels=[1, 2])


def test_score_samples_binarised_references(classifier):
    x = data.digits(split="all").tensors[0][:300]
    g = torch.Generator().manual_seed(0)
    stoch = data.stochastic_binarize(x, g)
    a = metrics.score_samples(stoch, binarize="stochastic")
    b = metrics.score_samples(stoch)  # against grey digits: binary samples look further away
    assert a["coverage"] == 10 and a["frechet"] < b["frechet"]
    assert a["frechet"] < 2 * a["frechet_floor"] + 1.0
    with pytest.raises(ValueError, match="binarize"):
        metrics.score_samples(stoch, binarize="yes")
