"""Plotting helpers shared by the chapters: image grids, training curves, 2-D scatters and animations."""

from __future__ import annotations

import re

import numpy as np

#: matplotlib's ``to_jshtml`` controls use Font Awesome from a CDN; the book must work offline
_ANIMATION_ICONS = {
    "fa fa-minus": "\u2212",
    "fa fa-fast-backward": "\u21e4",
    "fa fa-step-backward": "\u25c1",
    "fa fa-play fa-flip-horizontal": "\u25c0",
    "fa fa-pause": "\u2759\u2759",
    "fa fa-play": "\u25b6",
    "fa fa-step-forward": "\u25b7",
    "fa fa-fast-forward": "\u21e5",
    "fa fa-plus": "+",
}


def offline_jshtml(html: str) -> str:
    """Drop the Font Awesome CDN stylesheet of ``to_jshtml``; its icons become plain characters."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    return re.sub(
        r'<i class="(fa [^"]*)"></i>',
        lambda m: _ANIMATION_ICONS.get(m.group(1), m.group(1).split("-")[-1]),
        html,
    )


def show_animation(anim, *, default_mode: str = "once"):
    """Embed a matplotlib animation in the notebook/HTML book as JavaScript (``to_jshtml``).

    The figure itself is closed so only the animation is shown; nothing is loaded from
    another host.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML

    html = offline_jshtml(anim.to_jshtml(default_mode=default_mode))
    plt.close(anim._fig)
    return HTML(html)


def image_grid(images, *, nrow: int | None = None, ax=None, title: str | None = None, cmap: str = "gray"):
    """Show a batch of images ``(N, C, H, W)`` (torch or numpy, values in [0, 1]) as one grid."""
    import matplotlib.pyplot as plt

    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"images must be shaped (N, C, H, W) or (N, H, W), got {arr.shape}")
    n = arr.shape[0]
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = _grid_array(arr, nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(8, 0.6 * nrow + 1), min(8, 0.6 * ncol + 1)))
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def _smooth(values, window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    kernel = np.ones(window) / window
    head = np.cumsum(v[: window - 1]) / np.arange(1, window)  # running mean over the first points
    return np.concatenate([head, np.convolve(v, kernel, mode="valid")])


def plot_history(history, keys=None, *, smooth: int | None = None, ax=None, logy: bool = False, title=None):
    """Training curves from a :class:`pgm_lab.train.History` (or a dict ``key -> list``); chapters 06-10.

    ``keys`` selects the logged quantities (default: all). Each curve is drawn against the
    training step, smoothed by a running mean over ``smooth`` points (default: about 1/50
    of the run). Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    logs = history.logs if hasattr(history, "logs") else dict(history)
    steps = list(getattr(history, "steps", []) or [])
    if keys is None:
        keys = list(logs)
    elif isinstance(keys, str):
        keys = [keys]
    missing = [k for k in keys if k not in logs]
    if missing:
        raise ValueError(f"history has no {missing}; it logged {sorted(logs)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for k in keys:
        v = logs[k]
        x = steps if len(steps) == len(v) else np.arange(1, len(v) + 1)
        w = smooth if smooth is not None else max(1, len(v) // 50)
        ax.plot(x, _smooth(v, w), label=k)
    ax.set_xlabel("training step")
    if logy:
        ax.set_yscale("log")
    if len(keys) > 1:
        ax.legend()
    elif keys:
        ax.set_ylabel(keys[0])
    if title:
        ax.set_title(title)
    return ax


def animate_images(frames, *, titles=None, nrow: int | None = None, interval: int = 400, size: float = 4.0):
    """Animate a list of image batches (each ``(N, C, H, W)`` in [0, 1]) as a grid per frame.

    Typical use: samples at successive training steps (``history.snapshots``) or the steps of
    a sampler (pixel by pixel in chapter 06, denoising steps in chapter 08). ``titles`` gives
    one title per frame. Returns a ``matplotlib.animation.FuncAnimation``; show it with
    :func:`show_animation`.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    frames = [f.detach().cpu().numpy() if hasattr(f, "detach") else np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("animate_images needs at least one frame")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(titles)} titles")
    fig, ax = plt.subplots(figsize=(size, size))
    grids = [_grid_array(f, nrow) for f in frames]
    im = ax.imshow(grids[0], cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if titles is not None:
        ax.set_title(titles[0])

    def update(i):
        im.set_data(grids[i])
        if titles is not None:
            ax.set_title(titles[i])
        return (im,)

    return animation.FuncAnimation(fig, update, frames=len(grids), interval=interval, blit=False)


def _grid_array(images, nrow: int | None = None) -> np.ndarray:
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"images must be shaped (N, C, H, W) or (N, H, W), got {arr.shape}")
    n, c, h, w = arr.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.ones((c, ncol * (h + 1) + 1, nrow * (w + 1) + 1), dtype=float)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = arr[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def scatter2d(
    points, labels=None, *, ax=None, title=None, s: float = 3.0, alpha: float = 0.5, lim=None, **kwargs
):
    """Scatter 2-D points ``(N, 2)`` (toy data, samples, latent codes), coloured by ``labels``.

    Used for the 2-D toy sets of chapters 08-09 and the VAE latent space of chapter 07.
    ``lim`` sets equal x/y limits ``(-lim, lim)``. Returns the axes.
    """
    import matplotlib.pyplot as plt

    p = points.detach().cpu().numpy() if hasattr(points, "detach") else np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be shaped (N, 2), got {p.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if labels is not None:
        lab = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
        if len(lab) != len(p):
            raise ValueError(f"{len(p)} points but {len(lab)} labels")
        sc = ax.scatter(p[:, 0], p[:, 1], c=lab, s=s, alpha=alpha, cmap="tab10", **kwargs)
        if len(np.unique(lab)) <= 10:
            ax.legend(*sc.legend_elements(), loc="best", fontsize="small", markerscale=0.8)
    else:
        ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, **kwargs)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    return ax


def _decode_mean(model, z, labels=None):
    import torch

    with torch.no_grad():
        z = torch.as_tensor(z, dtype=torch.float32, device=model.device_of())
        return model.decoder_mean(model.decode(z, labels)).cpu().numpy()


def latent_traversal(model, *, dims=None, values=None, z0=None, labels=None, ax=None, title=None):
    """Grid of decoded images: row k moves latent coordinate ``dims[k]`` over ``values`` (chapter 07).

    The other coordinates stay at ``z0`` (default: the prior mean, zero). ``model`` is a VAE or
    an autoencoder (it needs ``latent_dim``, ``decode`` and ``decoder_mean``). Returns the axes.
    """
    d = int(model.latent_dim)
    dims = list(range(min(d, 8))) if dims is None else list(dims)
    if any(not 0 <= k < d for k in dims):
        raise ValueError(f"dims must lie in 0..{d - 1}, got {dims}")
    values = np.linspace(-2.5, 2.5, 9) if values is None else np.asarray(values, dtype=float)
    base = np.zeros(d) if z0 is None else np.asarray(z0, dtype=float).reshape(-1)
    if base.shape != (d,):
        raise ValueError(f"z0 must have {d} entries, got {base.shape}")
    z = np.repeat(base[None], len(dims) * len(values), axis=0)
    for r, k in enumerate(dims):
        z[r * len(values) : (r + 1) * len(values), k] = values
    lab = None if labels is None else np.full(len(z), int(labels))
    images = _decode_mean(model, z, lab)
    return image_grid(images, nrow=len(values), ax=ax, title=title)


def latent_widget(model, *, limit: float = 3.0, labels=None, n_sliders: int | None = None, scale: int = 24):
    """Lecture widget (chapter 07): one slider per latent coordinate and the decoded image.

    Returns an ``ipywidgets.VBox``; its ``sliders`` attribute lists the sliders and its
    ``image`` attribute is the ``ipywidgets.Image`` (PNG) that is redrawn on every change.
    """
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    d = int(model.latent_dim)
    n_sliders = min(d, 8) if n_sliders is None else int(n_sliders)
    if not 1 <= n_sliders <= d:
        raise ValueError(f"n_sliders must lie in 1..{d}, got {n_sliders}")
    sliders = [
        widgets.FloatSlider(
            value=0.0, min=-limit, max=limit, step=0.1, description=f"z[{k}]", continuous_update=True
        )
        for k in range(n_sliders)
    ]
    image = widgets.Image(format="png")

    def render(*_):
        z = np.zeros((1, d))
        z[0, :n_sliders] = [s.value for s in sliders]
        lab = None if labels is None else np.array([int(labels)])
        img = _decode_mean(model, z, lab)[0]
        img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        img = (
            np.kron(img, np.ones((scale, scale))) if img.ndim == 2 else img.repeat(scale, 0).repeat(scale, 1)
        )
        buf = io.BytesIO()
        plt.imsave(buf, np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, format="png")
        image.value = buf.getvalue()

    for s in sliders:
        s.observe(render, names="value")
    render()
    box = widgets.VBox([*sliders, image])
    box.sliders = sliders
    box.image = image
    return box
