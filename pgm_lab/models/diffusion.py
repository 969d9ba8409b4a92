"""Denoising diffusion probabilistic models (扩散模型; see chapter 08, conditional form chapter 10).

Notation of the slides (Ho et al. 2020; Sohl-Dickstein et al. 2015):

- forward process (前向扩散过程) q(x_t | x_{t−1}) = N(√(1−β_t) x_{t−1}, β_t I), t = 1…T, i.e.
  x_t = √(1−β_t) x_{t−1} + √β_t ε_t with ε_t ~ N(0, I);
- α_t = 1 − β_t and ᾱ_t = Π_{i=1}^t α_i give the closed form
  q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), i.e. x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε  (:meth:`NoiseSchedule.q_sample`);
- training (Algorithm 1) minimises L_simple = E_{x_0, ε, t ~ U{1..T}} ‖ε − ε_θ(x_t, t)‖²;
- sampling (Algorithm 2) starts at x_T ~ N(0, I) and applies, for t = T…1,
  x_{t−1} = (x_t − (1−α_t)/√(1−ᾱ_t) ε_θ(x_t, t)) / √α_t + σ_t z, with z = 0 at t = 1;
- DDIM (Song et al. 2021), an extra beyond the slides: a deterministic sampler that visits only a
  subsequence of the steps (50 instead of 1,000) with the same trained ε_θ.

Images in [0, 1] are mapped to [−1, 1] before diffusing (so that x_T ~ N(0, I) has the data's
scale) and back, clamped to [0, 1], by ``sample``. Vector data (the 2-D toy sets) is used raw.

Classifier-free guidance (Ho & Salimans 2022) in :class:`ConditionalDDPM`: the network is
trained with the label replaced by a null class ∅ with probability ``p_uncond``; at sampling
time, with guidance weight w,

    ε̃_θ(x_t, t, y) = (1 + w) ε_θ(x_t, t, y) − w ε_θ(x_t, t, ∅),

so w = 0 is the plain conditional model, w = −1 the unconditional one, and w > 0 pushes the
samples towards what distinguishes class y (sharper classes, less diversity).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from .. import recipes
from .base import GenerativeModel, ModelConfig
from .unet import MLPDenoiser, UNet

# -- β schedules ------------------------------------------------------------------------


def check_betas(betas) -> torch.Tensor:
    """Validate a schedule β_1…β_T: a non-empty 1-D sequence with every β_t in the open interval (0, 1)."""
    b = torch.as_tensor(betas, dtype=torch.float64)
    if b.dim() != 1 or b.numel() == 0:
        raise ValueError(f"betas must be a non-empty 1-D sequence β_1..β_T, got shape {tuple(b.shape)}")
    bad = ~torch.isfinite(b) | (b <= 0) | (b >= 1)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(f"every β_t must lie in (0, 1); β_{i + 1} = {float(b[i])!r}")
    return b


def linear_betas(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Linearly spaced β_1 = ``beta_1`` … β_T = ``beta_T`` (the schedule of Ho et al. 2020)."""
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if T == 1:
        return check_betas([beta_T])
    return check_betas(torch.linspace(beta_1, beta_T, int(T), dtype=torch.float64))


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal (2021): ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2).

    β_t = 1 − ᾱ_t / ᾱ_{t−1}, clipped at ``max_beta`` so that the last step stays below 1.
    """
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
    steps = torch.arange(int(T) + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min=1e-8, max=max_beta)
    return check_betas(betas)


def make_betas(schedule: str = "linear", T: int = 1000, **kwargs) -> torch.Tensor:
    """``"linear"`` or ``"cosine"`` schedule of length T."""
    if schedule == "linear":
        return linear_betas(T, **kwargs)
    if schedule == "cosine":
        return cosine_betas(T, **kwargs)
    raise ValueError(f"unknown schedule {schedule!r}: use 'linear' or 'cosine'")


class NoiseSchedule(nn.Module):
    """β_t, α_t = 1 − β_t and ᾱ_t = Π_{i≤t} α_i for t = 1…T, with the forward process (see chapter 08).

    Steps are 1-based as on the slides: ``alpha_bar(t)`` is ᾱ_t and ``alpha_bar(0)`` is ᾱ_0 = 1.
    An ``nn.Module`` only so that its tensors follow the model to the GPU.
    """

    def __init__(self, betas):
        super().__init__()
        b = check_betas(betas)
        a = 1 - b
        a_bar = torch.cumprod(a, 0)
        # index 0 holds the t = 0 convention (β_0 = 0, ᾱ_0 = 1), index t holds step t
        self.register_buffer("_betas", torch.cat([b.new_zeros(1), b]).float(), persistent=False)
        self.register_buffer("_alphas", torch.cat([b.new_ones(1), a]).float(), persistent=False)
        self.register_buffer("_alpha_bars", torch.cat([b.new_ones(1), a_bar]).float(), persistent=False)

    @classmethod
    def make(cls, schedule: str = "linear", T: int = 1000, **kwargs) -> NoiseSchedule:
        return cls(make_betas(schedule, T, **kwargs))

    @property
    def T(self) -> int:
        return self._betas.numel() - 1

    @property
    def betas(self) -> torch.Tensor:
        """β_1…β_T, shape (T,)."""
        return self._betas[1:]

    @property
    def alphas(self) -> torch.Tensor:
        """α_1…α_T, shape (T,)."""
        return self._alphas[1:]

    @property
    def alpha_bars(self) -> torch.Tensor:
        """ᾱ_1…ᾱ_T, shape (T,); strictly decreasing."""
        return self._alpha_bars[1:]

    def check_t(self, t, *, allow_zero: bool = False) -> torch.Tensor:
        """Steps as a long tensor; ``ValueError`` unless every t lies in 1…T (0…T with ``allow_zero``)."""
        tt = torch.as_tensor(t, device=self._betas.device)
        if tt.is_floating_point():
            if not bool(torch.all(tt == tt.round())):
                raise ValueError(f"t must be integer steps, got {t!r}")
        elif tt.dtype == torch.bool or tt.is_complex():
            raise ValueError(f"t must be integer steps, got dtype {tt.dtype}")
        tt = tt.long().reshape(-1)
        low = 0 if allow_zero else 1
        if tt.numel() == 0:
            raise ValueError("t is empty")
        if int(tt.min()) < low or int(tt.max()) > self.T:
            raise ValueError(
                f"t must lie in {low}..T = {low}..{self.T}, got values {int(tt.min())}..{int(tt.max())}"
            )
        return tt

    def _at(self, table: torch.Tensor, t, x: torch.Tensor, allow_zero=False) -> torch.Tensor:
        tt = self.check_t(t, allow_zero=allow_zero)
        if tt.numel() not in (1, x.shape[0]):
            raise ValueError(f"t must hold one step or one per sample ({x.shape[0]}), got {tt.numel()}")
        v = table[tt].to(x.dtype)
        return v.reshape(-1, *([1] * (x.dim() - 1)))  # broadcast over (C, H, W) or (D,)

    def beta(self, t) -> torch.Tensor:
        return self._betas[self.check_t(t)]

    def alpha(self, t) -> torch.Tensor:
        return self._alphas[self.check_t(t)]

    def alpha_bar(self, t) -> torch.Tensor:
        """ᾱ_t for steps t in 0…T (ᾱ_0 = 1)."""
        return self._alpha_bars[self.check_t(t, allow_zero=True)]

    def posterior_variance(self, t) -> torch.Tensor:
        """β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, the variance of q(x_{t−1} | x_t, x_0)."""
        tt = self.check_t(t)
        return (1 - self._alpha_bars[tt - 1]) / (1 - self._alpha_bars[tt]) * self._betas[tt]

    # -- the forward process ---------------------------------------------------------------
    def q_step(self, x_prev: torch.Tensor, t, eps: torch.Tensor | None = None, *, generator=None):
        """One step of the chain: x_t = √(1−β_t) x_{t−1} + √β_t ε_t."""
        if eps is None:
            eps = _randn(x_prev.shape, generator, x_prev.device, x_prev.dtype)
        b = self._at(self._betas, t, x_prev)
        return torch.sqrt(1 - b) * x_prev + torch.sqrt(b) * eps

    def q_sample(self, x0: torch.Tensor, t, eps: torch.Tensor | None = None, *, generator=None):
        """The closed form x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, a sample of q(x_t | x_0) in one step."""
        if eps is None:
            eps = _randn(x0.shape, generator, x0.device, x0.dtype)
        elif eps.shape != x0.shape:
            raise ValueError(f"eps must be shaped like x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
        a_bar = self._at(self._alpha_bars, t, x0)
        return torch.sqrt(a_bar) * x0 + torch.sqrt(1 - a_bar) * eps

    def forward_chain(self, x0: torch.Tensor, *, generator=None) -> torch.Tensor:
        """Iterate the chain step by step from x_0: returns (T+1, *x0.shape) holding x_0, x_1, …, x_T."""
        xs = [x0]
        for t in range(1, self.T + 1):
            xs.append(self.q_step(xs[-1], t, generator=generator))
        return torch.stack(xs)


def _randn(shape, generator, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise; drawn on the CPU when a CPU generator is given (reproducible anywhere)."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)


_as_generator = GenerativeModel.as_generator  # a torch.Generator from a generator, an int seed or None


# -- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DDPMConfig(ModelConfig):
    """Sizes and settings of :class:`DDPM`: the chain (``T`` steps, β ``schedule``), what the
    network predicts (``prediction``), σ_t of Algorithm 2 (``sigma``), the U-Net for images
    (``base``, ``mults``, ``scale_shift``) or the MLP for vectors (``hidden``, ``layers``), the
    label-dropout rate ``p_uncond`` of conditional models and the weight average ``ema``."""

    T: int = 1000
    schedule: str = "linear"
    prediction: str = "eps"
    sigma: str = "beta"
    base: int = 32
    mults: tuple[int, ...] = (1, 2)
    scale_shift: bool = True
    hidden: int = 128
    layers: int = 3
    p_uncond: float = 0.1
    ema: float | None = 0.995

    def __post_init__(self):
        super().__post_init__()
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema must be a decay in (0, 1) or None, got {self.ema!r}")
        self.check_choice("schedule", ("linear", "cosine"))
        self.check_choice("prediction", ("eps", "x_prev"))
        self.check_choice("sigma", ("beta", "posterior"))
        self.check_positive("T", "base", "hidden", "layers")
        self.check_range("p_uncond", 0.0, 1.0)
        self._set("mults", tuple(int(m) for m in self.mults))
        self._set("scale_shift", bool(self.scale_shift))

    def as_dict(self) -> dict:
        """The fields that shape this DDPM: the denoiser's sizes of its data kind, and
        ``p_uncond`` only for conditional models."""
        out = super().as_dict()
        unused = ("hidden", "layers") if self.is_image else ("base", "mults", "scale_shift")
        unused += () if self.n_classes is not None else ("p_uncond",)
        for name in unused:
            del out[name]
        return out


class DDPM(GenerativeModel):
    """A denoising diffusion probabilistic model (see chapter 08); conditional with ``n_classes``.

    ``DDPM(image_shape=(1, 8, 8), n_classes=None, T=1000, schedule="linear", ...)`` (sizes in
    :class:`DDPMConfig`). Images use a
    :class:`~pgm_lab.models.unet.UNet` (``base``, ``mults``, ``scale_shift``); vectors ``(D,)`` an
    :class:`~pgm_lab.models.unet.MLPDenoiser` (``hidden``, ``layers``).

    ``prediction="eps"`` (default) trains ε_θ with L_simple (Algorithm 1); ``prediction="x_prev"``
    trains the slide's first formulation, a network f_θ(x_t, t) regressing x_{t−1} from x_t on
    pairs of consecutive states of the forward chain (argmin_f Σ ‖f(x_t, t) − x_{t−1}‖²), which
    chapter 08 compares with ε-prediction.

    ``sigma="beta"`` uses σ_t² = β_t in Algorithm 2, ``"posterior"`` uses β̃_t (both are in Ho et al.).
    With ``n_classes`` the labels are dropped (replaced by the null class) with probability
    ``p_uncond`` during training so that classifier-free guidance works; see :class:`ConditionalDDPM`.
    """

    Config = DDPMConfig

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        cfg = self.cfg
        self.schedule = NoiseSchedule.make(cfg.schedule, cfg.T)
        self.prediction = cfg.prediction
        self.sigma_kind = cfg.sigma
        self.p_uncond = cfg.p_uncond if self.n_classes is not None else 0.0
        self.is_image = cfg.is_image
        if self.is_image:
            self.net = UNet(
                self.image_shape, self.n_classes, base=cfg.base, mults=cfg.mults, scale_shift=cfg.scale_shift
            )
        else:
            self.net = MLPDenoiser(self.image_shape[0], self.n_classes, hidden=cfg.hidden, layers=cfg.layers)
        self.default_steps = recipes.STEPS["DDPM/images" if self.is_image else "DDPM/vectors"]
        self.ema = cfg.ema
        if self.ema is not None:  # exponential moving average of the weights, used for sampling
            self.ema_net = copy.deepcopy(self.net).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @property
    def denoiser(self) -> nn.Module:
        """The network used for prediction and sampling: the EMA copy when ``ema`` is set, else ``net``."""
        return self.ema_net if self.ema is not None else self.net

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.net.parameters(), lr=lr)]

    def training_step(self, x, y, optimizers) -> dict[str, float]:
        """One gradient step on L_simple, then θ_EMA ← d θ_EMA + (1 − d) θ with d = min(ema, (1+k)/(10+k))."""
        logs = super().training_step(x, y, optimizers)
        if self.ema is not None:
            with torch.no_grad():
                k = int(self.ema_updates)
                d = min(self.ema, (1 + k) / (10 + k))  # short warm-up: early weights are forgotten fast
                for pe, p in zip(self.ema_net.parameters(), self.net.parameters()):
                    pe.lerp_(p.detach(), 1 - d)
                self.ema_updates += 1
        return logs

    @property
    def T(self) -> int:
        return self.schedule.T

    # -- data space <-> diffusion space --------------------------------------------------
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> [−1, 1]; vectors unchanged."""
        return x * 2 - 1 if self.is_image else x

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        """[−1, 1] -> images clamped to [0, 1]; vectors unchanged."""
        return ((x + 1) / 2).clamp(0, 1) if self.is_image else x

    def _check_x(self, x: torch.Tensor, what: str = "x_t") -> None:
        if (
            not torch.is_tensor(x)
            or x.dim() != 1 + len(self.image_shape)
            or tuple(x.shape[1:]) != self.image_shape
        ):
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{what} must be shaped (N, {', '.join(map(str, self.image_shape))}), got {got}")

    def _labels(self, n: int, labels) -> torch.Tensor | None:
        if self.n_classes is None:
            return self.check_labels(n, labels)
        if labels is None:
            return None  # null class: the unconditional prediction
        return self.check_labels(n, labels)

    # -- the network's prediction ----------------------------------------------------------
    def predict_noise(self, x_t: torch.Tensor, t, labels=None, *, guidance: float = 0.0) -> torch.Tensor:
        """ε̂ for x_t (in diffusion space, [−1, 1] for images) at steps t ∈ 1…T.

        Unconditional models take ``labels=None``. Conditional models give ε_θ(x_t, t, y) for
        labels y, ε_θ(x_t, t, ∅) for ``labels=None``, and with a guidance weight w
        ε̃ = (1 + w) ε_θ(x_t, t, y) − w ε_θ(x_t, t, ∅) (w = 0: conditional; w = −1: unconditional).
        An ``x_prev`` model's mean is converted: ε̂ = √(1−ᾱ_t) (x_t − √α_t f_θ(x_t, t)) / β_t.
        """
        self._check_x(x_t)
        tt = self.schedule.check_t(t)
        y = self._labels(x_t.shape[0], labels)
        if guidance != 0:
            if self.n_classes is None or y is None:
                raise ValueError("guidance needs a conditional model and labels")
            if self.p_uncond == 0:
                raise ValueError("guidance needs a model trained with label dropout (p_uncond > 0)")
            n = x_t.shape[0]
            t2 = tt.expand(n) if tt.numel() == 1 else tt
            null = torch.full_like(y, self.n_classes)
            both = self._raw_eps(torch.cat([x_t, x_t]), torch.cat([t2, t2]), torch.cat([y, null]))
            eps_c, eps_u = both[:n], both[n:]
            return (1 + guidance) * eps_c - guidance * eps_u
        return self._raw_eps(x_t, tt, y)

    def _raw_eps(self, x_t, t, y):
        out = self.denoiser(x_t, t, y)
        if self.prediction == "eps":
            return out
        a = self.schedule._at(self.schedule._alphas, t, x_t)
        a_bar = self.schedule._at(self.schedule._alpha_bars, t, x_t)
        b = self.schedule._at(self.schedule._betas, t, x_t)
        return torch.sqrt(1 - a_bar) * (x_t - torch.sqrt(a) * out) / b

    def predict_mean(self, x_t: torch.Tensor, t, labels=None, *, guidance: float = 0.0) -> torch.Tensor:
        """μ_θ(x_t, t) = (x_t − (1−α_t)/√(1−ᾱ_t) ε̂) / √α_t, the mean of p_θ(x_{t−1} | x_t)."""
        if self.prediction == "x_prev" and guidance == 0:
            self._check_x(x_t)
            return self.denoiser(x_t, self.schedule.check_t(t), self._labels(x_t.shape[0], labels))
        eps = self.predict_noise(x_t, t, labels, guidance=guidance)
        a = self.schedule._at(self.schedule._alphas, t, x_t)
        a_bar = self.schedule._at(self.schedule._alpha_bars, t, x_t)
        return (x_t - (1 - a) / torch.sqrt(1 - a_bar) * eps) / torch.sqrt(a)

    def sigma(self, t) -> torch.Tensor:
        """σ_t of Algorithm 2: √β_t (``sigma="beta"``) or √β̃_t (``sigma="posterior"``)."""
        if self.sigma_kind == "beta":
            return torch.sqrt(self.schedule.beta(t))
        return torch.sqrt(self.schedule.posterior_variance(t))

    # -- Algorithm 1 ---------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """L_simple = ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² averaged over the batch and the pixels,
        with t ~ U{1…T} and ε ~ N(0, I) per sample (Algorithm 1). ``x_prev`` models regress x_{t−1}."""
        self._check_x(x, "x")
        x0 = self.to_model_space(x)
        n = x0.shape[0]
        t = torch.randint(1, self.T + 1, (n,), device=x0.device)
        if self.n_classes is not None:
            y = self.check_labels(n, y)
            if self.p_uncond > 0:  # label dropout: learn ε_θ(x_t, t, ∅) with the same network
                drop = torch.rand(n, device=x0.device) < self.p_uncond
                y = torch.where(drop, torch.full_like(y, self.n_classes), y)
        else:
            y = self.check_labels(n, y)
        if self.prediction == "eps":
            eps = torch.randn_like(x0)
            x_t = self.schedule.q_sample(x0, t, eps)
            return F.mse_loss(self.net(x_t, t, y), eps), {}
        # x_{t-1} ~ q(x_{t-1} | x_0) in closed form, then one forward step gives the pair (x_t, x_{t-1})
        a_bar_prev = self.schedule._at(self.schedule._alpha_bars, t - 1, x0, allow_zero=True)
        x_prev = torch.sqrt(a_bar_prev) * x0 + torch.sqrt(1 - a_bar_prev) * torch.randn_like(x0)
        x_t = self.schedule.q_step(x_prev, t)
        return F.mse_loss(self.net(x_t, t, y), x_prev), {}

    # -- Algorithm 2 and DDIM -----------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels=None,
        *,
        generator: torch.Generator | int | None = None,
        guidance: float = 0.0,
        method: str = "ancestral",
        steps: int | None = None,
        eta: float = 0.0,
        return_chain: bool = False,
        clip: bool = False,
    ):
        """Draw ``n`` samples: images in [0, 1] shaped (n, C, H, W), or raw vectors (n, D).

        ``method="ancestral"`` is Algorithm 2 over all T steps; ``method="ddim"`` the DDIM sampler
        over ``steps`` (default 50) evenly spaced steps, deterministic for ``eta=0``.
        ``generator`` (a ``torch.Generator`` or an int seed) makes the draw reproducible.
        With ``return_chain=True`` returns ``(samples, chain)`` where ``chain`` maps each visited
        step t (T…0) to x_t in data space (on the CPU).

        ``clip=True`` (images only; an extra beyond Algorithm 2, used in Ho et al.'s code) clips the
        implied prediction x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t to [−1, 1] and steps with the posterior
        mean μ̃ = √ᾱ_{t−1} β_t/(1−ᾱ_t) x̂_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t, which equals Algorithm 2's
        mean whenever nothing is clipped.
        """
        if clip and not self.is_image:
            raise ValueError("clip=True needs image data (the range [−1, 1] is known only for images)")
        if method not in ("ancestral", "ddim"):
            raise ValueError(f"method must be 'ancestral' or 'ddim', got {method!r}")
        if method == "ancestral" and steps is not None and steps != self.T:
            raise ValueError(f"ancestral sampling runs all T={self.T} steps; use method='ddim' for fewer")
        n = self.check_n(n)
        y = self._labels(n, labels)
        if self.n_classes is not None and y is None and guidance != 0:
            raise ValueError("guidance needs labels")
        gen = self.as_generator(generator)
        x = _randn((n, *self.image_shape), gen, self.device_of())  # x_T ~ N(0, I)
        chain = {self.T: self.to_data_space(x).cpu()} if return_chain else None
        if method == "ancestral":
            x = self._ancestral(x, y, guidance=guidance, clip=clip, gen=gen, chain=chain)
        else:
            times = self.ddim_times(50 if steps is None else steps)
            x = self._ddim(x, y, times, guidance=guidance, clip=clip, eta=eta, gen=gen, chain=chain)
        out = self.to_data_space(x)
        return (out, chain) if return_chain else out

    def _ancestral(self, x, y, *, guidance, clip, gen, chain):
        """Algorithm 2: x_{t−1} = μ_θ(x_t, t) + σ_t z for t = T … 1, with z = 0 at the last step."""
        for t in range(self.T, 0, -1):
            mean = (
                self._clipped_mean(x, t, y, guidance)
                if clip
                else self.predict_mean(x, t, y, guidance=guidance)
            )
            x = mean + self.sigma(t).to(x.dtype) * _randn(x.shape, gen, x.device) if t > 1 else mean
            if chain is not None:
                chain[t - 1] = self.to_data_space(x).cpu()
        return x

    def _ddim(self, x, y, times, *, guidance, clip, eta, gen, chain):
        """DDIM over the visited ``times``: x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'} − s²) ε̂ (+ s z when η > 0)."""
        for t, t_next in itertools.pairwise(times):
            eps = self.predict_noise(x, t, y, guidance=guidance)
            a_t = self.schedule.alpha_bar(t).to(x.dtype)
            a_next = self.schedule.alpha_bar(t_next).to(x.dtype)
            x0_hat = (x - torch.sqrt(1 - a_t) * eps) / torch.sqrt(a_t)
            if clip:
                x0_hat = x0_hat.clamp(-1, 1)
                eps = (x - torch.sqrt(a_t) * x0_hat) / torch.sqrt(1 - a_t)
            s = eta * torch.sqrt((1 - a_next) / (1 - a_t) * (1 - a_t / a_next))
            x = torch.sqrt(a_next) * x0_hat + torch.sqrt(1 - a_next - s**2) * eps
            if eta > 0 and t_next > 0:
                x = x + s * _randn(x.shape, gen, x.device)
            if chain is not None:
                chain[t_next] = self.to_data_space(x).cpu()
        return x

    def _clipped_mean(self, x, t, y, guidance):
        eps = self.predict_noise(x, t, y, guidance=guidance)
        s = self.schedule
        a_bar, a_bar_prev = s.alpha_bar(t).to(x.dtype), s.alpha_bar(t - 1).to(x.dtype)
        b, a = s.beta(t).to(x.dtype), s.alpha(t).to(x.dtype)
        x0_hat = ((x - torch.sqrt(1 - a_bar) * eps) / torch.sqrt(a_bar)).clamp(-1, 1)
        return (torch.sqrt(a_bar_prev) * b * x0_hat + torch.sqrt(a) * (1 - a_bar_prev) * x) / (1 - a_bar)

    def ddim_times(self, steps: int) -> list[int]:
        """The visited steps of DDIM: ``steps`` values evenly spaced in T…1, then 0."""
        if int(steps) != steps or not 1 <= steps <= self.T:
            raise ValueError(f"DDIM steps must be an integer in 1..T={self.T}, got {steps!r}")
        ts = torch.linspace(self.T, 0, int(steps) + 1).round().long().tolist()
        return sorted(set(ts), reverse=True)


class ConditionalDDPM(DDPM):
    """A class-conditional DDPM with classifier-free guidance (see chapter 10).

    ``ConditionalDDPM(image_shape=(1, 8, 8), n_classes=10, p_uncond=0.1, ...)``: ``n_classes`` is
    required. Training drops each label with probability ``p_uncond`` (replaced by the null class ∅),
    so one network learns both ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅). ``sample(n, labels, guidance=w)``
    uses ε̃ = (1 + w) ε_θ(x_t, t, y) − w ε_θ(x_t, t, ∅): w = 0 (default) samples the conditional
    model p(x | y), w > 0 strengthens the class at the cost of diversity (Ho & Salimans 2022).
    ``predict_noise(x_t, t, labels, guidance=w)`` exposes ε̃ itself.
    """

    requires_classes = True
    #: chapter 10's batch (see :mod:`pgm_lab.recipes`), honoured by ``pgm_lab.train.fit``
    default_fit: ClassVar[dict] = recipes.FIT["ConditionalDDPM"]

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        self.default_steps = recipes.STEPS["ConditionalDDPM"]

    def sample(self, n: int, labels=None, *, generator: torch.Generator | int | None = None, **options):
        """:meth:`DDPM.sample` of the requested classes: ``labels`` is required (``options``:
        ``guidance``, ``method``, ``steps``, ``eta``, ``return_chain``, ``clip``)."""
        if labels is None:
            raise ValueError("ConditionalDDPM is conditional: pass labels (one per sample)")
        return super().sample(n, labels, generator=generator, **options)


# -- the variational bound and the optimal noise predictor (see chapter 08) ------------------


def gaussian_kl(mean1, var1, mean2, var2) -> torch.Tensor:
    """KL(N(mean1, var1) ‖ N(mean2, var2)) elementwise, for scalar Gaussians (diagonal covariances).

    = ½ [log(var2/var1) + (var1 + (mean1 − mean2)²)/var2 − 1]; sum over dimensions for a vector.
    """
    m1, v1, m2, v2 = (torch.as_tensor(a) for a in (mean1, var1, mean2, var2))
    if bool((v1 <= 0).any()) or bool((v2 <= 0).any()):
        raise ValueError("variances must be positive")
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, std, levels: int
) -> torch.Tensor:
    """log P(x) elementwise for x on the grid of ``levels`` values −1, …, 1 (step 2/(levels−1)).

    P(x) is the mass that N(mean, std²) puts on x's bin [x − δ, x + δ], δ = 1/(levels − 1), with
    the two outer bins open to −∞ and +∞ (the decoder p_θ(x_0 | x_1) of Ho et al. 2020, §3.3).
    """
    if int(levels) != levels or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    x, mean = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(mean, dtype=torch.float64)
    k = (x + 1) / 2 * (levels - 1)  # grid index 0 … levels−1
    if bool(((k - k.round()).abs() > 1e-4).any()) or bool((k < -1e-4).any() or (k > levels - 1 + 1e-4).any()):
        raise ValueError(f"x must lie on the grid of {levels} values from −1 to 1")
    std = torch.as_tensor(std, dtype=torch.float64)
    if bool((std <= 0).any()):
        raise ValueError("std must be positive")
    delta = 1.0 / (levels - 1)
    normal = torch.distributions.Normal(mean, std)
    k = k.round()
    upper = torch.where(k >= levels - 1, torch.ones_like(x), normal.cdf(x + delta))
    lower = torch.where(k <= 0, torch.zeros_like(x), normal.cdf(x - delta))
    # the log of a difference of cdfs loses everything in far tails: use the log density there
    mass = upper - lower
    log_pdf = normal.log_prob(x) + math.log(2 * delta)
    return torch.where(mass > 1e-12, torch.log(mass.clamp(min=1e-300)), log_pdf)


def lsimple_weights(schedule: NoiseSchedule, sigma2=None) -> torch.Tensor:
    """λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)) for t = 1…T: the weights that L_simple drops.

    With μ_θ written through ε_θ, the VLB term L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))
    equals λ_t ‖ε − ε_θ(x_t, t)‖² plus a constant (Ho et al. 2020, eq. 12); L_simple sets λ_t = 1.
    ``sigma2`` (shape (T,)) defaults to σ_t² = β_t.
    """
    b = schedule.betas.double()  # float64, ᾱ_t recomputed: 1 − ᾱ_t is tiny at small t
    a = 1 - b
    a_bar = torch.cumprod(a, 0)
    s2 = b if sigma2 is None else torch.as_tensor(sigma2, dtype=torch.float64)
    if s2.shape != b.shape:
        raise ValueError(
            f"sigma2 must hold one variance per step, shape ({schedule.T},), got {tuple(s2.shape)}"
        )
    return b**2 / (2 * s2 * a * (1 - a_bar))


def _check_vlb_args(model: DDPM, x: torch.Tensor, levels, stride) -> int:
    """``ValueError`` unless :func:`variational_bound` can score ``x``; returns ``stride`` as an int."""
    if model.n_classes is not None:
        raise ValueError("variational_bound handles unconditional models only")
    model._check_x(x, "x")
    if model.is_image and levels is None:
        raise ValueError("images need levels (the number of grey levels, e.g. 17 for the 8x8 digits)")
    if not model.is_image and levels is not None:
        raise ValueError("levels is for images; vector data uses the Gaussian density (levels=None)")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    return int(stride)


def _vlb_tables(model: DDPM) -> tuple[torch.Tensor, ...]:
    """float64 tables β_t, α_t, ᾱ_t and σ_t² for t = 0…T (ᾱ_0 = 1), on the model's device."""
    dev, T = model.device_of(), model.schedule.T
    b = torch.cat([torch.zeros(1, dtype=torch.float64), model.schedule.betas.double().cpu()]).to(dev)
    a = 1 - b
    a_bar = torch.cumprod(a, 0)
    sig2 = torch.stack([model.sigma(t).double().reshape(()) for t in range(1, T + 1)]).to(dev) ** 2
    sig2 = torch.cat([sig2.new_ones(1), sig2])
    if float(sig2[1]) <= 0:  # σ_1 = √β̃_1 = 0 (sigma="posterior"): the decoder uses σ_1² = β_1
        sig2[1] = b[1]
    return b, a, a_bar, sig2


@torch.no_grad()
def variational_bound(
    model: DDPM, x: torch.Tensor, *, levels: int | None = None, stride: int = 1, generator=None
) -> dict:
    """The variational bound L_vlb = L_T + Σ_{t=2}^T L_{t−1} + L_0 of a trained DDPM, per sample, in nats.

    - L_T = KL(q(x_T | x_0) ‖ N(0, I)) in closed form (no parameters);
    - L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) with x_t ~ q(x_t | x_0) drawn once per
      sample and step; q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) and p_θ = N(μ_θ(x_t, t), σ_t² I);
    - L_0 = −log p_θ(x_0 | x_1): for images a discretised Gaussian on ``levels`` grey levels (the
      data must lie on that grid), for vectors (``levels=None``) the Gaussian density.

    Returns a dict of tensors: ``prior`` (N,), ``terms`` (N, T−1) for t = 2…T, ``decoder`` (N,),
    ``total`` (N,) and ``bits_per_dim`` = total / (D ln 2). An upper bound on −log p_θ(x_0) (for
    images: on −log P_θ of the discrete image). The schedule is taken in float64 (ᾱ_t recomputed
    from β_t) so that μ̃_t stays exact where 1 − ᾱ_t is tiny; σ_t² is the model's (Algorithm 2),
    except that a zero σ_1 (``sigma="posterior"``) is replaced by β_1 in L_0. See chapter 08.

    The sum over t costs T − 1 network passes. ``stride`` k > 1 (for quick checks) visits, for
    each sample, one step drawn uniformly from each block of k consecutive steps and counts its
    term as many times as the block is long: an unbiased estimate of the sum, independent across
    samples; unvisited entries of ``terms`` are NaN.
    """
    stride = _check_vlb_args(model, x, levels, stride)
    gen = _as_generator(generator)
    T = model.schedule.T
    dev = model.device_of()
    x0 = model.to_model_space(x.to(dev).float()).double()
    n, d = x0.shape[0], x0[0].numel()
    shape = (n, *([1] * (x0.dim() - 1)))  # broadcast per-sample numbers over the pixels
    b, a, a_bar, sig2 = _vlb_tables(model)
    prior = gaussian_kl(torch.sqrt(a_bar[T]) * x0, 1 - a_bar[T], 0.0, 1.0).reshape(n, -1).sum(1)
    terms = torch.full((n, T - 1), math.nan, dtype=torch.float64, device=dev)
    weighted = torch.zeros(n, dtype=torch.float64, device=dev)  # Σ_t L_{t−1}, or its estimate
    rows = torch.arange(n, device=dev)
    for lo in range(2, T + 1, stride):
        size = min(stride, T + 1 - lo)
        if size == 1:
            t = torch.full((n,), lo, dtype=torch.long)
        else:
            t = lo + (torch.randint(size, (n,)) if gen is None else torch.randint(size, (n,), generator=gen))
        t = t.to(dev)
        ab, bt, at = (v[t].reshape(shape) for v in (a_bar, b, a))
        ab_prev = a_bar[t - 1].reshape(shape)
        x_t = torch.sqrt(ab) * x0 + torch.sqrt(1 - ab) * _randn(x0.shape, gen, dev, torch.float64)
        mean_q = (torch.sqrt(ab_prev) * bt * x0 + torch.sqrt(at) * (1 - ab_prev) * x_t) / (1 - ab)
        var_q = (1 - ab_prev) / (1 - ab) * bt
        eps_hat = model.predict_noise(x_t.float(), t).double()
        mean_p = (x_t - bt / torch.sqrt(1 - ab) * eps_hat) / torch.sqrt(at)
        term = gaussian_kl(mean_q, var_q, mean_p, sig2[t].reshape(shape)).reshape(n, -1).sum(1)
        terms[rows, t - 2] = term
        weighted += size * term
    x_1 = torch.sqrt(a_bar[1]) * x0 + torch.sqrt(1 - a_bar[1]) * _randn(x0.shape, gen, dev, torch.float64)
    eps_1 = model.predict_noise(x_1.float(), 1).double()
    mean_1 = (x_1 - b[1] / torch.sqrt(1 - a_bar[1]) * eps_1) / torch.sqrt(a[1])
    std_1 = torch.sqrt(sig2[1])
    if levels is None:
        log_p0 = torch.distributions.Normal(mean_1, std_1).log_prob(x0)
    else:
        log_p0 = discretized_gaussian_log_likelihood(x0, mean_1, std_1, levels)
    decoder = -log_p0.reshape(n, -1).sum(1)
    total = prior + weighted + decoder
    return {
        "prior": prior.cpu(),
        "terms": terms.cpu(),
        "decoder": decoder.cpu(),
        "total": total.cpu(),
        "bits_per_dim": (total / (d * math.log(2))).cpu(),
    }


def gmm_optimal_eps(x_t: torch.Tensor, t, schedule: NoiseSchedule, means, std: float, weights=None):
    """E[ε | x_t] when the data are a mixture of isotropic Gaussians, x_0 ~ Σ_k w_k N(c_k, std² I).

    x_t | k ~ N(√ᾱ_t c_k, (ᾱ_t std² + 1 − ᾱ_t) I), so the responsibilities are a softmax,
    E[x_0 | x_t, k] = c_k + √ᾱ_t std² / (ᾱ_t std² + 1 − ᾱ_t) (x_t − √ᾱ_t c_k), and
    E[ε | x_t] = (x_t − √ᾱ_t E[x_0 | x_t]) / √(1 − ᾱ_t). The best possible ε_θ: its squared error
    ‖ε − E[ε | x_t]‖² is the part of L_simple no network can remove (see chapter 08).
    """
    x = torch.as_tensor(x_t, dtype=torch.float64)
    c = torch.as_tensor(means, dtype=torch.float64)
    if c.dim() != 2 or c.shape[0] == 0:
        raise ValueError(f"means must be shaped (K, D) with K >= 1, got {tuple(c.shape)}")
    if x.dim() != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"x_t must be shaped (N, {c.shape[1]}), got {tuple(x.shape)}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    k = c.shape[0]
    w = (
        torch.full((k,), 1.0 / k, dtype=torch.float64)
        if weights is None
        else torch.as_tensor(weights).double()
    )
    if w.shape != (k,) or bool((w < 0).any()) or abs(float(w.sum()) - 1) > 1e-6:
        raise ValueError(f"weights must be {k} non-negative numbers summing to 1")
    a = schedule._at(schedule._alpha_bars, t, x).double()  # (N, 1)
    var = a * std**2 + 1 - a
    diff = x[:, None, :] - torch.sqrt(a)[:, None] * c[None]  # (N, K, D)
    logits = torch.log(w)[None] - (diff**2).sum(-1) / (2 * var)
    resp = torch.softmax(logits, dim=1)  # (N, K)
    gain = (torch.sqrt(a) * std**2 / var)[:, None]  # (N, 1, 1)
    x0_k = c[None] + gain * diff  # E[x_0 | x_t, k]
    x0_mean = (resp[..., None] * x0_k).sum(1)
    return (x - torch.sqrt(a) * x0_mean) / torch.sqrt(1 - a)


__all__ = [
    "DDPM",
    "ConditionalDDPM",
    "DDPMConfig",
    "NoiseSchedule",
    "check_betas",
    "cosine_betas",
    "discretized_gaussian_log_likelihood",
    "gaussian_kl",
    "gmm_optimal_eps",
    "linear_betas",
    "lsimple_weights",
    "make_betas",
    "variational_bound",
]
