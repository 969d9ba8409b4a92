"""PixelCNN: an autoregressive image model built from masked convolutions (see chapter 06).

The chain rule of probability orders the pixels in raster order (row by row, left to right,
and channel by channel inside a pixel) and writes, exactly,

    p(x) = Π_{i=1}^{n²} p(x_i | x_1, …, x_{i-1})                                    (自回归, chapter 06)

PixelCNN {cite}`vandenoord2016pixel` computes every conditional p(x_i | x_<i) in one
forward pass with *masked* convolutions: a mask zeroes the kernel weights that would look
at the current or a later pixel. The first layer uses a type-A mask (the centre pixel is
hidden from itself); later layers use type-B masks (the centre is visible, since its
features already depend only on earlier pixels). Pixels are binary here:
p(x_i = 1 | x_<i) = σ(logit_i), and the training loss is the exact negative
log-likelihood in nats per image. A class-conditional version {cite}`vandenoord2016conditional`
adds a learned per-class bias to every layer: p(x | c) = Π_i p(x_i | x_<i, c) (chapter 10).

A plain stack of 3×3 masked convolutions has a *blind spot*: pixels above and to the right
of the current one never enter its receptive field (:func:`dependency_map` shows it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .. import recipes
from ..losses import nll_to_bits_per_dim
from .base import GenerativeModel, ModelConfig

#: chapter 06's recipe, ``fit(model, data, **TRAINING)``; it lives in :data:`pgm_lab.recipes.PIXELCNN`
TRAINING = recipes.PIXELCNN


def causal_mask(kernel_size: int, mask_type: str, in_channels: int, out_channels: int, n_colors: int = 1):
    """The 0/1 mask ``(out, in, k, k)`` of a masked convolution of type ``"A"`` or ``"B"``.

    Spatially, the kernel sees the rows above the centre and the pixels left of the centre.
    At the centre, channels are split into ``n_colors`` groups (R, G, B for colour images):
    output group g sees input groups < g (type A) or ≤ g (type B).
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if in_channels % n_colors or out_channels % n_colors:
        raise ValueError(
            f"in_channels ({in_channels}) and out_channels ({out_channels}) must be multiples of "
            f"n_colors ({n_colors})"
        )
    k, c = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :c, :] = 1.0  # rows above the centre
    mask[:, :, c, :c] = 1.0  # left of the centre, same row
    g_out = torch.arange(out_channels) // (out_channels // n_colors)  # colour group of each channel
    g_in = torch.arange(in_channels) // (in_channels // n_colors)
    allowed = g_out[:, None] > g_in[None, :] if mask_type == "A" else g_out[:, None] >= g_in[None, :]
    mask[:, :, c, c] = allowed.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose kernel is multiplied by a causal mask of type A or B (chapter 06).

    Type A (first layer) hides the current pixel; type B (later layers) shows it. Padding
    keeps the image size. ``n_colors`` > 1 orders channels inside a pixel as well.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str = "B", n_colors: int = 1
    ):
        mask = causal_mask(kernel_size, mask_type, in_channels, out_channels, n_colors)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class _MaskedResidual(nn.Module):
    """ReLU → masked 3×3 (type B) → ReLU → masked 1×1, added to the input (a PixelCNN residual block)."""

    def __init__(self, channels: int, kernel_size: int, n_colors: int, dropout: float = 0.0):
        super().__init__()
        self.conv1 = MaskedConv2d(channels, channels, kernel_size, "B", n_colors)
        self.conv2 = MaskedConv2d(channels, channels, 1, "B", n_colors)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out = self.conv1(torch.relu(h))
        if bias is not None:
            out = out + bias
        return h + self.conv2(self.dropout(torch.relu(out)))


def output_head(channels: int, n_colors: int) -> nn.Sequential:
    """ReLU, masked 1×1 (type B), ReLU, masked 1×1 to one logit per sub-pixel (PixelCNN and
    PixelRNN, chapter 06)."""
    return nn.Sequential(
        nn.ReLU(),
        MaskedConv2d(channels, channels, 1, "B", n_colors),
        nn.ReLU(),
        MaskedConv2d(channels, n_colors, 1, "B", n_colors),
    )


class BinaryPixelModel(GenerativeModel):
    """An autoregressive model of binary pixels whose ``forward(x, y)`` gives one logit per
    sub-pixel: p(x) = Π_i Bernoulli(x_i; σ(logit_i)) (PixelCNN and PixelRNN, chapter 06)."""

    def log_prob(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """log p(x [| c]) in nats, one value per image: Σ_i log Bernoulli(x_i; σ(logit_i))."""
        self.check_images(x)
        y = self.check_labels(len(x), labels)
        logits = self(x, y)
        nll = nn.functional.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
        return -nll.reshape(len(x), -1).sum(1)

    def loss(self, x, y=None):
        nll = -self.log_prob(x, y).mean()
        d = x[0].numel()
        return nll, {"nll": float(nll.detach()), "bits_per_dim": float(nll_to_bits_per_dim(nll.detach(), d))}


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    """Sizes of :class:`PixelCNN`: ``channels`` hidden feature maps (a multiple of C),
    ``n_layers`` residual blocks of ``kernel_size`` masked convolutions after a type-A
    ``first_kernel`` layer, ``dropout`` inside the blocks."""

    channels: int = 32
    n_layers: int = 4
    kernel_size: int = 3
    first_kernel: int = 7
    dropout: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if not self.is_image:
            raise ValueError(f"image_shape: PixelCNN needs images (C, H, W), got {self.image_shape}")
        self.check_positive("channels")
        self.check_positive("n_layers", allow_zero=True)
        self.check_odd("kernel_size", "first_kernel")
        self.check_range("dropout", 0.0, 1.0)
        if self.channels % self.image_shape[0]:
            raise ValueError(
                f"channels ({self.channels}) must be a multiple of the image channels ({self.image_shape[0]})"
            )


@dataclass(frozen=True)
class ConditionalPixelCNNConfig(PixelCNNConfig):
    """:class:`PixelCNNConfig` of the conditional model (chapter 10): the same sizes. With the
    per-class output bias, 32 channels at batch 128 put the requested digit in 91% of the
    samples after the quick run (64 channels without it: about 90%, at 3x the time)."""


class PixelCNN(BinaryPixelModel):
    """PixelCNN over binary images ``(C, H, W)``: p(x) = Π_i Bernoulli(x_i; σ(f_i(x_<i))) (chapter 06).

    Sizes (:class:`PixelCNNConfig`): ``channels`` (hidden feature maps, a multiple of C),
    ``n_layers`` residual blocks with ``kernel_size`` masked convolutions after a
    ``first_kernel`` type-A layer (7×7 by default: on 8×8 digits it covers most of the blind
    spot); ``dropout`` inside the blocks against over-fitting small data sets.
    Grey-level inputs in [0, 1] are accepted and scored by cross-entropy (for training with
    stochastic binarisation, use ``pgm_lab.data.stochastic_binarize``).
    """

    Config = PixelCNNConfig
    default_steps: ClassVar[dict[str, int]] = recipes.STEPS["PixelCNN"]

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        cfg, c = self.cfg, self.image_shape[0]
        self.input = MaskedConv2d(c, cfg.channels, cfg.first_kernel, "A", c)
        self.blocks = nn.ModuleList(
            _MaskedResidual(cfg.channels, cfg.kernel_size, c, cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.output = output_head(cfg.channels, c)
        self.label_bias = self.label_logits = None
        if self.n_classes is None:  # chapter 06's augmented, cosine-decayed training by default
            self.default_fit = recipes.pixel_model_fit(self.image_shape)
        else:  # one learned bias per class and layer, starting at 0
            self.label_bias = nn.Embedding(self.n_classes, cfg.channels * (cfg.n_layers + 1))
            nn.init.zeros_(self.label_bias.weight)
            # and one per class and sub-pixel on the output logits (location-dependent
            # conditioning, van den Oord et al. 2016): a class's mean image from the start
            self.label_logits = nn.Embedding(self.n_classes, math.prod(self.image_shape))
            nn.init.zeros_(self.label_logits.weight)

    # -- the model --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x_i = 1 | x_<i [, c]) for every pixel, shaped like ``x`` ``(B, C, H, W)``."""
        biases = None
        if self.label_bias is not None:
            if y is None:
                raise ValueError(f"{type(self).__name__} is conditional: pass labels")
            biases = self.label_bias(y).view(len(y), -1, self.cfg.channels, 1, 1)  # (B, L+1, ch, 1, 1)
        h = self.input(2.0 * x - 1.0)  # (B, ch, H, W); inputs centred in [-1, 1]
        if biases is not None:
            h = h + biases[:, 0]
        for i, block in enumerate(self.blocks):
            h = block(h, None if biases is None else biases[:, i + 1])
        if biases is None:
            return self.output(h)
        return self.output(h) + self.label_logits(y).view(len(y), *self.image_shape)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels=None,
        *,
        generator: torch.Generator | int | None = None,
        return_steps: bool = False,
    ):
        """Draw ``n`` images pixel by pixel in raster order: H·W·C forward passes (chapter 06).

        Returns binary images ``(n, C, H, W)``; with ``return_steps=True`` also the list of
        partial images after each row (for an animation).
        """
        n = self.check_n(n)
        y = self.check_labels(n, labels)
        generator = self.as_generator(generator)
        was_training = self.training
        self.eval()
        c, h, w = self.image_shape
        dev = self.device_of()
        x = torch.zeros(n, c, h, w, device=dev)
        steps = []
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    p = torch.sigmoid(self(x, y)[:, k, i, j].float())
                    u = torch.rand(p.shape, generator=generator, device="cpu").to(dev)
                    x[:, k, i, j] = (u < p).float()
            if return_steps:
                steps.append(x.detach().cpu().clone())
        self.train(was_training)
        return (x, steps) if return_steps else x


class ConditionalPixelCNN(PixelCNN):
    """Class-conditional PixelCNN p(x | c) = Π_i p(x_i | x_<i, c) {cite}`vandenoord2016conditional`.

    Each layer adds a learned bias vector of the label c (an embedding), and the output adds
    a learned bias per label and sub-pixel (a class's "mean image" in logits): the slide's
    conditional autoregressive model (chapter 10). Requires ``n_classes``.
    """

    Config = ConditionalPixelCNNConfig
    requires_classes = True
    default_steps: ClassVar[dict[str, int]] = recipes.STEPS["ConditionalPixelCNN"]
    #: the step size that lets the zero-initialised label biases grow in time
    #: (read by ``pgm_lab.train.fit`` where it honours ``default_fit``; see :mod:`pgm_lab.recipes`)
    default_fit: ClassVar[dict] = recipes.FIT["ConditionalPixelCNN"]


def dependency_map(model: PixelCNN, row: int, col: int, channel: int = 0, *, x: torch.Tensor | None = None):
    """Which input pixels the output logit at (channel, row, col) depends on, by gradients (chapter 06).

    Returns ``|∂ logit / ∂ x|`` shaped ``(C, H, W)`` (summed over a small batch of random
    inputs). A correct autoregressive model is zero at the current and every later pixel;
    a plain masked-convolution stack is also zero in its *blind spot*.
    """
    c, h, w = model.image_shape
    if not (0 <= row < h and 0 <= col < w and 0 <= channel < c):
        raise ValueError(f"position ({channel}, {row}, {col}) is outside the image {model.image_shape}")
    dev = model.device_of()
    if x is None:
        x = torch.rand(4, c, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
    x = x.clone().requires_grad_(True)
    y = None
    if model.n_classes is not None:
        y = torch.zeros(len(x), dtype=torch.long, device=dev)
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        out = model(x, y)[:, channel, row, col].sum()
        (grad,) = torch.autograd.grad(out, x)
    model.train(was_training)
    return grad.abs().sum(0).cpu()


def sampling_cost(model: PixelCNN, n: int = 16, *, repeats: int = 3) -> dict[str, float]:
    """Seconds for one forward pass on a batch of ``n`` and for sampling ``n`` images (chapter 06).

    Likelihood evaluation needs one pass; sampling needs one pass per sub-pixel (H·W·C).
    """
    dev = model.device_of()
    x = torch.zeros(n, *model.image_shape, device=dev)
    labels = torch.zeros(n, dtype=torch.long) if model.n_classes is not None else None
    y = labels.to(dev) if labels is not None else None
    model.eval()
    with torch.no_grad():
        model(x, y)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_forward = (time.perf_counter() - t0) / repeats
        t0 = time.perf_counter()
        model.sample(n, labels)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_sample = time.perf_counter() - t0
    return {"forward_s": t_forward, "sample_s": t_sample, "ratio": t_sample / t_forward}


__all__ = [
    "ConditionalPixelCNN",
    "ConditionalPixelCNNConfig",
    "MaskedConv2d",
    "PixelCNN",
    "PixelCNNConfig",
    "causal_mask",
    "dependency_map",
    "sampling_cost",
]
