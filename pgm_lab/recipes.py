"""Training recipes of Part II: how the chapters train each model (chapters 06-10).

Model classes (:mod:`pgm_lab.models`) hold architectures and their maths; how many steps,
which learning rate, batch and data augmentation a chapter uses lives here, in one place:

- :data:`STEPS`: training steps per profile (``smoke``, ``quick``, ``full``) of each model
  class, read by ``pgm_lab.train.fit`` through the class's ``default_steps``;
- :data:`FIT`: other ``fit`` settings a class needs to reach the chapter's quality with
  ``fit``'s defaults (its ``default_fit``);
- :data:`PIXELCNN`, :data:`VAE`: the keyword arguments chapters 06, 07 and 10 pass as
  ``fit(model, data, **recipe)``: ±1-pixel shifts and fresh Bernoulli binarisation of the
  grey levels in every batch, learning rate decayed to 0 along a half cosine.

This module sits at the bottom of Part II: it imports only :mod:`pgm_lab.data`.
"""

from __future__ import annotations

from .data import binarize_and_shift

#: training steps per profile, by model class (and data kind where the class serves both)
STEPS: dict[str, dict[str, int]] = {
    "PixelCNN": {"smoke": 20, "quick": 2400, "full": 10000},
    "PixelRNN": {"smoke": 20, "quick": 1000, "full": 10000},  # about 110 s on 2 busy CPU cores
    "AutoEncoder": {"smoke": 20, "quick": 4000, "full": 12000},
    "VAE": {"smoke": 20, "quick": 6000, "full": 20000},
    "GAN/images": {"smoke": 20, "quick": 1500, "full": 6000},
    "GAN/vectors": {"smoke": 20, "quick": 2500, "full": 2500},
    "DDPM/images": {"smoke": 20, "quick": 1500, "full": 20000},
    "DDPM/vectors": {"smoke": 20, "quick": 3000, "full": 10000},
    # more steps than chapter 08's DDPM: at 1,500 steps about 96-97% of Algorithm 2's samples
    # show the requested digit, at 2,500 (about 90 s on 2 CPU cores) more
    "ConditionalDDPM": {"smoke": 20, "quick": 2500, "full": 20000},
    "Pix2Pix": {"smoke": 10, "quick": 1500, "full": 6000},
}

#: settings of ``fit`` besides the steps that a class's defaults need (its ``default_fit``).
#: The conditional PixelCNN's label biases start at 0: a larger step lets them grow within
#: the ``quick`` budget.
FIT: dict[str, dict] = {
    "ConditionalPixelCNN": {"lr": 3e-3},
    "ConditionalDDPM": {"batch_size": 64},  # half the default batch: more steps in the budget
    "ConditionalGAN": {"lr": 2e-3},  # chapter 09's DCGAN step size
}

#: chapter 06's PixelCNN recipe: ``fit(model, data, **PIXELCNN)``
PIXELCNN = {"lr": 3e-3, "lr_schedule": "cosine", "transform": binarize_and_shift}
#: chapter 07's (Bernoulli) VAE recipe: ``fit(model, data, **VAE)``
VAE = {"lr": 2e-3, "lr_schedule": "cosine", "transform": binarize_and_shift}

__all__ = ["FIT", "PIXELCNN", "STEPS", "VAE"]
