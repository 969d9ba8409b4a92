"""PixelCNN: masks, the autoregressive property by gradients, likelihood, sampling, labels."""

from __future__ import annotations

import math

import pytest
import torch

from pgm_lab.models import ConditionalPixelCNN, MaskedConv2d, PixelCNN
from pgm_lab.models.pixelcnn import causal_mask, dependency_map, sampling_cost


def test_masks_type_a_and_b():
    a = causal_mask(3, "A", 1, 1)[0, 0]
    b = causal_mask(3, "B", 1, 1)[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    # colour groups at the centre: R sees nothing (A) / R (B); G sees R (A) / R, G (B)
    m = causal_mask(1, "A", 3, 3, n_colors=3)[:, :, 0, 0]
    assert m.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    m = causal_mask(1, "B", 3, 3, n_colors=3)[:, :, 0, 0]
    assert m.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 4, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 4, 4, "A")
    with pytest.raises(ValueError, match="multiples"):
        MaskedConv2d(3, 4, 3, "B", n_colors=3)


def test_masked_conv_ignores_future_pixels():
    conv = MaskedConv2d(1, 2, 5, "A")
    x = torch.randn(1, 1, 6, 6)
    out = conv(x)
    x2 = x.clone()
    x2[0, 0, 3, 3:] = 100.0  # the current and later pixels of row 3
    x2[0, 0, 4:] = -100.0  # all later rows
    assert torch.allclose(conv(x2)[0, :, 3, 3], out[0, :, 3, 3])


def _future(c, h, w, ch, i, j):
    """Boolean (C, H, W): sub-pixels at or after (ch, i, j) in raster-then-channel order."""
    order = torch.arange(c * h * w).view(h, w, c).permute(2, 0, 1)  # index of each sub-pixel
    return order >= order[ch, i, j]


@pytest.mark.parametrize("shape", [(1, 6, 6), (3, 5, 5)])
@pytest.mark.parametrize("cls", [PixelCNN, ConditionalPixelCNN])
def test_autoregressive_property_by_gradients(shape, cls):
    torch.manual_seed(0)
    kwargs = {"n_classes": 4} if cls is ConditionalPixelCNN else {}
    model = cls(shape, channels=12, n_layers=2, **kwargs)
    c, h, w = shape
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                g = dependency_map(model, i, j, ch)
                assert g[_future(c, h, w, ch, i, j)].abs().max() == 0.0, (ch, i, j)
    # and it does depend on the previous pixel (the model is not trivially independent)
    assert dependency_map(model, 2, 2, 0)[0, 2, 1] > 0


def test_blind_spot_of_plain_stack():
    model = PixelCNN((1, 8, 8), channels=8, n_layers=3, first_kernel=3)
    g = dependency_map(model, 4, 3)
    # pixel (3, 7) is above-right and earlier in raster order, yet outside the receptive field
    assert g[0, 3, 7] == 0 and g[0, 3, 2] > 0 and g[0, 4, 2] > 0


def test_log_prob_is_normalised_on_a_tiny_image():
    torch.manual_seed(1)
    model = PixelCNN((1, 2, 2), channels=4, n_layers=1, first_kernel=3)
    bits = torch.tensor([[(k >> b) & 1 for b in range(4)] for k in range(16)], dtype=torch.float32)
    x = bits.view(16, 1, 2, 2)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(x), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-5)  # Σ_x p(x) = 1 over all 2^4 images


def test_loss_units_and_training_decreases(tmp_path, monkeypatch):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    from pgm_lab import data
    from pgm_lab.train import fit

    model = PixelCNN(channels=8, n_layers=1)
    x = data.digits(binarize=True).tensors[0][:128]
    _, logs = model.loss(x)
    assert logs["bits_per_dim"] == pytest.approx(logs["nll"] / (64 * math.log(2)))
    h = fit(model, x, steps=30, batch_size=64, lr=1e-2, progress=False)
    assert h["nll"][-1] < h["nll"][0] - 5


def test_training_beats_independent_pixels_on_held_out_digits(tmp_path, monkeypatch):
    """A briefly trained PixelCNN models dependencies between pixels: its held-out NLL is below
    that of the best model with independent pixels (an independent computation)."""
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    from pgm_lab import data, metrics
    from pgm_lab.train import fit

    torch.manual_seed(0)
    train_x = data.digits(binarize=True, split="train").tensors[0]
    test_x = data.digits(binarize=True, split="test").tensors[0]
    model = PixelCNN(channels=16, n_layers=2)
    plain = {"lr_schedule": "constant", "transform": False}  # the model alone, not chapter 06's recipe
    fit(model, train_x, steps=250, batch_size=64, lr=3e-3, progress=False, cache=False, **plain)
    with torch.no_grad():
        nll = float(-model.log_prob(test_x).mean())
    baseline = metrics.independent_bernoulli_nll(train_x, test_x)
    assert nll < baseline - 3, (nll, baseline)


def test_sample_shapes_ranges_and_labels():
    torch.manual_seed(0)
    model = PixelCNN((1, 4, 4), channels=8, n_layers=1)
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 4, 4) and set(s.unique().tolist()) <= {0.0, 1.0}
    s2, steps = model.sample(3, generator=torch.Generator().manual_seed(0), return_steps=True)
    assert torch.equal(s, s2) and len(steps) == 4 and torch.equal(steps[-1], s)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)
    cond = ConditionalPixelCNN((1, 4, 4), n_classes=3, channels=8, n_layers=1)
    assert cond.sample(2, labels=[0, 2]).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="conditional: pass labels"):
        cond.sample(2)
    with pytest.raises(ValueError, match="conditional: pass n_classes"):
        ConditionalPixelCNN((1, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.log_prob(torch.full((1, 1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="shaped"):
        model.log_prob(torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="multiple"):
        PixelCNN((3, 4, 4), channels=8)


def test_conditional_labels_change_the_likelihood():
    torch.manual_seed(0)
    cond = ConditionalPixelCNN((1, 4, 4), n_classes=3, channels=8, n_layers=1)
    with torch.no_grad():
        cond.label_bias.weight.normal_()
        x = torch.zeros(2, 1, 4, 4)
        lp = cond.log_prob(x, torch.tensor([0, 1]))
    assert lp[0] != lp[1]


def test_sampling_cost_times_one_pass_per_pixel(monkeypatch):
    """Sampling a 4x4 image runs the network once per pixel (16 passes), likelihood once."""
    model = PixelCNN((1, 4, 4), channels=8, n_layers=1)
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    cost = sampling_cost(model, n=4, repeats=2)
    assert len(calls) == 1 + 2 + 16  # warm-up, two timed passes, one pass per sub-pixel
    assert cost["ratio"] == pytest.approx(cost["sample_s"] / cost["forward_s"])


def test_sampling_follows_the_model():
    """Frequencies of 20,000 sampled 2x2 images match p(x) = exp(log_prob) (total variation)."""
    torch.manual_seed(3)
    model = PixelCNN((1, 2, 2), channels=4, n_layers=1, first_kernel=3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 1.0)  # a peaked, far-from-uniform distribution
        bits = torch.tensor([[(k >> b) & 1 for b in range(4)] for k in range(16)], dtype=torch.float32)
        p_model = model.log_prob(bits.view(16, 1, 2, 2)).exp()
        x = model.sample(20_000, generator=torch.Generator().manual_seed(0)).view(-1, 4)
    index = (x * torch.tensor([1.0, 2.0, 4.0, 8.0])).sum(1).long()
    freq = torch.bincount(index, minlength=16).double() / len(x)
    assert float(p_model.max()) > 0.2  # the check has something to find
    assert 0.5 * float((freq - p_model.double()).abs().sum()) < 0.02
