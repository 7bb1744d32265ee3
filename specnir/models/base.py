"""What every specnir model is: a module whose ``forward()`` decodes all images at once."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class SpectrogramModel(nn.Module):
    """A neural representation of ``n_images`` spectrogram images of ``height`` rows.

    ``forward()`` returns what the decoder produces, ``(n_images, height, width)`` values that approximate
    the [0, 1] images; training optimises exactly this output. Images narrower than ``width`` are decoded
    to ``width`` and cropped afterwards.
    """

    Config: ClassVar[type]
    default_lr: ClassVar[float] = 1e-3

    def __init__(self, config, *, n_images: int, height: int, width: int) -> None:
        super().__init__()
        self.config = config
        self.n_images, self.height, self.width = n_images, height, width

    def loss(self, target: torch.Tensor, mask: torch.Tensor, *, grad_weight: float = 0.0) -> torch.Tensor:
        """What the fitting loop minimises; by default the masked MSE of :meth:`forward` (``(N, H, W)``
        target, ``(N, 1, W)`` mask). A predictive coder returns its bits per pixel instead."""
        from specnir.fit import masked_loss

        return masked_loss(self(), target, mask, grad_weight=grad_weight)

    def diagnostics(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Other reconstructions worth watching, ``{name: (N, H, W)}``; ``target`` is ``(N, H, W)``."""
        return {}

    def n_weights(self) -> int:
        return sum(p.numel() for p in self.parameters())
