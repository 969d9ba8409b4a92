"""PixelRNN (Row LSTM, chapter 06): causality by gradients, shapes, sampling, bad input, training."""

from __future__ import annotations

import math

import pytest
import torch

from pgm_lab.models import PixelRNN, RowLSTM
from pgm_lab.models.pixelrnn import row_mask


def _randomise(model, seed=0, scale=0.5):
    """Random weights (biases included), so no gradient is zero by accident of the initialisation."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    return model


def _logit_gradients(model, x, ch, i, j):
    """|∂ logit(ch, i, j) / ∂ x| summed over the batch, by autograd, shaped (C, H, W)."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, ch, i, j].sum(), x)
    return g.abs().sum(0)


@pytest.mark.parametrize("shape", [(1, 6, 6), (3, 4, 5)])
def test_causality_by_gradients(shape):
    c, h, w = shape
    model = _randomise(PixelRNN(shape, channels=12, n_layers=2, first_kernel=3))
    x = torch.rand(8, *shape, generator=torch.Generator().manual_seed(1))
    # raster order over pixels, channels inside a pixel: k = (i·W + j)·C + ch
    order = torch.arange(c * h * w).view(h, w, c).permute(2, 0, 1)
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                g = _logit_gradients(model, x, ch, i, j)
                later = order >= order[ch, i, j]
                assert g[later].max() == 0.0, (ch, i, j)  # exactly zero, not just small
                if order[ch, i, j] > 0:
                    assert g[~later].max() > 0, (ch, i, j)  # and it does look at the past
    # the triangle: pixel (3, 1) sees the row above on both sides (no PixelCNN-style blind spot there)
    g = _logit_gradients(model, x, 0, 3, 1)[0]
    assert g[2, 0] > 0 and g[2, 1] > 0 and g[2, 2] > 0 and g[1, 3] > 0


def _reach_by_hand(h, w, r, c, n_layers, first_kernel, kernel_size):
    """Input pixels that reach the logit at (r, c), following the architecture's wiring with sets.

    Row LSTM: h(i, j) reads the layer input at (i, j - k//2 … j) and h, c of row i-1 at
    columns j-1 … j+1; a residual layer adds its input at (i, j); the type-A first layer reads
    rows above within first_kernel//2 and the pixels left of the centre; the 1×1 head reads (i, j).
    """

    def lstm(i, j):  # positions of the layer input that h(i, j) depends on
        out = set()
        cols = {j}
        for row in range(i, -1, -1):  # row i, then the rows above through the recurrence
            out |= {(row, jj - d) for jj in cols for d in range(kernel_size // 2 + 1)}
            cols = {jj + d for jj in cols for d in (-1, 0, 1)}
        return {(a, b) for a, b in out if 0 <= b < w}

    positions = {(r, c)}
    for _ in range(n_layers):  # from the output back to the first features
        positions = positions | set().union(*(lstm(i, j) for i, j in positions))
    m = first_kernel // 2
    seen = torch.zeros(h, w, dtype=torch.bool)
    for i, j in positions:
        for a in range(-m, 1):
            for b in range(-m, m + 1):
                if (a < 0 or b < 0) and 0 <= i + a < h and 0 <= j + b < w:
                    seen[i + a, j + b] = True
    return seen


@pytest.mark.parametrize(
    ("n_layers", "first_kernel", "kernel_size", "r", "c"),
    [(1, 3, 3, 6, 5), (1, 3, 3, 7, 11), (2, 3, 3, 5, 2), (1, 5, 5, 6, 6), (2, 5, 3, 7, 9)],
)
def test_receptive_field_matches_the_wiring(n_layers, first_kernel, kernel_size, r, c):
    """Gradients see exactly the triangle above plus the left part of the row that the wiring allows."""
    h, w = 8, 12
    model = PixelRNN(
        (1, h, w), channels=4, n_layers=n_layers, first_kernel=first_kernel, kernel_size=kernel_size
    )
    _randomise(model, seed=n_layers + r)
    x = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(2))
    seen = _logit_gradients(model, x, 0, r, c)[0] > 0
    expected = _reach_by_hand(h, w, r, c, n_layers, first_kernel, kernel_size)
    assert seen.tolist() == expected.tolist()
    # a triangle, not a PixelCNN blind spot: the diagonal up-right of the pixel is seen ...
    assert all(seen[r - d, c + d] for d in range(1, min(r, w - 1 - c) + 1))
    # ... but with one layer and 3-wide kernels the far left of the current row is not
    if n_layers == 1 and first_kernel == 3 and kernel_size == 3 and c >= 3:
        assert not seen[r, : c - 2].any()


def test_masks_and_row_step_match_the_full_pass():
    m = row_mask(5, 2, 4)
    assert m.shape == (4, 2, 1, 5) and m[0, 0, 0].tolist() == [1, 1, 1, 0, 0]
    torch.manual_seed(0)
    for shape in [(1, 6, 7), (3, 4, 4)]:
        model = _randomise(PixelRNN(shape, channels=6, n_layers=2, first_kernel=5), seed=3)
        x = (torch.rand(4, *shape) < 0.5).float()
        with torch.no_grad():
            full = model(x)
            states = [layer.zero_state(x[:, :1]) for layer in model.layers]
            rows = []
            for r in range(shape[1]):
                logits, states = model.row_logits(x, r, states)
                rows.append(logits)
        assert torch.allclose(torch.stack(rows, 2), full, atol=1e-5)


def test_shapes_and_normalisation():
    model = PixelRNN((1, 5, 7), channels=8)
    x = (torch.rand(3, 1, 5, 7) < 0.5).float()
    assert model(x).shape == (3, 1, 5, 7)
    assert model.log_prob(x).shape == (3,)
    assert RowLSTM(8, 4)(torch.randn(2, 8, 5, 7)).shape == (2, 4, 5, 7)
    nll, logs = model.loss(x)
    assert nll.dim() == 0 and logs["bits_per_dim"] == pytest.approx(logs["nll"] / (35 * math.log(2)))
    # Σ_x p(x) = 1 over all 2^6 binary 2×3 images, on random weights
    tiny = _randomise(PixelRNN((1, 2, 3), channels=4, first_kernel=3), seed=4)
    bits = torch.tensor([[(k >> b) & 1 for b in range(6)] for k in range(64)], dtype=torch.float32)
    with torch.no_grad():
        total = torch.logsumexp(tiny.log_prob(bits.view(64, 1, 2, 3)), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-5)


def test_sample_shapes_range_and_labels():
    model = _randomise(PixelRNN((1, 4, 5), channels=6), seed=5, scale=0.3)
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 4, 5) and set(s.unique().tolist()) <= {0.0, 1.0}
    s2, steps = model.sample(3, generator=torch.Generator().manual_seed(0), return_steps=True)
    assert torch.equal(s, s2) and len(steps) == 4 and torch.equal(steps[-1], s)
    assert model.sample(2, generator=torch.Generator().manual_seed(1)).shape == (2, 1, 4, 5)
    colour = PixelRNN((3, 3, 3), channels=6)
    assert colour.sample(2).shape == (2, 3, 3, 3)
    cond = PixelRNN((1, 4, 4), n_classes=3, channels=6)
    assert cond.sample(2, labels=[0, 2]).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="conditional: pass labels"):
        cond.sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)


def test_sampling_follows_the_model():
    """A model that always predicts logit +20 at every pixel samples all ones (and -20: zeros)."""
    model = PixelRNN((1, 3, 3), channels=4)
    for value, pixel in ((20.0, 1.0), (-20.0, 0.0)):
        with torch.no_grad():
            model.output[-1].weight.zero_()
            model.output[-1].bias.fill_(value)
        assert torch.all(model.sample(4) == pixel)


def test_bad_input():
    model = PixelRNN((1, 4, 4), channels=4)
    with pytest.raises(ValueError, match="shaped"):
        model(torch.zeros(2, 1, 5, 4))
    with pytest.raises(ValueError, match="shaped"):
        model(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="shaped"):
        model.log_prob(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.log_prob(torch.full((1, 1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="multiple"):
        PixelRNN((3, 4, 4), channels=8)
    with pytest.raises(ValueError, match="n_layers"):
        PixelRNN(n_layers=0)
    with pytest.raises(ValueError, match="odd"):
        PixelRNN(kernel_size=2)
    with pytest.raises(ValueError, match="odd"):
        PixelRNN(first_kernel=4)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        PixelRNN((64,))


def test_training_lowers_the_nll(tmp_path, monkeypatch):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    from pgm_lab import data
    from pgm_lab.metrics import independent_bernoulli_nll
    from pgm_lab.train import fit

    x = data.digits(binarize=True).tensors[0][:96]
    torch.manual_seed(0)
    model = PixelRNN(channels=16, n_layers=1)
    with torch.no_grad():
        before = float(-model.log_prob(x).mean())
    assert before == pytest.approx(64 * math.log(2), rel=0.1)  # an untrained model: about 1 bit/pixel
    plain = {"lr_schedule": "constant", "transform": False}  # the model alone, not chapter 06's recipe
    h = fit(model, x, steps=80, batch_size=96, lr=1e-2, progress=False, **plain)
    with torch.no_grad():
        after = float(-model.log_prob(x).mean())
    assert after < before - 15
    # and better than the best model without dependencies between pixels, on the same images
    assert after < independent_bernoulli_nll(x, x, alpha=1e-3) - 2
    assert h["nll"][-1] < h["nll"][0]
