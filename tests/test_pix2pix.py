"""Pix2Pix, the PatchGAN discriminator and the paired data of chapter 10."""

from __future__ import annotations

import pytest
import torch

from pgm_lab import paired, train
from pgm_lab.models import PatchDiscriminator, Pix2Pix
from pgm_lab.models.pix2pix import DEFAULT_PATCH_LAYERS, patch_grid, patch_window, receptive_field

torch.set_num_threads(1)

LAYER_LISTS = [
    DEFAULT_PATCH_LAYERS,
    ((4, 2, 1), (4, 2, 1), (3, 1, 1)),
    ((3, 1, 0), (4, 2, 0), (3, 1, 0)),
    ((5, 1, 2),),
]


# -- receptive field arithmetic ---------------------------------------------------------------------
def test_receptive_field_known_values():
    # pix2pix's 70×70 PatchGAN: C64-C128-C256 (k4 s2), C512 (k4 s1), output (k4 s1)
    assert receptive_field([(4, 2)] * 3 + [(4, 1)] * 2) == 70
    assert receptive_field([(3, 1)]) == 3
    assert receptive_field([(3, 1)] * 4) == 9
    assert receptive_field(DEFAULT_PATCH_LAYERS) == 10
    d = PatchDiscriminator(2, 8, ((4, 2, 1), (3, 1, 1)))
    assert receptive_field(d) == receptive_field(((4, 2), (3, 1))) == d.receptive_field == 8


@pytest.mark.parametrize("layers", LAYER_LISTS)
@pytest.mark.parametrize("size", [(16, 16), (12, 20)])
def test_patch_grid_matches_the_network(layers, size):
    d = PatchDiscriminator(2, 4, layers)
    x = torch.rand(3, 1, *size)
    out = d(x, torch.rand(3, 1, *size))
    assert tuple(out.shape) == (3, 1, *patch_grid(layers, *size))
    assert d.grid(*size) == patch_grid(layers, *size)


@pytest.mark.parametrize("layers", LAYER_LISTS[:3])
def test_each_output_cell_sees_exactly_its_patch(layers):
    """The gradient footprint of cell (i, j) is the window patch_window(i, j) clipped to the image."""
    torch.manual_seed(0)
    d = PatchDiscriminator(2, 4, layers).double()
    h = w = 16
    x = torch.rand(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    out = d(x, y)
    n, m = out.shape[-2:]
    k = receptive_field(layers)
    for i, j in [(0, 0), (n // 2, m // 2), (n - 1, m - 1)]:
        gx, gy = torch.autograd.grad(out[0, 0, i, j], (x, y), retain_graph=True)
        footprint = (gx[0, 0] != 0) | (gy[0, 0] != 0)
        rows, cols = patch_window(layers, i, j)
        expected = torch.zeros(h, w, dtype=torch.bool)
        expected[max(rows.start, 0) : rows.stop, max(cols.start, 0) : cols.stop] = True
        assert torch.equal(footprint, expected), (layers, i, j)
        assert rows.stop - rows.start == k


def test_score_is_the_slides_average_over_patches():
    """Without padding, d(x, y) = 1/(NM) Σ_ij d^patch(x[i:i+k, j:j+k], y[i:i+k, j:j+k]) exactly."""
    torch.manual_seed(1)
    layers = ((3, 1, 0), (4, 2, 0), (3, 1, 0))
    d = PatchDiscriminator(2, 6, layers).double()
    k, stride = receptive_field(layers), 2
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    n, m = patch_grid(layers, 16)
    per_patch = torch.stack(
        [
            torch.sigmoid(
                d(
                    x[..., i * stride : i * stride + k, j * stride : j * stride + k],
                    y[..., i * stride : i * stride + k, j * stride : j * stride + k],
                )
            ).reshape(2)
            for i in range(n)
            for j in range(m)
        ],
        dim=1,
    )
    torch.testing.assert_close(d.score(x, y), per_patch.mean(dim=1))
    torch.testing.assert_close(d.score(x, y), torch.sigmoid(d(x, y)).mean(dim=(1, 2, 3)))


def test_receptive_field_bad_layers():
    with pytest.raises(ValueError, match="layer 0"):
        receptive_field([(0, 1)])
    with pytest.raises(ValueError, match="layer 1"):
        receptive_field([(3, 1), "x"])
    with pytest.raises(ValueError, match="empty"):
        receptive_field([])
    with pytest.raises(ValueError, match="too small"):
        patch_grid([(4, 2, 0)] * 3, 8)


# -- the model --------------------------------------------------------------------------------------
def small(**kw):
    return Pix2Pix((1, 16, 16), base_channels=4, disc_channels=4, **kw)


def test_translate_shapes_and_range():
    torch.manual_seed(0)
    model = small()
    x = torch.rand(5, 1, 16, 16)
    out = model.translate(x)
    assert out.shape == (5, 1, 16, 16)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    torch.testing.assert_close(model.sample(5, x), out)
    rgb_to_grey = Pix2Pix((1, 16, 16), in_channels=3, base_channels=4, disc_channels=4)
    assert rgb_to_grey.translate(torch.rand(2, 3, 16, 16)).shape == (2, 1, 16, 16)
    assert rgb_to_grey.discriminator(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)).shape == (2, 1, 8, 8)


def test_bad_construction_and_inputs():
    with pytest.raises(ValueError, match="n_classes"):
        Pix2Pix((1, 16, 16), 10)
    with pytest.raises(ValueError, match="mode"):
        Pix2Pix(mode="vae")
    with pytest.raises(ValueError, match="both 0"):
        Pix2Pix(mode="gan", adv_weight=0.0)
    with pytest.raises(ValueError, match="divisible"):
        Pix2Pix((1, 10, 10))
    model = small()
    with pytest.raises(ValueError, match="translate expects"):
        model.translate(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.translate(torch.full((2, 1, 16, 16), 2.0))
    with pytest.raises(ValueError, match="not on a class"):
        model.sample(4, labels=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="expected 4 input images"):
        model.sample(4, torch.rand(3, 1, 16, 16))


def test_paired_shapes_must_agree():
    with pytest.raises(ValueError, match="same number and size"):
        paired.PairedDataset(torch.rand(4, 1, 16, 16), torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match="same number and size"):
        paired.PairedDataset(torch.rand(4, 1, 16, 16), torch.rand(5, 1, 16, 16))
    with pytest.raises(ValueError, match="targets must lie"):
        paired.PairedDataset(torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16) + 1)
    model = small()
    with pytest.raises(ValueError, match="same number and size"):
        model.split(torch.rand(4, 1, 16, 16), torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match="expected inputs"):
        model.split(torch.rand(4, 2, 16, 16), torch.rand(4, 1, 16, 16))
    # unpaired images given to fit: the data have no targets
    with pytest.raises(ValueError, match="needs targets"):
        train.fit(model, torch.rand(8, 1, 16, 16), steps=1, cache=False, progress=False)
    with pytest.raises(ValueError, match="Pix2Pix expects pairs"):
        train.fit(model, torch.rand(8, 3, 16, 16), steps=1, cache=False, progress=False)


def test_training_reduces_the_l1_error_and_respects_the_mode():
    pairs = paired.outline_shapes(64, seed=3)
    before = {}
    for mode in ("l1", "gan", "both"):
        torch.manual_seed(0)
        model = small(mode=mode)
        d_before = [p.detach().clone() for p in model.discriminator.parameters()]
        before[mode] = float(paired.pixel_error(model.translate(pairs.inputs), pairs.targets).mean())
        hist = train.fit(model, pairs, steps=40, batch_size=32, lr=3e-3, cache=False, progress=False)
        d_changed = any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
        assert d_changed == (mode != "l1")
        assert ("loss_D" in hist) == (mode != "l1")
        assert all(torch.isfinite(torch.tensor(v)).all() for v in hist.logs.values())
        after = float(paired.pixel_error(model.translate(pairs.inputs), pairs.targets).mean())
        if mode != "gan":
            assert after < 0.8 * before[mode], (mode, before[mode], after)
    l1_model = small(mode="l1")
    assert l1_model.adv_weight == 0 and l1_model.lam == 100
    gan_model = small(mode="gan")
    assert gan_model.lam == 0 and gan_model.adv_weight == 1
    total, logs = gan_model.loss(*pairs[:8])
    torch.testing.assert_close(total, torch.tensor(logs["adv"]))


def test_fit_caches_pairs_by_their_targets():
    a = paired.outline_shapes(32, seed=0)
    b = paired.PairedDataset(a.inputs, 1 - a.targets)
    torch.manual_seed(0)  # the cache key holds the initial weights: build the same ones each time
    h1 = train.fit(small(mode="l1"), a, steps=2, progress=False)
    torch.manual_seed(0)
    h2 = train.fit(small(mode="l1"), b, steps=2, progress=False)
    assert h1.path != h2.path
    torch.manual_seed(0)
    assert train.fit(small(mode="l1"), a, steps=2, progress=False).loaded


# -- paired data and measures -----------------------------------------------------------------------
def test_paired_dataset_views():
    x, y = torch.rand(6, 2, 16, 16), torch.rand(6, 1, 16, 16)
    pairs = paired.PairedDataset(x, y)
    assert pairs.tensors[0].shape == (6, 3, 16, 16)
    torch.testing.assert_close(pairs.inputs, x)
    torch.testing.assert_close(pairs.targets, y)
    xi, yi = pairs[2]
    torch.testing.assert_close(xi, x[2])
    torch.testing.assert_close(yi, y[2])
    assert len(pairs.subset(4)) == 4


def test_corruptions():
    clean = paired.corrupted_digits("mask", split="test")
    assert len(clean) == 297 and clean.labels.shape == (297,)
    hidden = clean.region
    assert hidden.shape == (297, 1, 16, 16) and int(hidden[0].sum()) == 64
    assert torch.all(clean.inputs[hidden] == paired.MASK_VALUE)
    torch.testing.assert_close(clean.inputs[~hidden], clean.targets[~hidden])
    noisy = paired.corrupted_digits("noise", split="test")
    assert 0 <= float(noisy.inputs.min()) and float(noisy.inputs.max()) <= 1
    assert float(paired.pixel_error(noisy.inputs, noisy.targets).mean()) > 0.1
    blurred = paired.corrupted_digits("blur", split="test")
    assert float(paired.sharpness(blurred.inputs).mean()) < 0.8 * float(
        paired.sharpness(blurred.targets).mean()
    )
    # train and test corruptions differ, and a seed reproduces them
    torch.testing.assert_close(paired.corrupted_digits("noise", split="test").inputs, noisy.inputs)
    with pytest.raises(ValueError, match="kind"):
        paired.corrupt(clean.targets, "rotate")
    with pytest.raises(ValueError, match="mask strength"):
        paired.corrupt(clean.targets, "mask", strength=1.5)


def test_outline_shapes():
    pairs = paired.outline_shapes(200, seed=1)
    out, filled = pairs.inputs, pairs.targets
    assert set(torch.unique(filled).tolist()) <= {0.0, 1.0}
    assert torch.all(out <= filled)  # the outline lies on the shape
    area = filled.flatten(1).sum(1)
    assert float(area.min()) >= 10 and float(area.max()) < 16 * 16 / 2
    assert torch.all(out.flatten(1).sum(1) < area)  # a filled shape has an interior
    # a shape touching no border: its outline pixels are exactly those with a 4-neighbour outside
    ring = paired.outline(torch.ones(1, 1, 5, 5))
    assert int(ring.sum()) == 16 and ring[0, 0, 2, 2] == 0
    _, kinds = paired.filled_shapes(400, seed=2)
    assert set(kinds.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="kinds"):
        paired.filled_shapes(4, kinds=("star",))


def test_measures():
    flat = torch.full((2, 1, 8, 8), 0.3)
    assert torch.all(paired.sharpness(flat) == 0) and torch.all(paired.laplacian_variance(flat) == 0)
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0  # one vertical edge: |∂_w| = 1 on column 3, i.e. on 8 of the 64 pixels
    torch.testing.assert_close(paired.sharpness(step), torch.tensor([8 / 64]))
    line = torch.zeros(1, 1, 8, 8)
    line[..., 4] = 1.0  # a thin stroke: blurring lowers its peak and so its mean gradient magnitude
    assert paired.sharpness(paired.blur(line, 1.0)) < 0.8 * paired.sharpness(line)
    assert paired.laplacian_variance(paired.blur(line, 1.0)) < 0.5 * paired.laplacian_variance(line)
    a, b = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    b[..., 0, :] = 1.0
    torch.testing.assert_close(paired.pixel_error(a, b), torch.tensor([0.25]))
    torch.testing.assert_close(paired.pixel_error(a, 0.5 * b, "l2"), torch.tensor([0.0625]))
    region = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    region[..., :2, :] = True
    torch.testing.assert_close(paired.pixel_error(a, b, region=region), torch.tensor([0.5]))
    torch.testing.assert_close(paired.gaussian_kernel(1.3).sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="same shape"):
        paired.pixel_error(a, torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="region"):
        paired.sharpness(a, region=torch.ones(2, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty"):
        paired.sharpness(a, region=torch.zeros(1, 1, 4, 4, dtype=torch.bool))
