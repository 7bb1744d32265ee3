"""Weights in the file: integers on one power-of-two grid per tensor, range-coded.

Each weight tensor is stored as integers ``q = round(w · 2^e)``; which exponent ``e`` each tensor gets is
the encoder's choice (:mod:`specnir.codec.nnquant`). Dequantised weights ``q · 2^−e`` are exact in
float32, so encoder and decoder hold identical weights. The integers of each tensor are range-coded over
their own range with a Laplace table of the scale the header gives (:mod:`specnir.codec.portable`;
version 1 files: constriction's QuantizedLaplace).
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch

from specnir.codec.portable import laplace_frequencies, power_of_two, probabilities
from specnir.models import SpectrogramModel

EXPONENTS = range(0, 21)  # step 2^-e: 1 … ~1e-6
MAX_INTEGER = 1 << 20  # |q| below this (version 2)
WEIGHT_PRECISION = 24  # bits of the weights' frequency tables


def to_integers(values: torch.Tensor, exponent: int) -> torch.Tensor:
    """``round(values · 2^e)`` as int64."""
    return torch.round(values.detach().double() * 2.0**exponent).to(torch.int64)


def from_integers(ints: torch.Tensor, exponent: int) -> torch.Tensor:
    """``ints · 2^−e`` as float32 (exact for |ints| < 2^24)."""
    return (ints.double() * 2.0**-exponent).float()


def round_to_step(values: torch.Tensor, exponent: int) -> torch.Tensor:
    """``values`` on the grid of step ``2^−e`` (same dtype)."""
    return from_integers(to_integers(values, exponent), exponent).to(values.dtype)


def usable(values: torch.Tensor, exponent: int) -> bool:
    """Whether the integers of ``values`` at ``exponent`` stay below :data:`MAX_INTEGER`."""
    return not values.numel() or float(values.detach().abs().max()) * 2.0**exponent < MAX_INTEGER - 1


def scale_of_index(index: int) -> float:
    """The Laplace scale ``2^((index − 64) / 8)`` of a tensor's scale index (0–255), computed portably."""
    return float(power_of_two((index - 64) / 8))


def scale_index(q: np.ndarray) -> int:
    """The scale index nearest the mean ``|q|`` (at least 0.1): the Laplace that codes the tensor."""
    scale = max(float(np.mean(np.abs(q))), 0.1) if q.size else 1.0
    return int(np.clip(round(8 * math.log2(scale)) + 64, 0, 255))


def tensor_entries(model: SpectrogramModel, exponents: dict[str, int]) -> tuple[list[dict], list[np.ndarray]]:
    """Per tensor the header entry ``{name, shape, exponent, min, max, scale_index}`` and the integers to
    code, ``(numel,)`` int64 each."""
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


def _distribution(entry: dict) -> tuple[object, int]:
    """The distribution of a tensor's integers and the integer of its first symbol: version 2's portable
    table (symbols 0.. for min..max), or version 1's Laplace (symbols are the integers)."""
    lo, hi = entry["min"], entry["max"]
    if "scale" in entry:  # version 1
        return constriction.stream.model.QuantizedLaplace(lo, hi, 0.0, entry["scale"]), 0
    scale = np.array([scale_of_index(entry["scale_index"])])
    freq = laplace_frequencies(lo, hi, np.zeros(1), scale, precision=WEIGHT_PRECISION)[0, 0]
    return constriction.stream.model.Categorical(probabilities(freq, WEIGHT_PRECISION), perfect=False), lo


def encode_weights(stream, entries: list[dict], ints: list[np.ndarray]) -> None:
    """Range-code every tensor's integers onto ``stream`` (a range encoder) in header order; a constant
    tensor costs nothing."""
    for entry, q in zip(entries, ints, strict=True):
        if q.size and entry["min"] < entry["max"]:
            distribution, first = _distribution(entry)
            stream.encode((q - first).astype(np.int32), distribution)


def decode_weights(stream, entries: list[dict]) -> dict[str, torch.Tensor]:
    """The state dict that :func:`encode_weights` coded, read from ``stream`` (a range decoder)."""
    state = {}
    for entry in entries:
        size = math.prod(entry["shape"])
        if size and entry["min"] < entry["max"]:
            distribution, first = _distribution(entry)
            q = np.asarray(stream.decode(distribution, size), np.int64) + first
        else:
            q = np.full(size, entry["min"], np.int64)
        ints = torch.from_numpy(np.asarray(q, np.int64)).reshape(entry["shape"])
        state[entry["name"]] = from_integers(ints, entry["exponent"])
    return state
