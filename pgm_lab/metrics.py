"""Measuring generative models (chapters 06-10): likelihoods, the ELBO and sample quality.

Likelihood models (PixelCNN, VAE, DDPM) are compared by their negative log-likelihood
on held-out images, in nats per image or bits per dimension (chapter 06). The VAE's
objective is the evidence lower bound (ELBO, 证据下界), written with the slides' symbols
(encoder p(z|x), decoder q(x|z), prior q(z)) as

    ELBO(x) = E_{z~p(z|x)}[log q(x|z)] - KL(p(z|x) || q(z)) <= log q(x)        (chapter 07)

Samples of any model (GANs included) are scored by a small CNN trained on the real digits
(:func:`evaluation_classifier`): class accuracy for conditional samples, confidence and
class coverage for unconditional ones, and the Fréchet distance between Gaussians fitted
to classifier features of samples and of held-out real images {cite}`heusel2017fid`.
The Fréchet distance is biased upwards at small N, so :func:`score_samples` always reports
the real-vs-real value at the same N (``frechet_floor``) beside it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .models.base import GenerativeModel

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


# -- evaluation classifier -----------------------------------------------------------------
class DigitClassifier(GenerativeModel):
    """A small CNN that classifies digits; its 64-d penultimate layer gives Fréchet features.

    Trained by :func:`pgm_lab.train.fit` with cross-entropy (it is not a generative model:
    ``sample`` is not available). Works for any image size ≥ 8 thanks to adaptive pooling.
    """

    def __init__(self, image_shape=(1, 8, 8), n_classes: int = 10, width: int = 16, n_features: int = 64):
        super().__init__(image_shape, n_classes, width=width, n_features=n_features)
        c = image_shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(4),  # (B, 2w, 4, 4)
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(2 * width * 16, n_features),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(n_features, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (before the last ReLU, so that their covariance is not singular)."""
        return self.body(x)  # (B, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, n_classes) logits

    def loss(self, x, y=None):
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        return loss, {"accuracy": float((logits.argmax(1) == y).float().mean())}


def _classifier_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """±1-pixel shifts, and stochastic binarisation of half the batch, so binary samples score fairly."""
    from .data import random_shift, stochastic_binarize

    x = random_shift(x, generator)
    half = torch.rand(len(x), generator=generator).to(x.device) < 0.5
    return torch.where(half[:, None, None, None], stochastic_binarize(x, generator), x)


_CLASSIFIERS: dict[tuple[int, str], DigitClassifier] = {}
CLASSIFIER_STEPS = 600


def evaluation_classifier(size: int = 8, *, device=None) -> DigitClassifier:
    """The cached digit classifier used to score samples (chapters 06-10).

    Trained once on the training split of :func:`pgm_lab.data.digits` (``size`` 8 or 16; 28
    uses :func:`pgm_lab.data.mnist`) with ±1-pixel shifts and random binarisation, then
    cached by :func:`pgm_lab.train.fit` under ``pgm_lab.cache_dir()``; later calls load it.
    Its test accuracy is stored in ``clf.test_accuracy`` (≥ 0.97 on 8×8 digits).
    """
    from . import data as pdata
    from .config import device as default_device
    from .train import fit

    if size not in (8, 16, 28):
        raise ValueError(f"evaluation_classifier size must be 8, 16 or 28, got {size!r}")
    dev = torch.device(device) if device is not None else default_device()
    key = (size, str(dev))
    if key in _CLASSIFIERS:
        return _CLASSIFIERS[key]
    if size == 28:
        train, test = pdata.mnist("train"), pdata.mnist("test")
    else:
        train, test = pdata.digits(size, split="train"), pdata.digits(size, split="test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same initial weights whoever asks first (the cache key has no RNG state)
        clf = DigitClassifier((1, size, size))
        fit(
            clf,
            train,
            profile="full",
            steps=CLASSIFIER_STEPS,
            batch_size=128,
            lr=2e-3,
            seed=0,
            device=dev,
            progress=False,
            log_every=50,
            transform=_classifier_augment,
        )
    clf.eval().requires_grad_(False)
    xt, yt = test.tensors
    with torch.no_grad():
        clf.test_accuracy = float((_predict(clf, xt).argmax(1).cpu() == yt).float().mean())
    _CLASSIFIERS[key] = clf
    return clf


def _predict(clf, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    dev = clf.device_of()
    outs = [clf(x[i : i + batch].to(dev)).float() for i in range(0, len(x), batch)]
    return torch.cat(outs).cpu()


def _features(clf, x: torch.Tensor, batch: int = 1024) -> np.ndarray:
    dev = clf.device_of()
    with torch.no_grad():
        outs = [clf.features(x[i : i + batch].to(dev)).float().cpu() for i in range(0, len(x), batch)]
    return torch.cat(outs).double().numpy()


def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N_a, d)``, ``(N_b, d)``.

    d² = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}) {cite}`heusel2017fid`. It is biased
    upwards for small N: compare it with a real-vs-real value at the same N.
    """
    from scipy import linalg

    a = np.asarray(feat_a.detach().cpu() if torch.is_tensor(feat_a) else feat_a, dtype=np.float64)
    b = np.asarray(feat_b.detach().cpu() if torch.is_tensor(feat_b) else feat_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, d) arrays with the same d, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 rows")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features contain NaN or infinite values")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(a.shape[1])
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    d2 = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(d2, 0.0)


def score_samples(
    samples,
    labels=None,
    *,
    size: int = 8,
    real=None,
    n_real: int | None = None,
    binarize: bool | str = False,
    min_share: float = 0.02,
    seed: int = 0,
) -> dict:
    """Score generated digits with :func:`evaluation_classifier` (chapters 06-10).

    Returns a dict with

    - ``n``: number of samples; ``accuracy``: fraction classified as their requested
      ``labels`` (only when labels are given, i.e. for conditional samples);
    - ``confidence``: mean of the classifier's top softmax probability;
    - ``histogram``: predicted-class counts (list of 10) and ``coverage``: number of classes
      that receive at least ``min_share`` of the samples (at least one sample);
    - ``frechet``: Fréchet distance of classifier features between the samples and ``real``
      (default: the held-out test digits; ``binarize=True`` thresholds them at 0.5 and
      ``"stochastic"`` draws Bernoulli pixels, to match binary samples; ``n_real`` caps it);
    - ``frechet_floor``: the same distance between ``n`` real *training* digits and the same
      real set: what a perfect model would score at this N.
    """
    from . import data as pdata

    x = torch.as_tensor(samples.detach().cpu() if torch.is_tensor(samples) else samples, dtype=torch.float32)
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, size, size):
        raise ValueError(f"samples must be shaped (N, 1, {size}, {size}), got {tuple(x.shape)}")
    if len(x) < 2:
        raise ValueError("score_samples needs at least 2 samples")
    if not torch.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("samples must be finite and lie in [0, 1]")
    clf = evaluation_classifier(size)
    with torch.no_grad():
        probs = _predict(clf, x).softmax(1)
    pred = probs.argmax(1)
    hist = torch.bincount(pred, minlength=10)
    out: dict = {"n": len(x)}
    if labels is not None:
        lab = torch.as_tensor(labels).long().reshape(-1).cpu()
        if len(lab) != len(x):
            raise ValueError(f"{len(x)} samples but {len(lab)} labels")
        out["accuracy"] = float((pred == lab).float().mean())
    out["confidence"] = float(probs.max(1).values.mean())
    out["histogram"] = [int(v) for v in hist]
    out["coverage"] = int((hist >= max(1.0, min_share * len(x))).sum())

    if binarize not in (False, True, "threshold", "stochastic"):
        raise ValueError(f"binarize must be False, True, 'threshold' or 'stochastic'; got {binarize!r}")

    def _prep(ds_x):
        if binarize == "stochastic":
            return pdata.stochastic_binarize(ds_x, torch.Generator().manual_seed(seed + 1))
        return (ds_x > 0.5).float() if binarize else ds_x

    if real is None:
        test = pdata.mnist("test") if size == 28 else pdata.digits(size, split="test")
        real_x = _prep(test.tensors[0])
    else:
        real_x = torch.as_tensor(real.tensors[0] if hasattr(real, "tensors") else real, dtype=torch.float32)
    if n_real is not None:
        real_x = real_x[:n_real]
    train_x = pdata.mnist("train").tensors[0] if size == 28 else pdata.digits(size, split="train").tensors[0]
    g = torch.Generator().manual_seed(seed)
    floor_x = _prep(train_x[torch.randperm(len(train_x), generator=g)[: len(x)]])
    f_real = _features(clf, real_x)
    out["frechet"] = frechet_distance(_features(clf, x), f_real)
    out["frechet_floor"] = frechet_distance(_features(clf, floor_x), f_real)
    out["n_real"] = len(real_x)
    return out


__all__ = [
    "CLASSIFIER_STEPS",
    "DigitClassifier",
    "bernoulli_nll",
    "bits_per_dim_to_nll",
    "elbo",
    "evaluation_classifier",
    "frechet_distance",
    "gaussian_kl",
    "gaussian_kl_between",
    "gaussian_log_density",
    "gaussian_nll",
    "independent_bernoulli_nll",
    "log_mean_exp",
    "nll_to_bits_per_dim",
    "score_samples",
]
