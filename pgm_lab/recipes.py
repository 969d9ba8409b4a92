"""Training recipes of Part II: how the chapters train each model (chapters 06-10).

Model classes (:mod:`pgm_lab.models`) hold architectures and their maths; how many steps,
which learning rate, batch and data augmentation a chapter uses lives here, in one place:

- :data:`STEPS`: training steps per profile (``smoke``, ``quick``, ``full``) of each model
  class, read by ``pgm_lab.train.fit`` through the class's ``default_steps``;
- :data:`FIT` and :func:`pixel_model_fit`: the other ``fit`` settings (batch size, step size,
  learning-rate schedule, augmentation) a class needs to reach its chapter's quality with
  ``fit``'s defaults: its ``default_fit``, used wherever the caller leaves a setting out;
- :data:`PIXELCNN`, :data:`VAE`: the keyword arguments chapters 06, 07 and 10 pass as
  ``fit(model, data, **recipe)``: ±1-pixel shifts and fresh Bernoulli binarisation of the
  grey levels in every batch, learning rate decayed to 0 along a half cosine.

This module sits at the bottom of Part II: it imports only :mod:`pgm_lab.data`.
"""

from __future__ import annotations

from .data import binarize_and_shift, stochastic_binarize

#: training steps per profile, by model class (and data kind where the class serves both)
STEPS: dict[str, dict[str, int]] = {
    # quick: chapter 06's PixelCNN and PixelRNN at about 40 s each on 2 idle CPU cores
    "PixelCNN": {"smoke": 20, "quick": 1500, "full": 10000},
    "PixelRNN": {"smoke": 20, "quick": 700, "full": 10000},
    "ConditionalPixelCNN": {"smoke": 20, "quick": 2400, "full": 10000},  # 91% requested digit
    "AutoEncoder": {"smoke": 20, "quick": 4000, "full": 12000},
    "VAE": {"smoke": 20, "quick": 6000, "full": 20000},
    "GAN/images": {"smoke": 20, "quick": 1500, "full": 6000},
    "GAN/vectors": {"smoke": 20, "quick": 2500, "full": 2500},
    "DDPM/images": {"smoke": 20, "quick": 1500, "full": 20000},
    "DDPM/vectors": {"smoke": 20, "quick": 3000, "full": 10000},
    # at 1,500 quick steps of batch 64, 94% of DDIM's and 96-97% of Algorithm 2's samples show
    # the requested digit (2,500 steps: about 2 points more with DDIM, for 50 s more training)
    "ConditionalDDPM": {"smoke": 20, "quick": 1500, "full": 20000},
    # quick: the three runs of chapter 10's ablation, 35 s or less each on 2 idle CPU cores
    "Pix2Pix": {"smoke": 10, "quick": 1000, "full": 6000},
}

#: chapter 06's PixelCNN recipe: ``fit(model, data, **PIXELCNN)``
PIXELCNN = {"lr": 3e-3, "lr_schedule": "cosine", "transform": binarize_and_shift}
#: chapter 07's (Bernoulli) VAE recipe: ``fit(model, data, **VAE)``
VAE = {"lr": 2e-3, "lr_schedule": "cosine", "transform": binarize_and_shift}

#: settings of ``fit`` besides the steps that a class's defaults need (its ``default_fit``),
#: by model class (and data kind where the class serves both).
FIT: dict[str, dict] = {
    # the label biases start at 0: a larger step lets them grow within the quick budget
    "ConditionalPixelCNN": {"lr": 3e-3},
    "ConditionalDDPM": {"batch_size": 64},  # half the default batch: more steps in the budget
    "GAN/images": {"lr": 2e-3},  # chapter 09's DCGAN step size (chapter 10's conditional GAN too)
    "GAN/vectors": {"batch_size": 256},  # chapter 09's ring: larger batches, lr 1e-3
}


def pixel_model_fit(image_shape: tuple[int, int, int]) -> dict:
    """``default_fit`` of an unconditional PixelCNN or PixelRNN: chapter 06's recipe.

    Without its augmentation these models over-fit the 1,500 digits (test NLL about a third
    worse in ``quick``). The ±1-pixel shifts suit images of 8×8 and larger; smaller ones get
    the fresh binarisation alone.
    """
    h, w = image_shape[1:]
    return {**PIXELCNN, "transform": binarize_and_shift if min(h, w) >= 8 else stochastic_binarize}


__all__ = ["FIT", "PIXELCNN", "STEPS", "VAE", "pixel_model_fit"]
