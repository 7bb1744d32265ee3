"""The Laplace rate: the bits an entropy coder spends on a value under a predicted Laplace distribution.

One formula for every model that trains on its rate: the predictive coder's residuals and the latent codec's
latents. It matches constriction's ``QuantizedLaplace`` (edge symbols take the tails).
"""

from __future__ import annotations

import math

import torch


def _log_cdf(z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log P(X ≤ z) for X ~ Laplace(0, scale)."""
    return torch.where(
        z < 0, math.log(0.5) + z.clamp(max=0) / scale, torch.log1p(-0.5 * torch.exp(-z.clamp(min=0) / scale))
    )


def laplace_bits(
    residual: torch.Tensor,
    scale: torch.Tensor,
    width: float,
    lowest: torch.Tensor | None = None,
    highest: torch.Tensor | None = None,
) -> torch.Tensor:
    """−log2 of the Laplace(0, ``scale``) probability of ``[residual − width/2, residual + width/2]``.

    Where ``lowest`` (``highest``) is true the interval is the bottom (top) symbol, which also takes the
    tail below (above) it, as the range coder's model does. All tensors broadcast; the result has their shape.
    """
    r, half = residual.abs(), width / 2
    outer = math.log(0.5) - (r - half) / scale + torch.log1p(-torch.exp(-width / scale))
    inner = torch.log1p(
        -0.5 * torch.exp(-(half - r).clamp(min=0) / scale) - 0.5 * torch.exp(-(half + r) / scale)
    )
    log_p = torch.where(r >= half, outer, inner.clamp(max=0))
    if lowest is not None:
        log_p = torch.where(lowest, _log_cdf(residual + half, scale), log_p)
    if highest is not None:
        log_p = torch.where(highest, _log_cdf(half - residual, scale), log_p)
    return -log_p.clamp(min=-60) / math.log(2)
