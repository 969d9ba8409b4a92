"""The conditional models of chapter 10 and the comparison in pgm_lab.conditional."""

from __future__ import annotations

import pytest
import torch

from pgm_lab import conditional as cd
from pgm_lab.models import ConditionalDDPM

torch.set_num_threads(1)

#: small sizes so that sampling takes milliseconds (the recipe of SPECS is used by the chapter)
SMALL = {
    "pixelcnn": {"channels": 16, "n_layers": 1},
    "cvae": {},
    "cvae_learned": {},
    "ddpm": {"T": 20, "base": 8},
    "cgan": {"base": 8},
}


def activated(key: str):
    """A fresh model whose zero-initialised parameters (e.g. label biases) are randomised, as training would."""
    torch.manual_seed(0)
    model = cd.build(key, **SMALL[key])
    with torch.no_grad():
        for p in model.parameters():
            if not bool(p.any()):
                p.normal_(0.0, 0.5)
    return model.eval()


@pytest.mark.parametrize("key", list(cd.SPECS))
def test_the_label_changes_the_output_for_the_same_noise(key):
    model = activated(key)
    threes, _ = cd.generate(model, [3] * 4, seed=7)
    again, _ = cd.generate(model, [3] * 4, seed=7)
    sevens, _ = cd.generate(model, [7] * 4, seed=7)
    torch.testing.assert_close(threes, again)  # same noise, same label: the same images
    assert not torch.equal(threes, sevens)  # same noise, other label: other images


@pytest.mark.parametrize("key", list(cd.SPECS))
def test_shapes_ranges_and_bad_labels(key):
    model = activated(key)
    x, _ = cd.generate(model, cd.class_labels(2), seed=0)
    assert x.shape == (20, 1, 8, 8)
    assert torch.isfinite(x).all() and float(x.min()) >= 0 and float(x.max()) <= 1
    assert cd.sample_class(model, 5, 3).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        cd.generate(model, [0, 10])
    with pytest.raises(ValueError, match="non-negative"):
        cd.sample_class(model, -1, 2)
    with pytest.raises(ValueError, match="labels"):
        model.sample(3, torch.tensor([1, 2]))  # wrong length, straight to the model
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model.sample(2, torch.tensor([1, 12]))


def test_check_labels():
    torch.testing.assert_close(cd.check_labels([1, 2, 3], n=3), torch.tensor([1, 2, 3]))
    torch.testing.assert_close(cd.check_labels(4), torch.tensor([4]))
    torch.testing.assert_close(cd.check_labels(torch.tensor([2.0, 5.0])), torch.tensor([2, 5]))
    with pytest.raises(ValueError, match="expected 4 labels"):
        cd.check_labels([1, 2, 3], n=4)
    with pytest.raises(ValueError, match="non-negative"):
        cd.check_labels([-1, 2])
    with pytest.raises(ValueError, match="integers"):
        cd.check_labels([0.5, 2])
    with pytest.raises(ValueError, match="one-dimensional"):
        cd.check_labels([[1, 2]])
    with pytest.raises(ValueError, match="sequence of integers"):
        cd.check_labels("three")
    with pytest.raises(ValueError, match="unknown conditional model"):
        cd.build("flow")
    with pytest.raises(ValueError, match="not class-conditional"):
        from pgm_lab.models import VAE

        cd.generate(VAE((1, 8, 8)), [1])
    assert cd.class_labels(3, 4).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


# -- classifier-free guidance ----------------------------------------------------------------------
def test_guidance_zero_is_the_conditional_prediction():
    """ε̃ = (1 + w) ε(x_t, t, c) − w ε(x_t, t, ∅): w = 0 gives ε(x_t, t, c), w = −1 gives ε(x_t, t, ∅)."""
    model = activated("ddpm")
    torch.manual_seed(1)
    x_t = torch.randn(6, 1, 8, 8)
    t = torch.tensor([1, 5, 10, 15, 20, 3])
    y = torch.tensor([0, 1, 2, 3, 4, 9])
    with torch.no_grad():
        eps_c = model.predict_noise(x_t, t, y)
        eps_u = model.predict_noise(x_t, t, None)
        torch.testing.assert_close(model.predict_noise(x_t, t, y, guidance=0.0), eps_c)
        torch.testing.assert_close(model.predict_noise(x_t, t, y, guidance=-1.0), eps_u, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            model.predict_noise(x_t, t, y, guidance=2.0), 3 * eps_c - 2 * eps_u, atol=1e-5, rtol=1e-5
        )
    assert not torch.allclose(eps_c, eps_u)  # the label matters
    plain, _ = cd.generate(model, [2, 4], seed=3)
    zero, _ = cd.generate(model, [2, 4], seed=3, guidance=0.0)
    torch.testing.assert_close(plain, zero)
    strong, _ = cd.generate(model, [2, 4], seed=3, guidance=3.0)
    assert not torch.equal(plain, strong)


def test_guidance_sweep_rows(monkeypatch):
    model = activated("ddpm")
    calls = []

    def fake_evaluate(m, *, n_per_class, size, seed, **kw):
        calls.append(kw["guidance"])
        x, _ = cd.generate(m, cd.class_labels(n_per_class), seed=seed, **kw)
        return {"mean": float(x.mean())}

    monkeypatch.setattr(cd, "evaluate", fake_evaluate)
    rows = cd.guidance_sweep(model, (0, 1, 4), n_per_class=1)
    assert [r["guidance"] for r in rows] == calls == [0.0, 1.0, 4.0]
    assert len({r["mean"] for r in rows}) == 3
    with pytest.raises(ValueError, match="finite"):
        cd.guidance_sweep(model, (0, float("nan")))
    with pytest.raises(ValueError, match="empty"):
        cd.guidance_sweep(model, ())


def test_unconditional_ddpm_rejects_guidance():
    with pytest.raises(ValueError):
        ConditionalDDPM((1, 8, 8), 10, T=10, base=8, p_uncond=0.0).predict_noise(
            torch.zeros(1, 1, 8, 8), 1, [0], guidance=1.0
        )


# -- measures -------------------------------------------------------------------------------------
def test_diversity_and_evaluate():
    from pgm_lab.data import digits

    x, y = digits(8, split="test").tensors
    real = cd.diversity(x, y)
    assert real > 0
    repeated = x[:1].repeat(20, 1, 1, 1)
    assert cd.diversity(repeated, [0] * 10 + [1] * 10) == pytest.approx(0.0, abs=1e-6)
    # a class made of two copies of one image is less diverse than the real class
    ones = x[y == 1]
    assert cd.diversity(torch.cat([ones[:5], ones[:5]]), [1] * 10) < cd.diversity(ones, [1] * len(ones))
    with pytest.raises(ValueError, match="expected 4 labels"):
        cd.diversity(x[:4], [0, 1, 2])
    with pytest.raises(ValueError, match="two images"):
        cd.diversity(x[:3], [0, 1, 2])
    model = activated("cvae")
    row = cd.evaluate(model, n_per_class=3)
    assert set(row) >= {"accuracy", "diversity", "frechet", "frechet_floor", "sample_s", "ms_per_image"}
    assert row["n"] == 30 and row["ms_per_image"] == pytest.approx(1000 * row["sample_s"] / 30)
    rows = cd.compare({"cvae": model}, n_per_class=2)
    assert [r["model"] for r in rows] == [cd.SPECS["cvae"].name, "real test digits"]
    assert rows[1]["accuracy"] > 0.9
    table = cd.format_table(rows, ["model", "accuracy", "diversity", "frechet"])
    assert table.splitlines()[0] == "| model | accuracy | diversity | frechet |"
    assert "–" in table.splitlines()[-1]  # the real digits have no Fréchet distance to themselves here
    assert cd.format_table([{"model": "prior p(z|c)"}]).splitlines()[-1] == "| prior p(z\\|c) |"
    with pytest.raises(ValueError, match="no rows"):
        cd.format_table([])


def test_train_fixes_the_initial_weights_by_seed(monkeypatch):
    """cd.train seeds the initial weights: a checkpoint cached under a seed matches a fresh build."""
    import pgm_lab.train

    built = []
    monkeypatch.setattr(pgm_lab.train, "fit", lambda model, data, **kw: built.append(model) or None)
    torch.rand(5)  # move the global RNG: the result must not depend on it
    cd.train("cvae", seed=3)
    torch.rand(7)
    cd.train("cvae", seed=3)
    cd.train("cvae", seed=4)
    a, b, c = (torch.cat([p.flatten() for p in m.parameters()]) for m in built)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_trained_conditional_model_draws_the_requested_digit():
    """A smoke-sized cVAE (150 steps) draws the requested digit far above chance (1 in 10),
    scored by the independent evaluation classifier; asked for other labels, it follows them."""
    from pgm_lab import metrics

    model, _ = cd.train("cvae", steps=150, progress=False, cache=False)
    labels = cd.class_labels(20)
    images, _ = cd.generate(model, labels, seed=1)
    with torch.no_grad():
        predicted = metrics.evaluation_classifier(8)(images).argmax(1)
    hits = float((predicted == labels).float().mean())
    assert hits > 0.6, f"only {hits:.0%} of the samples show the requested digit"
    assert cd.evaluate(model, n_per_class=20, seed=1)["accuracy"] == pytest.approx(hits)
    shifted = (labels + 1) % 10  # the same draw scored against the wrong labels
    assert float((predicted == shifted).float().mean()) < 0.3
