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

from . import evaluation, losses
from .evaluation import *  # noqa: F403
from .losses import *  # noqa: F403

__all__ = sorted({*losses.__all__, *evaluation.__all__})
