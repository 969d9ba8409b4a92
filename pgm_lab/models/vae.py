"""Autoencoders and variational autoencoders (see chapter 07; the conditional VAE in chapter 10).

Notation follows the slides: the encoder is p(z|x), the decoder q(x|z), the prior q(z).
Fitting the joint q(x, z) = q(x|z) q(z) to p(x, z) = p̃(x) p(z|x) by minimising their KL
divergence gives, up to the constant E[log p̃(x)], the loss

    L = E_{x~p̃(x)} [ E_{z~p(z|x)}[−log q(x|z)] + KL(p(z|x) || q(z)) ] = E_x[−ELBO(x)]

{cite}`kingma2013vae`. With a Gaussian encoder p(z|x) = N(μ(x), diag σ²(x)) and the standard
prior q(z) = N(0, I) the KL term has the closed form ½ Σ_k (μ_k² + σ_k² − log σ_k² − 1);
the reconstruction term is estimated with the reparameterisation z = μ(x) + σ(x) ⊙ ε,
ε ~ N(0, I), which lets gradients flow into the encoder. The decoder is a Bernoulli
(binary pixels; the loss is a cross-entropy) or a Gaussian (fixed σ²: the loss is the MSE
‖x − μ(z)‖² / 2σ² plus a constant).

``iw_log_likelihood`` gives the importance-weighted estimate {cite}`burda2016iwae`
log (1/K) Σ_k q(x|z_k) q(z_k) / p(z_k|x), a tighter lower bound of log q(x) that grows
with K. For latent dimension ≤ 2, ``log_likelihood_by_quadrature`` computes log q(x)
itself on a grid, so that ELBO ≤ log q(x) can be checked exactly.

The conditional VAE {cite}`sohn2015cvae` feeds the label c to the encoder and decoder and
uses either the standard prior q(z) (``prior="standard"``) or a learned conditional prior
p(z | c) = N(μ_c, diag σ_c²) (``prior="learned"``), the two forms on the slide.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .. import losses, recipes
from .base import GenerativeModel, ModelConfig

#: chapter 07's recipe, ``fit(model, data, **TRAINING)``; it lives in :data:`pgm_lab.recipes.VAE`
TRAINING = recipes.VAE


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class AutoEncoderConfig(ModelConfig):
    """Sizes of :class:`AutoEncoder`: ``latent_dim`` d, ``hidden`` units in ``n_hidden`` layers
    of the MLP encoder and decoder, the ``decoder`` likelihood (``"bernoulli"`` or
    ``"gaussian"`` with a fixed ``sigma``, or ``sigma=None`` for a learned variance)."""

    latent_dim: int = 8
    hidden: int = 256
    n_hidden: int = 2
    decoder: str = "bernoulli"
    sigma: float | None = 0.1

    def __post_init__(self):
        super().__post_init__()
        self.check_positive("latent_dim", "hidden", "n_hidden")
        self.check_choice("decoder", ("bernoulli", "gaussian"))
        if self.decoder == "gaussian" and self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be positive (or None for a learned variance), got {self.sigma!r}")


@dataclass(frozen=True)
class VAEConfig(AutoEncoderConfig):
    """:class:`AutoEncoderConfig` plus ``beta`` (the KL weight; 1 gives the ELBO) and the
    ``prior``: ``"standard"`` N(0, I) or ``"learned"`` p(z | c) (conditional models only)."""

    beta: float = 1.0
    prior: str = "standard"

    def __post_init__(self):
        super().__post_init__()
        self.check_choice("prior", ("standard", "learned"))
        if self.prior == "learned" and self.n_classes is None:
            raise ValueError("prior='learned' is the conditional prior p(z | c): pass n_classes")
        if not self.beta >= 0:
            raise ValueError(f"beta must be non-negative, got {self.beta!r}")


class _Coder(GenerativeModel):
    """Shared parts of AutoEncoder and VAE: flattening, label one-hot, decoder likelihood."""

    def _setup(self, out_latent: int):
        """The MLP encoder (to ``out_latent`` outputs) and decoder of ``self.cfg``."""
        cfg = self.cfg
        self.latent_dim = cfg.latent_dim
        self.decoder_kind = cfg.decoder
        self.sigma = cfg.sigma
        self.n_dims = math.prod(self.image_shape)
        k = self.n_classes or 0
        self.encoder = _mlp([self.n_dims + k] + [cfg.hidden] * cfg.n_hidden + [out_latent])
        n_out = 2 * self.n_dims if (cfg.decoder == "gaussian" and cfg.sigma is None) else self.n_dims
        self.decoder = _mlp([self.latent_dim + k] + [cfg.hidden] * cfg.n_hidden + [n_out])

    def _onehot(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return None if y is None else nn.functional.one_hot(y, self.n_classes).float()

    def _with_label(self, v: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return v if y is None else torch.cat([v, self._onehot(y)], dim=1)

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Decoder output for latent codes ``z`` (B, latent_dim): Bernoulli logits, or Gaussian
        means (fixed σ) / means and log-variances stacked on dim 1 (learned σ), shaped
        ``(B, C, H, W)`` or ``(B, 2C, H, W)``."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be shaped (B, {self.latent_dim}), got {tuple(z.shape)}")
        y = self.check_labels(len(z), labels)
        out = self.decoder(self._with_label(z, y)).float()  # float32 even under bf16 autocast
        return out.view(len(z), -1, *self.image_shape[1:])

    def recon_nll(self, x: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        """−log q(x | z) per image for the decoder output ``dec`` (nats)."""
        c = self.image_shape[0]
        if self.decoder_kind == "bernoulli":
            return losses.bernoulli_nll(x, dec)
        if self.sigma is None:
            return losses.gaussian_nll(x, dec[:, :c], dec[:, c:].clamp(-9.0, 4.0))
        return losses.gaussian_nll(x, dec, 2 * math.log(self.sigma))

    def decoder_mean(self, dec: torch.Tensor) -> torch.Tensor:
        """Mean E[x | z] from a decoder output: in [0, 1] for images (Gaussian means are clipped),
        unrestricted for vector data (``image_shape == (D,)``)."""
        if self.decoder_kind == "bernoulli":
            return torch.sigmoid(dec)
        mean = dec[:, : self.image_shape[0]]
        return mean.clamp(0.0, 1.0) if len(self.image_shape) == 3 else mean

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float()


class AutoEncoder(_Coder):
    """A deterministic autoencoder (自编码器): z = f(x), x̂ = g(z) (chapter 07).

    Trained on reconstruction only (cross-entropy for ``decoder="bernoulli"``, MSE-equivalent
    Gaussian NLL for ``"gaussian"``). Its codes are useful features, but nothing shapes
    their distribution, so ``sample`` (decoding z ~ N(0, I)) generally yields garbage: the
    point chapter 07 makes before the VAE.
    """

    Config = AutoEncoderConfig
    default_steps: ClassVar[dict[str, int]] = recipes.STEPS["AutoEncoder"]

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        self._setup(out_latent=self.cfg.latent_dim)

    def encode(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """Latent code z = f(x), shaped (B, latent_dim)."""
        self.check_images(x)
        y = self.check_labels(len(x), labels)
        return self.encoder(self._with_label(self._flat(x), y))

    def reconstruct(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.decoder_mean(self.decode(self.encode(x, labels), labels))

    def loss(self, x, y=None):
        z = self.encode(x, y)
        recon = self.recon_nll(x, self.decode(z, y)).mean()
        return recon, {"recon": float(recon.detach())}

    @torch.no_grad()
    def sample(self, n: int, labels=None, *, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """Decode z ~ N(0, I): a *naive* sampler that shows why a plain AE is not generative."""
        n = self.check_n(n)
        y = self.check_labels(n, labels)
        z = torch.randn(n, self.latent_dim, generator=self.as_generator(generator)).to(self.device_of())
        return self.decoder_mean(self.decode(z, y))


class VAE(_Coder):
    """Variational autoencoder (变分自编码器) with a Gaussian encoder p(z|x) (chapter 07).

    Sizes: ``latent_dim`` (d), ``hidden`` units in ``n_hidden`` layers of the MLP encoder and
    decoder; ``decoder="bernoulli"`` (default) or ``"gaussian"`` with a fixed ``sigma`` (or
    ``sigma=None``: learned per-pixel variance). ``beta`` weights the KL term (β = 1 is the
    ELBO). With ``n_classes`` the encoder and decoder also see the label (a conditional VAE);
    ``prior="learned"`` then uses p(z | c) instead of N(0, I).
    """

    Config = VAEConfig
    default_steps: ClassVar[dict[str, int]] = recipes.STEPS["VAE"]

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        self.beta = self.cfg.beta
        self.prior_kind = self.cfg.prior
        self._setup(out_latent=2 * self.cfg.latent_dim)
        self.prior_net = None
        if self.prior_kind == "learned":  # p(z | c) = N(μ_c, diag σ_c²), one row per class
            self.prior_net = nn.Embedding(self.n_classes, 2 * self.latent_dim)
            nn.init.normal_(self.prior_net.weight[:, : self.latent_dim], std=0.5)
            nn.init.zeros_(self.prior_net.weight[:, self.latent_dim :])

    # -- the pieces of the ELBO --------------------------------------------------------------
    def encode(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder p(z | x [, c]) = N(μ, diag σ²): returns (μ, log σ²), each (B, latent_dim)."""
        self.check_images(x)
        y = self.check_labels(len(x), labels)
        h = self.encoder(self._with_label(self._flat(x), y)).float()
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def prior(self, labels=None, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior parameters (μ, log σ²): zeros for N(0, I), or the learned p(z | c) of each label."""
        if self.prior_net is None:
            if n is None:
                n = 1 if labels is None else len(labels)
            z0 = torch.zeros(n, self.latent_dim, device=self.device_of())
            return z0, z0
        y = self.check_labels(n if n is not None else len(labels), labels)
        mu, logvar = self.prior_net(y).chunk(2, dim=1)
        return mu, logvar.clamp(-8.0, 4.0)

    @staticmethod
    def reparameterize(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ ⊙ ε with ε ~ N(0, I): a sample of N(μ, σ²) that is differentiable in μ and σ."""
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        return mu + (0.5 * logvar).exp() * eps

    def kl(self, mu, logvar, labels=None) -> torch.Tensor:
        """KL(p(z | x) || q(z)) per image, in closed form (standard or learned prior)."""
        if self.prior_net is None:
            return losses.gaussian_kl(mu, logvar)
        mu_p, logvar_p = self.prior(labels, n=len(mu))
        return losses.gaussian_kl_between(mu, logvar, mu_p, logvar_p)

    def elbo_terms(
        self, x: torch.Tensor, labels=None, *, n_samples: int = 1, generator=None
    ) -> dict[str, torch.Tensor]:
        """Per-image ``recon`` = E_{p(z|x)}[−log q(x|z)] (Monte Carlo, ``n_samples``), ``kl`` and
        ``elbo`` = −(recon + kl), each shaped (B,), in nats."""
        y = self.check_labels(len(x), labels)
        mu, logvar = self.encode(x, y)
        recon = 0.0
        for _ in range(int(n_samples)):
            z = self.reparameterize(mu, logvar, generator)
            recon = recon + self.recon_nll(x, self.decode(z, y))
        recon = recon / int(n_samples)
        kl = self.kl(mu, logvar, y)
        return {"recon": recon, "kl": kl, "elbo": losses.elbo(recon, kl)}

    def loss(self, x, y=None):
        t = self.elbo_terms(x, y)
        recon, kl = t["recon"].mean(), t["kl"].mean()
        loss = recon + self.beta * kl
        return loss, {
            "recon": float(recon.detach()),
            "kl": float(kl.detach()),
            "elbo": float(-(recon + kl).detach()),
        }

    # -- likelihood estimates ----------------------------------------------------------------
    @torch.no_grad()
    def iw_log_likelihood(
        self, x: torch.Tensor, labels=None, *, k: int = 100, generator=None, chunk: int = 50
    ):
        """Importance-weighted estimate log (1/K) Σ_k q(x|z_k) q(z_k) / p(z_k|x), z_k ~ p(z|x), per image.

        K = 1 gives (a one-sample estimate of) the ELBO; as K grows it rises towards log q(x)
        {cite}`burda2016iwae`.
        """
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        y = self.check_labels(len(x), labels)
        mu, logvar = self.encode(x, y)
        mu_p, logvar_p = self.prior(y, n=len(x))
        logw = []
        for start in range(0, int(k), chunk):
            m = min(chunk, int(k) - start)
            z = self.reparameterize(
                mu.expand(m, *mu.shape), logvar.expand(m, *logvar.shape), generator
            )  # (m, B, d)
            zf = z.reshape(-1, self.latent_dim)
            yf = None if y is None else y.repeat(m)
            dec = self.decode(zf, yf)
            log_px = -self.recon_nll(x.repeat(m, *[1] * (x.dim() - 1)), dec).view(m, len(x))
            log_pz = losses.gaussian_log_density(z, mu_p, logvar_p)
            log_q = losses.gaussian_log_density(z, mu, logvar)
            logw.append(log_px + log_pz - log_q)
        return losses.log_mean_exp(torch.cat(logw), dim=0)

    @torch.no_grad()
    def log_likelihood_by_quadrature(
        self, x: torch.Tensor, labels=None, *, n_grid: int = 401, limit: float = 6.0
    ):
        """log q(x) = log ∫ q(x|z) q(z) dz on a regular grid over [−limit, limit]^d (d ≤ 2), per image.

        Exact up to the quadrature error; used to check ELBO ≤ log q(x) on tiny models.
        """
        if self.latent_dim > 2:
            raise ValueError(f"quadrature needs latent_dim <= 2, this model has {self.latent_dim}")
        y = self.check_labels(len(x), labels)
        t = torch.linspace(-limit, limit, n_grid, device=self.device_of())
        if self.latent_dim == 1:
            grid, cell = t[:, None], float(t[1] - t[0])
        else:
            grid = torch.cartesian_prod(t, t)
            cell = float(t[1] - t[0]) ** 2
        out = []
        for i in range(len(x)):
            xi = x[i : i + 1].expand(len(grid), *x.shape[1:])
            yi = None if y is None else y[i : i + 1].expand(len(grid))
            log_px = -self.recon_nll(xi, self.decode(grid, yi))
            mu_p, logvar_p = self.prior(yi, n=len(grid))
            log_pz = losses.gaussian_log_density(grid, mu_p, logvar_p)
            out.append(torch.logsumexp(log_px + log_pz, dim=0) + math.log(cell))
        return torch.stack(out)

    # -- generation --------------------------------------------------------------------------
    def reconstruct(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """Decoder mean at the encoder mean: the VAE's reconstruction of ``x`` in [0, 1]."""
        mu, _ = self.encode(x, labels)
        return self.decoder_mean(self.decode(mu, labels))

    @torch.no_grad()
    def sample(
        self, n: int, labels=None, *, generator: torch.Generator | int | None = None, mean: bool = True
    ):
        """z ~ q(z) (or p(z | c)), then x from the decoder: its mean image (default) or a draw.

        Returns ``(n, *image_shape)``, in [0, 1] for images.
        """
        n = self.check_n(n)
        y = self.check_labels(n, labels)
        generator = self.as_generator(generator)
        mu_p, logvar_p = self.prior(y, n=n)
        z = self.reparameterize(mu_p, logvar_p, generator)
        dec = self.decode(z, y)
        m = self.decoder_mean(dec)
        if mean:
            return m
        if self.decoder_kind == "bernoulli":
            return (torch.rand(m.shape, generator=generator).to(m.device) < m).float()
        c = self.image_shape[0]
        std = self.sigma if self.sigma is not None else (0.5 * dec[:, c:]).exp()
        draw = m + std * torch.randn(m.shape, generator=generator).to(m.device)
        return draw.clamp(0.0, 1.0) if len(self.image_shape) == 3 else draw


class ConditionalVAE(VAE):
    """Conditional VAE (cVAE) {cite}`sohn2015cvae`: encoder p(z | x, c), decoder q(x | z, c) (chapter 10).

    ``prior="standard"``: q(x | c) = ∫ q(x | z, c) N(z; 0, I) dz; ``prior="learned"``:
    q(x | c) = ∫ q(x | z, c) p(z | c) dz with a learned Gaussian per class. Requires ``n_classes``.
    """

    requires_classes = True


__all__ = ["VAE", "AutoEncoder", "AutoEncoderConfig", "ConditionalVAE", "VAEConfig"]
