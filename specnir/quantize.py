"""Weight quantisation: one power-of-two step per tensor, chosen by measuring, then fine-tuned.

Each weight tensor is stored as integers ``round(w · 2^e)``; ``e`` is the coarsest exponent whose rounding
alone raises the model's loss by at most its share of a tolerance. The fitting loop then fine-tunes the
float weights through a straight-through rounding (the forward pass sees the quantised weights, the
gradient passes as if rounding were the identity), so the other weights learn to absorb the error.
Dequantised weights ``q · 2^−e`` are exact in float32, so encoder and decoder hold identical weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

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
