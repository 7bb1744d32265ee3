"""Weights in the file: one power-of-two step per tensor, chosen by measuring, fine-tuned, range-coded.

Each weight tensor is stored as integers ``round(w · 2^e)``; ``e`` is the coarsest exponent whose rounding
alone raises the model's loss by at most its share of a tolerance. The fitting loop then fine-tunes the
float weights through a straight-through rounding (the forward pass sees the quantised weights, the
gradient passes as if rounding were the identity), so the other weights learn to absorb the error.
Dequantised weights ``q · 2^−e`` are exact in float32, so encoder and decoder hold identical weights.
The integers of each tensor are range-coded over their own range with a Laplace table of the scale the
header gives (:mod:`specnir.codec.portable`; version 1 files: constriction's QuantizedLaplace).
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

from specnir.codec.portable import laplace_frequencies, power_of_two, probabilities
from specnir.data import ImageSet
from specnir.fit import FitConfig, fit, learning_rate
from specnir.models import SpectrogramModel
from specnir.models.laplace import laplace_bits

EXPONENTS = range(0, 21)  # step 2^-e: 1 … ~1e-6
MAX_INTEGER = 1 << 20  # |q| below this (version 2)
PRECISION = 24  # bits of the weights' frequency tables


def to_integers(values: torch.Tensor, exponent: int) -> torch.Tensor:
    """``round(values · 2^e)`` as int64."""
    return torch.round(values.detach().double() * 2.0**exponent).to(torch.int64)


def from_integers(ints: torch.Tensor, exponent: int) -> torch.Tensor:
    """``ints · 2^−e`` as float32 (exact for |ints| < 2^24)."""
    return (ints.double() * 2.0**-exponent).float()


def round_to_step(values: torch.Tensor, exponent: int) -> torch.Tensor:
    return from_integers(to_integers(values, exponent), exponent).to(values.dtype)


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
    exponents: dict[str, int]  # per parameter
    float_loss: float  # the fitted model's loss before quantisation
    quantized_loss: float  # with the weights on their grids


def loss_on(model: SpectrogramModel, data: ImageSet) -> Callable[[], float]:
    """The model's fitting loss on ``data`` as it stands, without gradients (what quantisers measure)."""

    def loss_now() -> float:
        with torch.no_grad():
            return float(model.loss(data.target, data.mask))

    return loss_now


def quantize_and_tune(
    model: SpectrogramModel, data: ImageSet, fit_config: FitConfig, tolerances: tuple[float, ...]
) -> Quantized:
    """Put the fitted ``model``'s weights on power-of-two grids, fine-tuning them straight-through.

    ``tolerances`` are relative loss increases tried coarse to fine; a try is kept once the tuned model's
    loss is within the last (finest) tolerance of the float model's. Plain rounding is kept where
    fine-tuning does not beat it. The model is left on the CPU, in evaluation mode, on its grids.
    """
    loss_now = loss_on(model, data)
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


def usable(values: torch.Tensor, exponent: int) -> bool:
    """Whether the integers of ``values`` at ``exponent`` stay below :data:`MAX_INTEGER`."""
    return not values.numel() or float(values.detach().abs().max()) * 2.0**exponent < MAX_INTEGER - 1


def index_scale(index: int) -> float:
    """The Laplace scale ``2^((index − 64) / 8)`` of a tensor's scale index (0–255), computed portably."""
    return float(power_of_two((index - 64) / 8))


def scale_index(q: np.ndarray) -> int:
    """The scale index nearest the mean ``|q|`` (at least 0.1): the Laplace that codes the tensor."""
    scale = max(float(np.mean(np.abs(q))), 0.1) if q.size else 1.0
    return int(np.clip(round(8 * math.log2(scale)) + 64, 0, 255))


def weight_bits(q: np.ndarray) -> float:
    """About what :func:`encode_weights` spends on one tensor's integers ``q``."""
    if not q.size or q.min() == q.max():
        return 0.0
    values = torch.from_numpy(q.astype(np.float64))
    scale = torch.tensor(index_scale(scale_index(q)), dtype=torch.float64)
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


def tensor_entries(model: SpectrogramModel, exponents: dict[str, int]) -> tuple[list[dict], list[np.ndarray]]:
    """Per tensor the header entry ``{name, shape, exponent, min, max, scale}`` and the integers to code."""
    entries, ints = [], []
    for name, param in model.weights().items():
        q = to_integers(param, exponents[name]).reshape(-1).numpy()
        entries.append(
            {
                "name": name,
                "shape": list(param.shape),
                "exponent": exponents[name],
                "min": int(q.min()) if q.size else 0,
                "max": int(q.max()) if q.size else 0,
                "scale_index": scale_index(q),
            }
        )
        ints.append(q)
    return entries, ints


def _model(entry: dict) -> tuple[object, int]:
    """The distribution of a tensor's integers and the integer of its first symbol: version 2's portable
    table (symbols 0.. for min..max), or version 1's Laplace (symbols are the integers)."""
    lo, hi = entry["min"], entry["max"]
    if "scale" in entry:  # version 1
        return constriction.stream.model.QuantizedLaplace(lo, hi, 0.0, entry["scale"]), 0
    scale = np.array([index_scale(entry["scale_index"])])
    freq = laplace_frequencies(lo, hi, np.zeros(1), scale, precision=PRECISION)[0, 0]
    return constriction.stream.model.Categorical(probabilities(freq, PRECISION), perfect=False), lo


def encode_weights(encoder, entries: list[dict], ints: list[np.ndarray]) -> None:
    """Range-code every tensor's integers in header order; a constant tensor costs nothing."""
    for entry, q in zip(entries, ints, strict=True):
        if q.size and entry["min"] < entry["max"]:
            model, first = _model(entry)
            encoder.encode((q - first).astype(np.int32), model)


def decode_weights(decoder, entries: list[dict]) -> dict[str, torch.Tensor]:
    """The state dict that :func:`encode_weights` coded."""
    state = {}
    for entry in entries:
        size = math.prod(entry["shape"])
        if size and entry["min"] < entry["max"]:
            model, first = _model(entry)
            q = np.asarray(decoder.decode(model, size), np.int64) + first
        else:
            q = np.full(size, entry["min"], np.int64)
        ints = torch.from_numpy(np.asarray(q, np.int64)).reshape(entry["shape"])
        state[entry["name"]] = from_integers(ints, entry["exponent"])
    return state
