"""Weight quantisation that measures and fits: which power-of-two grid each weight tensor gets.

Two ways, a coding mode picks one (:attr:`~specnir.codec.modes.CodingMode.tolerances`):

- **tuned** (:func:`quantize_and_tune`): each tensor's ``e`` is the coarsest exponent whose rounding alone
  raises the model's loss by at most its share of a tolerance; the fitting loop then fine-tunes the float
  weights through a straight-through rounding (the forward pass sees the quantised weights, the gradient
  passes as if rounding were the identity), so the other weights learn to absorb the error.
- **rate–distortion** (:func:`rd_exponents`): for a model that minimises MSE + λ · rate, the exponent that
  minimises that loss with the weights' own bits counted in the rate.

The grids' integers are coded by :mod:`specnir.codec.weights` (the bitstream, which needs none of this).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from specnir.codec.weights import EXPONENTS, round_to_step, scale_index, scale_of_index, to_integers, usable
from specnir.data import ImageSet
from specnir.fit import fit, learning_rate, loss_args
from specnir.fit_config import FitConfig
from specnir.models import SpectrogramModel
from specnir.models.laplace import laplace_bits


def choose_exponents(
    model: SpectrogramModel, loss_fn: Callable[[], float], *, tolerance: float
) -> dict[str, int]:
    """Per parameter, the smallest ``e`` (coarsest step) whose rounding raises ``loss_fn()`` by at most
    ``tolerance / n_tensors`` (relative); the other tensors stay in float while one is measured. The
    loss grows as the step coarsens, so each tensor is a bisection over :data:`EXPONENTS`."""
    params = model.weights()
    base = loss_fn()
    limit = base + tolerance / max(len(params), 1) * abs(base)
    chosen = {}
    for name, param in params.items():
        original = param.detach().clone()

        def fine_enough(exponent: int, param=param, original=original) -> bool:
            if not usable(original, exponent):
                return False
            with torch.no_grad():
                param.copy_(round_to_step(original, exponent))
            return loss_fn() <= limit

        lo, hi = 0, len(EXPONENTS) - 1  # answer in [lo, hi]; the finest step is taken as good enough
        while lo < hi:
            mid = (lo + hi) // 2
            if fine_enough(EXPONENTS[mid]):
                hi = mid
            else:
                lo = mid + 1
        chosen[name] = EXPONENTS[lo]
        with torch.no_grad():
            param.copy_(original)
    return chosen


class _StraightThroughRound(nn.Module):
    def __init__(self, exponent: int) -> None:
        super().__init__()
        self.exponent = exponent

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values + (round_to_step(values, self.exponent) - values).detach()


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def quantization_aware(model: nn.Module, exponents: dict[str, int]) -> None:
    """Make every listed parameter read as its rounded value in the forward pass (straight-through)."""
    for name, exponent in exponents.items():
        module, attr = _owner(model, name)
        parametrize.register_parametrization(module, attr, _StraightThroughRound(exponent), unsafe=True)


def freeze_quantized(model: nn.Module, exponents: dict[str, int]) -> None:
    """Remove the straight-through parametrisations and leave every parameter exactly on its grid."""
    for name, exponent in exponents.items():
        module, attr = _owner(model, name)
        if parametrize.is_parametrized(module, attr):
            parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
        param = getattr(module, attr)
        with torch.no_grad():
            param.copy_(round_to_step(param, exponent))


@dataclass
class Quantized:
    """Where a model's weights were put, and what it cost."""

    exponents: dict[str, int]  # per parameter
    float_loss: float  # the fitted model's loss before quantisation
    quantized_loss: float  # with the weights on their grids
    decoder_loss: float | None = None  # a shared decoder's: the loss with its references' distortion


def loss_on(model: SpectrogramModel, data: ImageSet, fit_config: FitConfig) -> Callable[[], float]:
    """The model's fitting loss under ``fit_config`` (its distortion) on ``data`` as it stands, without
    gradients (what quantisers measure)."""
    args = loss_args(fit_config, data.target, data.mask)

    def loss_now() -> float:
        with torch.no_grad():
            return float(model.loss(data.target, data.mask, **args))

    return loss_now


def quantize_and_tune(
    model: SpectrogramModel, data: ImageSet, fit_config: FitConfig, tolerances: tuple[float, ...]
) -> Quantized:
    """Put the fitted ``model``'s weights on power-of-two grids, fine-tuning them straight-through.

    ``tolerances`` are relative loss increases tried coarse to fine; a try is kept once the tuned model's
    loss is within the last (finest) tolerance of the float model's. Plain rounding is kept where
    fine-tuning does not beat it. The model is left on the CPU, in evaluation mode, on its grids.
    """
    loss_now = loss_on(model, data, fit_config)
    float_loss, float_state = loss_now(), copy.deepcopy(model.state_dict())
    steps = fit_config.steps
    tune = dataclasses.replace(
        fit_config,
        steps=max(steps // 8, 25),
        lr=learning_rate(fit_config, model) / 5,
        eval_every=max(steps // 40, 5),
    )
    for attempt, tolerance in enumerate(tolerances):
        if attempt:
            model.load_state_dict(float_state)
        exponents = choose_exponents(model, loss_now, tolerance=tolerance)
        freeze_quantized(model, exponents)  # plain rounding, kept if fine-tuning does not beat it
        rounded_loss, rounded_state = loss_now(), copy.deepcopy(model.state_dict())
        quantization_aware(model, exponents)
        fit(model, data, tune, progress=False)
        model.cpu().eval()
        freeze_quantized(model, exponents)
        quantized_loss = loss_now()
        if rounded_loss < quantized_loss:
            model.load_state_dict(rounded_state)
            quantized_loss = rounded_loss
        if quantized_loss <= float_loss * (1 + tolerances[-1]):
            break
    return Quantized(exponents, float_loss, quantized_loss)


def weight_bits(q: np.ndarray) -> float:
    """About what :func:`~specnir.codec.weights.encode_weights` spends on one tensor's integers ``q``."""
    if not q.size or q.min() == q.max():
        return 0.0
    values = torch.from_numpy(q.astype(np.float64))
    scale = torch.tensor(scale_of_index(scale_index(q)), dtype=torch.float64)
    return float(laplace_bits(values, scale, 1.0).sum())


def rd_exponents(
    model: SpectrogramModel, loss_fn: Callable[[], float], *, lam: float, pixels: int, patience: int = 4
) -> dict[str, int]:
    """Per weight tensor, the exponent that minimises ``loss_fn() + lam · bits / pixels`` (the loss is
    already distortion + λ·rate: the weights' bits join the rate). Tensors are chosen in order, each with
    the ones before it on their chosen grids and the ones after it still in float. Steps are tried from
    coarse to fine and the search stops once ``patience`` finer ones in a row have not beaten the best
    (finer steps only add bits once the loss has stopped falling)."""
    chosen = {}
    for name, param in model.weights().items():
        original = param.detach().clone()
        best, worse = None, 0
        for exponent in (e for e in EXPONENTS if usable(original, e)):
            rounded = round_to_step(original, exponent)
            with torch.no_grad():
                param.copy_(rounded)
            bits = weight_bits(to_integers(rounded, exponent).reshape(-1).cpu().numpy())
            cost = loss_fn() + lam * bits / pixels
            if best is None or cost < best[0]:
                best, worse = (cost, exponent, rounded), 0
            else:
                worse += 1
                if worse >= patience:
                    break
        chosen[name] = best[1]
        with torch.no_grad():
            param.copy_(best[2])
    return chosen


def quantize(
    model: SpectrogramModel, data: ImageSet, fit_config: FitConfig, *, tolerances: tuple[float, ...] | None
) -> Quantized:
    """Put a fitted model's weights on their grids: tuned to ``tolerances`` (:func:`quantize_and_tune`),
    or with ``None`` the grids that minimise the model's own MSE + λ · rate with the weights' bits in the
    rate (:func:`rd_exponents`; ``model.config.lam`` is λ). The model is left on its grids."""
    if tolerances is not None:
        return quantize_and_tune(model, data, fit_config, tolerances)
    loss_now = loss_on(model, data, fit_config)
    float_loss = loss_now()
    pixels = int(data.mask.sum()) * model.height
    exponents = rd_exponents(model, loss_now, lam=model.config.lam, pixels=pixels)
    return Quantized(exponents, float_loss, loss_now())
