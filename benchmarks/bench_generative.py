"""Benchmarks of chapters 06-07: quality and cost of PixelCNN and the VAE on binarised 8×8 digits.

Quality rows (lower is better unless marked), all on the 297 held-out test digits,
binarised once by Bernoulli draws (``digits(split="test", binarize="stochastic")``):

- PixelCNN test NLL in nats/image against the independent-pixel model (the peer, fitted to
  the training grey levels); the issue quotes about 24.7 and 27.3;
- VAE (z = 8): −ELBO and the importance-weighted NLL (K = 1000), each against the
  independent-pixel model; the issue quotes about 25.8 and 25.4;
- samples: class coverage of 500 samples (higher is better; peer: 10 classes) and the
  Fréchet distance in the evaluation classifier's features against the real-vs-real value
  at the same N (the peer, ``frechet_floor``);
- cost: training time of the profile's run (peer: the 2-minute budget of a quick training
  cell, not a measurement) and the time of one PixelCNN sample against one forward pass.

The models are trained exactly as in chapters 06 and 07, so the checkpoint cache makes a
second run (or a run after the chapters) fast; ``History.seconds`` is the original training
time. Timings on a shared CPU are inflated by the sharing.
"""

from __future__ import annotations

import time

QUICK_BUDGET_S = 120.0


def _pixelcnn_rows(profile, train, test, indep):
    import torch

    import pgm_lab as pl
    from pgm_lab.models import pixelcnn
    from pgm_lab.models.pixelcnn import PixelCNN, sampling_cost

    torch.manual_seed(0)
    model = PixelCNN()
    hist = pl.train.fit(model, train, profile=profile, **pixelcnn.TRAINING)
    with torch.no_grad():
        nll = float(-model.log_prob(test.tensors[0].to(model.device_of())).mean())
    n = 500 if profile != "smoke" else 50
    samples = model.sample(n, generator=torch.Generator().manual_seed(0)).cpu()
    score = pl.metrics.score_samples(samples, binarize="stochastic")
    n_cost = 100 if profile != "smoke" else 8
    cost = sampling_cost(model, n=n_cost)
    d = test.tensors[0][0].numel()
    return [
        {
            "what": "PixelCNN test NLL",
            "ours": nll,
            "peer": indep,
            "unit": "nats/image",
            "peer_name": "independent pixels",
            "goal": "<= 24.7 (issue); indep. 27.3",
        },
        {
            "what": "PixelCNN test NLL",
            "ours": pl.metrics.nll_to_bits_per_dim(nll, d),
            "peer": pl.metrics.nll_to_bits_per_dim(indep, d),
            "unit": "bits/dim",
            "peer_name": "independent pixels",
            "goal": "below the peer",
        },
        {
            "what": f"PixelCNN sample coverage (N={n})",
            "ours": score["coverage"],
            "peer": 10,
            "unit": "classes",
            "higher_is_better": True,
            "goal": "10 of 10",
        },
        {
            "what": f"PixelCNN Fréchet (N={n})",
            "ours": score["frechet"],
            "peer": score["frechet_floor"],
            "unit": "classifier feat.",
            "peer_name": "real vs real",
            "goal": "near the floor",
        },
        {
            "what": "PixelCNN training",
            "ours": hist.seconds,
            "peer": QUICK_BUDGET_S,
            "unit": "s",
            "peer_name": "2-min budget",
            "goal": "quick <= 120 s",
        },
        {
            "what": f"PixelCNN sampling (batch of {n_cost})",
            "ours": cost["sample_s"],
            "peer": cost["forward_s"],
            "unit": "s",
            "peer_name": "one forward pass",
            "goal": "H·W passes: slow, as on the slide",
        },
    ]


def _vae_rows(profile, train, test, indep):
    import torch

    import pgm_lab as pl
    from pgm_lab.models import vae
    from pgm_lab.models.vae import VAE

    torch.manual_seed(0)
    model = VAE(latent_dim=8)
    hist = pl.train.fit(model, train, profile=profile, **vae.TRAINING)
    x = test.tensors[0].to(model.device_of())
    g = torch.Generator().manual_seed(0)
    k = 1000 if profile != "smoke" else 50
    with torch.no_grad():
        elbo = float(model.elbo_terms(x, n_samples=100, generator=g)["elbo"].mean())
        iw = float(model.iw_log_likelihood(x, k=k, generator=g).mean())
    n = 500 if profile != "smoke" else 50
    score = pl.metrics.score_samples(model.sample(n, generator=torch.Generator().manual_seed(0)).cpu())
    return [
        {
            "what": "VAE z=8 test -ELBO",
            "ours": -elbo,
            "peer": indep,
            "unit": "nats/image",
            "peer_name": "independent pixels",
            "goal": "~25.8 (issue)",
        },
        {
            "what": f"VAE z=8 test IW NLL (K={k})",
            "ours": -iw,
            "peer": indep,
            "unit": "nats/image",
            "peer_name": "independent pixels",
            "goal": "~25.4 (issue)",
        },
        {
            "what": f"VAE sample coverage (N={n})",
            "ours": score["coverage"],
            "peer": 10,
            "unit": "classes",
            "higher_is_better": True,
            "goal": "10 of 10",
        },
        {
            "what": f"VAE Fréchet (N={n})",
            "ours": score["frechet"],
            "peer": score["frechet_floor"],
            "unit": "classifier feat.",
            "peer_name": "real vs real",
            "goal": "near the floor (blur costs)",
        },
        {
            "what": "VAE training",
            "ours": hist.seconds,
            "peer": QUICK_BUDGET_S,
            "unit": "s",
            "peer_name": "2-min budget",
            "goal": "quick <= 120 s",
        },
    ]


def bench(profile: str) -> list[dict]:
    import pgm_lab as pl

    t0 = time.perf_counter()
    train = pl.data.digits()
    test = pl.data.digits(split="test", binarize="stochastic")
    indep = pl.metrics.independent_bernoulli_nll(train.tensors[0], test.tensors[0])
    rows = _pixelcnn_rows(profile, train, test, indep) + _vae_rows(profile, train, test, indep)
    for r in rows:
        r.setdefault("note", f"profile={profile}; bench wall {time.perf_counter() - t0:.0f} s")
    return rows
