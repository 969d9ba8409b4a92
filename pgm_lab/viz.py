"""Plotting helpers shared by the chapters: image grids and embedded animations."""

from __future__ import annotations

import numpy as np


def show_animation(anim, *, default_mode: str = "once"):
    """Embed a matplotlib animation in the notebook/HTML book as JavaScript (``to_jshtml``).

    The figure itself is closed so only the animation is shown.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML

    html = anim.to_jshtml(default_mode=default_mode)
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
    n, c, h, w = arr.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.ones((c, ncol * (h + 1) + 1, nrow * (w + 1) + 1), dtype=float)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = arr[i]
    if ax is None:
        _, ax = plt.subplots(figsize=(min(8, 0.6 * nrow + 1), min(8, 0.6 * ncol + 1)))
    ax.imshow(grid[0] if c == 1 else grid.transpose(1, 2, 0), cmap=cmap, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
