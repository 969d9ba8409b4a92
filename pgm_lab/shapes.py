"""The slide's image model p(Im, Ob, Po, Or) = p(Im | Ob, Po, Or) p(Ob) p(Po) p(Or), made real.

Three latent causes (隐变量) are drawn independently from their priors: the object
(square, triangle, cross, bar), its position (one of four quadrants) and its
orientation (0°, 22.5°, 45°, 67.5°). The image is then drawn from p(Im | Ob, Po, Or):
the object is rendered at that pose with a random ±``jitter``-pixel shift and Gaussian
pixel noise. Ancestral sampling (parents first) is exactly this order; see chapter 01.
The labels of the data set are the latent factors, so later chapters can condition on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OBJECTS = ("square", "triangle", "cross", "bar")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
ORIENTATIONS = (0.0, 22.5, 45.0, 67.5)  # degrees
FACTORS = {"object": OBJECTS, "position": POSITIONS, "orientation": ORIENTATIONS}

_SUPERSAMPLE = 4


def _outline(obj: str) -> np.ndarray:
    """Polygon vertices of an object centred at 0 with radius about 1."""
    if obj == "square":
        return np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]])
    if obj == "triangle":
        a = np.deg2rad([90, 210, 330])
        return np.stack([np.cos(a), np.sin(a)], axis=1)
    if obj == "bar":
        return np.array([[-1.0, -0.3], [1.0, -0.3], [1.0, 0.3], [-1.0, 0.3]])
    raise ValueError(f"unknown object {obj!r}; valid objects are {', '.join(OBJECTS)}")


def _inside_polygon(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over all points."""
    inside = np.zeros(px.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        crosses = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (x2 - x1) * (py - y1) / (y2 - y1) + x1
        inside ^= crosses & (px < xint)
    return inside


def _index(value, options: Sequence, name: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if not 0 <= value < len(options):
            raise ValueError(f"{name} index {value} out of range 0..{len(options) - 1}")
        return int(value)
    if value in options:
        return list(options).index(value)
    raise ValueError(f"unknown {name} {value!r}; valid values are {', '.join(map(str, options))}")


def render_shape(obj, position, orientation, *, size: int = 16, shift=(0, 0)) -> np.ndarray:
    """Render one noiseless image (size × size, values in [0, 1]) of the given latent factors.

    Factors may be given by name/value or by index into OBJECTS, POSITIONS, ORIENTATIONS.
    """
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    o = OBJECTS[_index(obj, OBJECTS, "object")]
    p = _index(position, POSITIONS, "position")
    angle = np.deg2rad(ORIENTATIONS[_index(orientation, ORIENTATIONS, "orientation")])
    s = size * _SUPERSAMPLE
    coords = (np.arange(s) + 0.5) / _SUPERSAMPLE  # pixel units
    py, px = np.meshgrid(coords, coords, indexing="ij")
    cx = size * (0.28 if p % 2 == 0 else 0.72) + shift[1]
    cy = size * (0.28 if p < 2 else 0.72) + shift[0]
    radius = size * 0.2
    # rotate the sample points into the object's frame
    dx, dy = (px - cx) / radius, (py - cy) / radius
    c, sn = np.cos(angle), np.sin(angle)
    ux, uy = c * dx + sn * dy, -sn * dx + c * dy
    if o == "cross":
        mask = ((np.abs(ux) < 0.3) & (np.abs(uy) < 1.0)) | ((np.abs(uy) < 0.3) & (np.abs(ux) < 1.0))
    else:
        mask = _inside_polygon(ux, uy, _outline(o))
    return mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))


def _prior(probs, k: int, name: str) -> np.ndarray:
    if probs is None:
        return np.full(k, 1.0 / k)
    p = np.asarray(probs, dtype=float)
    if p.shape != (k,) or p.min() < 0 or abs(p.sum() - 1) > 1e-6:
        raise ValueError(f"prior of {name} must be {k} non-negative numbers summing to 1, got {probs!r}")
    return p


def sample_latents(n: int, rng: np.random.Generator, priors: dict | None = None) -> np.ndarray:
    """Draw (Ob, Po, Or) independently from p(Ob) p(Po) p(Or): an (n, 3) array of indices."""
    priors = dict(priors or {})
    unknown = set(priors) - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown factors {sorted(unknown)}; valid factors are {', '.join(FACTORS)}")
    cols = [
        rng.choice(len(options), size=n, p=_prior(priors.get(name), len(options), name))
        for name, options in FACTORS.items()
    ]
    return np.stack(cols, axis=1)


def sample_images(latents: np.ndarray, rng: np.random.Generator, *, size=16, noise=0.05, jitter=1):
    """Draw Im ~ p(Im | Ob, Po, Or) for each row of latents: render, shift, add noise."""
    latents = np.asarray(latents)
    if latents.ndim != 2 or latents.shape[1] != 3:
        raise ValueError(
            f"latents must be an (n, 3) array of (object, position, orientation), got {latents.shape}"
        )
    if noise < 0 or jitter < 0:
        raise ValueError("noise and jitter must be non-negative")
    images = np.empty((len(latents), size, size))
    shifts = rng.integers(-jitter, jitter + 1, size=(len(latents), 2))
    rendered: dict[tuple, np.ndarray] = {}  # few distinct poses: render each once
    for i, (o, p, r) in enumerate(latents):
        key = (int(o), int(p), int(r), int(shifts[i, 0]), int(shifts[i, 1]))
        if key not in rendered:
            rendered[key] = render_shape(key[0], key[1], key[2], size=size, shift=key[3:])
        images[i] = rendered[key]
    if noise > 0:
        images += noise * rng.standard_normal(images.shape)
    return np.clip(images, 0.0, 1.0)


def shapes(
    n: int = 1000,
    *,
    size: int = 16,
    seed: int = 0,
    noise: float = 0.05,
    jitter: int = 1,
    priors: dict | None = None,
):
    """Ancestral samples of the image model as a ``TensorDataset(images, latents)``.

    images: float (n, 1, size, size) in [0, 1]; latents: long (n, 3) holding the
    (object, position, orientation) indices into OBJECTS, POSITIONS, ORIENTATIONS.
    """
    import torch

    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    latents = sample_latents(int(n), rng, priors)
    images = sample_images(latents, rng, size=size, noise=noise, jitter=jitter)
    return torch.utils.data.TensorDataset(
        torch.from_numpy(images[:, None].astype(np.float32)), torch.from_numpy(latents.astype(np.int64))
    )
