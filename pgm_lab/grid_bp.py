"""Loopy belief propagation on a binary pairwise MRF over an H×W image grid (chapter 05).

See chapter 05 (and chapter 04 for the message rule). The model is the Ising form of the
slides' image-denoising MRF (马尔可夫随机场),

    p(x) ∝ exp( Σ_i θ_i x_i + Σ_{i~j} β_ij x_i x_j ),   x_i ∈ {−1, +1},

with i~j the 4-neighbour pairs. For denoising, θ_i = −h + η y_i and β_ij = β, so that
p(x|y) ∝ exp(−E(x, y)) with E = h Σx_i − β Σ x_i x_j − η Σ x_i y_i.

Binary messages need one number each. Writing m_{j→i}(x_i) ∝ exp(μ_{j→i} x_i), the slide's
rule m_ji(x_i) = Σ_{x_j} ψ_ij(x_i, x_j) Π_{k∈η(j)\\i} m_kj(x_j) becomes, with the cavity field
H_{j\\i} = θ_j + Σ_{k∈η(j)\\i} μ_{k→j},

    sum-product:  μ_{j→i} = ½ [log cosh(β_ij + H_{j\\i}) − log cosh(β_ij − H_{j\\i})]
                           = atanh( tanh β_ij · tanh H_{j\\i} ),
    max-product:  μ_{j→i} = ½ ( |β_ij + H_{j\\i}| − |β_ij − H_{j\\i}| ).

The belief is b_i = θ_i + Σ_j μ_{j→i}: p(x_i = +1) ≈ σ(2 b_i) for sum-product, and the
max-product decision is x_i = sign(b_i).

How the arrays are laid out (the speed comes from here, the maths is above). The code keeps
λ = 2μ, the log-ratio log m(+1)/m(−1), and splits the grid into four sub-lattices by the
parity of (row, column). A pixel's four neighbours all lie in the two sub-lattices of the
other checkerboard colour, at the same or a shifted index, so a sub-lattice computes the
messages it sends with a few whole-array operations and writes them into its neighbours'
arrays through slices. One sweep updates every message, either all at once
(``"parallel"``, flooding) or black squares then white squares (``"checkerboard"``, the
second half using the newest messages), which usually converges in fewer sweeps. Only the
half being updated is computed. Runs with numpy on the CPU and with torch on a GPU; same
code. References: Yedidia, Freeman and Weiss (2003) for loopy BP.
"""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GridBPResult", "grid_bp", "grid_bp_loop"]

_SCHEDULES = ("checkerboard", "parallel")
_SUBLATTICES = ((0, 0), (1, 1), (0, 1), (1, 0))  # (row parity, column parity): black, then white
# direction k: (Δrow, Δcol) of the neighbour; the receiver files the message under k ^ 1
_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


@dataclass
class GridBPResult:
    """Output of :func:`grid_bp` (see chapter 05).

    ``belief``: b_i as a numpy (H, W) array; ``p_plus``: σ(2 b_i) (approximate marginal
    p(x_i=+1) for sum-product, a normalised max-marginal for max-product); ``x``: sign(b)
    in {−1, +1} (ties → +1); ``iterations`` sweeps run; ``converged`` whether the largest
    message change fell below ``tol``; ``changes``: that largest change after each sweep;
    ``seconds``: wall time of the sweeps; ``history``: whatever ``callback`` returned.
    """

    belief: np.ndarray
    p_plus: np.ndarray
    x: np.ndarray
    iterations: int
    converged: bool
    changes: list = field(default_factory=list)
    seconds: float = 0.0
    history: list = field(default_factory=list)


# ---------------------------------------------------------------- input checks


def _is_scalar(beta) -> bool:
    return not isinstance(beta, (tuple, list)) and np.ndim(beta) == 0


def _check_options(kind, schedule, max_iters, tol, damping) -> None:
    if kind not in ("sum", "max"):
        raise ValueError(f"kind must be 'sum' or 'max', got {kind!r}")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule must be one of {_SCHEDULES}, got {schedule!r}")
    if not isinstance(max_iters, (int, np.integer)) or isinstance(max_iters, bool) or max_iters < 0:
        raise ValueError(f"max_iters must be a non-negative integer, got {max_iters!r}")
    if not (tol >= 0):
        raise ValueError(f"tol must be non-negative, got {tol!r}")
    if not (0.0 <= damping < 1.0):
        raise ValueError(f"damping must be in [0, 1), got {damping!r}")


def _as_field(theta) -> np.ndarray:
    """θ as a float64 numpy (H, W) array (numpy or torch input)."""
    if hasattr(theta, "detach"):
        theta = theta.detach().cpu().numpy()
    th = np.asarray(theta, dtype=float)
    if th.ndim != 2 or th.shape[0] < 1 or th.shape[1] < 1:
        raise ValueError(f"theta must be a 2-D (H, W) array, got shape {th.shape}")
    if not np.all(np.isfinite(th)):
        raise ValueError("theta must be finite")
    return th


def _as_couplings(beta, shape) -> tuple[np.ndarray, np.ndarray]:
    """β of the vertical pairs (r,c)-(r+1,c), shaped (H−1, W), and horizontal ones, (H, W−1)."""
    h, w = shape
    if _is_scalar(beta):
        v, hz = np.full((h - 1, w), float(beta)), np.full((h, w - 1), float(beta))
    elif isinstance(beta, (tuple, list)) and len(beta) == 2:
        v, hz = np.asarray(beta[0], dtype=float), np.asarray(beta[1], dtype=float)
        if v.shape != (h - 1, w) or hz.shape != (h, w - 1):
            raise ValueError(
                f"beta_vertical must be shaped {(h - 1, w)} and beta_horizontal {(h, w - 1)}, "
                f"got {v.shape} and {hz.shape}"
            )
    else:
        raise ValueError("beta must be a number or a pair (beta_vertical (H-1, W), beta_horizontal (H, W-1))")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(hz))):
        raise ValueError(f"beta must be finite, got {beta!r}" if _is_scalar(beta) else "beta must be finite")
    return v, hz


def _threads() -> int:
    """Worker threads for the CPU sweeps: ``PGM_LAB_THREADS`` (default 1, robust on a busy machine)."""
    value = os.environ.get("PGM_LAB_THREADS", "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"PGM_LAB_THREADS must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- backends


class _Numpy:
    """Array operations on the CPU: numpy, single precision by default."""

    xp = np

    def __init__(self, dtype):
        self.dtype = self.dtype_np = dtype

    def array(self, a):
        return np.ascontiguousarray(a, dtype=self.dtype)

    def zeros(self, shape):
        return np.zeros(shape, dtype=self.dtype)

    def to_numpy(self, a):
        return np.asarray(a, dtype=float)

    def as_tensor(self, a):
        import torch

        return torch.from_numpy(a)

    def sync(self):
        pass


class _Torch(_Numpy):
    """The same operations with torch on a GPU (torch's functions share numpy's names)."""

    def __init__(self, dtype, device):
        import torch

        self.xp, self.dtype, self.device = torch, dtype, device
        self.dtype_np = np.dtype(str(dtype).removeprefix("torch."))

    def array(self, a):
        return self.xp.as_tensor(np.ascontiguousarray(a), dtype=self.dtype, device=self.device)

    def zeros(self, shape):
        return self.xp.zeros(shape, dtype=self.dtype, device=self.device)

    def to_numpy(self, a):
        return a.double().cpu().numpy()

    def as_tensor(self, a):
        return a

    def sync(self):
        if self.device.type == "cuda":
            self.xp.cuda.synchronize(self.device)


def _backend(device, dtype):
    """numpy for the CPU, torch elsewhere; ``dtype`` float32 (default) or float64, numpy or torch."""
    import torch

    if device is None:
        from .config import device as default_device

        device = default_device()
    dev = torch.device(device)
    name = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    if not isinstance(dtype, (str, torch.dtype, type(None))):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64 (numpy or torch), got {dtype!r}")
    if dev.type == "cpu":
        return _Numpy(np.dtype(name))
    return _Torch(getattr(torch, name), dev)


# ---------------------------------------------------------------- the message rule


def _message_fn(kind: str, kappa, xp, dtype):
    """The one message function: the new messages λ = 2μ that a block of pixels sends.

    In log-ratio units the sender j's cavity field is Λ = 2 b_j − λ_{i→j}, with
    2 b_j = 2θ_j + Σ_k λ_{k→j}, and κ = 2 β_ij is the coupling (0 where there is no edge).
    f is odd in κ, so it is applied to |κ| and multiplied by sign(κ) at the end.

    - max-product: f(Λ) = sign(κ) · clip(Λ, −|κ|, |κ|).
    - sum-product: with a = e^|κ| and v = e^{−Λ}, the slide's sum over x_j gives
      f(Λ) = sign(κ) · log((a + v) / (1 + a v)) (= 2 atanh(tanh β tanh H)). Every term is
      positive, so it is accurate to a few ulp. Λ is first clipped to ±T, with T large
      enough that f has saturated (e^{|κ|−T} below the precision) and small enough that
      a v stays finite.
    - sum-product with a coupling too strong for such a T in ``dtype``: the log-cosh form of
      the module docstring, f(Λ) = L(κ/2 + Λ/2) − L(κ/2 − Λ/2), L(z) = log(2 cosh z).

    ``kappa``: κ as an array of the backend ``xp`` (numpy or torch), shaped like the
    messages (4, 4, H', W'). Returns ``f(at, out, b2, incoming, v, den)``: for the block
    ``at`` (an index into κ's shape), writes into ``out`` the messages to the four
    neighbours from 2b (broadcastable) and ``incoming``; ``v``, ``den`` are scratch.
    """
    info = np.finfo(dtype)
    sign = xp.sign(kappa) if bool((kappa < 0).any()) else None
    kappa = xp.abs(kappa)
    top = float(kappa.max())
    clip_at = float(np.log(info.max)) - top - 2
    # the exponential form works while e^{top − T} < eps leaves room below overflow
    use_ratio = clip_at - top > -np.log(info.eps) + 2

    def signed(at, out):
        return out if sign is None else xp.multiply(out, sign[at], out=out)

    def clip(at, out, b2, incoming, v, den):
        xp.subtract(b2, incoming, out=out)  # Λ
        xp.clip(out, -kappa[at], kappa[at], out=out)
        return signed(at, out)

    a = xp.exp(kappa) if use_ratio else None

    def ratio(at, out, b2, incoming, v, den):
        xp.subtract(incoming, b2, out=out)  # −Λ
        xp.clip(out, -clip_at, clip_at, out=out)
        xp.exp(out, out=v)  # v = e^{−Λ}
        xp.multiply(v, a[at], out=den)
        den += 1  # 1 + a v
        v += a[at]  # a + v
        v /= den
        xp.log(v, out=out)
        return signed(at, out)

    def log2cosh(z):
        z = xp.abs(z)
        return z + xp.log1p(xp.exp(-2 * z))

    def logcosh(at, out, b2, incoming, v, den):
        lam, k = b2 - incoming, kappa[at]
        out[...] = log2cosh(k / 2 + lam / 2) - log2cosh(k / 2 - lam / 2)
        return signed(at, out)

    return clip if kind == "max" else ratio if use_ratio else logcosh


# ---------------------------------------------------------------- the grid as sub-lattices


def _padded(shape) -> tuple[int, int]:
    """Every sub-lattice is stored as ⌈H/2⌉ × ⌈W/2⌉; the cells beyond the image are padding."""
    return (shape[0] + 1) // 2, (shape[1] + 1) // 2


def _routes(shape):
    """For each sub-lattice s (index into ``_SUBLATTICES``), its deliveries (k, t, src, dst).

    Pixel (2i + p_r, 2j + p_c) of s = (p_r, p_c) has its neighbour (Δr, Δc) in sub-lattice
    t = ((p_r + Δr) mod 2, (p_c + Δc) mod 2) at index (i + o_r, j + o_c) with
    o = (p + Δ − p')/2, i.e. at a fixed offset o_r W' + o_c in the flattened (H', W') arrays.
    So a delivery is one contiguous slice ``src`` of the sender's flat array and the same
    slice shifted, ``dst``, of the receiver's. Pairs that wrap round a row end, or reach the
    padding, join pixels that are not neighbours: their coupling is 0, so the message is 0
    and the receiving slot (which has no neighbour in that direction) stays 0.
    """
    hp, wp = _padded(shape)
    n = hp * wp
    routes = []
    for s in _SUBLATTICES:
        out = []
        for k, step in enumerate(_STEPS):
            t = tuple((p + d) % 2 for p, d in zip(s, step))
            o_r, o_c = ((p + d - q) // 2 for p, d, q in zip(s, step, t))
            shift = o_r * wp + o_c
            lo, hi = max(0, -shift), n - max(0, shift)
            if hi > lo:
                out.append((k, _SUBLATTICES.index(t), slice(lo, hi), slice(lo + shift, hi + shift)))
        routes.append(out)
    return routes


def _edge_couplings(bv, bh, shape) -> np.ndarray:
    """κ = 2β_ij per sub-lattice s and direction k, shaped (4, 4, H', W'); 0 with no neighbour."""
    h, w = shape
    hp, wp = _padded(shape)
    up, down, left, right = (np.zeros((2 * hp, 2 * wp)) for _ in range(4))
    up[1:h, :w] = down[: h - 1, :w] = bv  # β of (r−1, c)-(r, c) at (r, c), of (r, c)-(r+1, c)
    left[:h, 1:w] = right[:h, : w - 1] = bh
    return 2 * np.array([[m[pr::2, pc::2] for m in (up, down, left, right)] for pr, pc in _SUBLATTICES])


def _split(theta, shape) -> np.ndarray:
    """An (H, W) array as the padded stack (4, H', W') of its sub-lattices (0 in the padding)."""
    hp, wp = _padded(shape)
    out = np.zeros((4, hp, wp))
    for n, (pr, pc) in enumerate(_SUBLATTICES):
        part = theta[pr::2, pc::2]
        out[n, : part.shape[0], : part.shape[1]] = part
    return out


@dataclass
class _Grid:
    """The state of one run, all arrays stacked over the four sub-lattices s.

    ``theta2`` 2θ (4, H', W'); ``incoming`` the messages λ each pixel receives, filed by the
    direction they come from (0 above, 1 below, 2 left, 3 right), (4, 4, H', W'); ``b2`` the
    summed field 2b (4, H', W'); ``scratch`` = (out, v, den), room for the messages being
    sent. See :func:`_routes` for where each message goes.
    """

    ops: _Numpy
    shape: tuple
    theta2: object
    incoming: object
    b2: object
    scratch: tuple  # out, v, den
    message: object  # f(at, out, b2, incoming, v, den), see _message_fn
    routes: list
    damping: float

    def field_sum(self, at):
        """2 b_j = 2θ_j + Σ_k λ_{k→j} on the sub-lattices and rows ``at`` = (sub-lattices, rows)."""
        b2 = self.b2[at]
        self.ops.xp.sum(self.incoming[at[0], :, at[1]], 1, out=b2)
        b2 += self.theta2[at]
        return b2

    def send(self, at):
        """New messages λ out of the pixels ``at`` (into ``out``), from the current ones."""
        at4 = (at[0], slice(None), at[1])
        out, v, den = (a[at4] for a in self.scratch)
        self.message(at4, out, self.field_sum(at)[:, None], self.incoming[at4], v, den)

    def deliver(self, s, need_change: bool):
        """Write what sub-lattice s sent into its receivers (damped); the largest |Δλ| or None."""
        out, changes = self.scratch[0], []
        for k, t, src, dst in self.routes[s]:
            new, old = out[s, k].reshape(-1)[src], self.incoming[t, k ^ 1].reshape(-1)[dst]
            new -= old  # Δλ
            if self.damping:
                new *= 1 - self.damping
            old += new
            if need_change:
                changes.append(self.ops.xp.abs(new, out=new).max())
        return max(changes) if changes else None

    def belief(self):
        """b_i = θ_i + Σ_j μ_{j→i} as an (H, W) array of the backend."""
        b2 = self.field_sum((slice(None), slice(None)))
        b = self.ops.zeros(self.shape)
        for n, (pr, pc) in enumerate(_SUBLATTICES):
            part = b[pr::2, pc::2]
            part[...] = b2[n, : part.shape[0], : part.shape[1]] / 2
        return b


def _build(theta, beta, kind, damping, ops) -> _Grid:
    """The stacked sub-lattice arrays of θ and κ on the backend ``ops``, messages all zero."""
    shape = theta.shape
    kappa = ops.array(_edge_couplings(*_as_couplings(beta, shape), shape))
    return _Grid(
        ops,
        shape,
        theta2=ops.array(2 * _split(theta, shape)),
        incoming=ops.zeros(kappa.shape),
        b2=ops.zeros(kappa.shape[:1] + kappa.shape[2:]),
        scratch=tuple(ops.zeros(kappa.shape) for _ in range(3)),
        message=_message_fn(kind, kappa, ops.xp, ops.dtype_np),
        routes=_routes(shape),
        damping=damping,
    )


# ---------------------------------------------------------------- the driver


def _tasks(schedule: str, rows: int, threads: int):
    """Per half-sweep, the (sub-lattices, rows) blocks to send; black s = 0, 1, white s = 2, 3."""
    groups = [slice(0, 2), slice(2, 4)] if schedule == "checkerboard" else [slice(0, 4)]
    cuts = np.linspace(0, rows, min(threads, rows) + 1).round().astype(int)
    bands = [slice(int(a), int(b)) for a, b in itertools.pairwise(cuts)]
    return [(g, [(g, band) for band in bands]) for g in groups]


def _sweep(grid: _Grid, tasks, need_change: bool, pool) -> float | None:
    """One sweep: each group of sub-lattices sends (from the current messages), then delivers."""
    run = pool.map if pool is not None else map
    changes = []
    for group, blocks in tasks:
        list(run(grid.send, blocks))
        for s in range(group.start, group.stop):
            c = grid.deliver(s, need_change)
            if c is not None:
                changes.append(c)
    if not need_change:
        return None
    return float(max(changes)) / 2 if changes else 0.0  # in μ = λ / 2


def _run(grid: _Grid, tasks, max_iters, tol, callback, pool):
    changes, history, converged, it = [], [], False, 0
    for it in range(1, max_iters + 1):
        need = tol > 0 or it == max_iters
        change = _sweep(grid, tasks, need, pool)
        if need:
            changes.append(change)
        if callback is not None:
            history.append(callback(it, grid.ops.as_tensor(grid.belief())))
        if tol > 0 and change < tol:
            converged = True
            break
    return it, converged, changes, history


def grid_bp(
    theta,
    beta,
    *,
    kind: str = "sum",
    schedule: str = "checkerboard",
    max_iters: int = 50,
    tol: float = 1e-5,
    damping: float = 0.0,
    device=None,
    dtype=None,
    callback=None,
) -> GridBPResult:
    """Loopy sum- or max-product BP for p(x) ∝ exp(Σ θ_i x_i + Σ β_ij x_i x_j) on a grid; see chapter 05.

    ``theta``: (H, W) field θ (numpy or torch). ``beta``: a number, or a pair of arrays
    (vertical (H−1, W), horizontal (H, W−1)) of couplings. ``kind``: ``"sum"`` or ``"max"``.
    ``schedule``: ``"checkerboard"`` or ``"parallel"``. Runs at most ``max_iters`` sweeps and
    stops when no message (μ, a half log-ratio) changes by more than ``tol`` (``tol=0``
    runs every sweep). ``damping`` d: μ ← (1−d) μ_new + d μ_old. ``device`` defaults to
    :func:`pgm_lab.device` (numpy on the CPU, torch elsewhere). ``dtype`` defaults to float32:
    beliefs then agree with float64 to a few 1e-6 (4e-6 on the 256×256 benchmark grid), so
    ``tol`` should stay ≥ 1e-5; pass float64 for exact comparisons.
    On the CPU the rows are shared among ``PGM_LAB_THREADS`` threads (default 1: robust on
    a busy machine, where the old torch default fell to a quarter of its speed).
    ``callback(iteration, belief_tensor)`` is called after each sweep with a torch tensor;
    its return values are collected in ``history``.
    """
    _check_options(kind, schedule, max_iters, tol, damping)
    th = _as_field(theta)
    ops = _backend(device, dtype)
    grid = _build(th, beta, kind, damping, ops)
    threads = 1 if isinstance(ops, _Torch) else _threads()
    tasks = _tasks(schedule, grid.b2.shape[1], threads)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        ops.sync()
        t0 = time.perf_counter()
        it, converged, changes, history = _run(grid, tasks, max_iters, tol, callback, pool)
        belief = ops.to_numpy(grid.belief())
        ops.sync()
        seconds = time.perf_counter() - t0
    finally:
        if pool is not None:
            pool.shutdown()
    p_plus = 1.0 / (1.0 + np.exp(-2.0 * np.clip(belief, -350, 350)))
    x = np.where(belief >= 0, 1, -1).astype(np.int8)
    converged = converged or max_iters == 0 or th.size == 1
    return GridBPResult(belief, p_plus, x, it, converged, changes, seconds, history)


def grid_bp_loop(theta, beta: float, *, kind: str = "sum", n_sweeps: int = 1) -> np.ndarray:
    """The textbook version of :func:`grid_bp`: one Python-level numpy update per message.

    Parallel (flooding) schedule, messages as 2-vectors m_{j→i}(x_i) in log space with the
    2×2 table log ψ_ij(x_i, x_j) = β x_i x_j, exactly the slide's rule
    m_ji(x_i) = Σ_{x_j} ψ_ij(x_i, x_j) ψ_j(x_j) Π_{k∈η(j)\\i} m_kj(x_j). Returns the beliefs
    b_i = ½ log(p(+1)/p(−1)) so it can be compared with :func:`grid_bp`. It is the slow
    baseline of the chapter-05 benchmark; see chapter 05.
    """
    if kind not in ("sum", "max"):
        raise ValueError(f"kind must be 'sum' or 'max', got {kind!r}")
    th = np.asarray(theta, dtype=float)
    if th.ndim != 2:
        raise ValueError(f"theta must be a 2-D (H, W) array, got shape {th.shape}")
    states = np.array([-1.0, 1.0])
    table = float(beta) * np.outer(states, states)  # [x_i, x_j]
    unary = th[..., None] * states  # (H, W, 2): log ψ_j(x_j)
    nbrs = _neighbours(*th.shape)
    msg = {(j, i): np.zeros(2) for j in nbrs for i in nbrs[j]}
    for _ in range(n_sweeps):
        msg = {
            (j, i): _loop_message(table, unary[j] + sum(msg[k, j] for k in nbrs[j] if k != i), kind)
            for (j, i) in msg
        }
    belief = np.empty(th.shape)
    for i in nbrs:
        b = unary[i] + sum(msg[j, i] for j in nbrs[i])
        belief[i] = 0.5 * (b[1] - b[0])
    return belief


def _neighbours(h: int, w: int) -> dict:
    """The 4-neighbours of each pixel (r, c) of an h × w grid."""
    return {
        (r, c): [(r + dr, c + dc) for dr, dc in _STEPS if 0 <= r + dr < h and 0 <= c + dc < w]
        for r in range(h)
        for c in range(w)
    }


def _loop_message(table, cavity, kind: str) -> np.ndarray:
    """log m_ji(x_i) = log Σ_{x_j} (or max) exp(log ψ_ij(x_i, x_j) + cavity(x_j)), centred."""
    t = table + cavity[None, :]
    if kind == "sum":
        top = t.max(axis=1, keepdims=True)
        m = (top + np.log(np.exp(t - top).sum(axis=1, keepdims=True)))[:, 0]
    else:
        m = t.max(axis=1)
    return m - m.mean()
