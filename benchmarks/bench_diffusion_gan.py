"""Diffusion models and GANs (chapters 08 and 09): sample quality, sampling speed, training time.

Each model is trained with its chapter's recipe through ``pgm_lab.train.fit`` (a cached checkpoint
is reused and its recorded training time reported) and scored on a fixed number of samples
(20 in smoke, 200 in quick, 500 in full) by the evaluation classifier:

- Fréchet distance of classifier features to the held-out digits. Peer: the real-vs-real floor
  at the same sample count (lower is better: the ratio floor/ours must stay above 1/3);
- classes covered (out of 10). Peer: the same count on real test digits;
- DDIM with 50 steps against Algorithm 2 with 1,000 steps: sampling time (ratio = speed-up) and
  Fréchet distance side by side;
- modes of the 8-Gaussian ring covered by the plain non-saturating GAN (median over three seeds,
  reported), by the stabilised one (minibatch standard deviation in D, moving average of G;
  goal: the worst of three seeds >= 6) and by the run with five generator steps per discriminator
  step (goal: the best of three seeds still collapsed, <= 2). Peer: the real ring samples;
- training time in seconds. Peer: the budget of a training cell in ``quick`` (120 s on a 2-core
  CPU). The process CPU time is reported beside it: other jobs on a shared machine inflate the
  wall-clock time, not the CPU time.
"""

from __future__ import annotations

import time

#: quick-profile budget for one training cell (seconds), the issue's goal
TRAIN_BUDGET_S = 120.0


def _train(model, data, **kw):
    import pgm_lab as pl

    cpu0 = time.process_time()
    hist = pl.train.fit(model, data, progress=False, **kw)
    return hist, time.process_time() - cpu0


def _time_row(name, hist, cpu):
    how = "cached, as recorded" if hist.loaded else f"trained now, {cpu:.0f} s CPU"
    return {
        "what": f"{name}: training time ({how})",
        "ours": hist.seconds,
        "peer": TRAIN_BUDGET_S,
        "unit": "s",
        "goal": "<= 120 s in quick",
        "peer_name": "quick budget",
    }


def _quality_rows(name, score, real_coverage):
    return [
        {
            "what": f"{name}: Fréchet distance ({score['n']} samples)",
            "ours": score["frechet"],
            "peer": score["frechet_floor"],
            "unit": "FD",
            "goal": "<= 3x floor (ratio >= 0.33)",
            "peer_name": "real-vs-real floor",
        },
        {
            "what": f"{name}: classes covered",
            "ours": score["coverage"],
            "peer": real_coverage,
            "unit": "classes",
            "goal": "10 of 10",
            "peer_name": "real digits",
            "higher_is_better": True,
        },
    ]


def bench(profile: str) -> list[dict]:
    import torch

    import pgm_lab as pl
    from pgm_lab.models.diffusion import DDPM
    from pgm_lab.models.gan import GAN, mode_coverage

    n = pl.pick(smoke=20, quick=200, full=500, profile_name=profile)
    digits = pl.data.digits()
    real_test = pl.data.digits(split="test").tensors[0]
    real_cov = pl.metrics.score_samples(real_test[:n])["coverage"]
    rows: list[dict] = []

    # -- chapter 08: DDPM on digits, Algorithm 2 against DDIM ---------------------------------
    torch.manual_seed(0)
    ddpm = DDPM((1, 8, 8), T=1000)
    hist, cpu = _train(
        ddpm,
        digits,
        profile=profile,
        steps=pl.pick(smoke=20, quick=1000, full=20000, profile_name=profile),
        lr=2e-3,
    )
    rows.append(_time_row("DDPM digits", hist, cpu))
    start = time.perf_counter()
    anc = ddpm.sample(n, generator=0)
    t_anc = time.perf_counter() - start
    start = time.perf_counter()
    ddim = ddpm.sample(n, method="ddim", steps=50, generator=0)
    t_ddim = time.perf_counter() - start
    s_anc, s_ddim = pl.metrics.score_samples(anc), pl.metrics.score_samples(ddim)
    rows += _quality_rows("DDPM digits, Algorithm 2 (1000 steps)", s_anc, real_cov)
    rows += _quality_rows("DDPM digits, DDIM (50 steps)", s_ddim, real_cov)
    rows.append(
        {
            "what": f"DDPM sampling time for {n} digits: DDIM 50 steps",
            "ours": t_ddim,
            "peer": t_anc,
            "unit": "s",
            "goal": "much faster at similar FD",
            "peer_name": "Algorithm 2, 1000 steps",
        }
    )
    del ddpm
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    # -- chapter 09: GANs on the ring ----------------------------------------------------------
    ring_x = pl.data.toy2d("ring", n=4000).tensors[0]
    centres = pl.data.toy2d_centres("ring")
    real_modes = mode_coverage(pl.data.toy2d("ring", n=1000, seed=1).tensors[0], centres, std=0.05)["covered"]
    ring_steps = pl.pick(smoke=30, quick=2500, full=2500, profile_name=profile)
    runs = [  # (name, extra GAN arguments, steps, summary over seeds, goal)
        ("non-saturating GAN, plain", {}, ring_steps, "median", "reported (chapter 09, section 3)"),
        ("non-saturating GAN, mbstd + EMA", {"mbstd": True, "ema": 0.99}, ring_steps, "min", ">= 6 of 8"),
        (
            "5 G steps per D step (collapse)",
            {"g_steps": 5},
            pl.pick(smoke=30, quick=1000, full=1000, profile_name=profile),
            "max",
            "collapses: <= 2",
        ),
    ]
    seeds = pl.pick(smoke=[0], quick=[0, 1, 2], full=[0, 1, 2], profile_name=profile)
    for name, extra, steps, summary, goal in runs:
        covered, cpu_total, cached = [], 0.0, True
        for seed in seeds:
            torch.manual_seed(seed)  # GAN training depends strongly on the initial weights
            gan = GAN((2,), loss="nonsaturating", **extra)
            hist, cpu = _train(
                gan,
                ring_x,
                profile=profile,
                steps=steps,
                lr=1e-3,
                batch_size=256,
                snapshot=lambda m: m.sample(1000, generator=0),
                snapshot_every=max(1, steps // 10),
                seed=seed,
            )
            covered.append(mode_coverage(gan.sample(1000, generator=0), centres, std=0.05)["covered"])
            cpu_total += cpu
            cached &= hist.loaded
        value = {"median": sorted(covered)[len(covered) // 2], "min": min(covered), "max": max(covered)}[
            summary
        ]
        rows.append(
            {
                "what": f"ring, {name}: modes covered, {summary} of seeds {seeds} = {covered} "
                f"({'cached' if cached else f'{cpu_total:.0f} s CPU'})",
                "ours": value,
                "peer": real_modes,
                "unit": "modes",
                "goal": goal,
                "peer_name": "real ring samples",
                "higher_is_better": True,
            }
        )

    # -- chapter 09: DCGAN on digits ------------------------------------------------------------
    torch.manual_seed(0)
    dcgan = GAN((1, 8, 8), loss="nonsaturating", mbstd=True, ema=0.99)
    z_fixed = torch.randn(16, dcgan.z_dim, generator=torch.Generator().manual_seed(0))
    hist, cpu = _train(
        dcgan,
        digits,
        profile=profile,
        steps=pl.pick(smoke=20, quick=1500, full=6000, profile_name=profile),
        lr=2e-3,
        batch_size=128,
        snapshot=lambda m: m.sample(16, z=z_fixed),
        snapshot_every=pl.pick(smoke=10, quick=250, full=1000, profile_name=profile),
    )
    rows.append(_time_row("DCGAN digits", hist, cpu))
    rows += _quality_rows("DCGAN digits", pl.metrics.score_samples(dcgan.sample(n, generator=0)), real_cov)
    return rows


if __name__ == "__main__":
    import sys

    import pgm_lab as pl

    for row in bench(pl.profile(sys.argv[1] if len(sys.argv) > 1 else None).name):
        print(row)
