"""Noise-prediction networks ε_θ(x_t, t[, y]) for diffusion models (see chapters 08 and 10).

- :class:`UNet`: a small U-Net (Ronneberger et al. 2015) for images. The time step t enters
  through a sinusoidal embedding (the positional encoding of transformers) followed by an MLP
  and is added inside every residual block; an optional class embedding with one extra *null*
  class (index ``n_classes``) is added to it, which is what classifier-free guidance needs
  (chapter 10): the same network predicts ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅).
- :class:`MLPDenoiser`: the same idea for vector data such as the 2-D toy sets of chapter 08.

Both map ``(x_t, t, y=None)`` to a tensor shaped like ``x_t``. ``t`` holds integer steps
1…T (one per sample, or one for the batch).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Embed steps ``t`` (shape (B,)) as ``[sin(t ω_k), cos(t ω_k)]`` with ω_k = max_period^(−k/(dim/2)).

    Returns (B, dim). Nearby steps get nearby vectors and every step a distinct one.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"embedding dim must be an even integer >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float().reshape(-1, 1) * freqs  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class _Conditioning(nn.Module):
    """t ↦ MLP(sinusoidal(t)) plus, for conditional networks, a learned class embedding.

    The class table has ``n_classes + 1`` rows: row ``n_classes`` is the null class ∅ used when
    ``y`` is None (or equals ``n_classes``), i.e. the unconditional prediction.
    """

    def __init__(self, emb_dim: int, n_classes: int | None):
        super().__init__()
        self.emb_dim = emb_dim
        self.n_classes = n_classes
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(n_classes + 1, emb_dim) if n_classes is not None else None

    def forward(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.time_mlp[0].weight.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(f"t must hold one step or one per sample ({batch}), got {t.numel()}")
        emb = self.time_mlp(sinusoidal_embedding(t, self.emb_dim))
        if self.class_emb is None:
            if y is not None:
                raise ValueError("this network is unconditional: y must be None")
            return emb
        if y is None:
            y = torch.full((batch,), self.n_classes, device=emb.device, dtype=torch.long)
        y = torch.as_tensor(y, device=emb.device).long().reshape(-1)
        if y.numel() == 1:
            y = y.expand(batch)
        if y.numel() != batch:
            raise ValueError(f"y must hold one label or one per sample ({batch}), got {y.numel()}")
        if int(y.min()) < 0 or int(y.max()) > self.n_classes:
            raise ValueError(f"labels must lie in 0..{self.n_classes} ({self.n_classes} = null class)")
        return emb + self.class_emb(y)


def _groups(channels: int) -> int:
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv3×3, then the embedding, GroupNorm → SiLU → conv3×3, plus a skip.

    With ``scale_shift`` the embedding modulates the second normalisation, h ← GN(h)(1 + s) + b
    with (s, b) = Linear(emb) (the adaptive group norm of Dhariwal & Nichol 2021), which lets the
    step and the class act multiplicatively; otherwise it is added to the feature map.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, scale_shift: bool = True):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class UNet(nn.Module):
    """A small U-Net ε_θ(x_t, t, y) for images (see chapters 08 and 10).

    Encoder: one residual block per level with channels ``base * mults[i]``, a stride-2
    convolution between levels; a middle block; decoder: the mirror image, each block fed the
    encoder's feature map of the same resolution (the skip connections of the "U"). The height
    and width must be divisible by ``2 ** (len(mults) - 1)``. With the defaults (base 32,
    mults (1, 2)) it has about 0.36M parameters, enough for 8×8 digits.

    ``n_classes`` adds a class embedding with a null class (index ``n_classes``) for
    classifier-free guidance; ``y=None`` then means "no label".
    """

    def __init__(
        self,
        image_shape=(1, 8, 8),
        n_classes: int | None = None,
        *,
        base: int = 32,
        mults=(1, 2),
        emb_dim: int | None = None,
        scale_shift: bool = True,
    ):
        super().__init__()
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"UNet needs image_shape (C, H, W), got {image_shape!r}")
        mults = tuple(int(m) for m in mults)
        if not mults or min(mults) < 1 or base < 1:
            raise ValueError(f"base and mults must be positive, got base={base}, mults={mults}")
        c, h, w = shape
        factor = 2 ** (len(mults) - 1)
        if h % factor or w % factor:
            raise ValueError(
                f"image height and width ({h}, {w}) must be divisible by 2**(len(mults)-1) = {factor}"
            )
        self.image_shape = shape
        self.n_classes = n_classes
        emb_dim = emb_dim or 4 * base
        self.cond = _Conditioning(emb_dim, n_classes)
        chans = [base * m for m in mults]
        self.conv_in = nn.Conv2d(c, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = chans[0]
        for i, ch in enumerate(chans):
            self.down_blocks.append(ResBlock(prev, ch, emb_dim, scale_shift))
            prev = ch
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = ResBlock(prev, prev, emb_dim, scale_shift)
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            self.up_blocks.append(ResBlock(prev + ch, ch, emb_dim, scale_shift))
            prev = ch
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, chans[i - 1], 3, padding=1))
                prev = chans[i - 1]
        self.norm_out = nn.GroupNorm(_groups(prev), prev)
        self.conv_out = nn.Conv2d(prev, c, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start by predicting ε = 0
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"UNet expects x shaped (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        emb = self.cond(t, y, x.shape[0])  # (B, emb_dim)
        h = self.conv_in(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # halve H and W
        h = self.mid(h, emb)
        for j, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if j < len(self.upsample):
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.upsample[j](h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C, H, W)


class MLPDenoiser(nn.Module):
    """ε_θ(x_t, t[, y]) for vectors (the 2-D toy data of chapter 08): residual MLP blocks,
    each adding the time (and class) embedding before its nonlinearity."""

    def __init__(
        self,
        dim: int = 2,
        n_classes: int | None = None,
        *,
        hidden: int = 128,
        layers: int = 3,
        emb_dim: int = 64,
    ):
        super().__init__()
        if dim < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"dim, hidden and layers must be positive, got {dim}, {hidden}, {layers}")
        self.dim = int(dim)
        self.n_classes = n_classes
        self.cond = _Conditioning(emb_dim, n_classes)
        self.inp = nn.Linear(dim, hidden)
        self.emb = nn.ModuleList(nn.Linear(emb_dim, hidden) for _ in range(layers))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(layers)
        )
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPDenoiser expects x shaped (B, {self.dim}), got {tuple(x.shape)}")
        emb = self.cond(t, y, x.shape[0])
        h = self.inp(x)
        for proj, block in zip(self.emb, self.blocks):
            h = h + block(h + proj(emb))
        return self.out(h)


__all__ = ["MLPDenoiser", "ResBlock", "UNet", "sinusoidal_embedding"]
