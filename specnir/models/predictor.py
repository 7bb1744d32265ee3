"""The GRU as a predictive coder: it predicts each pixel from what the decoder has already decoded.

Column by column, the same frequency-shared GRU cell as :class:`~specnir.models.gru.ColumnGRU` reads the
*decoded* column x−1 of every image and, for every bin f of column x, emits a small adaptive predictor:

- a base value ``a`` and ``context`` coefficients ``c_j`` for the bins just below f in column x, which are
  already decoded (the predictor runs from the lowest bin up):
  ``mean_f = a_f + Σ_j c_{f,j} · (d[f−j, x] − d[f−j, x−1])``, i.e. how much the column below changed;
- a log-scale ``s_f`` and a gain ``g_f`` for a Laplace distribution of the residual whose scale grows
  with the size of the prediction errors just below: ``log b_f = s_f + g_f · log1p(|err| in grey levels)``.

The file stores the residuals ``q = round((u − round(mean)) / (2K + 1))`` of the 8-bit grey levels ``u``,
range-coded with that Laplace; decoded pixels are then within ``K`` grey levels of the truth (``K = 0``
is lossless). Training minimises the same rate (bits per pixel) on the true images, with the decoder's
own error (uniform in ``[−K, K]``) added to the context, so the weights learn what the decoder sees.

Every formula of that arithmetic is written once, here, as a function of arrays of any shape:
:func:`predicted_mean`, :func:`prediction_error`, :func:`log_scale`, :func:`grey_level` and
:func:`scale_entry`. Training applies them to whole ``(N, H, W)`` torch tensors at once
(:meth:`PredictiveGRU.predict`); the sequential coder (:mod:`specnir.codec.residual`) applies them to one bin
of every image at a time, as float64 numpy arrays, and both compute the same numbers (a test checks that
the rounded predictions and scale indices are identical).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specnir.errors import check_bounds
from specnir.models.base import SpectrogramModel
from specnir.models.gru import fourier_features, neighbourhood
from specnir.models.laplace import laplace_bits

# Laplace scales (grey levels) the coder can use: 64 log-spaced values; the decoder rounds to this table.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.05, 200.0, 64
LOG_SCALE_STEP = math.log(SCALE_MAX / SCALE_MIN) / (SCALE_LEVELS - 1)
SCALE_TABLE = SCALE_MIN * np.exp(np.arange(SCALE_LEVELS) * LOG_SCALE_STEP)  # (SCALE_LEVELS,) float64
# Coefficients per bin: a (base value), s (log-scale), g (gain), then c_1 .. c_C.
A, S, G, C0 = 0, 1, 2, 3


def _log1p(values):
    return torch.log1p(values) if isinstance(values, torch.Tensor) else np.log1p(values)


def predicted_mean(coefs, changes_below: Iterable):
    """``a + Σ_j c_j · Δ_j``: the prediction (normalised) from coefficients ``(..., 3 + C)`` and the
    changes ``Δ_j = d[f−j, x] − d[f−j, x−1]`` of the ``C`` decoded bins below, each ``(...)``.

    Like every formula here it takes torch tensors (training) or numpy arrays (the coder) alike."""
    return coefs[..., A] + sum(coefs[..., C0 + j] * change for j, change in enumerate(changes_below))


def prediction_error(decoded, mean):
    """``|d − mean|`` in grey levels, what the scale of the bins above adapts to."""
    return abs(decoded - mean) * 255


def log_scale(coefs, error_1, error_2):
    """``log b = s + g · log1p(recent)``, ``recent`` the mean prediction error (grey levels) of the two
    bins below (``error_1`` at f−1, ``error_2`` at f−2)."""
    recent = 0.5 * (error_1 + error_2)
    return coefs[..., S] + coefs[..., G] * _log1p(recent)


def grey_level(mean):
    """The coded prediction: ``mean`` in grey levels rounded to 1/16 (exact in binary)."""
    return (mean * 255 * 16).round() / 16


def scale_entry(log_b):
    """The entry of :data:`SCALE_TABLE` that the coder uses for ``log b`` (integers, same shape)."""
    index = ((log_b - math.log(SCALE_MIN)) / LOG_SCALE_STEP).round().clip(0, SCALE_LEVELS - 1)
    return index.to(torch.int64) if isinstance(index, torch.Tensor) else index.astype(np.int64)


@dataclass
class PredictorConfig:
    hidden: int = field(default=12, metadata={"help": "GRU hidden units per frequency bin", "min": 1})
    kernel: int = field(default=5, metadata={"help": "bins of the previous column seen (odd)", "min": 1})
    embed: int = field(default=4, metadata={"help": "per-image embedding size", "min": 0})
    freq_freqs: int = field(default=4, metadata={"help": "Fourier frequencies of the bin position", "min": 0})
    context: int = field(default=4, metadata={"help": "decoded bins below f in column x used", "min": 0})
    max_error: int = field(
        default=0, metadata={"help": "largest error in grey levels (0: lossless)", "min": 0}
    )

    def __post_init__(self) -> None:
        check_bounds(self)


def shift_up(values: torch.Tensor, j: int) -> torch.Tensor:
    """``out[..., f, :] = values[..., f − j, :]`` along dim −2 (bins), zeros below bin 0."""
    return F.pad(values, (0, 0, j, 0))[..., : values.shape[-2], :]


class PredictiveGRU(SpectrogramModel):
    """Frequency-shared GRU predicting a Laplace distribution for every 8-bit pixel.

    ``forward()`` is not available without images (a predictive coder needs the decoded pixels); the
    fitting loop uses :meth:`loss` (bits per pixel) and :meth:`diagnostics`. :meth:`bind` gives the
    model the images it is fitted to, so that ``forward()`` returns its prediction of them.
    """

    default_lr = 1e-2
    Config = PredictorConfig
    predictive = True

    def __init__(self, config: PredictorConfig, *, n_images: int, height: int, width: int) -> None:
        super().__init__(config, n_images=n_images, height=height, width=width)
        if config.kernel < 1 or config.kernel % 2 == 0:
            raise ValueError("kernel must be odd and positive")
        if config.max_error < 0 or config.context < 0:
            raise ValueError("max_error and context must be ≥ 0")
        n_in = config.kernel + 2 * config.freq_freqs + config.embed
        self.cell = nn.GRUCell(n_in, config.hidden)
        # (constants and random draws on the CPU even under a meta-device context, where their
        # decompositions import sympy and torch._dynamo: seconds of every decode)
        self.embedding = nn.Parameter(0.1 * torch.randn(n_images, config.embed, device="cpu"))
        self.head = nn.Linear(config.hidden + config.kernel, 3 + config.context)
        with torch.no_grad():  # start as "same as the previous column", unit-ish scale
            self.head.weight.zero_()
            self.head.weight[0, config.hidden + config.kernel // 2] = 1.0
            self.head.bias.copy_(
                torch.tensor([0.0, math.log(4.0), 0.0] + [0.5] * config.context, device="cpu")
            )
        self.register_buffer(
            "freq_features",
            fourier_features(torch.linspace(-1, 1, height, device="cpu"), config.freq_freqs),
            False,
        )
        self._bound: torch.Tensor | None = None

    @property
    def step_size(self) -> int:
        """Quantisation step of the residuals in grey levels, ``2K + 1``."""
        return 2 * self.config.max_error + 1

    def step(self, previous: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One column: decoded column x−1 ``(N, H)`` (bin 0 lowest) and state ``(N·H, hidden)`` →
        (predictor coefficients ``(N, H, 3 + context)``: ``a, s, g, c_1..c_C``; the new state)."""
        n, h = previous.shape
        near = neighbourhood(previous, self.config.kernel)
        static = torch.cat(
            [
                self.freq_features.to(previous.dtype)[None].expand(n, h, -1),
                self.embedding.to(previous.dtype)[:, None].expand(n, h, -1),
            ],
            -1,
        )
        state = self.cell(torch.cat([near, static], -1).reshape(n * h, -1), state)
        coefs = self.head(torch.cat([state.reshape(n, h, -1), near], -1))
        return coefs, state

    def coefficients(self, decoded: torch.Tensor) -> torch.Tensor:
        """All columns' coefficients ``(N, H, W, 3 + context)`` from decoded values ``(N, H, W)``
        (bin 0 lowest), each column seeing only the columns before it."""
        n, h, w = decoded.shape
        state = decoded.new_zeros(n * h, self.config.hidden)
        previous = decoded.new_zeros(n, h)
        out = []
        for x in range(w):
            coefs, state = self.step(previous, state)
            out.append(coefs)
            previous = decoded[:, :, x]
        return torch.stack(out, 2)

    def predict(self, coefs: torch.Tensor, decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction (normalised) and ``log b`` of every pixel, all at once.

        ``coefs (N, H, W, 3 + C)``, ``decoded (N, H, W)`` (bin 0 lowest) → two ``(N, H, W)``. Bin f uses
        only decoded bins below it in its own column, so the sequential decoder computes the same numbers.
        """
        change = decoded - F.pad(decoded, (1, 0))[..., :-1]  # d[f, x] − d[f, x−1]
        mean = predicted_mean(coefs, (shift_up(change, j) for j in range(1, self.config.context + 1)))
        err = prediction_error(decoded, mean)
        return mean, log_scale(coefs, shift_up(err, 1), shift_up(err, 2))

    def mean_and_scale(self, coefs: torch.Tensor, decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predict` with the scale as a Laplace scale in grey levels (clamped to the table's range)."""
        mean, log_b = self.predict(coefs, decoded)
        return mean, torch.exp(log_b.clamp(math.log(SCALE_MIN), math.log(SCALE_MAX)))

    def bits(self, target: torch.Tensor, mask: torch.Tensor, *, noisy: bool) -> torch.Tensor:
        """Bits per real pixel to code ``target (N, H, W)`` (image orientation, 8-bit values / 255)."""
        truth = target.flip(1)
        full = mask.expand_as(target)
        decoded = truth
        k = self.config.max_error
        if noisy and k:  # the decoder's own error, which its context will carry
            noise = torch.randint(-k, k + 1, truth.shape, device=truth.device).to(truth.dtype) / 255
            decoded = (truth + noise * full).clamp(0, 1)
        mean, scale = self.mean_and_scale(self.coefficients(decoded), decoded)
        grey = truth * 255
        nll = laplace_bits(
            grey - mean * 255, scale, float(self.step_size), grey <= k + 0.5, grey >= 254.5 - k
        )
        return (nll * full).sum() / full.sum()

    def loss(self, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Bits per pixel (with the decoder's error simulated while training)."""
        return self.bits(target, mask, noisy=self.training)

    def bind(self, target: torch.Tensor) -> None:
        """Remember the images ``(N, H, W)`` so that ``forward()`` can show the prediction of them."""
        self._bound = target

    def forward(self) -> torch.Tensor:
        """The prediction ``(N, H, W)`` of the bound images from their own decoded context."""
        if self._bound is None:
            raise RuntimeError("PredictiveGRU predicts from images: call bind(target) first")
        truth = self._bound.to(self.embedding.device).flip(1)
        mean, _ = self.mean_and_scale(self.coefficients(truth), truth)
        return mean.flip(1)
