"""Deep generative models of Part II (chapters 06-10), one module per family.

All share :class:`pgm_lab.models.base.GenerativeModel` (one ``sample(n, labels=None, *,
generator=None)``), are built from a typed config (``Model.Config``, e.g. :class:`PixelCNNConfig`)
and train with ``pgm_lab.train.fit``. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import GenerativeModel, ModelConfig, TrainableModel

_WHERE = {
    "PixelCNN": "pixelcnn",
    "PixelCNNConfig": "pixelcnn",
    "ConditionalPixelCNN": "pixelcnn",
    "ConditionalPixelCNNConfig": "pixelcnn",
    "MaskedConv2d": "pixelcnn",
    "PixelRNN": "pixelrnn",
    "PixelRNNConfig": "pixelrnn",
    "RowLSTM": "pixelrnn",
    "AutoEncoder": "vae",
    "AutoEncoderConfig": "vae",
    "VAE": "vae",
    "VAEConfig": "vae",
    "ConditionalVAE": "vae",
    "UNet": "unet",
    "DDPM": "diffusion",
    "DDPMConfig": "diffusion",
    "ConditionalDDPM": "diffusion",
    "GAN": "gan",
    "GANConfig": "gan",
    "ConditionalGAN": "gan",
    "Pix2Pix": "pix2pix",
    "Pix2PixConfig": "pix2pix",
    "PatchDiscriminator": "pix2pix",
}

__all__ = ["GenerativeModel", "ModelConfig", "TrainableModel", *_WHERE]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pgm_lab.models' has no attribute {name!r}")
