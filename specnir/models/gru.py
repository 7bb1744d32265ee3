"""The GRU column decoder: column x of every image from the decoded column x−1.

Weights are shared along frequency: every bin of every image runs the same GRU cell, with its own hidden
state. At time step x, bin f of image k sees

- the ``kernel`` bins around f of its own decoded column x−1 (the decoder's output, never the truth),
- fixed Fourier features of its frequency position and of the time position x (no weights),
- a learned embedding of image k (``embed`` numbers per image),
- optionally (``sine``) learned SIREN features ``sin(w0 · (A [t, f, e_k] + b))`` of its time, frequency and
  image embedding, which let it place detail more finely than the fixed Fourier features.

So the weight count does not grow with the image height, and training unrolls exactly the loop the
decoder runs (free-running, back-propagation through all columns). Decoding starts from a silent
column (zeros) and a zero hidden state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from specnir.errors import check_bounds
from specnir.models.base import SpectrogramModel


@dataclass
class GRUConfig:
    hidden: int = field(default=20, metadata={"help": "GRU hidden units per frequency bin", "min": 1})
    kernel: int = field(default=5, metadata={"help": "bins of the previous column seen (odd)", "min": 1})
    embed: int = field(default=4, metadata={"help": "per-image embedding size", "min": 0})
    time_freqs: int = field(
        default=6, metadata={"help": "Fourier frequencies of the time position", "min": 0}
    )
    freq_freqs: int = field(default=4, metadata={"help": "Fourier frequencies of the bin position", "min": 0})
    sine: int = field(
        default=16, metadata={"help": "learned sine features of (time, frequency, image)", "min": 0}
    )
    w0: float = field(default=30.0, metadata={"help": "frequency factor of the sine features", "above": 0})

    def __post_init__(self) -> None:
        check_bounds(self)


def fourier_features(position: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """``[sin(2^j π p), cos(2^j π p)]`` for j < n_freqs: ``(L,)`` positions in [-1, 1] → ``(L, 2n)``."""
    scales = math.pi * 2.0 ** torch.arange(n_freqs, dtype=position.dtype, device=position.device)
    angles = position[:, None] * scales[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], -1)


def neighbourhood(column: torch.Tensor, kernel: int) -> torch.Tensor:
    """``(N, H)`` column → ``(N, H, kernel)`` values around each bin (edges replicated)."""
    pad = kernel // 2
    padded = F.pad(column[:, None], (pad, pad), mode="replicate")[:, 0]
    return padded.unfold(1, kernel, 1)


class ColumnGRU(SpectrogramModel):
    """Frequency-shared GRU decoding one time column per step for all images together."""

    default_lr = 2e-2
    Config = GRUConfig
    # Files of version 1 may hold the per-column codes that were removed (always 0 of them).
    retired_config = {"latent": 0}
    retired_tensors = ("latents",)

    def __init__(self, config: GRUConfig, *, n_images: int, height: int, width: int) -> None:
        super().__init__(config, n_images=n_images, height=height, width=width)
        if config.kernel < 1 or config.kernel % 2 == 0:
            raise ValueError("kernel must be odd and positive")
        n_static = 2 * config.time_freqs + 2 * config.freq_freqs + config.embed + config.sine
        n_in = config.kernel + n_static
        self.cell = nn.GRUCell(n_in, config.hidden)
        # (constants and random draws on the CPU even under a meta-device context, where their
        # decompositions import sympy and torch._dynamo: seconds of every decode)
        self.embedding = nn.Parameter(0.1 * torch.randn(n_images, config.embed, device="cpu"))
        self.sine = nn.Linear(2 + config.embed, config.sine) if config.sine else None
        if self.sine is not None:  # SIREN's first-layer initialisation
            nn.init.uniform_(self.sine.weight, -1 / (2 + config.embed), 1 / (2 + config.embed))
        self.out = nn.Linear(config.hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, 0.3)
        self.register_buffer(
            "freq_features",
            fourier_features(torch.linspace(-1, 1, height, device="cpu"), config.freq_freqs),
            persistent=False,
        )
        self.register_buffer(
            "time_features",
            fourier_features(torch.linspace(-1, 1, width, device="cpu"), config.time_freqs),
            persistent=False,
        )

    def _static_inputs(self) -> torch.Tensor:
        """Inputs that do not depend on the decode, ``(W, N·H, n_static)``."""
        n, h, w = self.n_images, self.height, self.width
        freq = self.freq_features[None, None].expand(w, n, h, -1)
        time = self.time_features[:, None, None].expand(w, n, h, -1)
        emb = self.embedding[None, :, None].expand(w, n, h, -1)
        parts = [freq, time, emb]
        if self.sine is not None:
            f = torch.linspace(-1, 1, h, device=emb.device)[None, None, :, None].expand(w, n, h, 1)
            t = torch.linspace(-1, 1, w, device=emb.device)[:, None, None, None].expand(w, n, h, 1)
            parts.append(torch.sin(self.config.w0 * self.sine(torch.cat([t, f, emb], -1))))
        return torch.cat(parts, -1).reshape(w, n * h, -1)

    def _neighbourhood(self, column: torch.Tensor) -> torch.Tensor:
        """``(N, H)`` column → ``(N·H, kernel)`` values around each bin."""
        return neighbourhood(column, self.config.kernel).reshape(-1, self.config.kernel)

    def _run(self, target: torch.Tensor | None) -> torch.Tensor:
        """Decode all columns; with ``target (N, H, W)`` each step sees the true previous column."""
        n, h, w = self.n_images, self.height, self.width
        static = self._static_inputs()
        state = static.new_zeros(n * h, self.config.hidden)
        column = static.new_zeros(n, h)
        outputs = []
        for x in range(w):
            state = self.cell(torch.cat([self._neighbourhood(column), static[x]], -1), state)
            value = self.out(state).reshape(n, h)
            outputs.append(value)
            column = value if target is None else target[:, :, x]
        return torch.stack(outputs, -1)

    def forward(self) -> torch.Tensor:
        """Free-running decode, ``(N, H, W)``: what the decoder produces from the weights alone."""
        return self._run(None)

    def diagnostics(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher-forced prediction (true column x−1 as input), to show the free-running gap."""
        return {"teacher_forced": self._run(target)}
