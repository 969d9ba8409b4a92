"""Pix2Pix: image-to-image translation (图像翻译) with a U-Net generator and a PatchGAN (see chapter 10).

References: Isola et al. 2017 (pix2pix, PatchGAN, the L1 term), Mirza & Osindero 2014
(conditional GANs), Ronneberger et al. 2015 (U-Net).

Slide notation: x is the input image (the condition), y the target image, g_θ(x, z) the
generator and d_φ(x, y) the discriminator, which sees the *pair*. The objective is

    min_θ max_φ  E_{x,y}[log d_φ(x, y)] + E_{x,z}[log(1 − d_φ(x, g_θ(x, z)))]
                 + λ · E_{x,y,z} ‖y − g_θ(x, z)‖_1 .

The slide writes d_φ as the probability that a pair is *generated* (its two log terms are
swapped); that is the same game with d ↦ 1 − d. Here d_φ is the probability that a pair is
real, and the generator minimises the non-saturating −log d_φ(x, g_θ(x)) (chapter 09). The noise
z enters, as in pix2pix, only through dropout in the generator (off by default: g_θ(x) is then
deterministic).

The PatchGAN discriminator scores every k×k patch of the pair, and d_φ is their average
(the slide's formula):

    d_φ(x, y) = 1/(NM) Σ_{i,j} d_φ^patch(x[i:i+k, j:j+k], y[i:i+k, j:j+k]),

where k is the receptive field of one output cell (:func:`receptive_field`) and N×M the output
grid (:func:`patch_grid`). The adversarial loss averages the per-patch log-losses.

Training data are pairs: :class:`pgm_lab.paired.PairedDataset` (inputs and targets stacked along
the channel axis, so that ``pgm_lab.train.fit(model, pairs)`` carries both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipes
from .base import GenerativeModel, ModelConfig

#: the default PatchGAN layers as (kernel, stride, padding); the last one outputs the logit grid.
#: On 16×16 images: receptive field 10×10, an 8×8 grid of overlapping patches.
DEFAULT_PATCH_LAYERS: tuple[tuple[int, int, int], ...] = ((3, 1, 1), (4, 2, 1), (3, 1, 1))
MODES = ("both", "l1", "gan")


# -- receptive field arithmetic -------------------------------------------------------------------
def _layer_specs(layers) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of each convolution of ``layers`` (a module or a list of tuples)."""
    if isinstance(layers, nn.Module):
        convs = [m for m in layers.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"{type(layers).__name__} has no Conv2d layers")
        specs = []
        for m in convs:
            k, s, p = m.kernel_size, m.stride, m.padding
            if len({k[0], k[1]}) != 1 or len({s[0], s[1]}) != 1 or isinstance(p, str) or p[0] != p[1]:
                raise ValueError(f"only square kernels, strides and paddings are supported, got {m}")
            specs.append((int(k[0]), int(s[0]), int(p[0])))
        return specs
    specs = []
    for i, layer in enumerate(layers):
        try:
            vals = tuple(int(v) for v in layer)
        except (TypeError, ValueError):
            raise ValueError(
                f"layer {i} must be (kernel, stride) or (kernel, stride, padding), got {layer!r}"
            ) from None
        if len(vals) == 2:
            vals = (*vals, 0)
        if len(vals) != 3 or vals[0] < 1 or vals[1] < 1 or vals[2] < 0:
            raise ValueError(f"layer {i} must be (kernel >= 1, stride >= 1[, padding >= 0]), got {layer!r}")
        specs.append(vals)
    if not specs:
        raise ValueError("layers is empty")
    return specs


def receptive_field(layers) -> int:
    """Side k of the input patch that one output cell of a stack of convolutions sees (chapter 10).

    ``layers``: a module (its ``Conv2d`` layers, in order) or a list of (kernel, stride[, padding]).
    With j_l = Π_{m<l} s_m the distance in input pixels between neighbouring cells before layer l,
    k = 1 + Σ_l (k_l − 1) j_l. Example: pix2pix's 70×70 PatchGAN, ``[(4, 2)] * 3 + [(4, 1)] * 2`` → 70.
    """
    k, jump = 1, 1
    for kernel, stride, _ in _layer_specs(layers):
        k += (kernel - 1) * jump
        jump *= stride
    return k


def patch_grid(layers, height: int, width: int | None = None) -> tuple[int, int]:
    """Output grid N×M of the convolutions on an H×W input: n ↦ ⌊(n + 2p − k)/s⌋ + 1 per layer."""
    width = height if width is None else width
    n, m = int(height), int(width)
    if n < 1 or m < 1:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    for i, (kernel, stride, pad) in enumerate(_layer_specs(layers)):
        n, m = (n + 2 * pad - kernel) // stride + 1, (m + 2 * pad - kernel) // stride + 1
        if n < 1 or m < 1:
            raise ValueError(f"a {height}×{width} input is too small: layer {i} has no output left")
    return n, m


def patch_window(layers, i: int, j: int) -> tuple[slice, slice]:
    """Input rows and columns seen by output cell (i, j), before clipping to the image.

    The window starts at i·J − P with J = Π s_l (total stride) and P = Σ_l p_l j_l (total padding)
    and is k = :func:`receptive_field` pixels wide: the slide's x[i:i+k, j:j+k] up to that offset.
    """
    jump, pad_total = 1, 0
    for _kernel, stride, pad in _layer_specs(layers):
        pad_total += pad * jump
        jump *= stride
    k = receptive_field(layers)
    r0, c0 = i * jump - pad_total, j * jump - pad_total
    return slice(r0, r0 + k), slice(c0, c0 + k)


# -- networks -------------------------------------------------------------------------------------
class UNetGenerator(nn.Module):
    """Small U-Net g_θ(x): ``depth`` stride-2 downsamplings, mirrored upsamplings, skip connections.

    Encoder level l has ``base_channels · 2^l`` channels; each decoder level concatenates the
    encoder features of the same resolution (the skips carry the fine detail that the input and
    output share, Ronneberger et al. 2015). The output layer is linear: during training the values
    may leave [0, 1] (the discriminator, which only ever sees real images inside [0, 1], pushes them
    back), and :meth:`Pix2Pix.translate` clips them. A sigmoid output would saturate: on images that
    are mostly background it drives the logits far negative, where neither the L1 nor the
    adversarial gradient reaches them any more (and the tiny values slow CPUs down as denormals).
    """

    def __init__(
        self, in_channels: int, out_channels: int, base_channels: int = 32, depth: int = 2, dropout=0.0
    ):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        b = base_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, b, 3, padding=1), act)
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.merges = nn.ModuleList()
        for level in range(depth):
            c = b * 2**level
            self.downs.append(
                nn.Sequential(
                    nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
                    act,
                    nn.Conv2d(2 * c, 2 * c, 3, padding=1),
                    act,
                )
            )
            self.ups.append(
                nn.Sequential(nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), act, nn.Dropout(dropout))
            )
            self.merges.append(nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), act))
        self.head = nn.Conv2d(b, out_channels, 1)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)  # (B, b, H, W)
        skips = []
        for down in self.downs:
            skips.append(h)
            h = down(h)  # (B, 2c, H/2, W/2)
        for level in reversed(range(self.depth)):
            h = self.ups[level](h)  # (B, c, ...)
            h = self.merges[level](torch.cat([h, skips[level]], dim=1))
        return self.head(h)  # (B, C_out, H, W), about [0, 1] once trained


class PatchDiscriminator(nn.Module):
    """PatchGAN d_φ(x, y): a fully convolutional net that gives one logit per k×k patch of the pair.

    ``layers`` are (kernel, stride, padding) triples; hidden layers have ``channels`` feature maps
    (doubled after each stride-2 layer) and LeakyReLU, the last layer outputs one channel: the
    logit grid (B, 1, N, M). :meth:`score` averages the per-patch probabilities as on the slide.
    """

    def __init__(self, in_channels: int, channels: int = 32, layers=DEFAULT_PATCH_LAYERS):
        super().__init__()
        specs = _layer_specs(layers)
        mods: list[nn.Module] = []
        c_in, c = in_channels, channels
        for idx, (kernel, stride, pad) in enumerate(specs):
            last = idx == len(specs) - 1
            c_out = 1 if last else c
            mods.append(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad))
            if not last:
                mods.append(nn.LeakyReLU(0.2))
                c_in = c_out
                if stride == 2:
                    c *= 2
        self.net = nn.Sequential(*mods)
        self.layers = tuple(specs)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.layers)

    def grid(self, height: int, width: int | None = None) -> tuple[int, int]:
        return patch_grid(self.layers, height, width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-patch logits (B, 1, N, M) of the pair (x, y), concatenated along channels."""
        if x.shape[0] != y.shape[0] or x.shape[-2:] != y.shape[-2:]:
            raise ValueError(
                f"x and y must be a batch of pairs of equal size, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        return self.net(torch.cat([x, y], dim=1))

    def score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d_φ(x, y) = 1/(NM) Σ_ij sigmoid(logit_ij): the probability that each pair is real, shape (B,)."""
        return torch.sigmoid(self(x, y)).mean(dim=(1, 2, 3))


# -- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pix2PixConfig(ModelConfig):
    """Sizes of :class:`Pix2Pix`: the target ``image_shape`` (C, H, W), the input channels, the
    U-Net (``base_channels``, ``depth``, ``dropout``), the PatchGAN (``disc_channels``,
    ``disc_layers`` as (kernel, stride[, padding])), the ablation ``mode`` and the weights
    ``lam`` (L1) and ``adv_weight`` (adversarial). ``mode="l1"`` sets ``adv_weight`` to 0,
    ``mode="gan"`` sets ``lam`` to 0."""

    image_shape: tuple[int, ...] = (1, 16, 16)
    in_channels: int = 1
    base_channels: int = 16
    depth: int = 2
    disc_channels: int = 16
    disc_layers: tuple = DEFAULT_PATCH_LAYERS
    mode: str = "both"
    lam: float = 100.0
    adv_weight: float = 1.0
    dropout: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.n_classes is not None:
            raise ValueError("Pix2Pix is conditioned on an input image, not a class: leave n_classes=None")
        self.check_choice("mode", MODES)
        if not (self.lam >= 0 and self.adv_weight >= 0):
            raise ValueError(
                f"lam and adv_weight must be non-negative, got lam={self.lam}, adv_weight={self.adv_weight}"
            )
        self.check_positive("in_channels", "base_channels", "depth", "disc_channels")
        self.check_range("dropout", 0.0, 1.0)
        self._set("lam", 0.0 if self.mode == "gan" else float(self.lam))
        self._set("adv_weight", 0.0 if self.mode == "l1" else float(self.adv_weight))
        if self.lam == 0 and self.adv_weight == 0:
            raise ValueError("lam and adv_weight are both 0: the generator would have no loss")
        self._set("disc_layers", tuple(_layer_specs(self.disc_layers)))
        self._check_sizes()

    def _check_sizes(self) -> None:
        if not self.is_image:
            raise ValueError(
                f"Pix2Pix translates images: image_shape must be (C, H, W), got {self.image_shape!r}"
            )
        _c, h, w = self.image_shape
        if h % 2**self.depth or w % 2**self.depth:
            raise ValueError(
                f"image height and width must be divisible by 2**depth = {2**self.depth}, got {h}×{w}"
            )
        patch_grid(self.disc_layers, h, w)  # raises when the images are too small for the discriminator


class Pix2Pix(GenerativeModel):
    """Pix2Pix: g_θ(x) trained with adversarial (PatchGAN) + λ·L1 loss on paired images (chapter 10).

    Sizes in :class:`Pix2PixConfig`. ``image_shape`` is the shape (C, H, W) of the *targets*; ``in_channels`` the channels of the
    inputs (same H, W). ``mode`` switches the ablation: ``"both"`` (adversarial weight
    ``adv_weight`` and ``lam``), ``"l1"`` (only λ·L1: no discriminator is trained) or ``"gan"``
    (only the conditional GAN loss). Train with ``pgm_lab.train.fit(model, pairs)`` where
    ``pairs`` is a :class:`pgm_lab.paired.PairedDataset`; translate with :meth:`translate`.
    """

    Config = Pix2PixConfig
    default_steps: ClassVar[dict[str, int]] = recipes.STEPS["Pix2Pix"]
    #: fit's data carry the inputs and the targets (stacked along channels)
    paired = True

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        cfg = self.cfg
        self.in_channels = cfg.in_channels
        self.out_channels = c = self.image_shape[0]
        self.mode, self.lam, self.adv_weight = cfg.mode, cfg.lam, cfg.adv_weight
        self.generator = UNetGenerator(cfg.in_channels, c, cfg.base_channels, cfg.depth, cfg.dropout)
        self.discriminator = PatchDiscriminator(cfg.in_channels + c, cfg.disc_channels, cfg.disc_layers)

    # -- data --------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.image_shape[1:])

    def _check_range(self, t: torch.Tensor, what: str) -> None:
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            raise ValueError(
                f"{what} must lie in [0, 1], got values in [{float(t.min()):.3g}, {float(t.max()):.3g}]"
            )

    def check_images(self, x: torch.Tensor) -> torch.Tensor:
        """Accept stacked pairs (N, C_in + C_out, H, W) or inputs (N, C_in, H, W), values in [0, 1]."""
        if not torch.is_tensor(x):
            raise ValueError(f"images must be a torch.Tensor, got {type(x).__name__}")
        c_in, c_out = self.in_channels, self.out_channels
        hw = self.image_shape[1:]
        if x.dim() != 4 or tuple(x.shape[2:]) != hw or x.shape[1] not in (c_in, c_in + c_out):
            raise ValueError(
                f"Pix2Pix expects pairs stacked as (N, {c_in}+{c_out}, {hw[0]}, {hw[1]}) "
                f"(pgm_lab.paired.PairedDataset) or inputs (N, {c_in}, {hw[0]}, {hw[1]}), got {tuple(x.shape)}"
            )
        self._check_range(x, "images")
        return x

    def split(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) from stacked pairs ``x`` or from ``x`` = inputs and ``y`` = targets."""
        c_in = self.in_channels
        if y is None:
            if x.dim() != 4 or x.shape[1] != c_in + self.out_channels:
                raise ValueError(
                    f"Pix2Pix needs targets: pass pairs stacked as (N, {c_in}+{self.out_channels}, H, W) "
                    f"(pgm_lab.paired.PairedDataset(inputs, targets)), got {tuple(x.shape)} without targets"
                )
            return x[:, :c_in], x[:, c_in:]
        if x.dim() != 4 or y.dim() != 4 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
            raise ValueError(
                f"paired inputs and targets must have the same number and size of images, "
                f"got inputs {tuple(x.shape)} and targets {tuple(y.shape)}"
            )
        if tuple(x.shape[1:]) != self.input_shape or tuple(y.shape[1:]) != self.image_shape:
            raise ValueError(
                f"expected inputs (N, {', '.join(map(str, self.input_shape))}) and targets "
                f"(N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        return x, y

    # -- generation --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷ = g_θ(x) clipped to [0, 1] (training uses the unclipped generator output)."""
        return self.generator(x).clamp(0.0, 1.0)

    @torch.no_grad()
    def translate(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """ŷ = g_θ(x) for a batch of inputs (N, C_in, H, W) in [0, 1]; returns (N, *image_shape) on CPU."""
        if not torch.is_tensor(x) or x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f"translate expects inputs (N, {', '.join(map(str, self.input_shape))}), got {shape}"
            )
        self._check_range(x, "inputs")
        was_training = self.training
        self.eval()
        dev = self.device_of()
        out = [
            self(x[i : i + batch_size].to(dev).float()).float().cpu() for i in range(0, len(x), batch_size)
        ]
        self.train(was_training)
        return torch.cat(out) if out else x.new_zeros((0, *self.image_shape))

    def sample(self, n: int, labels=None, *, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """Pix2Pix is conditioned on images: ``sample(n, x)`` with inputs x (n, C_in, H, W) = ``translate(x)``.

        g_θ(x) is deterministic (its noise is dropout, off when sampling): ``generator`` is accepted
        for the common interface and not used.
        """
        n = self.check_n(n)
        if torch.is_tensor(labels) and labels.dim() == 4:
            if len(labels) != n:
                raise ValueError(f"expected {n} input images, got {len(labels)}")
            return self.translate(labels)
        raise ValueError(
            "Pix2Pix is conditioned on an input image, not on a class: call translate(x) "
            f"(or sample(n, x)) with x shaped (n, {', '.join(map(str, self.input_shape))})"
        )

    # -- losses and training ------------------------------------------------------------------
    def discriminator_loss(self, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """−½[log d(x, y) + log(1 − d(x, g(x)))], each log averaged over the patches."""
        real_logits = self.discriminator(x, y)
        fake_logits = self.discriminator(x, fake)
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )

    def generator_losses(
        self, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """adversarial −log d(x, g(x)) (patch-averaged, non-saturating) and L1 = mean |y − g(x)|."""
        l1 = (fake - y).abs().mean()
        if self.adv_weight > 0:
            logits = self.discriminator(x, fake)
            adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        else:
            adv = torch.zeros((), device=fake.device)
        return {"adv": adv, "l1": l1, "total": self.adv_weight * adv + self.lam * l1}

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        betas = (0.5, 0.999)  # the usual GAN setting (pix2pix, DCGAN)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas),
        ]

    def training_step(self, x, y, optimizers) -> dict[str, float]:
        """One alternating update: the discriminator (unless mode="l1"), then the generator."""
        opt_g, opt_d = optimizers
        inputs, targets = self.split(x, y)
        fake = self.generator(inputs)
        logs: dict[str, float] = {}
        if self.adv_weight > 0:
            loss_d = self.discriminator_loss(inputs, targets, fake.detach())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            logs["loss_D"] = float(loss_d.detach())
        self.discriminator.requires_grad_(False)
        try:
            losses = self.generator_losses(inputs, targets, fake)
            opt_g.zero_grad(set_to_none=True)
            losses["total"].backward()
            opt_g.step()
        finally:
            self.discriminator.requires_grad_(True)
        logs.update({"loss_G": float(losses["total"].detach()), "l1": float(losses["l1"].detach())})
        if self.adv_weight > 0:
            logs["adv"] = float(losses["adv"].detach())
        return logs

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The generator's objective on a batch (for evaluation; training alternates in training_step)."""
        inputs, targets = self.split(x, y)
        losses = self.generator_losses(inputs, targets, self.generator(inputs))
        return losses["total"], {"l1": float(losses["l1"].detach()), "adv": float(losses["adv"].detach())}


__all__ = [
    "DEFAULT_PATCH_LAYERS",
    "MODES",
    "PatchDiscriminator",
    "Pix2Pix",
    "Pix2PixConfig",
    "UNetGenerator",
    "patch_grid",
    "patch_window",
    "receptive_field",
]
