"""Part II's model classes with nothing but their defaults: do they reach the chapter's quality?

One row per unconditional model class of chapters 06-09: ``Model(image_shape)`` built from its
typed config's defaults and trained by ``pgm_lab.train.fit(model, digits)`` with no settings
(steps from the class's ``default_steps``; batch, step size, learning-rate schedule and
augmentation from its ``default_fit`` or fit's defaults), against the same class trained as its chapter trains it (the peer,
measured in the same run; a cached checkpoint is reused). Both are scored the same way:

- PixelCNN, PixelRNN: test NLL in nats/image on the 297 held-out digits binarised once;
- VAE (z = 8): test −ELBO (100 posterior samples) on the same digits;
- DDPM, GAN on grey digits: Fréchet distance of the evaluation classifier's features
  (200 samples in quick) to the held-out digits.

The conditional models of chapter 10 train with their class's defaults in the chapter itself
(``bench_conditional`` scores them). The goal: within 10% of the chapter's recipe.
"""

from __future__ import annotations

#: a model with its defaults may fall this far behind the chapter's recipe (relative)
TOLERANCE = 0.10


def _nll(model, test) -> float:
    import torch

    with torch.no_grad():
        return float(-model.log_prob(test.to(model.device_of())).mean())


def _neg_elbo(model, test) -> float:
    import torch

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return float(-model.elbo_terms(test.to(model.device_of()), n_samples=100, generator=g)["elbo"].mean())


def _frechet(n: int):
    def score(model, test) -> float:
        import pgm_lab as pl

        return float(pl.metrics.score_samples(model.sample(n, generator=0).cpu())["frechet"])

    return score


def cases(profile: str) -> list[tuple]:
    """(name, build, data, chapter's fit settings, score, unit) for each model class."""
    import pgm_lab as pl
    from pgm_lab.models import DDPM, GAN, VAE, PixelCNN, PixelRNN, pixelcnn, vae

    n = pl.pick(smoke=20, quick=200, full=500, profile_name=profile)
    grey = pl.data.digits()
    ddpm_steps = pl.pick(smoke=20, quick=1000, full=20000, profile_name=profile)
    gan_steps = pl.pick(smoke=20, quick=1500, full=6000, profile_name=profile)
    return [
        ("PixelCNN (ch. 06)", PixelCNN, grey, pixelcnn.TRAINING, _nll, "nats/image"),
        ("PixelRNN (ch. 06)", PixelRNN, grey, pixelcnn.TRAINING, _nll, "nats/image"),
        ("VAE, z=8 (ch. 07)", lambda: VAE(latent_dim=8), grey, vae.TRAINING, _neg_elbo, "nats/image"),
        (
            "DDPM (ch. 08)",
            lambda: DDPM((1, 8, 8)),
            grey,
            {"steps": ddpm_steps, "lr": 2e-3},
            _frechet(n),
            "FD",
        ),
        (
            "GAN (ch. 09)",
            lambda: GAN((1, 8, 8), loss="nonsaturating", mbstd=True, ema=0.99),
            grey,
            {"steps": gan_steps, "lr": 2e-3, "batch_size": 128},
            _frechet(n),
            "FD",
        ),
    ]


def bench(profile: str) -> list[dict]:
    import torch

    import pgm_lab as pl

    test = pl.data.digits(split="test", binarize="stochastic").tensors[0]
    rows = []
    for name, build, data, recipe, score, unit in cases(profile):
        values = {}
        for how, kw in (("defaults", {}), ("recipe", recipe)):
            torch.manual_seed(0)
            model = build()
            pl.train.fit(model, data, profile=profile, progress=False, **kw)
            values[how] = score(model, test)
        rows.append(
            {
                "what": f"{name}: class defaults + fit defaults vs the chapter's recipe",
                "ours": values["defaults"],
                "peer": values["recipe"],
                "unit": unit,
                "goal": f"within {TOLERANCE:.0%} of the recipe",
                "peer_name": "chapter's recipe",
            }
        )
    return rows
