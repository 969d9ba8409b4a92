"""Binary image denoising with an Ising MRF (图像去噪): energy, ICM, graph cut, BP, sampling.

See chapter 05. Following the slides (and Bishop 2006, §8.3.3), a noisy image has pixels
y_i ∈ {−1, +1}; the unknown clean image x_i ∈ {−1, +1}; the energy is

    E(x, y) = h Σ_i x_i − β Σ_{i~j} x_i x_j − η Σ_i x_i y_i,

summed over the 4-neighbour pairs {i, j}, and p(x, y) = exp(−E(x, y)) / Z. Denoising
maximises p(x | y), i.e. minimises E over x with y fixed:

- :func:`icm`: iterated conditional modes (迭代条件模式, Besag 1986), one pixel at a time as
  on the slide (``method="loop"``), or all pixels of one checkerboard colour at once
  (``method="checkerboard"``, the same rule, since same-coloured pixels are not neighbours);
- :func:`graph_cut`: the exact minimiser through an s–t minimum cut (Greig, Porteous and
  Seheult 1989; Boykov and Kolmogorov 2004, PyMaxflow);
- :func:`loopy_bp`: max-product (or sum-product) loopy BP from :mod:`pgm_lab.grid_bp`;
- :func:`gibbs` and :func:`mean_field`: the posterior mean, to show uncertainty.

Images are numpy arrays of −1/+1 (returned as ``int8``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ICMResult",
    "PosteriorResult",
    "as_spins",
    "brute_force_map",
    "compare_methods",
    "denoise_explorer",
    "energy",
    "energy_terms",
    "flip_noise",
    "gibbs",
    "graph_cut",
    "horse",
    "icm",
    "local_field",
    "loopy_bp",
    "mean_field",
    "neighbour_sum",
    "parameter_grid",
    "pixel_error",
    "text_image",
]


# --------------------------------------------------------------------------------------
# Validation and images
# --------------------------------------------------------------------------------------
def as_spins(x, name: str = "x") -> np.ndarray:
    """Check that ``x`` is a 2-D array of −1/+1 and return it as ``int8``."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D image, got shape {arr.shape}")
    if arr.dtype == bool:
        raise ValueError(f"{name} is boolean: convert it with np.where({name}, 1, -1)")
    bad = ~np.isin(arr, (-1, 1))
    if bad.any():
        found = np.unique(arr[bad])[:5]
        raise ValueError(f"{name} must contain only -1 and +1, found other values such as {found.tolist()}")
    return arr.astype(np.int8)


def _pair(x, y):
    x = as_spins(x, "x")
    y = as_spins(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    return x, y


def _params(h, beta, eta) -> tuple[float, float, float]:
    vals = []
    for name, v in (("h", h), ("beta", beta), ("eta", eta)):
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float, np.integer, np.floating))
            or not np.isfinite(v)
        ):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
        vals.append(float(v))
    if vals[1] < 0:
        raise ValueError(f"beta must be non-negative (neighbours prefer equal signs), got {beta!r}")
    return vals[0], vals[1], vals[2]


def horse(step: int = 1) -> np.ndarray:
    """``skimage.data.horse()`` (ships with scikit-image) as ±1: background +1, horse −1.

    ``step`` > 1 keeps every step-th row and column (a smaller image for quick runs).
    """
    from skimage import data

    if not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be a positive integer, got {step!r}")
    img = data.horse()[::step, ::step]
    return np.where(img, 1, -1).astype(np.int8)


def text_image(
    text: str = "PGM\nlab", *, size: tuple[int, int] = (120, 240), font_size: int = 48
) -> np.ndarray:
    """Black text (−1) on a white background (+1), drawn with Pillow's built-in font (no files)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    tx = (w - (box[2] - box[0])) / 2 - box[0]
    ty = (h - (box[3] - box[1])) / 2 - box[1]
    draw.multiline_text((tx, ty), text, fill=0, font=font, align="center")
    return np.where(np.asarray(img) > 127, 1, -1).astype(np.int8)


def flip_noise(x, p: float, rng=None) -> np.ndarray:
    """Flip the sign of each pixel independently with probability ``p`` (the slide's noise)."""
    x = as_spins(x, "x")
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    rng = np.random.default_rng(rng)
    flip = rng.random(x.shape) < p
    return np.where(flip, -x, x).astype(np.int8)


def pixel_error(x, x_true) -> float:
    """Fraction of pixels where ``x`` differs from ``x_true``."""
    x, x_true = _pair(x, x_true)
    return float(np.mean(x != x_true))


# --------------------------------------------------------------------------------------
# Energy
# --------------------------------------------------------------------------------------
def neighbour_sum(x) -> np.ndarray:
    """Σ_{j∈η(i)} x_j over the 4 neighbours of every pixel (missing neighbours count 0)."""
    x = np.asarray(x, dtype=float)
    s = np.zeros_like(x)
    s[1:, :] += x[:-1, :]
    s[:-1, :] += x[1:, :]
    s[:, 1:] += x[:, :-1]
    s[:, :-1] += x[:, 1:]
    return s


def energy_terms(x, y, *, h: float, beta: float, eta: float) -> dict[str, float]:
    """The three terms of E(x, y): ``bias`` h Σx_i, ``smoothness`` −β Σ x_i x_j, ``data`` −η Σ x_i y_i."""
    x, y = _pair(x, y)
    h, beta, eta = _params(h, beta, eta)
    xf = x.astype(np.int64)
    pairs = int((xf[:-1, :] * xf[1:, :]).sum() + (xf[:, :-1] * xf[:, 1:]).sum())
    return {
        "bias": h * float(xf.sum()),
        "smoothness": -beta * pairs,
        "data": -eta * float((xf * y).sum()),
    }


def energy(x, y, *, h: float, beta: float, eta: float) -> float:
    """E(x, y) = h Σ x_i − β Σ_{i~j} x_i x_j − η Σ x_i y_i (slide notation); see chapter 05."""
    return float(sum(energy_terms(x, y, h=h, beta=beta, eta=eta).values()))


def local_field(x, y, *, h: float, beta: float, eta: float) -> np.ndarray:
    """a_i = −h + β Σ_{j∈η(i)} x_j + η y_i, so that E(x_i=+1) − E(x_i=−1) = −2 a_i with the rest fixed.

    ICM therefore sets x_i = sign(a_i) (keeping x_i when a_i = 0) and p(x_i=+1 | rest) = σ(2 a_i).
    """
    return -h + beta * neighbour_sum(x) + eta * np.asarray(y, dtype=float)


# --------------------------------------------------------------------------------------
# ICM
# --------------------------------------------------------------------------------------
@dataclass
class ICMResult:
    """``x``: the final image; ``energies``: E after 0, 1, 2, … sweeps (entry 0 is E(y, y));
    ``changes``: pixels changed in each sweep; ``sweeps``; ``converged`` (a sweep changed
    nothing); ``seconds``: wall time of the sweeps."""

    x: np.ndarray
    energies: list
    changes: list
    sweeps: int
    converged: bool
    seconds: float


def icm(
    y,
    *,
    h: float,
    beta: float,
    eta: float,
    method: str = "checkerboard",
    max_sweeps: int = 50,
    x0=None,
) -> ICMResult:
    """Iterated conditional modes from x = y (or ``x0``); see chapter 05.

    Each update fixes all other pixels, compares the energy of x_j = +1 and x_j = −1 and
    keeps the lower (ties keep the current value). ``method="loop"`` visits the pixels one at
    a time in raster order, as on the slide (pure Python); ``method="checkerboard"`` updates
    all pixels of one colour of a checkerboard at once (numpy), which is the same rule because
    same-coloured pixels are not neighbours. Stops after a sweep that changes nothing.
    """
    y = as_spins(y, "y")
    h, beta, eta = _params(h, beta, eta)
    if method not in ("loop", "checkerboard"):
        raise ValueError(f"method must be 'loop' or 'checkerboard', got {method!r}")
    if not isinstance(max_sweeps, (int, np.integer)) or max_sweeps < 0:
        raise ValueError(f"max_sweeps must be a non-negative integer, got {max_sweeps!r}")
    x = y.copy() if x0 is None else _pair(x0, y)[0].copy()
    sweeper = _ICM_SWEEPERS[method](x, y, h, beta, eta)
    energies = [energy(x, y, h=h, beta=beta, eta=eta)]
    changes: list[int] = []
    converged = False
    seconds = 0.0
    for _ in range(max_sweeps):
        t0 = time.perf_counter()
        changed = sweeper.sweep()
        seconds += time.perf_counter() - t0
        changes.append(changed)
        energies.append(energy(sweeper.image(), y, h=h, beta=beta, eta=eta))
        if changed == 0:
            converged = True
            break
    return ICMResult(sweeper.image(), energies, changes, len(changes), converged, seconds)


class _LoopICM:
    """The slide's ICM: visit the pixels one at a time in raster order (pure Python lists)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, h: float, beta: float, eta: float):
        self.xs, self.ys = x.tolist(), y.tolist()
        self.h, self.beta, self.eta = h, beta, eta

    def image(self) -> np.ndarray:
        """The current x as an ``int8`` array (a copy)."""
        return np.asarray(self.xs, dtype=np.int8)

    def sweep(self) -> int:
        """One raster sweep; returns how many pixels changed."""
        xs, ys, h, beta, eta = self.xs, self.ys, self.h, self.beta, self.eta
        H, W = len(xs), len(xs[0])
        changed = 0
        for r in range(H):
            row, yrow = xs[r], ys[r]
            up = xs[r - 1] if r > 0 else None
            down = xs[r + 1] if r < H - 1 else None
            for c in range(W):
                nb = 0  # Σ_{j∈η(i)} x_j, missing neighbours count 0
                if up is not None:
                    nb += up[c]
                if down is not None:
                    nb += down[c]
                if c > 0:
                    nb += row[c - 1]
                if c < W - 1:
                    nb += row[c + 1]
                # the energy terms that involve x_j, for x_j = +1 and x_j = -1
                e_plus = h - beta * nb - eta * yrow[c]
                e_minus = -e_plus
                new = 1 if e_plus < e_minus else (-1 if e_minus < e_plus else row[c])
                if new != row[c]:
                    row[c] = new
                    changed += 1
        return changed


class _CheckerboardICM:
    """ICM on all pixels of one checkerboard colour at once, then the other (numpy).

    Same-coloured pixels are not neighbours, so this is the loop's rule; the thresholds of
    :func:`_icm_thresholds` make exactly the loop's choice for each neighbour sum.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, h: float, beta: float, eta: float):
        H, W = y.shape
        self.hi, self.lo = _icm_thresholds(y, h, beta, eta)
        black = ((np.add.outer(np.arange(H), np.arange(W)) % 2) == 0).view(np.int8)
        self.masks = (black, 1 - black)
        self.P = np.zeros((H + 2, W + 2), np.int8)  # x with a border of zeros: missing neighbours
        self.P[1:-1, 1:-1] = x
        self.X = self.P[1:-1, 1:-1]  # a view: updating X updates P
        self.nb = np.empty((H, W), np.int8)

    def image(self) -> np.ndarray:
        """The current x (a copy)."""
        return self.X.copy()

    def sweep(self) -> int:
        """Update the black pixels, then the white ones; returns how many pixels changed."""
        P, X, nb = self.P, self.X, self.nb
        before = X.copy()
        for mask in self.masks:
            np.add(P[:-2, 1:-1], P[2:, 1:-1], out=nb)
            nb += P[1:-1, :-2]
            nb += P[1:-1, 2:]
            # the new value, or 0 where both states have the same energy (keep x_j)
            d = (nb >= self.hi).view(np.int8) - (nb <= self.lo).view(np.int8)
            X += mask * (d != 0).view(np.int8) * (d - X)
        return int(np.count_nonzero(X != before))


_ICM_SWEEPERS = {"loop": _LoopICM, "checkerboard": _CheckerboardICM}


def _icm_thresholds(y: np.ndarray, h: float, beta: float, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the neighbour sums Σx_j ∈ {−4..4} for which ICM picks +1 (≥ hi) or −1 (≤ lo).

    Decided with exactly the loop's arithmetic, for y_i = −1 and y_i = +1, so that the
    vectorised update makes the same choice as the slide's loop would for the same
    neighbours. The rule is monotone in the neighbour sum because β ≥ 0.
    """
    out = {}
    for yv in (-1, 1):
        ups, downs = [], []
        for nb in range(-4, 5):
            e_plus = h - beta * nb - eta * yv
            if e_plus < -e_plus:
                ups.append(nb)
            elif -e_plus < e_plus:
                downs.append(nb)
        out[yv] = (min(ups) if ups else 5, max(downs) if downs else -5)
    hi = np.where(y == 1, out[1][0], out[-1][0]).astype(np.int8)
    lo = np.where(y == 1, out[1][1], out[-1][1]).astype(np.int8)
    return hi, lo


# --------------------------------------------------------------------------------------
# Graph cut
# --------------------------------------------------------------------------------------
def graph_cut(y, *, h: float, beta: float, eta: float) -> np.ndarray:
    """The exact minimiser of E(x, y) over x by an s–t minimum cut (PyMaxflow); see chapter 05.

    Up to a constant, −β x_i x_j costs 2β when x_i ≠ x_j (an edge of capacity 2β between
    neighbours) and the unary term (h − η y_i) x_i becomes terminal edges: a pixel that ends
    on the sink side is labelled +1 and pays its source edge, u_i(+1) = h − η y_i; one on
    the source side pays u_i(−1) = −(h − η y_i). Shifting both by the smaller keeps the
    capacities non-negative. Needs β ≥ 0 (then E is submodular and the cut is exact).
    """
    import maxflow

    y = as_spins(y, "y")
    h, beta, eta = _params(h, beta, eta)
    u_plus = h - eta * y.astype(float)
    u_minus = -u_plus
    low = np.minimum(u_plus, u_minus)
    g = maxflow.Graph[float]()
    ids = g.add_grid_nodes(y.shape)
    if beta > 0:
        g.add_grid_edges(ids, weights=2.0 * beta, symmetric=True)  # right and down neighbours
    g.add_grid_tedges(ids, u_plus - low, u_minus - low)
    g.maxflow()
    sink = g.get_grid_segments(ids)
    return np.where(sink, 1, -1).astype(np.int8)


def brute_force_map(
    y, *, h: float, beta: float, eta: float, max_pixels: int = 20
) -> tuple[np.ndarray, float]:
    """The minimum-energy image by enumerating all 2^D images (tiny images only)."""
    y = as_spins(y, "y")
    h, beta, eta = _params(h, beta, eta)
    d = y.size
    if d > max_pixels:
        raise ValueError(f"brute force over 2^{d} images is too many (max_pixels={max_pixels})")
    codes = np.arange(2**d)
    bits = ((codes[:, None] >> np.arange(d)) & 1).astype(np.int64)
    X = (2 * bits - 1).reshape((-1, *y.shape))
    yy = y.astype(np.int64)
    e = (
        h * X.sum((1, 2))
        - beta * ((X[:, :-1, :] * X[:, 1:, :]).sum((1, 2)) + (X[:, :, :-1] * X[:, :, 1:]).sum((1, 2)))
        - eta * (X * yy).sum((1, 2))
    )
    k = int(np.argmin(e))
    return X[k].astype(np.int8), float(e[k])


# --------------------------------------------------------------------------------------
# Loopy BP, Gibbs sampling, mean field
# --------------------------------------------------------------------------------------
def loopy_bp(
    y,
    *,
    h: float,
    beta: float,
    eta: float,
    kind: str = "max",
    schedule: str = "checkerboard",
    max_iters: int = 100,
    tol: float = 1e-4,
    damping: float = 0.0,
    track_energy: bool = False,
    device=None,
    dtype=None,
):
    """Loopy BP on p(x|y) ∝ exp(−E): θ_i = −h + η y_i, coupling β (see :func:`pgm_lab.grid_bp.grid_bp`).

    ``kind="max"`` decodes x = sign(b); ``kind="sum"`` gives approximate marginals
    ``p_plus`` = p(x_i = +1 | y). With ``track_energy`` the result's ``history`` holds E of the
    decoded image after each sweep. Messages are float32 unless ``dtype`` says otherwise
    (the field takes few distinct values, so single precision loses nothing that matters
    here and is about twice as fast). See chapter 05.
    """
    import torch

    from .grid_bp import grid_bp

    y = as_spins(y, "y")
    h, beta, eta = _params(h, beta, eta)
    theta = -h + eta * y.astype(float)
    cb = None
    if track_energy:

        def cb(it, b):
            xb = np.where(b.detach().cpu().numpy() >= 0, 1, -1).astype(np.int8)
            return energy(xb, y, h=h, beta=beta, eta=eta)

    return grid_bp(
        theta,
        beta,
        kind=kind,
        schedule=schedule,
        max_iters=max_iters,
        tol=tol,
        damping=damping,
        device=device,
        dtype=torch.float32 if dtype is None else dtype,
        callback=cb,
    )


@dataclass
class PosteriorResult:
    """``mean``: E[x_i | y] (or the mean-field m_i); ``p_plus`` = (1 + mean) / 2 = p(x_i=+1 | y);
    ``x``: sign(mean) (ties → +1); ``iterations``; ``converged`` (mean field only);
    ``energies``: energy of the current sample/estimate's sign after each sweep."""

    mean: np.ndarray
    p_plus: np.ndarray
    x: np.ndarray
    iterations: int
    converged: bool = True
    energies: list = field(default_factory=list)


def _colours(shape):
    black = (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) % 2) == 0
    return black, ~black


def gibbs(
    y,
    *,
    h: float,
    beta: float,
    eta: float,
    n_sweeps: int = 200,
    burn_in: int = 50,
    rng=None,
    x0=None,
) -> PosteriorResult:
    """Checkerboard Gibbs sampling from p(x | y): each pixel drawn from p(x_i=+1 | rest) = σ(2 a_i).

    Returns the posterior mean estimated from the ``n_sweeps − burn_in`` sweeps after
    ``burn_in``. See chapter 05.
    """
    y = as_spins(y, "y")
    h, beta, eta = _params(h, beta, eta)
    if not (isinstance(n_sweeps, (int, np.integer)) and isinstance(burn_in, (int, np.integer))):
        raise ValueError("n_sweeps and burn_in must be integers")
    if not (0 <= burn_in < n_sweeps):
        raise ValueError(f"need 0 <= burn_in < n_sweeps, got burn_in={burn_in}, n_sweeps={n_sweeps}")
    rng = np.random.default_rng(rng)
    x = (y.copy() if x0 is None else _pair(x0, y)[0].copy()).astype(float)
    yf = y.astype(float)
    total = np.zeros_like(x)
    energies = []
    for sweep in range(n_sweeps):
        for mask in _colours(y.shape):
            a = -h + beta * neighbour_sum(x) + eta * yf
            p = 1.0 / (1.0 + np.exp(-2.0 * a))
            draw = np.where(rng.random(x.shape) < p, 1.0, -1.0)
            x[mask] = draw[mask]
        if sweep >= burn_in:
            total += x
        energies.append(energy(x.astype(np.int8), y, h=h, beta=beta, eta=eta))
    mean = total / (n_sweeps - burn_in)
    return PosteriorResult(
        mean, (1 + mean) / 2, np.where(mean >= 0, 1, -1).astype(np.int8), n_sweeps, True, energies
    )


def mean_field(
    y,
    *,
    h: float,
    beta: float,
    eta: float,
    max_iters: int = 200,
    tol: float = 1e-6,
    damping: float = 0.0,
) -> PosteriorResult:
    """Naive mean field: m_i = tanh(−h + β Σ_{j∈η(i)} m_j + η y_i), checkerboard updates from m = y.

    ``damping`` d: m ← (1−d) m_new + d m. See chapter 05.
    """
    y = as_spins(y, "y")
    h, beta, eta = _params(h, beta, eta)
    if not (0.0 <= damping < 1.0):
        raise ValueError(f"damping must be in [0, 1), got {damping!r}")
    m = y.astype(float)
    yf = y.astype(float)
    converged = False
    iterations = 0
    energies = []
    for iterations in range(1, max_iters + 1):  # noqa: B007 - the count is returned
        old = m.copy()
        for mask in _colours(y.shape):
            new = np.tanh(-h + beta * neighbour_sum(m) + eta * yf)
            m[mask] = (1 - damping) * new[mask] + damping * m[mask]
        energies.append(energy(np.where(m >= 0, 1, -1), y, h=h, beta=beta, eta=eta))
        if np.abs(m - old).max() < tol:
            converged = True
            break
    return PosteriorResult(
        m, (1 + m) / 2, np.where(m >= 0, 1, -1).astype(np.int8), iterations, converged, energies
    )


# --------------------------------------------------------------------------------------
# Comparisons and lecture widgets
# --------------------------------------------------------------------------------------
_METHODS = ("icm-loop", "icm", "graph_cut", "loopy_bp", "mean_field")


def _run(method: str, y, h, beta, eta, **kw) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    if method == "icm-loop":
        x = icm(y, h=h, beta=beta, eta=eta, method="loop", **kw).x
    elif method == "icm":
        x = icm(y, h=h, beta=beta, eta=eta, method="checkerboard", **kw).x
    elif method == "graph_cut":
        x = graph_cut(y, h=h, beta=beta, eta=eta)
    elif method == "loopy_bp":
        x = loopy_bp(y, h=h, beta=beta, eta=eta, **kw).x
    elif method == "mean_field":
        x = mean_field(y, h=h, beta=beta, eta=eta, **{"tol": 1e-4, **kw}).x
    else:
        raise ValueError(f"unknown method {method!r}; choose from {_METHODS}")
    return x, time.perf_counter() - t0


def compare_methods(
    x_true, y, *, h: float, beta: float, eta: float, methods=("icm-loop", "icm", "graph_cut", "loopy_bp")
) -> list[dict]:
    """Run each method on ``y``; one row per method: final energy, pixel error vs ``x_true``, seconds."""
    x_true, y = _pair(x_true, y)
    rows = []
    for name in methods:
        x, sec = _run(name, y, h, beta, eta)
        rows.append(
            {
                "method": name,
                "energy": energy(x, y, h=h, beta=beta, eta=eta),
                "pixel error": pixel_error(x, x_true),
                "seconds": sec,
            }
        )
    return rows


def parameter_grid(
    x_true, y, betas, etas, *, h: float = 0.0, method: str = "graph_cut"
) -> tuple[np.ndarray, list]:
    """Denoise ``y`` for every (β, η) pair; returns the pixel-error matrix (len(betas), len(etas))
    and the images as a nested list ``images[i][j]``. The static stand-in for the sliders."""
    x_true, y = _pair(x_true, y)
    errs = np.zeros((len(betas), len(etas)))
    images = []
    for i, b in enumerate(betas):
        row = []
        for j, e in enumerate(etas):
            x, _ = _run(method, y, h, b, e)
            errs[i, j] = pixel_error(x, x_true)
            row.append(x)
        images.append(row)
    return errs, images


def denoise_explorer(x_true, y, *, method: str = "graph_cut", beta=1.0, eta=2.1, h=0.0):
    """Lecture widget: sliders for β, η, h and a method menu; shows the denoised image.

    Returns an ``ipywidgets.VBox`` (the controls, then an ``Image`` redrawn on every change);
    its ``.result`` is a dict with the current ``energy``, ``pixel error`` and ``seconds`` (so a
    test can move a slider and see it change). The figure is a PNG in an ``Image`` widget rather
    than an ``Output`` widget: executed headless (book builds), output widgets can leave nbclient
    waiting forever (jupyter/nbclient#312). See chapter 05.
    """
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    x_true, y = _pair(x_true, y)
    options = [m for m in _METHODS if m != "icm-loop"]
    if method not in options:
        raise ValueError(f"unknown method {method!r}; choose from {options}")

    style = {"description_width": "initial"}
    controls = {
        "method": widgets.Dropdown(options=options, value=method, description="method"),
        "beta": widgets.FloatSlider(value=beta, min=0.0, max=3.0, step=0.1, description="β", style=style),
        "eta": widgets.FloatSlider(value=eta, min=0.0, max=4.0, step=0.1, description="η", style=style),
        "h": widgets.FloatSlider(value=h, min=-1.0, max=1.0, step=0.1, description="h", style=style),
    }
    image = widgets.Image(format="png")
    box = widgets.VBox([*controls.values(), image])

    def render(*_):
        m, b, e, hh = (controls[k].value for k in ("method", "beta", "eta", "h"))
        x, sec = _run(m, y, hh, b, e)
        box.result = {
            "energy": energy(x, y, h=hh, beta=b, eta=e),
            "pixel error": pixel_error(x, x_true),
            "seconds": sec,
        }
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        axes[0].imshow(y, cmap="gray", vmin=-1, vmax=1)
        axes[0].set_title(f"noisy y ({pixel_error(y, x_true):.1%} wrong)")
        axes[1].imshow(x, cmap="gray", vmin=-1, vmax=1)
        axes[1].set_title(f"{m}: E={box.result['energy']:.0f}, error {box.result['pixel error']:.2%}")
        for ax in axes:
            ax.set_axis_off()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        image.value = buf.getvalue()

    for control in controls.values():
        control.observe(render, names="value")
    render()
    box.controls, box.image = controls, image
    return box
