"""SIREN (Sitzmann et al. 2020), the COIN baseline: pixel coordinates → pixel value.

Five images share one network in one of three ways (``multi``):

- ``index``: the image index is a third input coordinate (default);
- ``tile``: the images sit side by side in one coordinate frame;
- ``heads``: one output per image.

Coordinates are normalised per axis to [-1, 1]: time by the widest image, frequency by the height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from specnir.errors import check_bounds
from specnir.models.base import SpectrogramModel

MULTI = ("index", "tile", "heads")


@dataclass
class SirenConfig:
    width: int = field(default=48, metadata={"help": "hidden units per layer", "min": 1})
    depth: int = field(default=3, metadata={"help": "hidden layers", "min": 1})
    w0: float = field(default=30.0, metadata={"help": "sine frequency factor ω0", "above": 0})
    multi: str = field(default="index", metadata={"help": "index | tile | heads", "choices": MULTI})

    def __post_init__(self) -> None:
        check_bounds(self)


class SineLayer(nn.Module):
    """``sin(w0 · (W x + b))`` with SIREN's initialisation."""

    def __init__(self, n_in: int, n_out: int, *, w0: float, first: bool) -> None:
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(n_in, n_out)
        bound = 1 / n_in if first else math.sqrt(6 / n_in) / w0
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -1 / math.sqrt(n_in), 1 / math.sqrt(n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))


def siren_grid(n_images: int, height: int, width: int, multi: str) -> torch.Tensor:
    """Input coordinates ``(N, H, W, C)`` for each pixel; ``C`` is 3 for ``index`` and 2 otherwise.

    For ``tile`` the time axis runs over all images placed side by side, each ``width`` wide.
    """
    f = torch.linspace(1.0, -1.0, height)  # row 0 = highest frequency
    t = torch.linspace(-1.0, 1.0, width)
    ff, tt = torch.meshgrid(f, t, indexing="ij")  # (H, W)
    rows = []
    for k in range(n_images):
        if multi == "index":
            kk = torch.full_like(ff, 0.0 if n_images == 1 else -1 + 2 * k / (n_images - 1))
            rows.append(torch.stack([tt, ff, kk], -1))
        elif multi == "tile":
            total = n_images * width - 1
            tg = -1 + 2 * (k * width + (tt + 1) / 2 * (width - 1)) / max(total, 1)
            rows.append(torch.stack([tg, ff], -1))
        else:
            rows.append(torch.stack([tt, ff], -1))
    return torch.stack(rows)


class Siren(SpectrogramModel):
    """SIREN MLP over pixel coordinates, ``depth`` sine layers of ``width`` units, linear output."""

    default_lr = 2e-3
    size_knob = "width"
    Config = SirenConfig

    def __init__(self, config: SirenConfig, *, n_images: int, height: int, width: int) -> None:
        super().__init__(config, n_images=n_images, height=height, width=width)
        if config.multi not in MULTI:
            raise ValueError(f"multi must be one of {MULTI}")
        n_in = 3 if config.multi == "index" else 2
        n_out = n_images if config.multi == "heads" else 1
        layers = [SineLayer(n_in, config.width, w0=config.w0, first=True)]
        layers += [
            SineLayer(config.width, config.width, w0=config.w0, first=False) for _ in range(config.depth - 1)
        ]
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(config.width, n_out)
        bound = math.sqrt(6 / config.width) / config.w0
        nn.init.uniform_(self.out.weight, -bound, bound)
        nn.init.constant_(self.out.bias, 0.5)
        self.register_buffer("grid", siren_grid(n_images, height, width, config.multi), persistent=False)

    def render(self, grid: torch.Tensor) -> torch.Tensor:
        """Values ``(N, H, W)`` at coordinates ``grid (N, H, W, C)`` (any resolution)."""
        y = self.out(self.net(grid))  # (N, H, W, n_out)
        if self.config.multi == "heads":
            return torch.stack([y[k, ..., k] for k in range(self.n_images)])
        return y[..., 0]

    def forward(self) -> torch.Tensor:
        return self.render(self.grid)

    def render_scaled(self, *, time_scale: float = 1.0, freq_scale: float = 1.0) -> torch.Tensor:
        """Decode on a grid ``freq_scale`` × taller and ``time_scale`` × wider: ``(N, H', W')``."""
        height = max(1, round(self.height * freq_scale))
        width = max(1, round(self.width * time_scale))
        grid = siren_grid(self.n_images, height, width, self.config.multi).to(self.out.weight)
        return self.render(grid)
