"""Measuring generative models (chapters 06-10): one place for the public names.

A thin re-export module, kept so that ``pl.metrics.<name>`` works as the chapters use it:

- likelihood units and the ELBO pieces (bits/dim, Gaussian KL, Bernoulli and Gaussian
  NLL, log-mean-exp, the independent-pixel baseline) live in :mod:`pgm_lab.losses`, the
  bottom layer that the models import;
- the evaluation classifier, Fréchet distances and :func:`score_samples` live in
  :mod:`pgm_lab.evaluation`, the top layer that trains and reads models.

Models never import this module (a test checks the layers).
"""

from __future__ import annotations

from .evaluation import (
    CLASSIFIER_STEPS,
    DigitClassifier,
    DigitClassifierConfig,
    evaluation_classifier,
    frechet_distance,
    predict,
    score_samples,
)
from .losses import (
    LOG2,
    bernoulli_nll,
    bits_per_dim_to_nll,
    elbo,
    gaussian_kl,
    gaussian_kl_between,
    gaussian_log_density,
    gaussian_nll,
    independent_bernoulli_nll,
    log_mean_exp,
    nll_to_bits_per_dim,
)

__all__ = [
    "CLASSIFIER_STEPS",
    "LOG2",
    "DigitClassifier",
    "DigitClassifierConfig",
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
    "predict",
    "score_samples",
]
