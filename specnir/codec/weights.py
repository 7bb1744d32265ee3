"""Weights in the file: one power-of-two step per tensor, chosen by measuring, fine-tuned, range-coded.

Each weight tensor is stored as integers ``round(w · 2^e)``; ``e`` is the coarsest exponent whose rounding
alone raises the model's loss by at most its share of a tolerance. The fitting loop then fine-tunes the
float weights through a straight-through rounding (the forward pass sees the quantised weights, the
gradient passes as if rounding were the identity), so the other weights learn to absorb the error.
Dequantised weights ``q · 2^−e`` are exact in float32, so encoder and decoder hold identical weights.
The integers of each tensor are range-coded with a QuantizedLaplace over their own range.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import constriction
import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from specnir.data import ImageSet
from specnir.fit import FitConfig, fit, learning_rate
from specnir.models import SpectrogramModel

EXPONENTS = range(0, 21)  # step 2^-e: 1 … ~1e-6


def to_integers(values: torch.Tensor, exponent: int) -> torch.Tensor:
    """``round(values · 2^e)`` as int64."""
    return torch.round(values.detach().double() * 2.0**exponent).to(torch.int64)


def from_integers(ints: torch.Tensor, exponent: int) -> torch.Tensor:
    """``ints · 2^−e`` as float32 (exact for |ints| < 2^24)."""
    return (ints.double() * 2.0**-exponent).float()


def round_to_step(values: torch.Tensor, exponent: int) -> torch.Tensor:
    return from_integers(to_integers(values, exponent), exponent).to(values.dtype)


def choose_exponents(model: nn.Module, loss_fn: Callable[[], float], *, tolerance: float) -> dict[str, int]:
    """Per parameter, the smallest ``e`` (coarsest step) whose rounding raises ``loss_fn()`` by at most
    ``tolerance / n_tensors`` (relative); the other tensors stay in float while one is measured. The
    loss grows as the step coarsens, so each tensor is a bisection over :data:`EXPONENTS`."""
    params = dict(model.named_parameters())
    base = loss_fn()
    limit = base + tolerance / max(len(params), 1) * abs(base)
    chosen = {}
    for name, param in params.items():
        original = param.detach().clone()

        def fine_enough(exponent: int, param=param, original=original) -> bool:
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
    exponents: dict[str, int]  # per parameter
    float_loss: float  # the fitted model's loss before quantisation
    quantized_loss: float  # with the weights on their grids


def quantize_and_tune(
    model: SpectrogramModel, data: ImageSet, fit_config: FitConfig, tolerances: tuple[float, ...]
) -> Quantized:
    """Put the fitted ``model``'s weights on power-of-two grids, fine-tuning them straight-through.

    ``tolerances`` are relative loss increases tried coarse to fine; a try is kept once the tuned model's
    loss is within the last (finest) tolerance of the float model's. Plain rounding is kept where
    fine-tuning does not beat it. The model is left on the CPU, in evaluation mode, on its grids.
    """
    target, mask = data.target, data.mask

    def loss_now() -> float:
        with torch.no_grad():
            return float(model.loss(target, mask))

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


def tensor_entries(model: nn.Module, exponents: dict[str, int]) -> tuple[list[dict], list[np.ndarray]]:
    """Per tensor the header entry ``{name, shape, exponent, min, max, scale}`` and the integers to code."""
    entries, ints = [], []
    for name, param in model.named_parameters():
        q = to_integers(param, exponents[name]).reshape(-1).numpy()
        scale = max(float(np.mean(np.abs(q))), 0.1) if q.size else 1.0
        entries.append(
            {
                "name": name,
                "shape": list(param.shape),
                "exponent": exponents[name],
                "min": int(q.min()) if q.size else 0,
                "max": int(q.max()) if q.size else 0,
                "scale": float(f"{scale:.6g}"),
            }
        )
        ints.append(q)
    return entries, ints


def _family(entry: dict):
    return constriction.stream.model.QuantizedLaplace(entry["min"], entry["max"], 0.0, entry["scale"])


def encode_weights(encoder, entries: list[dict], ints: list[np.ndarray]) -> None:
    """Range-code every tensor's integers in header order; a constant tensor costs nothing."""
    for entry, q in zip(entries, ints, strict=True):
        if q.size and entry["min"] < entry["max"]:
            encoder.encode(q.astype(np.int32), _family(entry))


def decode_weights(decoder, entries: list[dict]) -> dict[str, torch.Tensor]:
    """The state dict that :func:`encode_weights` coded."""
    state = {}
    for entry in entries:
        size = math.prod(entry["shape"])
        if size and entry["min"] < entry["max"]:
            q = decoder.decode(_family(entry), size)
        else:
            q = np.full(size, entry["min"], np.int64)
        ints = torch.from_numpy(np.asarray(q, np.int64)).reshape(entry["shape"])
        state[entry["name"]] = from_integers(ints, entry["exponent"])
    return state
