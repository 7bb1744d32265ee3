"""What every specnir model is: a module whose ``forward()`` decodes all images at once."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from specnir.models.loss import masked_loss


class SpectrogramModel(nn.Module):
    """A neural representation of ``n_images`` spectrogram images of ``height`` rows.

    ``forward()`` returns what the decoder produces, ``(n_images, height, width)`` values that approximate
    the [0, 1] images; training optimises exactly this output. Images narrower than ``width`` are decoded
    to ``width`` and cropped afterwards.

    Class attributes: ``Config`` (the dataclass of its hyper-parameters), ``default_lr`` (Adam's learning
    rate when a fit does not set one), ``size_knob`` (the config field that sizes it, for
    :func:`specnir.models.sized_config`) and ``predictive`` (true for a model that predicts from decoded
    pixels instead of decoding from its weights alone; it minimises bits, not MSE).
    """

    Config: ClassVar[type]
    default_lr: ClassVar[float] = 1e-3
    size_knob: ClassVar[str] = "hidden"
    predictive: ClassVar[bool] = False
    # Config fields that older files may hold, with the one value at which they may be dropped, and
    # parameters that older files may hold (always empty): see :meth:`upgrade`.
    retired_config: ClassVar[dict] = {}
    retired_tensors: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def upgrade(cls, config: dict, tensors: dict[str, list[int]]) -> tuple[dict, set[str]]:
        """An older file's config with retired fields dropped, and the names of its retired (empty)
        tensors to ignore. A retired field at another value raises ``ValueError``."""
        for key, value in cls.retired_config.items():
            if key in config and config[key] != value:
                raise ValueError(f"{key}={config[key]!r} is no longer supported (only {value!r})")
        config = {k: v for k, v in config.items() if k not in cls.retired_config}
        dropped = {n for n in cls.retired_tensors if isinstance(tensors.get(n), list) and 0 in tensors[n]}
        return config, dropped

    def __init__(self, config, *, n_images: int, height: int, width: int) -> None:
        super().__init__()
        self.config = config
        self.n_images, self.height, self.width = n_images, height, width

    def loss(
        self,
        target: torch.Tensor,
        mask: torch.Tensor,
        *,
        grad_weight: float = 0.0,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """What the fitting loop minimises: the masked MSE of :meth:`forward` (``(N, H, W)`` target,
        ``(N, 1, W)`` mask; each pixel times its ``weight (N, H, W)`` if given) plus ``grad_weight`` × the
        Sobel-gradient MSE (:func:`~specnir.models.loss.masked_loss`)."""
        return masked_loss(self(), target, mask, grad_weight=grad_weight, weight=weight)

    def set_progress(self, fraction: float) -> None:
        """The loop says how far the fit has come (0 to 1) before each step; a model with a training
        schedule of its own (the latent codec's quantisation) follows it."""

    def set_widths(self, widths: list[int]) -> None:
        """The real width of every image (the rest is padding); a model that codes per column uses it."""

    def rates(self, mask: torch.Tensor) -> dict:
        """Where a model that codes its own bits spends them (see the latent codec); ``{}`` otherwise."""
        return {}

    def diagnostics(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Other reconstructions worth watching, ``{name: (N, H, W)}``; ``target`` is ``(N, H, W)``."""
        return {}

    def param_groups(self) -> list[dict]:
        """Adam's parameter groups; a group's ``lr_scale`` multiplies the fit's learning rate."""
        return [{"params": list(self.parameters()), "lr_scale": 1.0}]

    def weights(self) -> dict[str, nn.Parameter]:
        """The parameters a ``.snir`` file stores as quantised weights (all of them, unless the model codes
        some of its own way, like the latent codec's latents), in the file's order."""
        return dict(self.named_parameters())

    def n_weights(self) -> int:
        return sum(p.numel() for p in self.parameters())
