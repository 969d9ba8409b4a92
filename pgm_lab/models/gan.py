"""Generative adversarial networks (生成对抗网络; see chapter 09, conditional form chapter 10).

Two networks play a game (Goodfellow et al. 2014): a generator G_θg maps noise z ~ N(0, I) to
fake data, a discriminator D_θd(x) ∈ (0, 1) is a binary classifier, "real" vs "fake". With the
cross-entropy loss the value function is

    V(D, G) = E_{x~p_data} log D(x) + E_{z~p(z)} log(1 − D(G(z))),     min_θg max_θd V.

Training alternates (交替优化): a gradient-ascent step on V for D, then a step for G. Minimising
log(1 − D(G(z))) has vanishing gradients (梯度消失) when D confidently rejects the fakes, so the
generator's objective is usually replaced by the *non-saturating* max_θg E log D(G(z)).

The discriminators here return logits l, D = sigmoid(l), so log D = −softplus(−l) and
log(1 − D) = −softplus(l) are computed stably. Image models are DCGAN-style (Radford et al. 2016):
strided (transposed) convolutions, batch norm in G, LeakyReLU in D, tanh output on [−1, 1],
mapped to [0, 1] by ``sample``. Vector models (the 2-D toy sets) use MLPs and raw outputs.
The conditional GAN (Mirza & Osindero 2014) feeds the label to both players.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import recipes
from .base import GenerativeModel, ModelConfig

LOSSES = ("minimax", "nonsaturating")

# -- the objective ---------------------------------------------------------------------------


def value_function(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """V(D, G) = mean log D(x) + mean log(1 − D(G(z))) from discriminator logits (D = sigmoid(l))."""
    return F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−V(D, G): minimising it is the discriminator's gradient ascent on V (binary cross-entropy
    with label 1 for real data and 0 for fakes)."""
    return -value_function(real_logits, fake_logits)


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator's loss on D's logits for its fakes.

    - ``"minimax"``: E log(1 − D(G(z))), minimised (the slide's original objective);
      its derivative with respect to the logit is −D(G(z)), which vanishes as D(G(z)) → 0;
    - ``"nonsaturating"``: −E log D(G(z)) (maximise log D(G(z))); derivative −(1 − D(G(z))),
      largest exactly when D rejects the fakes.
    """
    if kind == "minimax":
        return F.logsigmoid(-fake_logits).mean()
    if kind == "nonsaturating":
        return -F.logsigmoid(fake_logits).mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def optimal_discriminator(p_data, p_g):
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), the best discriminator for a fixed generator.

    Works on numpy arrays or tensors of densities; where both densities are 0 it returns 1/2.
    """
    if torch.is_tensor(p_data) or torch.is_tensor(p_g):
        pd, pg = torch.as_tensor(p_data), torch.as_tensor(p_g)
        if bool((pd < 0).any() | (pg < 0).any()):
            raise ValueError("densities must be non-negative")
        tot = pd + pg
        return torch.where(tot > 0, pd / torch.where(tot > 0, tot, 1), torch.full_like(tot, 0.5))
    pd, pg = np.asarray(p_data, dtype=float), np.asarray(p_g, dtype=float)
    if (pd < 0).any() or (pg < 0).any():
        raise ValueError("densities must be non-negative")
    tot = pd + pg
    return np.where(tot > 0, pd / np.where(tot > 0, tot, 1), 0.5)


def mode_coverage(samples, centres, std: float, *, n_std: float = 3.0, min_share: float = 0.02) -> dict:
    """Count the modes of a Gaussian mixture that ``samples`` cover (see chapter 09).

    A sample is *good* if it lies within ``n_std`` standard deviations of its nearest centre;
    a mode is *covered* if it receives at least ``min_share`` of all samples as good ones
    (the counting of Metz et al. 2017). Returns ``covered`` (int), ``counts`` (per mode) and
    ``good`` (fraction of good samples).
    """
    x = np.asarray(samples.detach().cpu() if torch.is_tensor(samples) else samples, dtype=float)
    c = np.asarray(centres, dtype=float)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"samples (N, d) and centres (K, d) must share d, got {x.shape} and {c.shape}")
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    d = np.linalg.norm(x[:, None, :] - c[None, :, :], axis=2)  # (N, K)
    nearest = d.argmin(1)
    good = d[np.arange(len(x)), nearest] <= n_std * std
    counts = np.bincount(nearest[good], minlength=len(c))
    covered = int((counts >= max(1, min_share * len(x))).sum())
    return {"covered": covered, "counts": counts.tolist(), "good": float(good.mean()) if len(x) else 0.0}


# -- players for vectors ----------------------------------------------------------------------


class MLPGenerator(nn.Module):
    """G(z[, y]) for vectors: an MLP with ReLU hidden layers and a linear output."""

    def __init__(
        self, z_dim: int, out_dim: int, n_classes: int | None = None, hidden: int = 128, layers: int = 3
    ):
        super().__init__()
        self.n_classes = n_classes
        self.label_emb = nn.Embedding(n_classes, z_dim) if n_classes else None
        dims = [z_dim + (z_dim if n_classes else 0)] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_emb is not None:
            z = torch.cat([z, self.label_emb(y)], dim=1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D(x[, y]) for vectors, returning logits; LeakyReLU hidden layers.

    ``mbstd`` appends the minibatch standard deviation of the last hidden features (see
    :class:`DCDiscriminator`), so that D can see when a batch lacks diversity.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int | None = None,
        hidden: int = 128,
        layers: int = 3,
        *,
        mbstd: bool = False,
    ):
        super().__init__()
        self.n_classes = n_classes
        self.mbstd = mbstd
        dims = [in_dim + (n_classes or 0)] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            mods += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*mods)
        self.out = nn.Linear(dims[-1] + int(mbstd), 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            x = torch.cat([x, F.one_hot(y, self.n_classes).to(x.dtype)], dim=1)
        h = self.body(x)  # (B, hidden)
        if self.mbstd:
            std = h.std(0, unbiased=False).mean() if h.shape[0] > 1 else h.new_zeros(())
            h = torch.cat([h, std.expand(h.shape[0], 1)], dim=1)
        return self.out(h).squeeze(1)  # (B,) logits


# -- players for images (DCGAN-style) -------------------------------------------------------


class DCGenerator(nn.Module):
    """DCGAN generator: z[, label embedding] → linear → (4b, H/4, W/4) → two stride-2 transposed
    convolutions with batch norm and ReLU → tanh image (C, H, W) in [−1, 1]."""

    def __init__(self, image_shape, z_dim: int, n_classes: int | None = None, base: int = 32):
        super().__init__()
        c, h, w = image_shape
        self.shape0 = (4 * base, h // 4, w // 4)
        self.n_classes = n_classes
        self.label_emb = nn.Embedding(n_classes, z_dim) if n_classes else None
        z_in = z_dim + (z_dim if n_classes else 0)
        self.project = nn.Sequential(
            nn.Linear(z_in, math.prod(self.shape0)), nn.BatchNorm1d(math.prod(self.shape0)), nn.ReLU()
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * base, 2 * base, 4, stride=2, padding=1),  # (2b, H/2, W/2)
            nn.BatchNorm2d(2 * base),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * base, base, 4, stride=2, padding=1),  # (b, H, W)
            nn.BatchNorm2d(base),
            nn.ReLU(),
            nn.Conv2d(base, c, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_emb is not None:
            z = torch.cat([z, self.label_emb(y)], dim=1)
        h = self.project(z).view(-1, *self.shape0)
        return self.net(h)


class DCDiscriminator(nn.Module):
    """DCGAN discriminator: two stride-2 convolutions with LeakyReLU(0.2) → linear logit.

    ``mbstd`` appends the *minibatch standard deviation* (Karras et al. 2018) as an extra feature
    channel: the average over features of their standard deviation across the batch. A batch of
    fakes that all look alike then differs visibly from a batch of real data, which counters
    mode collapse. ``spectral`` wraps every layer in spectral normalisation (Miyato et al. 2018),
    which limits how sharply D can change and steadies training.

    A conditional discriminator receives the label as one-hot constant channels beside the image
    and, in addition, a projection term ⟨embed(y), features(x)⟩ (Miyato & Koyama 2018) that lets it
    judge "is this a good image *of class y*".
    """

    def __init__(
        self,
        image_shape,
        n_classes: int | None = None,
        base: int = 32,
        *,
        mbstd: bool = True,
        spectral: bool = False,
    ):
        super().__init__()
        c, h, w = image_shape
        self.n_classes = n_classes
        self.mbstd = mbstd
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        c_in = c + (n_classes or 0)
        self.features = nn.Sequential(
            sn(nn.Conv2d(c_in, base, 4, stride=2, padding=1)),  # (b, H/2, W/2)
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(base, 2 * base, 4, stride=2, padding=1)),  # (2b, H/4, W/4)
            nn.LeakyReLU(0.2),
        )
        n_feat = (2 * base + int(mbstd)) * (h // 4) * (w // 4)
        self.out = sn(nn.Linear(n_feat, 1))
        self.embed = nn.Embedding(n_classes, n_feat) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            onehot = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, onehot.expand(-1, -1, *x.shape[2:])], dim=1)
        f = self.features(x)  # (B, 2b, H/4, W/4)
        if self.mbstd:
            std = f.std(0, unbiased=False).mean() if f.shape[0] > 1 else f.new_zeros(())
            f = torch.cat([f, std.expand(f.shape[0], 1, *f.shape[2:])], dim=1)
        f = f.flatten(1)
        logit = self.out(f).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * f).sum(1)
        return logit  # (B,)


def _dcgan_init(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), as in Radford et al. (2016)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# -- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GANConfig(ModelConfig):
    """Sizes and game settings of :class:`GAN` (see its docstring for each field's role).

    ``z_dim=None``, ``mbstd=None`` and ``ema="auto"`` resolve by data kind: 32, on and 0.99 for
    images; 2, off and None (no moving average) for vectors.
    """

    loss: str = "nonsaturating"
    z_dim: int | None = None
    hidden: int = 128
    layers: int = 3
    base: int = 32
    d_steps: int = 1
    g_steps: int = 1
    d_warmup: int = 0
    beta1: float = 0.5
    mbstd: bool | None = None
    spectral: bool = False
    ema: float | str | None = "auto"

    def __post_init__(self):
        super().__post_init__()
        self._resolve_auto()
        if self.ema is not None and (isinstance(self.ema, str) or not 0 < self.ema < 1):
            raise ValueError(f"ema must be a decay in (0, 1), None or 'auto', got {self.ema!r}")
        self.check_choice("loss", LOSSES)
        self.check_positive("z_dim", "hidden", "layers", "base", "d_steps", "g_steps")
        self.check_positive("d_warmup", allow_zero=True)
        self.check_range("beta1", 0.0, 1.0)
        if self.is_image and (self.image_shape[1] % 4 or self.image_shape[2] % 4):
            h, w = self.image_shape[1:]
            raise ValueError(f"image_shape: DCGAN image height and width must be divisible by 4, got {h}×{w}")

    def _resolve_auto(self) -> None:
        """Fill in the defaults that depend on the data kind (images or vectors)."""
        if self.ema == "auto":  # on for images (where it measurably helps), off for the 2-D toy data
            self._set("ema", 0.99 if self.is_image else None)
        if self.z_dim is None:
            self._set("z_dim", 32 if self.is_image else 2)
        if self.mbstd is None:  # on by default for images, off for the 2-D toy data of chapter 09
            self._set("mbstd", self.is_image)
        self._set("mbstd", bool(self.mbstd))
        self._set("spectral", bool(self.spectral))
        if self.ema is not None and not isinstance(self.ema, str):
            self._set("ema", float(self.ema))

    def as_dict(self) -> dict:
        """The fields that shape this GAN: the players' sizes of its data kind, and the
        optional settings only where they differ from their defaults."""
        out = super().as_dict()
        optional = {"d_warmup": 0, "g_steps": 1, "ema": None}
        for name, default in optional.items():
            if out[name] == default:
                del out[name]
        unused = ("hidden", "layers") if self.is_image else ("base", "spectral")
        for name in unused:
            del out[name]
        return out


class GAN(GenerativeModel):
    """A GAN trained by alternating updates inside ``pgm_lab.train.fit`` (see chapter 09).

    ``GAN(image_shape=(1, 8, 8), n_classes=None, loss="nonsaturating", z_dim=..., ...)`` (sizes in
    :class:`GANConfig`): images
    (C, H, W) with H and W divisible by 4 get the DCGAN players (``base`` channels); vectors (D,)
    get MLPs (``hidden``, ``layers``). ``loss`` is the generator's objective, ``"minimax"`` or
    ``"nonsaturating"``; ``d_steps`` discriminator updates precede ``g_steps`` generator updates;
    ``d_warmup`` training steps at the start update only the discriminator (a head start that
    makes D confident before G moves, as in chapter 09's vanishing-gradient experiment);
    ``beta1`` is Adam's first-moment decay (0.5 as in DCGAN). ``mbstd`` appends the minibatch
    standard deviation to D's features (default: on for images, off for vectors); image
    discriminators may also use spectral normalisation (``spectral``); see :class:`DCDiscriminator`.
    With ``n_classes`` both players see the label (see :class:`ConditionalGAN`).

    ``ema`` (a decay such as 0.99; ``"auto"``: 0.99 for images, off for vectors; None: off) samples
    from an exponential moving average of G's weights (Yazıcı et al. 2019), which smooths the
    oscillations of GAN training.

    ``training_step`` logs ``loss_D`` (−V), ``loss_G``, ``D_real`` and ``D_fake`` (mean D on real
    data and on fakes) and ``grad_G`` (the norm of the generator's gradient).
    """

    Config = GANConfig

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        cfg = self.cfg
        self.loss_kind, self.z_dim, self.beta1, self.ema = cfg.loss, cfg.z_dim, cfg.beta1, cfg.ema
        self.d_steps, self.g_steps, self.d_warmup = cfg.d_steps, cfg.g_steps, cfg.d_warmup
        self.is_image = cfg.is_image
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        if self.is_image:
            self.G = DCGenerator(self.image_shape, cfg.z_dim, self.n_classes, cfg.base)
            self.D = DCDiscriminator(
                self.image_shape, self.n_classes, cfg.base, mbstd=cfg.mbstd, spectral=cfg.spectral
            )
            self.G.apply(_dcgan_init)  # D keeps PyTorch's default initialisation
        else:
            self.G = MLPGenerator(cfg.z_dim, self.image_shape[0], self.n_classes, cfg.hidden, cfg.layers)
            self.D = MLPDiscriminator(
                self.image_shape[0], self.n_classes, cfg.hidden, cfg.layers, mbstd=cfg.mbstd
            )
        kind = "GAN/images" if self.is_image else "GAN/vectors"
        self.default_steps, self.default_fit = recipes.STEPS[kind], recipes.FIT[kind]
        if self.ema is not None:  # a moving average of G's weights, used for sampling
            self.G_ema = copy.deepcopy(self.G).requires_grad_(False)

    @property
    def sampler(self) -> nn.Module:
        """The generator used by :meth:`sample`: the EMA copy when ``ema`` is set, else ``G``."""
        return self.G_ema if self.ema is not None else self.G

    def _update_ema(self) -> None:
        with torch.no_grad():
            k = int(self.steps_done)
            d = min(self.ema, (1 + k) / (10 + k))
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.lerp_(p.detach(), 1 - d)
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)  # batch-norm statistics

    # -- data space <-> the players' space ------------------------------------------------
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1 if self.is_image else x

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) / 2).clamp(0, 1) if self.is_image else x

    def discriminate(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """D's logits for data ``x`` given in data space (images in [0, 1]); D(x) = sigmoid(logit)."""
        self.check_images(x)
        return self.D(self.to_model_space(x), self.check_labels(x.shape[0], labels))

    def generate(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """G(z) in data space (images in [0, 1], differentiable, not clamped for vectors)."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be shaped (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.to_data_space(self.G(z, self.check_labels(z.shape[0], labels)))

    # -- training: alternating optimisation --------------------------------------------------
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        betas = (self.beta1, 0.999)
        return [
            torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas),
            torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas),
        ]

    def training_step(self, x, y, optimizers) -> dict[str, float]:
        opt_g, opt_d = optimizers
        x = self.to_model_space(x)
        n = x.shape[0]
        y = self.check_labels(n, y)
        # 1) discriminator: gradient ascent on V (descent on −V), generator fixed
        for _ in range(self.d_steps):
            with torch.no_grad():
                fake = self.G(torch.randn(n, self.z_dim, device=x.device), y)
            real_logits, fake_logits = self.D(x, y), self.D(fake, y)
            loss_d = discriminator_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        # 2) generator: descent on its loss, discriminator fixed (only G's optimiser steps);
        #    during the first d_warmup steps the gradient is computed (and logged) but not applied
        for _ in range(self.g_steps):
            fake = self.G(torch.randn(n, self.z_dim, device=x.device), y)
            loss_g = generator_loss(self.D(fake, y), self.loss_kind)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            grad_g = torch.sqrt(
                sum((p.grad.float() ** 2).sum() for p in self.G.parameters() if p.grad is not None)
            )
            if int(self.steps_done) >= self.d_warmup:
                opt_g.step()
                if self.ema is not None:
                    self._update_ema()
        self.steps_done += 1
        return {
            "loss_D": float(loss_d.detach()),
            "loss_G": float(loss_g.detach()),
            "D_real": float(torch.sigmoid(real_logits.detach()).float().mean()),
            "D_fake": float(torch.sigmoid(fake_logits.detach()).float().mean()),
            "grad_G": float(grad_g),
        }

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels=None,
        *,
        generator: torch.Generator | int | None = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``n`` samples G(z), z ~ N(0, I): images in [0, 1] (n, C, H, W) or raw vectors (n, D).

        ``generator`` (a ``torch.Generator`` or int seed) or an explicit ``z`` (n, z_dim) makes
        it reproducible. Batch norm uses its running statistics (the model is put in eval mode
        for the draw and restored afterwards).
        """
        n = self.check_n(n)
        y = self.check_labels(n, labels)
        dev = self.device_of()
        if z is None:
            generator = self.as_generator(generator)
            if generator is None:
                z = torch.randn(n, self.z_dim, device=dev)
            else:
                z = torch.randn(n, self.z_dim, generator=generator).to(dev)
        elif tuple(z.shape) != (n, self.z_dim):
            raise ValueError(f"z must be shaped ({n}, {self.z_dim}), got {tuple(z.shape)}")
        was_training = self.training
        self.eval()
        try:
            out = self.to_data_space(self.sampler(z.to(dev), y).float())
        finally:
            self.train(was_training)
        return out


class ConditionalGAN(GAN):
    """A class-conditional GAN (cGAN, see chapter 10): G(z, y) and D(x, y) both see the label.

    ``ConditionalGAN(image_shape=(1, 8, 8), n_classes=10, ...)``; ``n_classes`` is required.
    The generator concatenates a learned label embedding to z; the discriminator gets the
    label as one-hot channels and a projection term. Fakes are generated for the labels of the
    real batch. ``sample(n, labels)`` draws images of the requested classes.
    """

    requires_classes = True  # fit's defaults: the GAN's of its data kind (lr 2e-3 on images)


__all__ = [
    "GAN",
    "LOSSES",
    "ConditionalGAN",
    "DCDiscriminator",
    "DCGenerator",
    "GANConfig",
    "MLPDiscriminator",
    "MLPGenerator",
    "discriminator_loss",
    "generator_loss",
    "mode_coverage",
    "optimal_discriminator",
    "value_function",
]
