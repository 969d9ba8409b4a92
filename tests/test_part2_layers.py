"""Part II in layers that run one way, typed configs, one ``sample`` interface (issue 15, item 3).

Layers (what may import what), read from the source like tests/test_import_layers.py:
losses and recipes at the bottom; models import losses, never metrics or evaluation;
evaluation imports models, data and train; nothing below imports evaluation, metrics or
conditional.
"""

from __future__ import annotations

import dataclasses
import inspect
import json

import networkx as nx
import pytest
import torch
from test_import_layers import ROOT, import_graph

import pgm_lab as pl
from pgm_lab import models
from pgm_lab.models.base import GenerativeModel, ModelConfig, TrainableModel

MODELS = [
    "PixelCNN",
    "ConditionalPixelCNN",
    "PixelRNN",
    "AutoEncoder",
    "VAE",
    "ConditionalVAE",
    "DDPM",
    "ConditionalDDPM",
    "GAN",
    "ConditionalGAN",
    "Pix2Pix",
]
MODEL_MODULES = [
    f"pgm_lab.models.{m}"
    for m in ("base", "pixelcnn", "pixelrnn", "vae", "unet", "diffusion", "gan", "pix2pix")
]


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_models_reach_losses_but_never_metrics_evaluation_or_train(graph):
    assert graph.has_edge("pgm_lab.models.vae", "pgm_lab.losses")  # the graph was really read
    above = {
        "pgm_lab.metrics",
        "pgm_lab.evaluation",
        "pgm_lab.conditional",
        "pgm_lab.train",
        "pgm_lab.paired",
    }
    for module in MODEL_MODULES:
        reached = nx.descendants(graph, module)
        assert not reached & above, f"{module} reaches {sorted(reached & above)}"


def test_losses_and_recipes_sit_at_the_bottom(graph):
    assert not nx.descendants(graph, "pgm_lab.losses")  # pure tensor maths: no pgm_lab import at all
    assert nx.descendants(graph, "pgm_lab.recipes") <= {"pgm_lab.data", "pgm_lab.config", "pgm_lab.shapes"}


def test_evaluation_is_on_top(graph):
    assert {"pgm_lab.models.base", "pgm_lab.data", "pgm_lab.train"} <= set(
        graph.successors("pgm_lab.evaluation")
    )
    for module in [*MODEL_MODULES, "pgm_lab.train", "pgm_lab.data", "pgm_lab.losses"]:
        assert "pgm_lab.evaluation" not in nx.descendants(graph, module)
    assert set(graph.successors("pgm_lab.metrics")) == {"pgm_lab.losses", "pgm_lab.evaluation"}


def test_digit_classifier_is_trainable_not_generative():
    from pgm_lab.evaluation import DigitClassifier

    clf = DigitClassifier((1, 8, 8))
    assert isinstance(clf, TrainableModel) and not isinstance(clf, GenerativeModel)
    assert not hasattr(clf, "sample")
    assert clf.config == {
        "class": "DigitClassifier",
        "image_shape": (1, 8, 8),
        "n_classes": 10,
        "width": 16,
        "n_features": 64,
    }


# -- one sample() -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_sample_has_the_base_signature(name):
    params = list(inspect.signature(getattr(models, name).sample).parameters.values())
    assert [p.name for p in params[:4]] == ["self", "n", "labels", "generator"]
    assert params[2].default is None and params[3].default is None
    assert params[3].kind is inspect.Parameter.KEYWORD_ONLY
    assert all(p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD) for p in params[3:])


def test_conditional_generate_no_longer_inspects_signatures():
    from pgm_lab import conditional

    assert not hasattr(conditional, "_takes")
    assert "inspect" not in conditional.__dict__


SMALL = {
    "PixelCNN": {"channels": 8, "n_layers": 1},
    "PixelRNN": {"channels": 8, "n_layers": 1},
    "AutoEncoder": {"hidden": 16},
    "VAE": {"hidden": 16},
    "DDPM": {"T": 5, "base": 8},
    "GAN": {"base": 8},
}


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("conditional", [False, True])
def test_generator_makes_every_model_reproducible(name, conditional):
    cls = getattr(models, name)
    torch.manual_seed(0)
    model = cls((1, 8, 8), 10 if conditional else None, **SMALL[name]).eval()
    labels = torch.tensor([1, 7, 3]) if conditional else None
    a = model.sample(3, labels, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG must not matter
    b = model.sample(3, labels, generator=5)  # an int seed is the same generator
    c = model.sample(3, labels, generator=6)
    assert a.shape == (3, 1, 8, 8)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="generator"):
        model.sample(1, labels[:1] if conditional else None, generator="seed")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0, labels)


# -- typed configs --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_config_is_a_frozen_dataclass_and_builds_the_same_model(name):
    cls = getattr(models, name)
    shape, k = (
        ((1, 16, 16), None) if name == "Pix2Pix" else ((1, 8, 8), 10 if "Conditional" in name else None)
    )
    torch.manual_seed(0)
    a = cls(shape, k)
    assert (
        dataclasses.is_dataclass(a.cfg) and isinstance(a.cfg, cls.Config) and isinstance(a.cfg, ModelConfig)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.cfg.n_classes = 3
    torch.manual_seed(0)
    b = cls.from_config(a.cfg)
    assert a.config == b.config
    assert json.loads(json.dumps(a.config)) == json.loads(json.dumps(b.config))  # JSON-able
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(ValueError, match="either config"):
        cls(shape, k, config=a.cfg)


@pytest.mark.parametrize(
    ("name", "sizes", "field"),
    [
        ("PixelCNN", {"channels": 0}, "channels"),
        ("PixelCNN", {"first_kernel": 4}, "first_kernel"),
        ("PixelCNN", {"dropout": 1.5}, "dropout"),
        ("PixelRNN", {"n_layers": 0}, "n_layers"),
        ("VAE", {"hidden": 2.5}, "hidden"),
        ("VAE", {"beta": -1.0}, "beta"),
        ("DDPM", {"T": 0}, "T"),
        ("DDPM", {"schedule": "quadratic"}, "schedule"),
        ("DDPM", {"p_uncond": 1.0}, "p_uncond"),
        ("GAN", {"z_dim": 0}, "z_dim"),
        ("GAN", {"beta1": 1.0}, "beta1"),
        ("GAN", {"g_steps": 0}, "g_steps"),
        ("Pix2Pix", {"depth": 0}, "depth"),
        ("Pix2Pix", {"dropout": -0.1}, "dropout"),
        ("PixelCNN", {"chanels": 8}, "chanels"),
    ],
)
def test_a_bad_size_raises_a_value_error_naming_the_field(name, sizes, field):
    cls = getattr(models, name)
    with pytest.raises(ValueError, match=field):
        cls(**sizes)
    if field != "chanels":  # the config itself validates too
        with pytest.raises(ValueError, match=field):
            cls.Config(**sizes)


def test_auto_fields_resolve_by_data_kind():
    img, vec = models.GANConfig((1, 8, 8)), models.GANConfig((2,))
    assert (img.z_dim, img.mbstd, img.ema) == (32, True, 0.99)
    assert (vec.z_dim, vec.mbstd, vec.ema) == (2, False, None)
    assert models.Pix2PixConfig(mode="l1").adv_weight == 0.0 and models.Pix2PixConfig(mode="gan").lam == 0.0


def test_config_content_stays_what_the_cache_key_used():
    """``model.config`` keeps the keys it had before the typed configs (checkpoint cache keys)."""
    assert set(models.GAN((2,)).config) == {
        "class",
        "image_shape",
        "n_classes",
        "loss",
        "z_dim",
        "hidden",
        "layers",
        "d_steps",
        "beta1",
        "mbstd",
    }
    assert set(models.DDPM().config) == {
        "class",
        "image_shape",
        "n_classes",
        "T",
        "schedule",
        "prediction",
        "sigma",
        "ema",
        "base",
        "mults",
        "scale_shift",
    }
    assert "p_uncond" in models.ConditionalDDPM((1, 8, 8), 10).config
    assert models.Pix2Pix().config["disc_layers"] == ((3, 1, 1), (4, 2, 1), (3, 1, 1))


def test_chapter_10_trains_every_model_with_its_class_defaults(monkeypatch):
    """Chapter 10's recipe is each class's defaults: cd.train passes fit nothing but the
    profile, the seed and the progress bar, and the classes carry the chapter's settings."""
    from pgm_lab import conditional, train

    calls = {}

    def fake_fit(model, data, **kw):
        calls[type(model).__name__ + str(getattr(model, "prior_kind", ""))] = (model, kw)
        return None

    monkeypatch.setattr(train, "fit", fake_fit)
    for key in conditional.SPECS:
        conditional.train(key, profile="smoke", progress=False)
    assert len(calls) == len(conditional.SPECS)
    for _model, kw in calls.values():
        assert set(kw) == {"profile", "seed", "progress"}, kw
    m = models.ConditionalPixelCNN((1, 8, 8), 10)
    assert m.cfg.channels == 32 == models.PixelCNN().cfg.channels
    assert m.label_logits.weight.shape == (10, 64)  # a bias per class and pixel
    const = "constant"
    assert train._fit_defaults(m, None, None) == (128, 3e-3, const, None)
    ddpm = models.ConditionalDDPM((1, 8, 8), 10)
    assert ddpm.default_steps["quick"] == 1500 == models.DDPM().default_steps["quick"]
    assert m.default_steps["quick"] == 2400
    assert train._fit_defaults(ddpm, None, None) == (64, 1e-3, const, None)
    assert train._fit_defaults(models.ConditionalGAN((1, 8, 8), 10), None, None) == (128, 2e-3, const, None)
    assert train._fit_defaults(ddpm, 32, 5e-4) == (32, 5e-4, const, None)  # the caller wins


def test_unconditional_defaults_are_the_chapters_recipes():
    """PixelCNN and PixelRNN default to chapter 06's recipe (augmentation, lr 3e-3, cosine);
    the GAN's defaults depend on its data kind (chapter 09: lr 2e-3 on images, batch 256 on
    vectors); the caller wins setting by setting, ``transform=False`` switches augmentation off."""
    from pgm_lab import data, train

    for model in (models.PixelCNN(), models.PixelRNN()):
        assert train._fit_defaults(model, None, None) == (128, 3e-3, "cosine", data.binarize_and_shift)
    tiny = models.PixelCNN((1, 4, 4), channels=8)  # too small to shift: binarisation alone
    assert train._fit_defaults(tiny, None, None)[3] is data.stochastic_binarize
    no_aug = train._fit_defaults(models.PixelCNN(), None, 1e-3, "constant", False)
    assert no_aug == (128, 1e-3, "constant", None)
    assert train._fit_defaults(models.PixelRNN((1, 8, 8), 10), None, None) == (128, 1e-3, "constant", None)
    assert train._fit_defaults(models.GAN((1, 8, 8)), None, None) == (128, 2e-3, "constant", None)
    assert train._fit_defaults(models.GAN((2,)), None, None) == (256, 1e-3, "constant", None)
    assert train._fit_defaults(models.VAE(), None, None) == (128, 1e-3, "constant", None)


def test_fit_defaults_and_the_chapters_recipe_share_one_checkpoint(tmp_path, monkeypatch):
    """fit(PixelCNN(), digits) trains chapter 06's model: the same settings, hence the same
    checkpoint as fit(model, digits, **recipes.PIXELCNN); switching the augmentation off is
    another run, with a different key."""
    from pgm_lab import recipes, train

    monkeypatch.setenv("PGM_LAB_CACHE", str(tmp_path))
    digits = pl.data.digits()
    paths = []
    for kw in ({}, recipes.PIXELCNN, {"transform": False}):
        torch.manual_seed(0)
        model = models.PixelCNN(channels=8, n_layers=1)
        paths.append(train.fit(model, digits, steps=3, profile="smoke", progress=False, **kw).path)
    assert paths[0] == paths[1] != paths[2]


def test_fit_rejects_unknown_schedules_and_transforms():
    from pgm_lab import train

    digits = pl.data.digits()
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train.fit(models.VAE(), digits, steps=1, lr_schedule="linear", cache=False)
    with pytest.raises(TypeError, match="transform must be a function"):
        train.fit(models.VAE(), digits, steps=1, transform="shift", cache=False)


def test_recipes_live_apart_from_model_classes():
    from pgm_lab import recipes
    from pgm_lab.models import pixelcnn, vae

    assert pixelcnn.TRAINING is recipes.PIXELCNN and vae.TRAINING is recipes.VAE  # chapters' names kept
    assert models.PixelCNN.default_steps is recipes.STEPS["PixelCNN"]
    assert models.GAN((2,)).default_steps == recipes.STEPS["GAN/vectors"]
    assert models.DDPM().default_steps == recipes.STEPS["DDPM/images"]
