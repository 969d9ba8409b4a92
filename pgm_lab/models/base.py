"""The common interface of every Part II model (see chapters 06-10).

A model is a ``torch.nn.Module`` built as ``Model(image_shape=(C, H, W), n_classes=None, **sizes)``.
``pgm_lab.train.fit`` trains all of them with one loop by calling

- ``model.configure_optimizers(lr)`` -> list of optimisers (one for likelihood models,
  two for GANs: generator first, then discriminator);
- ``model.training_step(x, y, optimizers)`` -> dict of float logs; the default
  implementation computes ``self.loss(x, y)``, back-propagates and steps the single
  optimiser. GANs override it with alternating updates.

``model.sample(n, labels=None)`` returns images in [0, 1] shaped ``(n, *image_shape)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GenerativeModel(nn.Module):
    """Base class: shape/label validation, the default optimiser and training step."""

    #: ``Conditional*`` classes set this: they cannot be built without ``n_classes``
    requires_classes: bool = False

    def __init__(self, image_shape=(1, 8, 8), n_classes: int | None = None, **sizes: Any):
        super().__init__()
        shape = tuple(int(s) for s in image_shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ValueError(
                f"image_shape must be (C, H, W) for images or (D,) for vectors, with positive sizes; "
                f"got {image_shape!r}"
            )
        if n_classes is not None and (int(n_classes) != n_classes or n_classes < 1):
            raise ValueError(f"n_classes must be a positive integer or None, got {n_classes!r}")
        if self.requires_classes and n_classes is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass n_classes")
        self.image_shape = shape
        self.n_classes = None if n_classes is None else int(n_classes)
        #: everything that identifies the architecture; part of the checkpoint cache key
        self.config = {
            "class": type(self).__name__,
            "image_shape": shape,
            "n_classes": self.n_classes,
            **sizes,
        }

    # -- validation -------------------------------------------------------------------
    def check_images(self, x: torch.Tensor) -> torch.Tensor:
        """Raise ``ValueError`` unless ``x`` is a batch ``(N, *image_shape)``; images must lie in [0, 1].

        Vector data (``image_shape == (D,)``, the 2-D toy sets) may take any real value.
        """
        if not torch.is_tensor(x):
            raise ValueError(f"images must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 1 + len(self.image_shape) or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"data must be shaped (N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        if x.numel() and not torch.isfinite(x).all():
            raise ValueError("data contains NaN or infinite values")
        if len(self.image_shape) == 3 and x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise ValueError(
                f"images must lie in [0, 1], got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]"
            )
        return x

    def check_labels(self, n: int, labels) -> torch.Tensor | None:
        """Validate ``labels`` for ``n`` samples: required iff the model is conditional."""
        if self.n_classes is None:
            if labels is not None:
                raise ValueError(f"{type(self).__name__} is unconditional: do not pass labels")
            return None
        if labels is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass labels (one per sample)")
        labels = torch.as_tensor(labels, device=self.device_of()).long().reshape(-1)
        if labels.numel() == 1 and n != 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ValueError(f"expected {n} labels, got {labels.numel()}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.n_classes):
            raise ValueError(
                f"labels must lie in 0..{self.n_classes - 1}, got {labels.min().item()}..{labels.max().item()}"
            )
        return labels

    @property
    def conditional(self) -> bool:
        """A model is class-conditional exactly when it was built with ``n_classes``."""
        return self.n_classes is not None

    def device_of(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    # -- training protocol used by pgm_lab.train.fit -------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar training loss of a batch and a dict of float logs."""
        raise NotImplementedError

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(self, x, y, optimizers) -> dict[str, float]:
        (opt,) = optimizers
        loss, logs = self.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), **logs}

    def sample(self, n: int, labels=None) -> torch.Tensor:
        raise NotImplementedError
