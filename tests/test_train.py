"""pgm_lab.train.fit: cache round trip, corrupt checkpoints, divergence and bad data."""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest
import torch
from torch import nn

from pgm_lab.models.base import GenerativeModel
from pgm_lab.train import TrainingDiverged, fit


class PixelBernoulli(GenerativeModel):
    """Independent Bernoulli pixels: the smallest likelihood model (tests only)."""

    default_steps: ClassVar[dict[str, int]] = {"smoke": 7, "quick": 11, "full": 13}

    def __init__(self, image_shape=(1, 4, 4), n_classes=None, nan_after: int | None = None):
        super().__init__(image_shape, n_classes, nan_after=nan_after)
        self.logits = nn.Parameter(torch.zeros(image_shape))
        self.nan_after = nan_after
        self.calls = 0

    def loss(self, x, y=None):
        self.calls += 1
        nll = nn.functional.binary_cross_entropy_with_logits(
            self.logits.expand_as(x), x, reduction="none"
        ).sum((1, 2, 3))
        loss = nll.mean()
        if self.nan_after is not None and self.calls > self.nan_after:
            loss = loss * float("nan")
        return loss, {"nll": float(nll.detach().mean())}

    def sample(self, n, labels=None):
        self.check_labels(n, labels)
        return torch.bernoulli(torch.sigmoid(self.logits).expand(n, *self.image_shape))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("PGM_LAB_DEVICE", "cpu")
    return tmp_path


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 4, 4, generator=g) < 0.3).float()


def test_fit_learns_and_cache_round_trip(cache):
    x = _data()
    m1 = PixelBernoulli()
    h1 = fit(m1, x, steps=200, lr=0.05, progress=False)
    assert not h1.loaded and h1.path is not None and h1.path.exists() and h1.path.is_relative_to(cache)
    assert h1.steps[-1] == 200 and len(h1["nll"]) == 200 and h1["nll"][-1] < h1["nll"][0]
    # the learnt pixel probabilities approach the data frequencies
    assert torch.allclose(torch.sigmoid(m1.logits), x.mean(0), atol=0.08)
    assert not m1.training
    m2 = PixelBernoulli()
    h2 = fit(m2, x, steps=200, lr=0.05, progress=False)
    assert h2.loaded and m2.calls == 0 and h2.path == h1.path
    assert torch.equal(m1.logits, m2.logits) and h2.logs == h1.logs and h2.seconds == h1.seconds
    # anything that changes the result changes the key: data, settings, profile, config
    m3 = PixelBernoulli()
    assert not fit(m3, _data(seed=1), steps=200, lr=0.05, progress=False).loaded
    assert not fit(PixelBernoulli(), x, steps=200, lr=0.01, progress=False).loaded
    assert not fit(PixelBernoulli(), x, steps=200, lr=0.05, profile="full", progress=False).loaded
    assert not fit(PixelBernoulli(nan_after=10**9), x, steps=200, lr=0.05, progress=False).loaded
    assert len(list((cache / "checkpoints").glob("*.pt"))) == 5
    # cache=False trains and writes nothing
    h = fit(PixelBernoulli(), x, steps=5, progress=False, cache=False)
    assert h.path is None and len(list((cache / "checkpoints").glob("*.pt"))) == 5


def test_fit_is_deterministic_given_seed(cache):
    x = _data()
    a, b, c = PixelBernoulli(), PixelBernoulli(), PixelBernoulli()
    fit(a, x, steps=30, lr=0.05, progress=False, cache=False, seed=3)
    fit(b, x, steps=30, lr=0.05, progress=False, cache=False, seed=3)
    fit(c, x, steps=30, lr=0.05, progress=False, cache=False, seed=4)
    assert torch.equal(a.logits, b.logits) and not torch.equal(a.logits, c.logits)


def test_profile_sets_default_steps(cache):
    x = _data()
    assert fit(PixelBernoulli(), x, profile="smoke", progress=False).steps[-1] == 7
    assert fit(PixelBernoulli(), x, profile="quick", progress=False).steps[-1] == 11
    assert (
        fit(
            PixelBernoulli(), x, steps={"smoke": 3, "quick": 4, "full": 5}, profile="full", progress=False
        ).steps[-1]
        == 5
    )
    with pytest.raises(ValueError, match="lacks profiles"):
        fit(PixelBernoulli(), x, steps={"smoke": 3}, progress=False)
    with pytest.raises(ValueError, match="steps must be"):
        fit(PixelBernoulli(), x, steps=0, progress=False)
    with pytest.raises(ValueError, match="unknown profile"):
        fit(PixelBernoulli(), x, profile="huge", progress=False)


@pytest.mark.parametrize("garbage", [b"not a checkpoint", b""])
def test_corrupt_checkpoint_is_retrained(cache, garbage):
    x = _data()
    h1 = fit(PixelBernoulli(), x, steps=20, lr=0.05, progress=False)
    h1.path.write_bytes(garbage)
    m = PixelBernoulli()
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        h2 = fit(m, x, steps=20, lr=0.05, progress=False)
    assert not h2.loaded and m.calls == 20
    m3 = PixelBernoulli()
    assert fit(m3, x, steps=20, lr=0.05, progress=False).loaded  # rewritten and readable again
    assert torch.equal(m3.logits, m.logits)


def test_stale_checkpoint_with_wrong_parameters_is_retrained(cache):
    x = _data()
    h1 = fit(PixelBernoulli(), x, steps=10, progress=False)
    torch.save({"format": 1, "state_dict": {"other": torch.zeros(2)}, "history": {}}, h1.path)
    with pytest.warns(UserWarning, match="retraining"):
        assert not fit(PixelBernoulli(), x, steps=10, progress=False).loaded


def test_divergence_raises_and_keeps_last_good_parameters(cache):
    x = _data()
    ref = PixelBernoulli()
    fit(ref, x, steps=50, lr=0.05, progress=False, cache=False)
    m = PixelBernoulli(nan_after=73)
    with pytest.raises(TrainingDiverged, match=r"step 74.*step 50"):
        fit(m, x, steps=200, lr=0.05, progress=False)
    assert torch.isfinite(m.logits).all() and torch.equal(m.logits, ref.logits)
    assert not list((cache / "checkpoints").glob("*.pt"))  # nothing cached for a failed run


def test_transform_and_snapshots(cache):
    x = _data()
    seen = []

    def flip(xb, gen):
        seen.append(xb.shape)
        return 1 - xb

    m = PixelBernoulli()
    h = fit(
        m,
        x,
        steps=150,
        lr=0.05,
        progress=False,
        transform=flip,
        snapshot=lambda mod: mod.sample(2),
        snapshot_every=50,
    )
    assert len(seen) == 150
    assert torch.allclose(torch.sigmoid(m.logits), 1 - x.mean(0), atol=0.1)
    assert [s for s, _ in h.snapshots] == [50, 100, 150] and h.snapshots[0][1].shape == (2, 1, 4, 4)
    h2 = fit(
        PixelBernoulli(),
        x,
        steps=150,
        lr=0.05,
        progress=False,
        transform=flip,
        snapshot=lambda mod: mod.sample(2),
        snapshot_every=50,
    )
    assert h2.loaded and len(h2.snapshots) == 3


def test_bad_data_errors(cache):
    m = PixelBernoulli()
    with pytest.raises(ValueError, match=r"shaped \(N, 1, 4, 4\)"):
        fit(m, torch.rand(10, 1, 5, 5), steps=2, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit(m, torch.rand(10, 1, 4, 4) * 3, steps=2, progress=False)
    bad = torch.rand(10, 1, 4, 4)
    bad[3, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fit(m, bad, steps=2, progress=False)
    with pytest.raises(ValueError, match="labels"):
        fit(m, (torch.rand(10, 1, 4, 4), torch.zeros(9, dtype=torch.long)), steps=2, progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit(m, torch.rand(0, 1, 4, 4), steps=2, progress=False)
    with pytest.raises(ValueError, match="TensorDataset"):
        fit(m, [[0.0, 1.0]], steps=2, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(m, torch.rand(10, 1, 4, 4), steps=2, batch_size=0, progress=False)
    cond = PixelBernoulli(n_classes=3)
    with pytest.raises(ValueError, match="conditional: data must carry labels"):
        fit(cond, torch.rand(10, 1, 4, 4), steps=2, progress=False)


def test_labels_protocol():
    m, c = PixelBernoulli(), PixelBernoulli(n_classes=3)
    assert m.sample(5).shape == (5, 1, 4, 4)
    with pytest.raises(ValueError, match="unconditional"):
        m.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="conditional: pass labels"):
        c.sample(2)
    with pytest.raises(ValueError, match="expected 2 labels"):
        c.sample(2, labels=[0, 1, 2])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        c.sample(2, labels=[0, 3])
    assert c.sample(4, labels=1).shape == (4, 1, 4, 4)


class LoggingLR(PixelBernoulli):
    def training_step(self, x, y, optimizers):
        logs = super().training_step(x, y, optimizers)
        return {**logs, "lr": optimizers[0].param_groups[0]["lr"]}


def test_cosine_schedule(cache):
    x = _data()
    h = fit(LoggingLR(), x, steps=100, lr=0.1, progress=False, lr_schedule="cosine")
    lrs = h["lr"]
    assert lrs[0] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.05, rel=0.05) and lrs[-1] < 1e-3
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    const = fit(LoggingLR(), x, steps=100, lr=0.1, progress=False)
    assert not const.loaded and set(const["lr"]) == {0.1}
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(PixelBernoulli(), x, steps=5, lr_schedule="step", progress=False)


# -- the cache key: code, initial weights, transform, torch version (issue 15.4) ----------------
MODEL_SOURCE = """
import torch
from torch import nn
from pgm_lab.models.base import GenerativeModel


def scale():
    return {scale}


class Tiny(GenerativeModel):
    def __init__(self, image_shape=(1, 4, 4), n_classes=None):
        super().__init__(image_shape, n_classes)
        self.logits = nn.Parameter(torch.zeros(image_shape))

    def loss(self, x, y=None):
        nll = nn.functional.binary_cross_entropy_with_logits(
            self.logits.expand_as(x) * scale(), x, reduction="none"
        ).sum((1, 2, 3))
        return nll.mean(), {{"nll": float(nll.detach().mean())}}

    def sample(self, n, labels=None):
        return torch.bernoulli(torch.sigmoid(self.logits).expand(n, *self.image_shape){extra})
"""


def _import_model(tmp_path, name, *, scale="1.0", extra=""):
    """Write the module ``name`` (under the ``pgm_lab`` namespace, so it counts as pgm_lab code)
    and import it afresh, as a lecturer's edit and kernel restart would."""
    import importlib.util
    import sys

    path = tmp_path / f"{name.rsplit('.', 1)[-1]}.py"
    path.write_text(MODEL_SOURCE.format(scale=scale, extra=extra))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _key(model, x=None, **settings):
    from pgm_lab.train import cache_key

    return cache_key(model, _data() if x is None else x, None, {"steps": 5, **settings})


def test_cache_key_same_model_same_key_and_init_matters():
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    assert _key(PixelBernoulli()) == _key(PixelBernoulli())  # zeros: the same initial weights
    m = PixelBernoulli()
    with torch.no_grad():
        m.logits[0, 0, 0] = 1e-6  # one weight, barely different
    assert _key(m) != _key(PixelBernoulli())
    del a


def test_cache_key_follows_an_edit_of_any_method(tmp_path, monkeypatch):
    name = "pgm_lab._test_edited_model"
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    base = _key(_import_model(tmp_path, name).Tiny())
    assert _key(_import_model(tmp_path, name).Tiny()) == base  # re-imported unchanged: same key
    # sample() is never called in training, and still: its edit retrains
    assert _key(_import_model(tmp_path, name, extra=" * 1").Tiny()) != base
    # a module-level helper the method calls (the method's own byte code is unchanged)
    assert _key(_import_model(tmp_path, name, scale="2.0").Tiny()) != base
    # a patched method of a pgm_lab base class, as an edit in pgm_lab/models/base.py would be
    tiny = _import_model(tmp_path, name).Tiny()
    assert _key(tiny) == base
    monkeypatch.setattr(GenerativeModel, "check_images", lambda self, x: x)
    assert _key(tiny) != base
    monkeypatch.undo()
    # a submodule's class counts too
    tiny.extra = nn.Sequential(nn.Identity())
    with_sub = _key(tiny)
    monkeypatch.setattr(nn.Identity, "forward", lambda self, x: x + 0)
    assert _key(tiny) == with_sub  # torch's own classes: covered by torch.__version__ instead
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert _key(tiny) != with_sub


def test_transform_enters_the_key_by_its_code_not_its_name(cache):
    from pgm_lab.train import callable_fingerprint

    def make(threshold):
        def binarize(x, gen):
            return (x > threshold).float()

        return binarize

    def flip(x, gen):
        return 1 - x

    flip_a = flip

    def flip(x, gen):  # same name, another body
        return x.flip(-1)

    assert callable_fingerprint(make(0.5)) == callable_fingerprint(make(0.5))
    assert callable_fingerprint(make(0.5)) != callable_fingerprint(make(0.4))
    assert callable_fingerprint(flip_a) != callable_fingerprint(flip)
    x = _data()
    assert not fit(PixelBernoulli(), x, steps=3, transform=flip_a, progress=False).loaded
    assert not fit(PixelBernoulli(), x, steps=3, transform=flip, progress=False).loaded
    assert fit(PixelBernoulli(), x, steps=3, transform=flip_a, progress=False).loaded


def test_unwritable_cache_trains_without_caching(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PGM_LAB_CACHE", str(blocker / "cache"))  # unwritable, even for root
    monkeypatch.setenv("PGM_LAB_DEVICE", "cpu")
    x = _data()
    m = PixelBernoulli()
    with pytest.warns(UserWarning, match=r"a-file/cache is not writable.*not cached.*PGM_LAB_CACHE"):
        h = fit(m, x, steps=40, lr=0.05, progress=False)
    assert not h.loaded and h.path is None and m.calls == 40 and h["nll"][-1] < h["nll"][0]
    assert blocker.read_text() == "not a folder"


def test_code_fingerprint_covers_the_modules_a_model_depends_on():
    from pgm_lab.models import VAE
    from pgm_lab.train import code_fingerprint

    torch.manual_seed(0)
    parts = code_fingerprint(VAE((1, 8, 8)))
    # its class, its base class, the training loop and the module its losses come from
    for module in ("pgm_lab.models.vae", "pgm_lab.models.base", "pgm_lab.train", "pgm_lab.losses"):
        assert parts[f"module {module}"], module
    assert "class pgm_lab.models.vae.VAE" in parts and "class pgm_lab.models.base.GenerativeModel" in parts
    assert not any("torch.nn" in k for k in parts)


def test_loading_leaves_the_random_state_as_training_does(cache):
    """A cell after a training cell draws the same numbers (and builds the same initial weights,
    part of the next model's key) whether the training cell trained or loaded."""

    class Noisy(PixelBernoulli):
        def loss(self, x, y=None):
            loss, logs = super().loss(x, y)
            return loss + 0 * torch.rand(()), logs  # training draws from the global generator

    x = _data()
    torch.manual_seed(5)
    assert not fit(Noisy(), x, steps=30, lr=0.05, progress=False).loaded
    after_training = torch.rand(4)
    torch.manual_seed(5)
    assert fit(Noisy(), x, steps=30, lr=0.05, progress=False).loaded
    assert torch.equal(torch.rand(4), after_training)


def test_the_model_recipe_sets_batch_size_and_lr_unless_the_caller_does(cache):
    """fit's batch size and learning rate: the caller's, else the model's ``default_fit``,
    else 128 and 1e-3 (ConditionalPixelCNN's recipe: batch 64, lr 3e-3)."""
    from pgm_lab.models import ConditionalPixelCNN

    seen = {}

    class Counting(PixelBernoulli):
        def loss(self, x, y=None):
            seen.setdefault("batch", len(x))
            return super().loss(x, y)

    class Recorded(Counting):
        default_fit: ClassVar[dict] = {"batch_size": 5, "lr": 0.02}

    def trained_with(model, **kw) -> tuple[int, float]:
        made = []
        configure = model.configure_optimizers
        model.configure_optimizers = lambda lr: made.append(configure(lr)) or made[-1]
        seen.clear()
        fit(model, _data(), steps=2, progress=False, cache=False, **kw)
        return seen["batch"], made[0][0].defaults["lr"]

    assert trained_with(Recorded()) == (5, 0.02)
    assert trained_with(Recorded(), batch_size=9, lr=0.1) == (9, 0.1)
    assert trained_with(Counting()) == (64, 1e-3)  # min(128, 64 samples) rows per batch
    assert ConditionalPixelCNN.default_fit == {"lr": 3e-3}
