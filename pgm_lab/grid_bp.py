"""Loopy belief propagation on a binary pairwise MRF over an H×W image grid, vectorised in torch.

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
max-product decision is x_i = sign(b_i). Four (H, W) tensors hold the messages arriving
from above, below, the left and the right; one sweep updates all of them, either all at
once (``"parallel"``, flooding) or black squares then white squares
(``"checkerboard"``, each half using the newest messages), which usually converges in fewer
sweeps. Runs on the GPU when ``device`` is CUDA. References: Yedidia, Freeman and Weiss
(2003) for loopy BP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GridBPResult", "grid_bp"]

_SCHEDULES = ("checkerboard", "parallel")


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


def _is_scalar(beta) -> bool:
    return not isinstance(beta, (tuple, list)) and np.ndim(beta) == 0


def _couplings(beta, shape, torch_mod, dev, dtype):
    """β for vertical pairs (r,c)-(r+1,c) and horizontal pairs (r,c)-(r,c+1), padded to (H, W)."""
    h, w = shape
    if _is_scalar(beta):
        b = float(beta)
        if not np.isfinite(b):
            raise ValueError(f"beta must be finite, got {beta!r}")
        bv = torch_mod.full((h, w), b, dtype=dtype, device=dev)
        bh = torch_mod.full((h, w), b, dtype=dtype, device=dev)
    else:
        if not (isinstance(beta, (tuple, list)) and len(beta) == 2):
            raise ValueError(
                "beta must be a number or a pair (beta_vertical (H-1, W), beta_horizontal (H, W-1))"
            )
        v = np.asarray(beta[0], dtype=float)
        hz = np.asarray(beta[1], dtype=float)
        if v.shape != (h - 1, w) or hz.shape != (h, w - 1):
            raise ValueError(
                f"beta_vertical must be shaped {(h - 1, w)} and beta_horizontal {(h, w - 1)}, got {v.shape} and {hz.shape}"
            )
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(hz))):
            raise ValueError("beta must be finite")
        bv = torch_mod.zeros((h, w), dtype=dtype, device=dev)
        bh = torch_mod.zeros((h, w), dtype=dtype, device=dev)
        bv[:-1, :] = torch_mod.as_tensor(v, dtype=dtype, device=dev)
        bh[:, :-1] = torch_mod.as_tensor(hz, dtype=dtype, device=dev)
    # zero coupling beyond the border: no neighbour there
    bv[-1, :] = 0
    bh[:, -1] = 0
    return bv, bh


def grid_bp(
    theta,
    beta,
    *,
    kind: str = "sum",
    schedule: str = "checkerboard",
    max_iters: int = 50,
    tol: float = 1e-6,
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
    :func:`pgm_lab.device`; ``dtype`` to float64 on the CPU and float32 on a GPU.
    ``callback(iteration, belief_tensor)`` is called after each sweep; its return values
    are collected in ``history``.
    """
    import torch

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
    if device is None:
        from .config import device as default_device

        device = default_device()
    dev = torch.device(device)
    if dtype is None:
        dtype = torch.float32 if dev.type == "cuda" else torch.float64
    th = torch.as_tensor(np.asarray(theta) if not torch.is_tensor(theta) else theta, dtype=dtype, device=dev)
    if th.ndim != 2 or th.shape[0] < 1 or th.shape[1] < 1:
        raise ValueError(f"theta must be a 2-D (H, W) array, got shape {tuple(th.shape)}")
    if not torch.isfinite(th).all():
        raise ValueError("theta must be finite")
    H, W = th.shape
    bv, bh = _couplings(beta, (H, W), torch, dev, dtype)

    # f(β, H): the message as a function of the coupling and the sender's cavity field
    if kind == "sum":
        big_beta = float(max(bv.abs().max(), bh.abs().max()))
        if big_beta < (7.0 if dtype == torch.float32 else 16.0):
            # atanh(tanh β tanh H), with atanh z = ½ log((1+z)/(1−z)) (faster than torch.atanh
            # on the CPU); the clamp only bites when |tanh β| is within float precision of 1
            lim = 1.0 - 8 * torch.finfo(dtype).eps
            tv, tz = torch.tanh(bv[:-1, :]), torch.tanh(bh[:, :-1])

            def _atanh_(z):  # in place on a fresh tensor
                z.clamp_(-lim, lim)
                num = z + 1
                return num.div_(z.neg_().add_(1)).log_().mul_(0.5)

            def fv(c):
                return _atanh_(c.tanh_().mul_(tv))

            def fh(c):
                return _atanh_(c.tanh_().mul_(tz))
        else:

            def logcosh(z):  # log cosh z + log 2, stable for any z
                a = z.abs()
                return a + torch.log1p(torch.exp(-2.0 * a))

            def fv(c):
                return 0.5 * (logcosh(bv[:-1, :] + c) - logcosh(bv[:-1, :] - c))

            def fh(c):
                return 0.5 * (logcosh(bh[:, :-1] + c) - logcosh(bh[:, :-1] - c))
    else:
        # ½(|β+H| − |β−H|) = sign(β) · clamp(H, −|β|, |β|)
        if _is_scalar(beta) and float(beta) >= 0:
            bb = float(beta)

            def fv(c):
                return torch.clamp(c, -bb, bb)

            fh = fv
        else:
            av, ah = bv[:-1, :].abs(), bh[:, :-1].abs()
            sv, sh = torch.sign(bv[:-1, :]), torch.sign(bh[:, :-1])

            def fv(c):
                return torch.clamp(c, -av, av) * sv

            def fh(c):
                return torch.clamp(c, -ah, ah) * sh

    zeros = lambda: torch.zeros((H, W), dtype=dtype, device=dev)
    D, U, R, L = zeros(), zeros(), zeros(), zeros()  # messages from above, below, left, right
    spare = [zeros(), zeros(), zeros(), zeros()]  # ping-pong buffers; their borders stay zero
    if schedule == "checkerboard":
        rr = torch.arange(H, device=dev).view(-1, 1)
        cc = torch.arange(W, device=dev).view(1, -1)
        black = (rr + cc) % 2 == 0
        colours = []
        for sender in (black, ~black):
            sender = sender.expand(H, W)
            # a message into (r,c) from above is sent by (r-1,c), from below by (r+1,c), ...
            masks = [torch.zeros((H, W), dtype=dtype, device=dev) for _ in range(4)]
            masks[0][1:, :] = sender[:-1, :]
            masks[1][:-1, :] = sender[1:, :]
            masks[2][:, 1:] = sender[:, :-1]
            masks[3][:, :-1] = sender[:, 1:]
            colours.append(masks)
    else:
        colours = [None]

    def update(msgs, out, masks):
        """New messages (into ``out``) sent by the pixels of one colour (all when masks is None)."""
        D, U, R, L = msgs
        nD, nU, nR, nL = out
        b = th + D + U + R + L
        nD[1:, :] = fv(
            b[:-1, :] - U[:-1, :]
        )  # (r,c) -> (r+1,c): cavity of (r,c) without the message from below
        nU[:-1, :] = fv(b[1:, :] - D[1:, :])  # (r+1,c) -> (r,c)
        nR[:, 1:] = fh(b[:, :-1] - L[:, :-1])  # (r,c) -> (r,c+1)
        nL[:, :-1] = fh(b[:, 1:] - R[:, 1:])  # (r,c+1) -> (r,c)
        if damping:
            for o, n in zip(msgs, out):
                n.mul_(1 - damping).add_(o, alpha=damping)
        if masks is not None:  # keep the old message where the sender has the other colour
            for o, n, mk in zip(msgs, out, masks):
                n.sub_(o).mul_(mk).add_(o)
        return out, list(msgs)

    changes: list[float] = []
    history: list = []
    converged = False
    it = 0
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        for it in range(1, max_iters + 1):
            need = tol > 0 or it == max_iters
            msgs, parts = [D, U, R, L], []
            for masks in colours:
                new, spare = update(msgs, spare, masks)
                if need:  # compare before the next half overwrites ``msgs``
                    parts.extend((n - o).abs().max() for n, o in zip(new, msgs))
                msgs = new
            D, U, R, L = msgs
            change = torch.stack(parts).max() if need else None
            if need:
                c = float(change)
                changes.append(c)
                if callback is not None:
                    history.append(callback(it, th + D + U + R + L))
                if tol > 0 and c < tol:
                    converged = True
                    break
            elif callback is not None:
                history.append(callback(it, th + D + U + R + L))
        b = th + D + U + R + L
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    belief = b.double().cpu().numpy()
    p_plus = 1.0 / (1.0 + np.exp(-2.0 * np.clip(belief, -350, 350)))
    x = np.where(belief >= 0, 1, -1).astype(np.int8)
    if max_iters == 0 or H * W == 1:
        converged = True
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
    H, W = th.shape
    states = np.array([-1.0, 1.0])
    table = float(beta) * np.outer(states, states)  # [x_i, x_j]
    unary = th[..., None] * states  # (H, W, 2): log ψ_j(x_j)
    nbrs = {}
    for r in range(H):
        for c in range(W):
            nbrs[(r, c)] = [
                (r + dr, c + dc)
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= r + dr < H and 0 <= c + dc < W
            ]
    msg = {(j, i): np.zeros(2) for j in nbrs for i in nbrs[j]}
    for _ in range(n_sweeps):
        new = {}
        for (j, i), _old in msg.items():
            cavity = unary[j].copy()
            for k in nbrs[j]:
                if k != i:
                    cavity += msg[(k, j)]
            t = table + cavity[None, :]
            if kind == "sum":
                top = t.max(axis=1, keepdims=True)
                m = (top + np.log(np.exp(t - top).sum(axis=1, keepdims=True)))[:, 0]
            else:
                m = t.max(axis=1)
            new[(j, i)] = m - m.mean()
        msg = new
    belief = np.empty((H, W))
    for i in nbrs:
        b = unary[i].copy()
        for j in nbrs[i]:
            b += msg[(j, i)]
        belief[i] = 0.5 * (b[1] - b[0])
    return belief
