import numpy as np
import pytest
import torch

import pgm_lab as pl
from pgm_lab import shapes as sh


def test_dataset_shapes_ranges_labels():
    data = sh.shapes(200, size=16, seed=1)
    x, z = data.tensors
    assert x.shape == (200, 1, 16, 16) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert z.shape == (200, 3) and z.dtype == torch.long
    for j, options in enumerate(sh.FACTORS.values()):
        assert 0 <= int(z[:, j].min()) and int(z[:, j].max()) < len(options)
    assert torch.equal(sh.shapes(200, size=16, seed=1).tensors[0], x)  # seeded
    assert torch.equal(pl.data.shapes(200, size=16, seed=1).tensors[0], x)  # re-exported


def test_render_depends_on_every_factor():
    base = sh.render_shape("square", "top-left", 22.5)
    assert base.sum() > 10
    assert not np.allclose(base, sh.render_shape("triangle", "top-left", 22.5))
    assert not np.allclose(base, sh.render_shape("square", "bottom-right", 22.5))
    assert not np.allclose(base, sh.render_shape("square", "top-left", 45.0))
    # the object lies in its quadrant
    ys, xs = np.nonzero(sh.render_shape("bar", "bottom-right", 0, size=32) > 0.5)
    assert ys.mean() > 16 and xs.mean() > 16


def test_priors_are_respected():
    rng = np.random.default_rng(0)
    lat = sh.sample_latents(20_000, rng, {"object": [0.7, 0.1, 0.1, 0.1]})
    assert abs(np.mean(lat[:, 0] == 0) - 0.7) < 0.02
    assert abs(np.mean(lat[:, 1] == 2) - 0.25) < 0.02


def test_noiseless_images_are_renders():
    rng = np.random.default_rng(0)
    lat = np.array([[0, 1, 2], [3, 0, 1]])
    ims = sh.sample_images(lat, rng, noise=0, jitter=0)
    np.testing.assert_allclose(ims[0], sh.render_shape(0, 1, 2))
    np.testing.assert_allclose(ims[1], sh.render_shape(3, 0, 1))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown object 'circle'"):
        sh.render_shape("circle", 0, 0)
    with pytest.raises(ValueError, match="position index 4 out of range"):
        sh.render_shape("square", 4, 0)
    with pytest.raises(ValueError, match="size"):
        sh.render_shape("square", 0, 0, size=4)
    with pytest.raises(ValueError, match="prior of object"):
        sh.shapes(10, priors={"object": [0.5, 0.5]})
    with pytest.raises(ValueError, match="unknown factors"):
        sh.shapes(10, priors={"colour": [1.0]})
    with pytest.raises(ValueError, match="positive integer"):
        sh.shapes(0)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        sh.sample_images(np.zeros((2, 2)), np.random.default_rng())
