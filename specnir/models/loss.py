"""The image models' loss: masked mean squared error, plus an optional Sobel-gradient term."""

from __future__ import annotations

import torch

from specnir.metrics import sobel_magnitude


def masked_loss(
    recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, grad_weight: float = 0.0
) -> torch.Tensor:
    """Mean squared error over real pixels, plus ``grad_weight`` × MSE of Sobel gradient magnitudes.

    Args:
        recon, target: ``(N, H, W)``.
        mask: ``(N, 1, W)``, 1 on real columns.
    """
    full = mask.expand_as(target)
    loss = (((recon - target) ** 2) * full).sum() / full.sum()
    if grad_weight:
        g_err = (sobel_magnitude(recon) - sobel_magnitude(target)) ** 2
        inner = full.clone()
        inner[..., 1:] *= full[..., :-1]  # keep gradients that do not straddle the padding
        loss = loss + grad_weight * (g_err * inner).sum() / inner.sum()
    return loss
