"""Scoring generated samples (chapters 06-10): the digit classifier, Fréchet distances, ``score_samples``.

The top layer of Part II: it trains a small CNN on the real digits with
:func:`pgm_lab.train.fit` (:func:`evaluation_classifier`) and scores samples of any model
(GANs included) with it: class accuracy for conditional samples, confidence and class
coverage for unconditional ones, and the Fréchet distance between Gaussians fitted to
classifier features of samples and of held-out real images {cite}`heusel2017fid`. The
Fréchet distance is biased upwards at small N, so :func:`score_samples` always reports the
real-vs-real value at the same N (``frechet_floor``) beside it.

Imports run one way: this module uses :mod:`pgm_lab.models.base`, :mod:`pgm_lab.data` and
:mod:`pgm_lab.train`; no model imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import data as pdata
from .config import device as default_device
from .models.base import ModelConfig, TrainableModel
from .train import fit


# -- evaluation classifier -----------------------------------------------------------------
@dataclass(frozen=True)
class DigitClassifierConfig(ModelConfig):
    """Sizes of :class:`DigitClassifier`: ``width`` channels of the first convolution (twice
    that in the second) and ``n_features`` penultimate features."""

    n_classes: int | None = 10
    width: int = 16
    n_features: int = 64

    def __post_init__(self):
        super().__post_init__()
        if self.n_classes is None:
            raise ValueError("n_classes: a classifier needs the number of classes")
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape: the classifier reads images (C, H, W), got {self.image_shape}")
        self.check_positive("width", "n_features")


class DigitClassifier(TrainableModel):
    """A small CNN that classifies digits; its penultimate layer gives Fréchet features.

    A :class:`~pgm_lab.models.base.TrainableModel` (not a generative one: it has no
    ``sample``) trained by :func:`pgm_lab.train.fit` with cross-entropy. Works for any image
    size ≥ 8 thanks to adaptive pooling.
    """

    Config = DigitClassifierConfig

    def __init__(self, image_shape=(1, 8, 8), n_classes: int | None = 10, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        c, width, n_features = self.image_shape[0], self.cfg.width, self.cfg.n_features
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
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(n_features, self.n_classes))

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
    x = pdata.random_shift(x, generator)
    half = torch.rand(len(x), generator=generator).to(x.device) < 0.5
    return torch.where(half[:, None, None, None], pdata.stochastic_binarize(x, generator), x)


_CLASSIFIERS: dict[tuple[int, str], DigitClassifier] = {}
CLASSIFIER_STEPS = 600


def evaluation_classifier(size: int = 8, *, device=None) -> DigitClassifier:
    """The cached digit classifier used to score samples (chapters 06-10).

    Trained once on the training split of :func:`pgm_lab.data.digits` (``size`` 8 or 16; 28
    uses :func:`pgm_lab.data.mnist`) with ±1-pixel shifts and random binarisation, then
    cached by :func:`pgm_lab.train.fit` under ``pgm_lab.cache_dir()``; later calls load it.
    Its test accuracy is stored in ``clf.test_accuracy`` (≥ 0.97 on 8×8 digits).
    """
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
        clf.test_accuracy = float((predict(clf, xt).argmax(1).cpu() == yt).float().mean())
    _CLASSIFIERS[key] = clf
    return clf


def predict(clf, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The classifier's logits for images ``x`` (N, C, H, W), in batches, on the CPU."""
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
    x = _as_samples(samples, size)
    if binarize not in (False, True, "threshold", "stochastic"):
        raise ValueError(f"binarize must be False, True, 'threshold' or 'stochastic'; got {binarize!r}")
    clf = evaluation_classifier(size)
    with torch.no_grad():
        probs = predict(clf, x).softmax(1)
    out: dict = {"n": len(x), **_class_scores(probs, labels, min_share)}
    real_x = _real_digits(size, "test", binarize, seed) if real is None else _as_images(real)
    if n_real is not None:
        real_x = real_x[:n_real]
    train_x = _real_digits(size, "train", False, seed)
    g = torch.Generator().manual_seed(seed)
    floor_x = _binarized(train_x[torch.randperm(len(train_x), generator=g)[: len(x)]], binarize, seed)
    f_real = _features(clf, real_x)
    out["frechet"] = frechet_distance(_features(clf, x), f_real)
    out["frechet_floor"] = frechet_distance(_features(clf, floor_x), f_real)
    out["n_real"] = len(real_x)
    return out


def _as_samples(samples, size: int) -> torch.Tensor:
    """Samples as a float tensor (N, 1, size, size) in [0, 1]; ``ValueError`` otherwise."""
    x = torch.as_tensor(samples.detach().cpu() if torch.is_tensor(samples) else samples, dtype=torch.float32)
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, size, size):
        raise ValueError(f"samples must be shaped (N, 1, {size}, {size}), got {tuple(x.shape)}")
    if len(x) < 2:
        raise ValueError("score_samples needs at least 2 samples")
    if not torch.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("samples must be finite and lie in [0, 1]")
    return x


def _class_scores(probs: torch.Tensor, labels, min_share: float) -> dict:
    """Accuracy (given labels), confidence, predicted-class histogram and coverage of ``probs`` (N, 10)."""
    pred = probs.argmax(1)
    hist = torch.bincount(pred, minlength=10)
    out: dict = {}
    if labels is not None:
        lab = torch.as_tensor(labels).long().reshape(-1).cpu()
        if len(lab) != len(pred):
            raise ValueError(f"{len(pred)} samples but {len(lab)} labels")
        out["accuracy"] = float((pred == lab).float().mean())
    out["confidence"] = float(probs.max(1).values.mean())
    out["histogram"] = [int(v) for v in hist]
    out["coverage"] = int((hist >= max(1.0, min_share * len(pred))).sum())
    return out


def _binarized(x: torch.Tensor, binarize: bool | str, seed: int) -> torch.Tensor:
    """Real digits made binary like the samples: thresholded at 0.5, Bernoulli draws, or unchanged."""
    if binarize == "stochastic":
        return pdata.stochastic_binarize(x, torch.Generator().manual_seed(seed + 1))
    return (x > 0.5).float() if binarize else x


def _real_digits(size: int, split: str, binarize: bool | str, seed: int) -> torch.Tensor:
    """The real digits of ``split`` at ``size`` (28: MNIST), binarised like the samples."""
    ds = pdata.mnist(split) if size == 28 else pdata.digits(size, split=split)
    return _binarized(ds.tensors[0], binarize, seed)


def _as_images(real) -> torch.Tensor:
    return torch.as_tensor(real.tensors[0] if hasattr(real, "tensors") else real, dtype=torch.float32)


__all__ = [
    "CLASSIFIER_STEPS",
    "DigitClassifier",
    "DigitClassifierConfig",
    "evaluation_classifier",
    "frechet_distance",
    "predict",
    "score_samples",
]
