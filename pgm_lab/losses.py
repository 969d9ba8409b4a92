"""Loss and likelihood functions of Part II: pure tensor maths the models train with (chapters 06-10).

The bottom layer of Part II: the models (:mod:`pgm_lab.models`) import these functions, and
:mod:`pgm_lab.evaluation` and :mod:`pgm_lab.metrics` re-export them; nothing here imports a
model, the data or the training loop.

Likelihoods are reported in nats per image or in bits per dimension (chapter 06). The VAE's
objective is the evidence lower bound (ELBO, 证据下界), in the slides' symbols (encoder p(z|x),
decoder q(x|z), prior q(z)):

    ELBO(x) = E_{z~p(z|x)}[log q(x|z)] - KL(p(z|x) || q(z)) <= log q(x)        (chapter 07)
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG2 = math.log(2.0)


# -- likelihood units ------------------------------------------------------------------------
def nll_to_bits_per_dim(nats_per_image, n_dims: int):
    """Convert a negative log-likelihood in nats per image to bits per dimension (chapter 06).

    bits/dim = NLL / (D · ln 2), with D = ``n_dims`` the number of pixels (times channels).
    Works on floats, numpy arrays and tensors.
    """
    if int(n_dims) != n_dims or n_dims < 1:
        raise ValueError(f"n_dims must be a positive integer, got {n_dims!r}")
    return nats_per_image / (int(n_dims) * LOG2)


def bits_per_dim_to_nll(bits_per_dim, n_dims: int):
    """Inverse of :func:`nll_to_bits_per_dim`: nats per image = bits/dim · D · ln 2."""
    if int(n_dims) != n_dims or n_dims < 1:
        raise ValueError(f"n_dims must be a positive integer, got {n_dims!r}")
    return bits_per_dim * int(n_dims) * LOG2


# -- ELBO pieces ---------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(μ, diag σ²) || N(0, I)), summed over the last dimension (chapter 07).

    KL = ½ Σ_k (μ_k² + σ_k² − log σ_k² − 1), the slide's formula, with ``logvar`` = log σ².
    Returns one value per row: shape ``mu.shape[:-1]``.
    """
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(-1)


def gaussian_kl_between(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(μ_q, diag σ_q²) || N(μ_p, diag σ_p²)) summed over the last dimension (chapters 07, 10).

    KL = ½ Σ_k (log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1); with μ_p = 0, σ_p = 1
    it is :func:`gaussian_kl`. Used by the conditional VAE with a learned prior p(z | c).
    """
    shapes = {tuple(t.shape) for t in (mu_q, logvar_q)}
    if len(shapes) != 1:
        raise ValueError("mu_q and logvar_q must have the same shape")
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0).sum(
        -1
    )


def gaussian_log_density(z: torch.Tensor, mu, logvar) -> torch.Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension."""
    return -0.5 * (((z - mu).pow(2) / logvar.exp()) + logvar + math.log(2 * math.pi)).sum(-1)


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """−log q(x | z) for a Bernoulli decoder, −Σ_i [x_i log p_i + (1−x_i) log(1−p_i)], per image.

    ``logits`` = log p_i/(1−p_i); ``x`` may hold grey levels in [0, 1] (then it is a cross-entropy).
    Sums over every dimension but the first.
    """
    if x.shape != logits.shape:
        raise ValueError(
            f"x and logits must have the same shape, got {tuple(x.shape)} and {tuple(logits.shape)}"
        )
    nll = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return nll.reshape(len(x), -1).sum(1)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, logvar) -> torch.Tensor:
    """−log q(x | z) for a Gaussian decoder, per image (chapter 07):

    ½ ‖(x − μ(z)) / σ(z)‖² + (D/2) log 2π + ½ Σ_k log σ_k²(z). With a fixed σ² it is the
    MSE ‖x − μ(z)‖² / (2σ²) plus a constant. ``logvar`` may be a tensor or a float.
    """
    if x.shape != mean.shape:
        raise ValueError(f"x and mean must have the same shape, got {tuple(x.shape)} and {tuple(mean.shape)}")
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device).expand_as(x)
    nll = 0.5 * ((x - mean).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi))
    return nll.reshape(len(x), -1).sum(1)


def elbo(recon_nll: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """ELBO = E[log q(x|z)] − KL(p(z|x) || q(z)) = −(reconstruction NLL + KL), per image (chapter 07)."""
    if recon_nll.shape != kl.shape:
        raise ValueError(
            f"recon_nll and kl must have the same shape, got {tuple(recon_nll.shape)} and {tuple(kl.shape)}"
        )
    return -(recon_nll + kl)


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) Σ_k exp(a_k) along ``dim``, computed stably (importance-weighted bounds, chapter 07)."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def independent_bernoulli_nll(train_x: torch.Tensor, test_x: torch.Tensor, *, alpha: float = 1.0) -> float:
    """Test NLL (nats/image) of the independent-pixel model p(x) = Π_i Bernoulli(x_i; θ_i) (chapter 06).

    θ_i is the training frequency of x_i = 1 with add-``alpha`` smoothing. This is the baseline
    an autoregressive model must beat: it ignores every dependency between pixels.
    """
    train_x = torch.as_tensor(train_x, dtype=torch.float64).reshape(len(train_x), -1)
    test_x = torch.as_tensor(test_x, dtype=torch.float64).reshape(len(test_x), -1)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train and test images differ in size: {train_x.shape[1]} vs {test_x.shape[1]} pixels"
        )
    if (
        float(train_x.min()) < 0
        or float(train_x.max()) > 1
        or float(test_x.min()) < 0
        or float(test_x.max()) > 1
    ):
        raise ValueError("images must lie in [0, 1]")
    theta = (train_x.sum(0) + alpha) / (len(train_x) + 2 * alpha)
    ll = test_x * theta.log() + (1 - test_x) * (1 - theta).log()
    return float(-ll.sum(1).mean())


__all__ = [
    "LOG2",
    "bernoulli_nll",
    "bits_per_dim_to_nll",
    "elbo",
    "gaussian_kl",
    "gaussian_kl_between",
    "gaussian_log_density",
    "gaussian_nll",
    "independent_bernoulli_nll",
    "log_mean_exp",
    "nll_to_bits_per_dim",
]
