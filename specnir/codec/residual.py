"""Predictive coding: the decoder's pixel-by-pixel loop, run by the encoder too.

Column by column, lowest bin first, a :class:`~specnir.models.predictor.PredictiveGRU` gives every pixel a
prediction (1/16 grey level) and a Laplace scale (an entry of a fixed table); the range coder codes the
index ``σ`` of the reconstruction level ``u = (σ + t0)·Δ + ρ`` on a grid of step ``Δ = 2K + 1`` anchored
at the rounded prediction, so every decoded pixel is within ``K`` grey levels of the truth.

Determinism: the arithmetic is :mod:`specnir.models.predictor`'s own functions, in float64 on one thread,
from weights that are exact multiples of powers of two; what feeds the range coder is an integer or a table
entry, so the decoder sees the same distributions as the encoder.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import NamedTuple

import constriction
import numpy as np
import torch

from specnir.data import ImageSet
from specnir.models.predictor import (
    SCALE_TABLE,
    PredictiveGRU,
    grey_level,
    log_scale,
    predicted_mean,
    prediction_error,
    scale_entry,
)


class Prediction(NamedTuple):
    """One bin of every image as the coder sees it; each field ``(N,)``."""

    grey: np.ndarray  # the prediction, rounded to 1/16 grey level
    index: np.ndarray  # the entry of SCALE_TABLE
    rho: np.ndarray  # the grid's offset: levels are u = t·Δ + ρ
    t0: np.ndarray  # the lowest level whose interval [u − K, u + K] reaches 0
    mean: np.ndarray  # Laplace mean of the symbol σ = t − t0, in units of Δ
    scale: np.ndarray  # Laplace scale, in units of Δ


# coder(x, f, active, prediction) -> σ for every image ((N,) int64); active (N,) bool
Coder = Callable[[int, int, np.ndarray, Prediction], np.ndarray]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (reductions then do not depend on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def symbol_range(max_error: int) -> tuple[int, int]:
    """Symbols ``σ`` of the residual coder: reconstruction levels counted from the lowest useful one, up
    to the most levels any grid offset ``ρ`` needs to reach 255."""
    delta = 2 * max_error + 1
    return 0, max((255 - rho + max_error) // delta + (rho + max_error) // delta for rho in range(delta))


def distribution(grey: np.ndarray, index: np.ndarray, max_error: int) -> Prediction:
    """The coder's view of a prediction ``grey`` with scale ``index``: the grid placed at the rounded
    prediction, and the Laplace of the symbol on it."""
    delta = 2 * max_error + 1
    centre = np.clip(np.rint(grey), 0, 255).astype(np.int64)
    rho = centre % delta
    t0 = -((rho + max_error) // delta)
    return Prediction(grey, index, rho, t0, (grey - rho) / delta - t0, SCALE_TABLE[index] / delta)


def predictive_loop(model: PredictiveGRU, widths: list[int], coder: Coder) -> np.ndarray:
    """Run the decoder over every pixel; returns ``(N, H, W)`` uint8 grey levels in image orientation
    (row 0 = highest frequency; padding 0).

    For bin ``f`` of column ``x`` it computes, for all images, the :class:`Prediction` and asks
    ``coder(x, f, active, prediction)`` for the symbols ``σ`` of the images still running (``active``).
    """
    cfg = model.config
    n, h, w = len(widths), model.height, max(widths)
    k, c = cfg.max_error, cfg.context
    delta = 2 * k + 1
    decoded = np.zeros((n, h, w))
    with torch.no_grad(), one_thread():
        model = copy.deepcopy(model).double()
        state = torch.zeros(n * h, cfg.hidden, dtype=torch.float64)
        previous = torch.zeros(n, h, dtype=torch.float64)
        for x in range(w):
            coefs, state = model.step(previous, state)
            co = coefs.numpy()  # (N, H, 3 + C)
            active = np.array([width > x for width in widths])
            prev = decoded[:, :, x - 1] if x else np.zeros((n, h))
            change = np.zeros((n, h + c))  # change[:, c + f] = d[f, x] − d[f, x−1]
            error = np.zeros((n, h + 2))  # error[:, 2 + f] = |d[f, x] − mean_f| in grey levels
            for f in range(h):
                mean = predicted_mean(co[:, f], (change[:, c + f - j] for j in range(1, c + 1)))
                index = scale_entry(log_scale(co[:, f], error[:, f + 1], error[:, f]))
                p = distribution(grey_level(mean), index, k)
                sigma = coder(x, f, active, p)
                decoded[:, f, x] = np.clip((sigma + p.t0) * delta + p.rho, 0, 255) * active / 255
                change[:, c + f] = decoded[:, f, x] - prev[:, f]
                error[:, 2 + f] = prediction_error(decoded[:, f, x], mean)
            previous = torch.from_numpy(decoded[:, :, x].copy())
    return np.rint(decoded[:, ::-1] * 255).astype(np.uint8)


def _family(max_error: int):
    lo, hi = symbol_range(max_error)
    return constriction.stream.model.QuantizedLaplace(lo, hi)


def encode_residuals(model: PredictiveGRU, data: ImageSet, stream) -> np.ndarray:
    """Code ``data``'s 8-bit images with the predictor onto ``stream`` (a range encoder); returns the
    decoder's reconstruction (uint8)."""
    truth = np.rint(data.target.numpy()[:, ::-1] * 255).astype(np.int64)  # bin 0 lowest
    k = model.config.max_error
    delta = 2 * k + 1
    symbols, means, scales = [], [], []

    def coder(x, f, active, p):
        sigma = np.where(active, (truth[:, f, x] - p.rho + k) // delta - p.t0, 0)
        symbols.append(sigma[active])
        means.append(p.mean[active])
        scales.append(p.scale[active])
        return sigma

    recon = predictive_loop(model, data.widths, coder)
    if symbols:
        stream.encode(
            np.concatenate(symbols).astype(np.int32),
            _family(k),
            np.concatenate(means),
            np.concatenate(scales),
        )
    return recon


def decode_residuals(model: PredictiveGRU, widths: list[int], stream) -> np.ndarray:
    """The images ``(N, H, W)`` uint8 that :func:`encode_residuals` coded, read from ``stream``."""
    k = model.config.max_error
    family = _family(k)

    def coder(x, f, active, p):
        sigma = np.zeros(len(active), np.int64)
        if active.any():
            sigma[active] = stream.decode(family, p.mean[active], p.scale[active])
        return sigma

    return predictive_loop(model, widths, coder)
