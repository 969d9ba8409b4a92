"""The common interface of every Part II model (see chapters 06-10).

Two layers of base classes:

- :class:`TrainableModel`: anything ``pgm_lab.train.fit`` can train (the generative models
  and the evaluation classifier of :mod:`pgm_lab.evaluation`). It validates the data shape
  and the labels, records its configuration and implements the training protocol:

  - ``model.configure_optimizers(lr)`` -> list of optimisers (one for likelihood models,
    two for GANs: generator first, then discriminator);
  - ``model.training_step(x, y, optimizers)`` -> dict of float logs; the default computes
    ``self.loss(x, y)``, back-propagates and steps the single optimiser. GANs override it.

- :class:`GenerativeModel`: a trainable model that also draws samples,
  ``model.sample(n, labels=None, *, generator=None)`` -> images in [0, 1] shaped
  ``(n, *image_shape)``.

Sizes are typed (the nanoGPT pattern): each model declares a frozen dataclass ``Config``
(a subclass of :class:`ModelConfig`) whose ``__post_init__`` validates every field with a
``ValueError`` that names it. ``Model(image_shape, n_classes, **sizes)`` builds that config;
``Model.from_config(cfg)`` takes one. ``model.cfg`` is the typed config and ``model.config``
its JSON-able dict (part of the checkpoint cache key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


# -- typed configurations ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelConfig:
    """What every model shares: the data shape ``(C, H, W)`` (or ``(D,)`` for vectors) and the
    number of classes (``None``: unconditional). Subclasses add their sizes as fields."""

    image_shape: tuple[int, ...] = (1, 8, 8)
    n_classes: int | None = None

    def __post_init__(self):
        try:
            shape = tuple(int(s) for s in self.image_shape)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) not in (1, 3) or min(shape) < 1 or shape != tuple(self.image_shape):
            raise ValueError(
                "image_shape must be (C, H, W) for images or (D,) for vectors, with positive sizes; "
                f"got {self.image_shape!r}"
            )
        self._set("image_shape", shape)
        n = self.n_classes
        if n is not None and (isinstance(n, bool) or not _is_int(n) or n < 1):
            raise ValueError(f"n_classes must be a positive integer or None, got {n!r}")
        self._set("n_classes", None if n is None else int(n))

    # -- helpers for subclasses' __post_init__ -----------------------------------------
    def _set(self, name: str, value: Any) -> None:
        """Normalise a field of the frozen dataclass (only inside ``__post_init__``)."""
        object.__setattr__(self, name, value)

    @property
    def is_image(self) -> bool:
        return len(self.image_shape) == 3

    def check_positive(self, *names: str, allow_zero: bool = False) -> None:
        """``ValueError`` naming the field unless each of ``names`` is a positive (or ≥ 0) integer."""
        for name in names:
            v = getattr(self, name)
            low = 0 if allow_zero else 1
            if isinstance(v, bool) or not _is_int(v) or v < low:
                kind = "non-negative" if allow_zero else "positive"
                raise ValueError(f"{name} must be a {kind} integer, got {v!r}")
            self._set(name, int(v))

    def check_choice(self, name: str, choices: tuple) -> None:
        v = getattr(self, name)
        if v not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {v!r}")

    def check_range(self, name: str, low: float, high: float, *, closed_high: bool = False) -> None:
        """``ValueError`` naming the field unless ``low <= value < high`` (``<= high`` if closed)."""
        v = getattr(self, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v
        ok = ok and (v <= high if closed_high else v < high)
        if not ok:
            bracket = "]" if closed_high else ")"
            raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {v!r}")
        self._set(name, float(v))

    def check_odd(self, *names: str) -> None:
        for name in names:
            self.check_positive(name)
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be a positive odd integer, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (tuples kept; ``json`` writes them as lists)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _is_int(v) -> bool:
    try:
        return int(v) == v
    except (TypeError, ValueError):
        return False


# -- the training protocol ---------------------------------------------------------------------
class TrainableModel(nn.Module):
    """What ``pgm_lab.train.fit`` trains: shape/label validation, config, optimiser, training step."""

    #: the typed configuration of this model (subclasses set their own)
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: ``Conditional*`` classes set this: they cannot be built without ``n_classes``
    requires_classes: ClassVar[bool] = False

    def __init__(self, image_shape=None, n_classes: int | None = None, *, config=None, **sizes: Any):
        super().__init__()
        cfg, extra = self._make_config(image_shape, n_classes, config, sizes)
        if self.requires_classes and cfg.n_classes is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass n_classes")
        self.cfg = cfg
        self.image_shape = cfg.image_shape
        self.n_classes = cfg.n_classes
        #: everything that identifies the architecture; part of the checkpoint cache key
        self.config = {"class": type(self).__name__, **cfg.as_dict(), **extra}

    def _make_config(self, image_shape, n_classes, config, sizes) -> tuple[ModelConfig, dict]:
        """The typed config from keyword sizes (or ``config`` itself); untyped extras for
        subclasses that declare no ``Config`` of their own (test doubles)."""
        if config is not None:
            if not isinstance(config, self.Config):
                raise ValueError(f"config must be a {self.Config.__name__}, got {type(config).__name__}")
            if image_shape is not None or n_classes is not None or sizes:
                raise ValueError("pass either config or image_shape/n_classes/sizes, not both")
            return config, {}
        kw = {"n_classes": n_classes, **({} if image_shape is None else {"image_shape": image_shape})}
        if self.Config is ModelConfig:  # no typed sizes declared: keep them as they are
            return ModelConfig(**kw), dict(sizes)
        names = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(sizes) - names)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no size {', '.join(unknown)}; "
                f"its sizes are {', '.join(sorted(names - {'image_shape', 'n_classes'}))}"
            )
        return self.Config(**kw, **sizes), {}

    @classmethod
    def from_config(cls, config: ModelConfig):
        """Build the model from a typed config (``cls.Config(...)``)."""
        return cls(config=config)

    # -- validation -------------------------------------------------------------------------
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


class GenerativeModel(TrainableModel):
    """A trainable model that draws samples x ~ p_θ(x) (or x ~ p_θ(x | c) when conditional)."""

    def sample(self, n: int, labels=None, *, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """Draw ``n`` samples x ~ p_θ(x), or x ~ p_θ(x | c) with one class c per sample in ``labels``.

        Returns ``(n, *image_shape)``: images in [0, 1] (vectors unrestricted). ``labels`` is
        required exactly when the model is conditional (``n_classes`` set). ``generator`` (a
        CPU ``torch.Generator`` or an int seed) makes the draw reproducible on any device.
        Subclasses may add keyword-only options after ``generator``.
        """
        raise NotImplementedError

    # -- helpers for sample() -----------------------------------------------------------
    @staticmethod
    def check_n(n) -> int:
        """``n`` as an int; ``ValueError`` unless it is a positive integer."""
        if isinstance(n, bool) or not _is_int(n) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return int(n)

    @staticmethod
    def as_generator(generator) -> torch.Generator | None:
        """A ``torch.Generator`` from a generator, an int seed or ``None``."""
        if generator is None or isinstance(generator, torch.Generator):
            return generator
        if isinstance(generator, int) and not isinstance(generator, bool):
            return torch.Generator().manual_seed(generator)
        raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")


__all__ = ["GenerativeModel", "ModelConfig", "TrainableModel"]
