"""Paired image-to-image data made in code, and measures for translated images (see chapter 10).

Image-to-image translation (图像翻译) learns p(y | x) from pairs (x, y): an input image x and
the target image y it should become. Nothing is downloaded:

- :func:`corrupted_digits`: corrupted → clean handwritten digits (``pgm_lab.data.digits(16)``),
  with a hidden block (``"mask"``, inpainting), additive Gaussian noise (``"noise"``) or a
  Gaussian blur (``"blur"``);
- :func:`outline_shapes`: outlines → filled shapes (discs, triangles, squares, pentagons).

Both return a :class:`PairedDataset`, which ``pgm_lab.train.fit`` passes to
:class:`pgm_lab.models.Pix2Pix`. The measures: :func:`pixel_error` (per-image mean |ŷ − y| or
squared error) and :func:`sharpness` (mean gradient magnitude) / :func:`laplacian_variance`:
a blurry prediction has a small pixel error but little edge energy, a sharp one the reverse.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

CORRUPTIONS = ("mask", "noise", "blur")
#: default strength of each corruption: block side as a fraction of the image, noise std, blur sigma
DEFAULT_STRENGTH = {"mask": 0.5, "noise": 0.3, "blur": 1.5}
#: grey level that marks hidden pixels (distinct from the black background and the white strokes)
MASK_VALUE = 0.5


def _check_images(t, what: str) -> torch.Tensor:
    if not torch.is_tensor(t):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{what} must be images shaped (N, C, H, W), got shape {tuple(t.shape)}")
    return t.float()


class PairedDataset(TensorDataset):
    """Pairs (x_n, y_n) of input and target images, stored stacked along channels.

    ``PairedDataset(inputs, targets)``: inputs (N, C_in, H, W) and targets (N, C_out, H, W) in [0, 1]
    with the same N, H and W (else ``ValueError``). ``.tensors`` holds one tensor
    (N, C_in + C_out, H, W), which is what ``pgm_lab.train.fit`` hands to Pix2Pix (and what the
    checkpoint cache hashes); ``.inputs`` and ``.targets`` give the two halves back and
    ``pairs[i]`` is ``(inputs[i], targets[i])``.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        x = _check_images(inputs, "inputs")
        y = _check_images(targets, "targets")
        if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
            raise ValueError(
                "paired inputs and targets must have the same number and size of images, "
                f"got inputs {tuple(x.shape)} and targets {tuple(y.shape)}"
            )
        if len(x) == 0:
            raise ValueError("a paired data set needs at least one pair")
        for t, what in ((x, "inputs"), (y, "targets")):
            if float(t.min()) < 0.0 or float(t.max()) > 1.0:
                raise ValueError(
                    f"{what} must lie in [0, 1], got [{float(t.min()):.3g}, {float(t.max()):.3g}]"
                )
        self.in_channels = int(x.shape[1])
        super().__init__(torch.cat([x, y], dim=1).contiguous())

    @property
    def inputs(self) -> torch.Tensor:
        return self.tensors[0][:, : self.in_channels]

    @property
    def targets(self) -> torch.Tensor:
        return self.tensors[0][:, self.in_channels :]

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]

    def subset(self, n: int) -> PairedDataset:
        """The first ``n`` pairs."""
        return PairedDataset(self.inputs[:n], self.targets[:n])

    def __repr__(self) -> str:
        return (
            f"PairedDataset({len(self)} pairs: inputs {tuple(self.inputs.shape[1:])} -> "
            f"targets {tuple(self.targets.shape[1:])})"
        )


# -- corruptions ----------------------------------------------------------------------------------
def gaussian_kernel(sigma: float, radius: int | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel exp(−u²/2σ²)/Σ on u = −r..r (r = ⌈3σ⌉ by default)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    r = math.ceil(3 * sigma) if radius is None else int(radius)
    u = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(u**2) / (2 * sigma**2))
    return k / k.sum()


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with replicate padding, image by image and channel by channel."""
    x = _check_images(images, "images")
    k = gaussian_kernel(sigma).to(x.device)
    r = (len(k) - 1) // 2
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def corrupt(
    images: torch.Tensor,
    kind: str = "mask",
    *,
    strength: float | None = None,
    seed: int = 0,
    return_region: bool = False,
):
    """Corrupted copies of ``images`` (N, C, H, W) in [0, 1]; the result stays in [0, 1].

    - ``"mask"``: a random square block of side ⌈strength·H⌉ (default half the image) is set to
      :data:`MASK_VALUE`, a grey that marks it as unknown (inpainting);
    - ``"noise"``: x + strength·ε, ε ~ N(0, I), clipped to [0, 1] (default std 0.3);
    - ``"blur"``: Gaussian blur with σ = strength pixels (default 1.5).

    ``return_region=True`` also returns the boolean (N, 1, H, W) map of the corrupted pixels
    (the block for ``"mask"``; every pixel for the other kinds).
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {', '.join(CORRUPTIONS)}, got {kind!r}")
    x = _check_images(images, "images")
    s = DEFAULT_STRENGTH[kind] if strength is None else float(strength)
    gen = torch.Generator().manual_seed(int(seed))
    n, _, h, w = x.shape
    region = torch.ones((n, 1, h, w), dtype=torch.bool, device=x.device)
    if kind == "mask":
        if not 0 < s <= 1:
            raise ValueError(
                f"mask strength is the block side as a fraction of the image, in (0, 1]; got {s}"
            )
        side_h, side_w = math.ceil(s * h), math.ceil(s * w)
        top = torch.randint(0, h - side_h + 1, (n,), generator=gen)
        left = torch.randint(0, w - side_w + 1, (n,), generator=gen)
        rows = torch.arange(h)[None, :]
        cols = torch.arange(w)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side_h)  # (N, H)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side_w)  # (N, W)
        region = (in_rows[:, :, None] & in_cols[:, None, :])[:, None].to(x.device)  # (N, 1, H, W)
        out = torch.where(region, torch.full_like(x, MASK_VALUE), x)
    elif kind == "noise":
        if s < 0:
            raise ValueError(f"noise strength (std) must be non-negative, got {s}")
        eps = torch.randn(x.shape, generator=gen).to(x.device)
        out = (x + s * eps).clamp(0.0, 1.0)
    else:
        if s <= 0:
            raise ValueError(f"blur strength (sigma) must be positive, got {s}")
        out = blur(x, s).clamp(0.0, 1.0)
    return (out, region) if return_region else out


def corrupted_digits(
    kind: str = "mask",
    *,
    size: int = 16,
    split: str = "train",
    strength: float | None = None,
    seed: int = 0,
) -> PairedDataset:
    """Pairs (corrupted digit, clean digit) from ``pgm_lab.data.digits(size, split=split)``.

    The corruption is :func:`corrupt` with a seed that differs between the splits, so test pairs
    never repeat a training corruption. ``pairs.region`` is the boolean map (N, 1, H, W) of the
    corrupted pixels (the hidden block for ``"mask"``) and ``pairs.labels`` the digits' classes.
    See chapter 10.
    """
    from .data import digits

    clean, labels = digits(size, split=split).tensors
    offset = {"train": 0, "test": 1, "all": 2}.get(split, 0)
    corrupted, region = corrupt(
        clean, kind, strength=strength, seed=3 * int(seed) + offset, return_region=True
    )
    pairs = PairedDataset(corrupted, clean)
    pairs.region = region
    pairs.labels = labels
    return pairs


SHAPE_SIDES = {"disc": 0, "triangle": 3, "square": 4, "pentagon": 5}


def filled_shapes(
    n: int, size: int = 16, *, seed: int = 0, kinds=tuple(SHAPE_SIDES)
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random filled shapes (N, 1, size, size) in {0, 1} and their kind index.

    A regular polygon with s sides, centre c, radius r and rotation θ is the set of pixel centres
    p with (p − c)·u_m ≤ r cos(π/s) for the s outward normals u_m = (cos(θ + 2πm/s), sin(θ + 2πm/s));
    a disc is ‖p − c‖ ≤ r. Sizes and positions are drawn so that every shape fits in the image.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in SHAPE_SIDES]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {', '.join(SHAPE_SIDES)}, got {kinds!r}")
    gen = torch.Generator().manual_seed(int(seed))
    n, size = int(n), int(size)
    kind = torch.randint(0, len(kinds), (n,), generator=gen)
    sides = torch.tensor([SHAPE_SIDES[k] for k in kinds])[kind]  # (N,)
    radius = size * (0.2 + 0.15 * torch.rand(n, generator=gen))  # 0.2..0.35 of the image
    margin = radius + 1.0
    cx = margin + (size - 2 * margin) * torch.rand(n, generator=gen)
    cy = margin + (size - 2 * margin) * torch.rand(n, generator=gen)
    theta = 2 * math.pi * torch.rand(n, generator=gen)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    px = coords[None, None, :] - cx[:, None, None]  # (N, 1, W)
    py = coords[None, :, None] - cy[:, None, None]  # (N, H, 1)
    dist = torch.sqrt(px**2 + py**2)  # (N, H, W)
    inside = dist <= radius[:, None, None]  # discs
    m = torch.arange(5, dtype=torch.float32)  # up to 5 sides
    s_safe = sides.clamp(min=1).float()[:, None]  # (N, 1)
    angles = theta[:, None] + 2 * math.pi * m[None, :] / s_safe  # (N, 5)
    proj = (
        px[..., None] * torch.cos(angles)[:, None, None, :]
        + py[..., None] * torch.sin(angles)[:, None, None, :]
    )
    bound = (radius[:, None] * torch.cos(math.pi / s_safe))[:, None, None, :]  # (N, 1, 1, 1)
    used = (m[None, :] < sides[:, None])[:, None, None, :]  # (N, 1, 1, 5): which normals exist
    polygon = ((proj <= bound) | ~used).all(dim=-1)
    inside = torch.where((sides > 0)[:, None, None], polygon, inside)
    return inside[:, None].float(), kind


def outline(filled: torch.Tensor) -> torch.Tensor:
    """Boundary of binary shapes: filled pixels with a 4-neighbour outside (filled minus its erosion)."""
    x = _check_images(filled, "filled")
    padded = F.pad(x, (1, 1, 1, 1), value=0.0)
    neighbours = torch.stack(
        [padded[:, :, :-2, 1:-1], padded[:, :, 2:, 1:-1], padded[:, :, 1:-1, :-2], padded[:, :, 1:-1, 2:]]
    )
    eroded = x * neighbours.min(dim=0).values
    return x - eroded


def outline_shapes(n: int = 1000, *, size: int = 16, seed: int = 0) -> PairedDataset:
    """Pairs (outline, filled shape) of random discs and polygons (see :func:`filled_shapes`)."""
    filled, _ = filled_shapes(n, size, seed=seed)
    return PairedDataset(outline(filled), filled)


# -- measures -------------------------------------------------------------------------------------
def _region_weights(region, like: torch.Tensor) -> torch.Tensor:
    """A (N, C, H, W) float weight map from a boolean region (N, 1 or C, H, W) or (N, H, W)."""
    if region is None:
        return torch.ones_like(like)
    r = torch.as_tensor(region, device=like.device)
    if r.dim() == 3:
        r = r[:, None]
    n, c, h, w = like.shape
    if r.dim() != 4 or r.shape[0] != n or r.shape[2:] != like.shape[2:] or r.shape[1] not in (1, c):
        raise ValueError(f"region must be shaped ({n}, 1, {h}, {w}) like the images, got {tuple(r.shape)}")
    weights = r.to(like.dtype).expand(n, c, h, w)
    if bool((weights.flatten(1).sum(dim=1) == 0).any()):
        raise ValueError("region is empty for some image")
    return weights


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).flatten(1).sum(dim=1) / weights.flatten(1).sum(dim=1)


def pixel_error(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1", *, region=None) -> torch.Tensor:
    """Per-image error, shape (N,): mean |ŷ − y| (``"l1"``) or mean (ŷ − y)² (``"l2"``) over pixels.

    ``region`` (boolean (N, 1, H, W)) restricts the mean to those pixels, e.g. the hidden block.
    """
    p, t = _check_images(pred, "pred"), _check_images(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}"
        )
    if kind not in ("l1", "l2"):
        raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
    d = (p - t.to(p.device)).abs()
    return _masked_mean(d if kind == "l1" else d**2, _region_weights(region, p))


def sharpness(images: torch.Tensor, *, region=None) -> torch.Tensor:
    """Mean gradient magnitude per image, shape (N,): the mean over pixels of sqrt(∂_h² + ∂_w²).

    ∂ are forward differences (zero at the last row/column). Edges in [0, 1] images give values
    up to √2; a blurrier image of the same content gives a smaller value. ``region`` (boolean
    (N, 1, H, W)) restricts the mean to those pixels.
    """
    x = _check_images(images, "images")
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    dh = padded[:, :, 1:, :-1] - x
    dw = padded[:, :, :-1, 1:] - x
    return _masked_mean(torch.sqrt(dh**2 + dw**2), _region_weights(region, x))


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Variance of the 4-neighbour Laplacian per image, shape (N,): the classic focus measure."""
    x = _check_images(images, "images")
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device)
    n, c, h, w = x.shape
    lap = F.conv2d(F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate"), kernel.view(1, 1, 3, 3))
    return lap.reshape(n, -1).var(dim=1)


__all__ = [
    "CORRUPTIONS",
    "DEFAULT_STRENGTH",
    "MASK_VALUE",
    "SHAPE_SIDES",
    "PairedDataset",
    "blur",
    "corrupt",
    "corrupted_digits",
    "filled_shapes",
    "gaussian_kernel",
    "laplacian_variance",
    "outline",
    "outline_shapes",
    "pixel_error",
    "sharpness",
]
