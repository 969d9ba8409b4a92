"""Conditional generative models side by side: generate a requested class and measure it (chapter 10).

Each family of chapters 06-09 becomes conditional by giving the label c to every factor
(条件生成式模型; the slides write the condition as x and the output as y):

- autoregressive (PixelCNN): p(x | c) = Π_i p(x_i | x_1, …, x_{i−1}, c);
- VAE: p_θ(x | c) = ∫ p_θ(x | z, c) p_z(z) dz (standard prior) or ∫ p_θ(x | z, c) p_z(z | c) dz (learned prior);
- diffusion: x_{t−1} = f_θ(x_t, t, c), with classifier-free guidance ε̃ = (1 + w) ε_θ(x_t, t, c) − w ε_θ(x_t, t, ∅);
- GAN: x = G(z, c), judged by D(x, c).

This module trains each of them on the 8×8 digits with its class's defaults (:data:`SPECS`; the
steps, step size and batch live in :mod:`pgm_lab.recipes`), draws samples
of requested classes (:func:`generate`), and scores them (:func:`evaluate`, :func:`compare`):

- ``accuracy``: the fraction of samples that the evaluation classifier
  (:func:`pgm_lab.evaluation.evaluation_classifier`) assigns to the requested class;
- ``diversity``: the mean pairwise Euclidean distance between the classifier's features of
  samples of the same class, averaged over the classes (:func:`diversity`); the real test digits
  give the reference value, a model that repeats one image per class scores 0;
- ``frechet`` and ``frechet_floor``: the Fréchet distance of classifier features to the test
  digits, and the real-vs-real value at the same number of images (:func:`pgm_lab.evaluation.score_samples`);
- ``sample_s``: the wall-clock time to draw all the samples (the DDPM of :data:`SPECS` samples
  with 50 DDIM steps; ``generate(model, labels, method="ancestral")`` runs Algorithm 2).

:func:`guidance_sweep` trades accuracy against diversity with the guidance weight w of the
conditional DDPM. Labels out of range or of the wrong length raise ``ValueError``.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

#: number of digit classes
N_CLASSES = 10


@dataclass(frozen=True)
class ModelSpec:
    """How the comparison builds, trains and samples one conditional model."""

    name: str  #: the row label in tables
    cls: str  #: class name in :mod:`pgm_lab.models`
    family: str  #: chapter of the unconditional model
    factorisation: str  #: the conditional model, in the slides' notation (LaTeX)
    kwargs: dict[str, Any] = field(default_factory=dict)  #: constructor sizes
    #: extra arguments of ``train.fit``: none in SPECS, each class's defaults are the recipe
    fit: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)  #: extra arguments of ``sample``
    binarize: bool = False  #: a Bernoulli model: train on digits thresholded at 0.5


SPECS: dict[str, ModelSpec] = {
    "pixelcnn": ModelSpec(
        "ConditionalPixelCNN",
        "ConditionalPixelCNN",
        "06 autoregressive",
        r"p_\theta(\mathbf{x}\mid c)=\prod_i p_\theta(x_i\mid x_1,\dots,x_{i-1},c)",
        binarize=True,
    ),
    "cvae": ModelSpec(
        "ConditionalVAE, prior p(z)",
        "ConditionalVAE",
        "07 VAE",
        r"p_\theta(\mathbf{x}\mid c)=\int p_\theta(\mathbf{x}\mid \mathbf{z},c)\,p_{\mathbf{z}}(\mathbf{z})\,d\mathbf{z}",
        kwargs={"prior": "standard"},
    ),
    "cvae_learned": ModelSpec(
        "ConditionalVAE, prior p(z|c)",
        "ConditionalVAE",
        "07 VAE",
        r"p_\theta(\mathbf{x}\mid c)=\int p_\theta(\mathbf{x}\mid \mathbf{z},c)\,p_{\mathbf{z}}(\mathbf{z}\mid c)\,d\mathbf{z}",
        kwargs={"prior": "learned"},
    ),
    "ddpm": ModelSpec(
        "ConditionalDDPM",
        "ConditionalDDPM",
        "08 diffusion",
        r"\hat{\mathbf{x}}_{t-1}=f_\theta(\mathbf{x}_t,t,c)",
        sample={"method": "ddim", "steps": 50},
    ),
    "cgan": ModelSpec(
        "ConditionalGAN",
        "ConditionalGAN",
        "09 GAN",
        r"\mathbf{x}=G_{\theta_g}(\mathbf{z},c),\ D_{\theta_d}(\mathbf{x},c)",
    ),
}


def _spec(key: str) -> ModelSpec:
    if key not in SPECS:
        raise ValueError(f"unknown conditional model {key!r}: choose one of {', '.join(SPECS)}")
    return SPECS[key]


# -- labels ---------------------------------------------------------------------------------------
def check_labels(labels, n: int | None = None, n_classes: int | None = N_CLASSES) -> torch.Tensor:
    """Requested classes as a 1-D long tensor; ``ValueError`` unless integers in 0..n_classes−1, ``n`` of them.

    ``n_classes=None`` only requires non-negative integers.
    """
    try:
        t = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"labels must be a sequence of integers, got {type(labels).__name__}") from None
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex():
        if not bool(torch.all(t == t.round())):
            raise ValueError("labels must be integers")
    elif t.dtype == torch.bool:
        raise ValueError("labels must be integers, not booleans")
    t = t.long()
    if n is not None and len(t) != n:
        raise ValueError(f"expected {n} labels (one per sample), got {len(t)}")
    if len(t) and int(t.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices, got {int(t.min())}")
    if n_classes is not None and len(t) and int(t.max()) >= n_classes:
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}, got values in {int(t.min())}..{int(t.max())}"
        )
    return t


def class_labels(n_per_class: int, n_classes: int = N_CLASSES) -> torch.Tensor:
    """``[0]*n + [1]*n + … + [K−1]*n``: the same number of requests for every class."""
    if int(n_per_class) != n_per_class or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    return torch.arange(n_classes).repeat_interleave(int(n_per_class))


# -- building and training ------------------------------------------------------------------------
def build(key: str, *, size: int = 8, **sizes) -> torch.nn.Module:
    """A fresh conditional model of :data:`SPECS` for ``size``×``size`` digits (10 classes)."""
    from . import models

    spec = _spec(key)
    return getattr(models, spec.cls)((1, size, size), N_CLASSES, **{**spec.kwargs, **sizes})


def training_data(key: str, *, size: int = 8):
    """The training digits of :func:`pgm_lab.data.digits` that ``key`` trains on.

    A Bernoulli model (the PixelCNN) gets digits thresholded at 0.5, whose samples the evaluation
    classifier recognises about as well as grey digits (stochastic binarisation would make the
    real digits themselves hard to classify).
    """
    from .data import digits

    return digits(size, split="train", binarize=_spec(key).binarize)


def train(
    key: str, *, size: int = 8, profile: str | None = None, seed: int = 0, progress: bool = True, **fit_kw
):
    """Build and train (or load from the checkpoint cache) one conditional model: ``(model, history)``."""
    from . import data as pdata
    from .train import fit

    spec = _spec(key)
    torch.manual_seed(seed)  # the initial weights too: the checkpoint cache key includes the seed
    model = build(key, size=size)
    kw = {**spec.fit, **fit_kw}
    if isinstance(kw.get("transform"), str):
        kw["transform"] = getattr(pdata, kw["transform"])
    history = fit(model, training_data(key, size=size), profile=profile, seed=seed, progress=progress, **kw)
    return model, history


def train_all(keys=None, **kw) -> dict[str, tuple[torch.nn.Module, Any]]:
    """:func:`train` for each key (default: all of :data:`SPECS`); a dict key -> (model, history)."""
    keys = list(SPECS) if keys is None else list(keys)
    return {k: train(k, **kw) for k in keys}


# -- sampling -------------------------------------------------------------------------------------
def generate(
    model, labels, *, seed: int = 0, batch_size: int = 1000, **sample_kw
) -> tuple[torch.Tensor, float]:
    """Samples of the requested classes and the seconds it took: ``(images (N, C, H, W) on CPU, seconds)``.

    The draw is reproducible: a ``torch.Generator`` seeded with ``seed`` is passed to every model's
    ``sample(n, labels, generator=...)`` (the interface of
    :class:`~pgm_lab.models.base.GenerativeModel`; the global RNG is seeded too, for code that
    uses it), in batches of ``batch_size``.
    """
    n_classes = getattr(model, "n_classes", None)
    if n_classes is None:
        raise ValueError(f"{type(model).__name__} is not class-conditional (n_classes is None)")
    y = check_labels(labels, n_classes=n_classes)
    if len(y) == 0:
        raise ValueError("labels is empty: request at least one sample")
    was_training = model.training
    model.eval()
    dev = model.device_of() if hasattr(model, "device_of") else torch.device("cpu")
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(seed))
        for i in range(0, len(y), batch_size):
            yb = y[i : i + batch_size].to(dev)
            out.append(model.sample(len(yb), yb, generator=gen, **sample_kw).float().cpu())
        if dev.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.train(was_training)
    return torch.cat(out), seconds


def sample_class(model, digit: int, n: int = 16, *, seed: int = 0, **sample_kw) -> torch.Tensor:
    """``n`` samples of class ``digit`` (see :func:`generate`)."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return generate(model, [digit] * int(n), seed=seed, **sample_kw)[0]


# -- measures -------------------------------------------------------------------------------------
def features(images: torch.Tensor, *, size: int = 8) -> torch.Tensor:
    """The evaluation classifier's 64-d penultimate features of ``images`` (N, 1, size, size)."""
    from .evaluation import evaluation_classifier

    x = torch.as_tensor(images, dtype=torch.float32)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, size, size):
        raise ValueError(f"images must be shaped (N, 1, {size}, {size}), got {tuple(x.shape)}")
    clf = evaluation_classifier(size)
    dev = clf.device_of()
    with torch.no_grad():
        return torch.cat(
            [clf.features(x[i : i + 1024].to(dev)).float().cpu() for i in range(0, len(x), 1024)]
        )


def diversity(images: torch.Tensor, labels, *, size: int = 8) -> float:
    """Within-class diversity: mean over classes of the mean pairwise distance ‖φ(x_a) − φ(x_b)‖.

    φ are the evaluation classifier's features (:func:`features`); pairs a ≠ b are taken among
    images with the same label. Classes with fewer than two images are skipped. A model that
    returns one image per class scores 0; real digits give the reference.
    """
    y = check_labels(labels, n=len(images), n_classes=None)
    f = features(images, size=size).double()
    per_class = []
    for c in torch.unique(y):
        fc = f[y == c]
        m = len(fc)
        if m < 2:
            continue
        d = torch.cdist(fc, fc)  # (m, m), zero diagonal
        per_class.append(float(d.sum()) / (m * (m - 1)))
    if not per_class:
        raise ValueError("diversity needs at least two images of some class")
    return float(sum(per_class) / len(per_class))


def evaluate(model, *, n_per_class: int = 50, size: int = 8, seed: int = 0, **sample_kw) -> dict[str, float]:
    """Draw ``n_per_class`` samples of each class and score them (see the module docstring)."""
    from .evaluation import score_samples

    labels = class_labels(n_per_class, model.n_classes)
    images, seconds = generate(model, labels, seed=seed, **sample_kw)
    scores = score_samples(images, labels, size=size, seed=seed)
    return {
        "accuracy": scores["accuracy"],
        "diversity": diversity(images, labels, size=size),
        "frechet": scores["frechet"],
        "frechet_floor": scores["frechet_floor"],
        "sample_s": seconds,
        "ms_per_image": 1000.0 * seconds / len(images),
        "n": len(images),
    }


def real_reference(*, size: int = 8, split: str = "test") -> dict[str, float]:
    """The measures of real digits: the classifier's accuracy and the within-class diversity."""
    from .data import digits
    from .evaluation import evaluation_classifier, predict

    x, y = digits(size, split=split).tensors
    clf = evaluation_classifier(size)
    with torch.no_grad():
        acc = float((predict(clf, x).argmax(1) == y).float().mean())
    return {"accuracy": acc, "diversity": diversity(x, y, size=size), "n": len(x)}


def compare(
    models: dict, *, n_per_class: int = 50, size: int = 8, seed: int = 0, sample_kw=None
) -> list[dict]:
    """One row per model (``{name: model}``), plus the real test digits as the reference row.

    ``sample_kw`` optionally maps a name to extra ``sample`` arguments (e.g. ``{"guidance": 1.0}``).
    """
    sample_kw = sample_kw or {}
    rows = []
    for name, model in models.items():
        if isinstance(model, tuple):  # (model, history) from train_all
            model = model[0]
        kw = {**(SPECS[name].sample if name in SPECS else {}), **sample_kw.get(name, {})}
        label = SPECS[name].name if name in SPECS else str(name)
        rows.append({"model": label, **evaluate(model, n_per_class=n_per_class, size=size, seed=seed, **kw)})
    ref = real_reference(size=size)
    rows.append({"model": "real test digits", "accuracy": ref["accuracy"], "diversity": ref["diversity"]})
    return rows


def guidance_sweep(
    model,
    scales=(0.0, 0.5, 1.0, 2.0, 4.0),
    *,
    n_per_class: int = 50,
    size: int = 8,
    seed: int = 0,
    **sample_kw,
) -> list[dict]:
    """Accuracy, diversity and Fréchet distance of a conditional DDPM for each guidance weight w.

    Every w starts from the same noise (same ``seed``), so the rows differ only by w in
    ε̃ = (1 + w) ε_θ(x_t, t, c) − w ε_θ(x_t, t, ∅).
    """
    scales = [float(w) for w in scales]
    if not scales:
        raise ValueError("scales is empty")
    if not all(math.isfinite(w) for w in scales):
        raise ValueError(f"guidance scales must be finite, got {scales}")
    return [
        {
            "guidance": w,
            **evaluate(model, n_per_class=n_per_class, size=size, seed=seed, guidance=w, **sample_kw),
        }
        for w in scales
    ]


# -- presentation ---------------------------------------------------------------------------------
_FORMATS = {
    "accuracy": "{:.1%}",
    "diversity": "{:.2f}",
    "frechet": "{:.2f}",
    "frechet_floor": "{:.2f}",
    "sample_s": "{:.2f}",
    "ms_per_image": "{:.2f}",
    "train_s": "{:.0f}",
    "guidance": "{:g}",
}


def format_table(rows: list[dict], columns=None) -> str:
    """A Markdown table of ``rows`` (missing values shown as "–", bars in text escaped)."""
    if not rows:
        raise ValueError("no rows to format")
    if columns is None:
        columns = list(dict.fromkeys(itertools.chain.from_iterable(r.keys() for r in rows)))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if v is None:
                cells.append("–")
            elif isinstance(v, float):
                cells.append(_FORMATS.get(c, "{:.4g}").format(v))
            else:
                cells.append(str(v).replace("|", "\\|"))  # a bar inside a cell would split it
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "N_CLASSES",
    "SPECS",
    "ModelSpec",
    "build",
    "check_labels",
    "class_labels",
    "compare",
    "diversity",
    "evaluate",
    "features",
    "format_table",
    "generate",
    "guidance_sweep",
    "real_reference",
    "sample_class",
    "train",
    "train_all",
    "training_data",
]
