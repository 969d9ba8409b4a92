"""PixelRNN with Row LSTM layers: an autoregressive image model with a recurrent state (see chapter 06).

Like PixelCNN (:mod:`pgm_lab.models.pixelcnn`), PixelRNN {cite}`vandenoord2016pixel` factorises
an image by the pixel-level chain rule in raster order,

    p(x) = Π_{i=1}^{n²} p(x_i | x_1, …, x_{i-1})                                    (自回归, chapter 06)

but carries information down the image with an LSTM. This module implements the paper's
**Row LSTM** layer. After a type-A masked k×k convolution of the input (the pixel itself hidden),
each layer processes the image one row at a time. For row r it computes the four LSTM gates
from two 1-D convolutions,

    [o_r, f_r, i_r, g_r] = σ/tanh( K^is ⊛ u_r  +  K^ss ⊛ h_{r-1} )
    c_r = f_r ⊙ c_{r-1} + i_r ⊙ g_r,        h_r = o_r ⊙ tanh(c_r)

where ``u_r`` is the layer's input at row r and ``K^is`` (input-to-state) is a 1×k convolution
along the row, masked so that column j reads columns ≤ j only (type B: the input features are
already causal), while ``K^ss`` (state-to-state) is an unmasked 1-D convolution of width 3 over
the *previous* row's hidden states. The input-to-state part is computed for all rows at once;
only the state-to-state part is sequential (H steps per layer). The state of column j in row r
sees columns j-1..j+1 of row r-1, which saw j-2..j+2 of row r-2, and so on: the receptive field
is a **cone** above the pixel (the paper's "triangle") that widens by one column per row on
each side and reaches the top row whatever the depth, plus the few pixels to its left in the
current row that the masked convolutions reach (k//2 per layer and first_kernel//2). Its right
edge has the same 45° slope as the blind spot of a PixelCNN stack of 3×3 masked convolutions,
so with width-3 kernels that wedge stays unseen too; pixels left of the cone and the far left
of the current row are unseen as well (the paper's Diagonal BiLSTM covers the whole context).
:func:`pgm_lab.models.pixelcnn.dependency_map` measures it.

Pixels are binary: p(x_i = 1 | x_<i) = σ(logit_i); the loss is the exact negative
log-likelihood in nats per image, as for :class:`~pgm_lab.models.pixelcnn.PixelCNN`.
Sampling keeps each layer's (h, c) of the finished rows, so drawing pixel (r, j) costs one
row step per layer instead of a pass over the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .. import recipes
from .base import ModelConfig
from .pixelcnn import BinaryPixelModel, MaskedConv2d, causal_mask, output_head


def row_mask(kernel_size: int, in_channels: int, out_channels: int, n_colors: int = 1) -> torch.Tensor:
    """The 0/1 mask ``(out, in, 1, k)`` of the Row LSTM's input-to-state convolution (chapter 06).

    It is the centre row of the type-B mask of :func:`~pgm_lab.models.pixelcnn.causal_mask`:
    column j reads columns j - k//2 … j of the same row (colour groups ≤ its own at j).
    """
    c = kernel_size // 2
    return causal_mask(kernel_size, "B", in_channels, out_channels, n_colors)[:, :, c : c + 1, :]


class RowLSTM(nn.Module):
    """One Row LSTM layer ``(B, channels, H, W) -> (B, hidden, H, W)`` (chapter 06).

    Input-to-state: a 1×k convolution masked by :func:`row_mask` giving the 4 gates of every
    pixel at once. State-to-state: a width-3 1-D convolution of the previous row's ``h``.
    Channels of every gate are grouped like the hidden channels, so colour order is kept.
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int = 3, n_colors: int = 1):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.hidden = hidden
        self.input_to_state = nn.Conv2d(channels, 4 * hidden, (1, kernel_size), padding=(0, kernel_size // 2))
        # one mask per gate, so gate channel j belongs to the colour group of hidden channel j
        mask = torch.cat([row_mask(kernel_size, channels, hidden, n_colors)] * 4, dim=0)
        self.register_buffer("mask", mask)
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 3, padding=1)

    def input_gates(self, u: torch.Tensor) -> torch.Tensor:
        """K^is ⊛ u for every row at once: ``(B, channels, R, W) -> (B, 4·hidden, R, W)``."""
        w = self.input_to_state.weight * self.mask
        return nn.functional.conv2d(u, w, self.input_to_state.bias, padding=self.input_to_state.padding)

    def step(self, gates_in: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One row: ``gates_in`` ``(B, 4·hidden, W)`` and (h, c) of the row above -> (h, c) of this row."""
        h_prev, c_prev = state
        gates = gates_in + self.state_to_state(h_prev)  # (B, 4·hidden, W)
        ofi, g = gates.split([3 * self.hidden, self.hidden], dim=1)
        o, f, i = torch.sigmoid(ofi).chunk(3, dim=1)
        c = f * c_prev + i * torch.tanh(g)
        h = o * torch.tanh(c)
        return h, c

    def zero_state(self, u: torch.Tensor):
        z = u.new_zeros(u.shape[0], self.hidden, u.shape[-1])
        return z, z

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        gates = self.input_gates(u)  # (B, 4h, H, W): parallel over rows
        state = self.zero_state(u)
        rows = []
        for gates_r in gates.unbind(2):  # sequential over rows
            state = self.step(gates_r, state)
            rows.append(state[0])
        return torch.stack(rows, dim=2)  # (B, hidden, H, W)


@dataclass(frozen=True)
class PixelRNNConfig(ModelConfig):
    """Sizes of :class:`PixelRNN`: a type-A ``first_kernel`` masked convolution to ``channels``
    feature maps (a multiple of C), ``n_layers`` Row LSTM layers with input-to-state width
    ``kernel_size``."""

    channels: int = 32
    n_layers: int = 2
    kernel_size: int = 3
    first_kernel: int = 5

    def __post_init__(self):
        super().__post_init__()
        if not self.is_image:
            raise ValueError(
                f"image_shape: PixelRNN needs images (C, H, W), got image_shape={self.image_shape}"
            )
        self.check_positive("channels", "n_layers")
        self.check_odd("kernel_size", "first_kernel")
        if self.channels % self.image_shape[0]:
            raise ValueError(
                f"channels ({self.channels}) must be a positive multiple of the image channels "
                f"({self.image_shape[0]})"
            )


class PixelRNN(BinaryPixelModel):
    """PixelRNN (Row LSTM) over binary images ``(C, H, W)``: p(x) = Π_i Bernoulli(x_i; σ(f_i(x_<i))).

    Sizes (:class:`PixelRNNConfig`): a type-A ``first_kernel``×``first_kernel`` masked
    convolution to ``channels`` feature maps, ``n_layers`` :class:`RowLSTM` layers of
    ``channels`` hidden units with input-to-state width ``kernel_size`` (each added to its
    input: residual connections as in the paper), and a ReLU / masked 1×1 / ReLU / masked 1×1
    output head giving one logit per sub-pixel. With ``n_classes`` a learned per-class bias
    is added to the first features (p(x | c)). See chapter 06.
    """

    Config = PixelRNNConfig
    default_steps: ClassVar[dict[str, int]] = recipes.STEPS["PixelRNN"]

    def __init__(self, image_shape=None, n_classes: int | None = None, **sizes):
        super().__init__(image_shape, n_classes, **sizes)
        cfg, c = self.cfg, self.image_shape[0]
        self.input = MaskedConv2d(c, cfg.channels, cfg.first_kernel, "A", c)
        self.layers = nn.ModuleList(
            RowLSTM(cfg.channels, cfg.channels, cfg.kernel_size, c) for _ in range(cfg.n_layers)
        )
        self.output = output_head(cfg.channels, c)
        self.label_bias = None
        if self.n_classes is None:  # chapter 06's augmented, cosine-decayed training by default
            self.default_fit = recipes.pixel_model_fit(self.image_shape)
        else:
            self.label_bias = nn.Embedding(self.n_classes, cfg.channels)
            nn.init.zeros_(self.label_bias.weight)

    # -- the model --------------------------------------------------------------------------
    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.label_bias is not None and y is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass labels")
        u = self.input(2.0 * x - 1.0)  # (B, ch, H, W); inputs centred in [-1, 1]
        if self.label_bias is not None:
            u = u + self.label_bias(y)[:, :, None, None]
        return u

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x_i = 1 | x_<i [, c]) for every pixel, shaped like ``x`` ``(B, C, H, W)``."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"images must be shaped (N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        u = self._features(x, y)
        for layer in self.layers:
            u = u + layer(u)  # residual connection
        return self.output(u)

    def row_logits(self, x: torch.Tensor, row: int, states, y: torch.Tensor | None = None):
        """Logits of row ``row`` ``(B, C, W)`` given each layer's (h, c) of the row above.

        Only rows ≤ ``row`` of ``x`` are read. Returns the logits and the layers' (h, c) of this
        row: the incremental form of :meth:`forward` that :meth:`sample` uses.
        """
        k = self.input.kernel_size[0] // 2
        top = max(0, row - k)
        # the type-A layer at `row` reads rows row-k..row; zero padding stands in for rows < 0
        window = x[:, :, top : row + 1]
        pad = k - (row - top)
        u = self._features(nn.functional.pad(window, (0, 0, pad, 0), value=0.5), y)[:, :, k : k + 1]
        new_states = []
        for layer, state in zip(self.layers, states):
            h, c = layer.step(layer.input_gates(u)[:, :, 0], state)
            new_states.append((h, c))
            u = u + h[:, :, None]
        return self.output(u)[:, :, 0], new_states

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels=None,
        *,
        generator: torch.Generator | int | None = None,
        return_steps: bool = False,
    ):
        """Draw ``n`` binary images ``(n, C, H, W)`` pixel by pixel in raster order (chapter 06).

        The LSTM states of finished rows are kept, so each sub-pixel costs one row step per
        layer (H·W·C steps in all). ``return_steps=True`` also returns the partial images
        after each row.
        """
        n = self.check_n(n)
        y = self.check_labels(n, labels)
        generator = self.as_generator(generator)
        was_training = self.training
        self.eval()
        c, h, w = self.image_shape
        dev = self.device_of()
        x = torch.zeros(n, c, h, w, device=dev)
        states = [
            layer.zero_state(x.new_zeros(n, 1, 1, w)) for layer in self.layers
        ]  # (h, c) of the row above
        steps = []
        for i in range(h):
            for j in range(w):
                for k in range(c):
                    logits, _ = self.row_logits(x, i, states, y)
                    p = torch.sigmoid(logits[:, k, j].float())
                    u = torch.rand(p.shape, generator=generator, device="cpu").to(dev)
                    x[:, k, i, j] = (u < p).float()
            _, states = self.row_logits(x, i, states, y)  # the finished row's states
            if return_steps:
                steps.append(x.detach().cpu().clone())
        self.train(was_training)
        return (x, steps) if return_steps else x


__all__ = ["PixelRNN", "PixelRNNConfig", "RowLSTM", "row_mask"]
