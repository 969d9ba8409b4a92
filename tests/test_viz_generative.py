"""pgm_lab.viz helpers of Part II: training curves, image animations, 2-D scatters."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from pgm_lab import viz
from pgm_lab.train import History


def test_plot_history_draws_each_key():
    h = History(logs={"loss": list(np.linspace(5, 1, 100)), "kl": [1.0] * 100}, steps=list(range(1, 101)))
    ax = viz.plot_history(h, keys=["loss", "kl"], smooth=1)
    lines = ax.get_lines()
    assert len(lines) == 2 and np.allclose(lines[0].get_ydata(), h["loss"])
    assert np.allclose(lines[0].get_xdata(), h.steps)
    ax = viz.plot_history({"loss": [3.0, 1.0, 2.0, 0.0]}, smooth=2)
    assert np.allclose(ax.get_lines()[0].get_ydata(), [3.0, 2.0, 1.5, 1.0])
    with pytest.raises(ValueError, match="no"):
        viz.plot_history(h, keys="nll")
    plt.close("all")


def test_animate_images_frames():
    frames = [torch.full((4, 1, 3, 3), v) for v in (0.0, 0.5, 0.75)]
    anim = viz.animate_images(frames, titles=["a", "b", "c"])
    anim._func(2)
    im = anim._fig.axes[0].get_images()[0]
    arr = np.asarray(im.get_array())
    assert (
        arr.shape == (9, 9)
        and arr[1, 1] == 0.75
        and arr[0, 0] == 1.0
        and anim._fig.axes[0].get_title() == "c"
    )
    html = viz.show_animation(anim)
    assert "<script" in html.data
    with pytest.raises(ValueError, match="titles"):
        viz.animate_images(frames, titles=["a"])
    with pytest.raises(ValueError, match="at least one"):
        viz.animate_images([])
    plt.close("all")


def test_scatter2d_and_image_grid():
    pts = torch.randn(50, 2)
    ax = viz.scatter2d(pts, labels=torch.arange(50) % 3, lim=3)
    assert ax.get_xlim() == (-3, 3) and len(ax.collections) == 1
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.scatter2d(torch.randn(5, 3))
    with pytest.raises(ValueError, match="labels"):
        viz.scatter2d(pts, labels=[0, 1])
    ax = viz.image_grid(torch.ones(5, 1, 2, 2), nrow=5)
    assert np.asarray(ax.get_images()[0].get_array()).shape == (4, 16)
    plt.close("all")


def test_latent_traversal_and_widget():
    from pgm_lab.models import VAE

    torch.manual_seed(0)
    model = VAE(latent_dim=3, hidden=16)
    ax = viz.latent_traversal(model, dims=[0, 2], values=[-2, 0, 2])
    grid = np.asarray(ax.get_images()[0].get_array())
    assert grid.shape == (2 * 9 + 1, 3 * 9 + 1)
    # the middle column (z = 0) is the same image in both rows
    assert np.allclose(grid[1:9, 10:18], grid[10:18, 10:18])
    with pytest.raises(ValueError, match="dims"):
        viz.latent_traversal(model, dims=[3])
    w = viz.latent_widget(model)
    assert len(w.sliders) == 3
    before = w.image.value
    w.sliders[1].value = 2.5
    assert w.image.value != before and w.image.value[:4] == b"\x89PNG"
    w.sliders[1].value = 0.0
    assert w.image.value == before


def test_show_animation_loads_nothing_from_another_host():
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots()
    (line,) = ax.plot([0, 1], [0, 1])
    anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
    html = viz.show_animation(anim).data
    assert "font-awesome" not in html and "https://" not in html and "http://" not in html
    assert "\u25b6" in html  # the play button became a character
