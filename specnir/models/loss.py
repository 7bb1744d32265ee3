"""The image models' distortion: masked mean squared error, weighted per pixel for the ear if asked, plus an
optional Sobel-gradient term.

Two distortions (:data:`DISTORTIONS`, the fitting loop's ``distortion``): ``mse``, every pixel alike, what
PSNR measures; and ``ear`` (:func:`ear_weights`), which weighs each pixel by its level above its image's
noise floor, so that the bits go to formants and harmonics rather than to the near-silent bins between
phrases. The coded image is the same 8-bit dB image either way; only the fit's loss changes.
"""

from __future__ import annotations

import torch

from specnir.metrics import sobel_magnitude

DISTORTIONS = ("mse", "ear")
# The ear distortion: a pixel's weight is EAR_FLOOR at or below its image's noise floor (the EAR_QUANTILE of
# its real pixels' levels) and rises linearly with the level above it to 1 at the image's loudest.
EAR_FLOOR = 0.1
EAR_QUANTILE = 0.2


def masked_loss(
    recon: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    grad_weight: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error over real pixels (each times its ``weight``, if given), plus ``grad_weight`` ×
    MSE of Sobel gradient magnitudes.

    Args:
        recon, target: ``(N, H, W)``.
        mask: ``(N, 1, W)``, 1 on real columns.
        weight: ``(N, H, W)`` per-pixel weights (:func:`pixel_weights`, mean 1 over real pixels).
    """
    full = mask.expand_as(target)
    error = ((recon - target) ** 2) * full
    loss = (error if weight is None else error * weight).sum() / full.sum()
    if grad_weight:
        g_err = (sobel_magnitude(recon) - sobel_magnitude(target)) ** 2
        inner = full.clone()
        inner[..., 1:] *= full[..., :-1]  # keep gradients that do not straddle the padding
        loss = loss + grad_weight * (g_err * inner).sum() / inner.sum()
    return loss


def pixel_weights(target: torch.Tensor, mask: torch.Tensor, distortion: str) -> torch.Tensor | None:
    """The per-pixel weights of ``distortion`` for ``target (N, H, W)`` with column ``mask (N, 1, W)``:
    ``None`` for ``mse`` (every pixel alike), :func:`ear_weights` for ``ear``."""
    if distortion == "mse":
        return None
    if distortion == "ear":
        return ear_weights(target, mask)
    raise ValueError(f"distortion: one of {', '.join(DISTORTIONS)}, not {distortion!r}")


def ear_weights(
    target: torch.Tensor, mask: torch.Tensor, *, floor: float = EAR_FLOOR, quantile: float = EAR_QUANTILE
) -> torch.Tensor:
    """Weights ``(N, H, W)`` from each image's levels (values in [0, 1], 1 at its loudest): ``floor`` at or
    below the image's noise floor (the ``quantile`` of its real pixels), rising linearly to 1 at its
    loudest; scaled to mean 1 over each image's real pixels and 0 in the padding (``mask (N, 1, W)``)."""
    full = mask.expand_as(target) > 0
    weights = torch.zeros_like(target)
    for k in range(target.shape[0]):
        real = target[k][full[k]]
        if real.numel() == 0:
            continue
        noise = real.float().kthvalue(max(1, round(quantile * real.numel()))).values  # (any size)
        level = ((target[k] - noise) / (real.max() - noise).clamp_min(1e-6)).clamp(0, 1)
        w = (floor + (1 - floor) * level) * full[k]
        weights[k] = w * (real.numel() / w.sum())
    return weights
