"""The latent codec's model: quantised latent grids per image, a synthesis and an entropy model for the set.

Every image has ``grids`` latent grids, the finest at 1/2^``first`` of the image in both directions and each
next one half as fine (Cool-chic's hierarchy). The decoder rounds them to integers, up-samples each one
bilinearly to the image, adds the frequency position of every row, and a small convolutional synthesis
shared by the set turns those ``grids + 1`` channels into each pixel's value.

The latents are what the file will hold; their cost is their rate under a Laplace whose mean and scale an
entropy model, also shared by the set, predicts from latents already decoded. The decoding order is the
spectrogram's own: column by column along time, and in a column from the lowest frequency up, so the context
of latent ``(f, x)`` is columns x−1 (rows f−2..f+2) and x−2 (rows f−1..f+1) and the three bins below it in
column x; with ``cross``, also the previous image's column x (rows f−1..f+1: a column is decoded image by
image), which is what a set can give that a single image cannot. Two entropy models read that context:
``mlp`` (Cool-chic's causal MLP) and ``gru`` (a frequency-shared GRU that runs along time over the latent
columns; training feeds it the whole sequence at once, teacher-forced, as the encoder knows every latent).

Training minimises ``MSE + λ · bits per pixel``. Rounding has no gradient, so training replaces it (C3's
recipe, Kim et al. 2023): ``softround(softround(y, t) + n, t)`` with a soft rounding whose temperature t
falls from 0.3 to 0.1 and a Kumaraswamy noise n whose shape goes from 2 (peaked) to 1 (uniform), then, for
the last :data:`STE_SHARE` of the steps, true rounding with the soft rounding's gradient (straight-through).
``anneal=False`` keeps plain uniform noise throughout. Evaluation and the decoder round. Latent columns that
lie wholly in an image's padding are zero and cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from specnir.errors import check_bounds
from specnir.models.base import SpectrogramModel
from specnir.models.laplace import laplace_bits
from specnir.models.loss import masked_loss

ENTROPY_MODELS = ("mlp", "gru")
TEMPERATURE = (0.3, 0.1)  # soft rounding, start and end of the annealed phase
KUMARASWAMY = (2.0, 1.0)  # noise shape, start and end
LATENT_LR_SCALE = 4.0  # the latents' learning rate against the networks'
STE_SHARE = 0.1  # the last tenth of the steps: straight-through rounding
LOG_SCALE_MIN, LOG_SCALE_MAX = math.log(0.02), math.log(200.0)  # Laplace scales of a latent
# Causal context of latent (f, x) as (row offset, column offset); rows grow downwards, towards low frequency.
PAST = [(-2, -1), (-1, -1), (0, -1), (1, -1), (2, -1), (-1, -2), (0, -2), (1, -2)]  # columns x−1, x−2
BELOW = [(1, 0), (2, 0), (3, 0)]  # already decoded in column x
ACROSS = [(-1, 0), (0, 0), (1, 0)]  # with ``cross``: the previous image's column x, decoded before


@dataclass
class LatentConfig:
    grids: int = field(
        default=3, metadata={"help": "latent grids per image, each half as fine as the last", "min": 1}
    )
    first: int = field(default=1, metadata={"help": "the finest grid is 1/2^first of the image", "min": 0})
    synthesis: int = field(default=12, metadata={"help": "hidden channels of the synthesis", "min": 1})
    entropy: str = field(default="mlp", metadata={"help": "mlp | gru", "choices": ENTROPY_MODELS})
    entropy_hidden: int = field(default=16, metadata={"help": "hidden units of the entropy model", "min": 1})
    lam: float = field(
        default=2e-3, metadata={"help": "λ: weight of bits per pixel against the MSE", "min": 0}
    )
    anneal: bool = field(default=True, metadata={"help": "annealed soft rounding, then straight-through"})
    cross: bool = field(default=False, metadata={"help": "context from the previous image's latents too"})

    def __post_init__(self) -> None:
        check_bounds(self)


def softround(x: torch.Tensor, t: float) -> torch.Tensor:
    """A differentiable rounding: ``round(x)`` as ``t → 0``, ``x`` as ``t → ∞`` (Agustsson & Theis 2020)."""
    floor = torch.floor(x)
    return floor + 0.5 * torch.tanh((x - floor - 0.5) / t) / math.tanh(0.5 / t) + 0.5


def kumaraswamy_noise(like: torch.Tensor, a: float) -> torch.Tensor:
    """Noise in (−1/2, 1/2) with mode 0: Kumaraswamy(a, b) by inverse transform, shifted; ``a = 1`` is
    uniform, larger ``a`` more peaked."""
    b = (2**a * (a - 1) + 1) / a
    u = torch.rand_like(like)
    return (1 - (1 - u) ** (1 / b)) ** (1 / a) - 0.5


def training_rounding(latent: torch.Tensor, progress: float, *, anneal: bool) -> torch.Tensor:
    """What stands in for rounding at ``progress`` (0 to 1) of a fit: soft rounding with Kumaraswamy noise,
    then straight-through rounding for the last :data:`STE_SHARE` (``anneal``), or uniform noise."""
    if not anneal:
        return latent + torch.empty_like(latent).uniform_(-0.5, 0.5)
    phase = min(progress / (1 - STE_SHARE), 1.0)
    t = TEMPERATURE[0] + (TEMPERATURE[1] - TEMPERATURE[0]) * phase
    if progress >= 1 - STE_SHARE:  # round forward, soft rounding's gradient backward
        soft = softround(latent, t)
        return soft + (torch.round(latent) - soft).detach()
    a = KUMARASWAMY[0] + (KUMARASWAMY[1] - KUMARASWAMY[0]) * phase
    return softround(softround(latent, t) + kumaraswamy_noise(latent, a), t)


def latent_rate(latents: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Bits of ``latents (..., )`` under the entropy model's Laplace, ``predicted (..., 2)`` (mean,
    log-scale): the one formula the fit, the stacked fit and the rate report share."""
    mean, log_b = predicted.unbind(-1)
    return laplace_bits(latents - mean, torch.exp(log_b.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)), 1.0)


def column_mask(widths: list[int], columns: int, scale: int, *, device=None) -> torch.Tensor:
    """``(N, 1, columns)``: 1 on the latent columns of a grid at 1/``scale`` that an image of each width
    codes (a column wholly in the padding is not coded)."""
    starts = torch.arange(columns, device=device) * scale
    return (starts[None, None, :] < torch.tensor(widths, device=device)[:, None, None]).float()


def synthesis_input(
    latents: list[torch.Tensor], frequency: torch.Tensor, size: tuple[int, int], *, fast: bool = False
) -> torch.Tensor:
    """What the synthesis reads: grids ``(N, h_g, w_g)`` up-sampled bilinearly to ``size = (H, W)``, and
    the frequency ``(H,)`` of every row → ``(N, G + 1, H, W)``. ``fast`` (training) lays it out
    channels-last, which the CPU convolves 2-3× faster; the decoder's layout (and so its rounding) stays
    the one every file was coded with."""
    up = [F.interpolate(y[:, None], size=size, mode="bilinear", align_corners=False) for y in latents]
    x = torch.cat([*up, frequency[None, None, :, None].expand(len(latents[0]), 1, *size)], 1)
    return x.contiguous(memory_format=torch.channels_last) if fast else x


def context(latents: torch.Tensor, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """Neighbours of every latent: ``(N, h, w)`` → ``(N, h, w, len(offsets))``, zero outside the grid."""
    _, h, w = latents.shape
    padded = F.pad(latents, (2, 0, 3, 3))  # 2 columns before, 3 rows above and below
    return torch.stack([padded[:, 3 + df : 3 + df + h, 2 + dx : 2 + dx + w] for df, dx in offsets], -1)


def in_column(latents: torch.Tensor, cross: bool) -> torch.Tensor:
    """What is decoded before latent ``(k, f, x)`` in its own column: the bins below it and, with
    ``cross``, the previous image's bins around f (images are decoded in order within a column)."""
    below = context(latents, BELOW)
    if not cross:
        return below
    previous = F.pad(latents, (0, 0, 0, 0, 1, 0))[:-1]  # image k−1 (zeros before the first)
    return torch.cat([below, context(previous, ACROSS)], -1)


class EntropyMLP(nn.Module):
    """Cool-chic's causal MLP: the 11 decoded neighbours and the grid's index → Laplace mean, log-scale."""

    def __init__(self, n_grids: int, hidden: int, cross: bool) -> None:
        super().__init__()
        self.cross = cross
        self.net = nn.Sequential(
            nn.Linear(len(PAST) + len(BELOW) + len(ACROSS) * cross + n_grids, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
        )

    def inputs(self, latents: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """What the MLP reads: ``latents (N, h, w)``, ``grid (G,)`` one-hot → ``(N, h, w, 11 + G)``."""
        near = torch.cat([context(latents, PAST), in_column(latents, self.cross)], -1)
        return torch.cat([near, grid.expand(*near.shape[:-1], -1)], -1)

    def forward(self, latents: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """``latents (N, h, w)``, ``grid (G,)`` one-hot → ``(N, h, w, 2)``."""
        return self.net(self.inputs(latents, grid))


class EntropyGRU(nn.Module):
    """A frequency-shared GRU along time: at column x it has read columns ..x−1 of its row's neighbourhood;
    its state and the three bins below in column x give the Laplace mean and log-scale."""

    def __init__(self, n_grids: int, hidden: int, cross: bool) -> None:
        super().__init__()
        self.cross = cross
        self.gru = nn.GRU(len(PAST) + n_grids, hidden, batch_first=True)
        self.head = nn.Linear(hidden + len(BELOW) + len(ACROSS) * cross, 2)

    def forward(self, latents: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        n, h, w = latents.shape
        past = context(latents, PAST)  # (N, h, w, 8): only columns before x
        inputs = torch.cat([past, grid.expand(n, h, w, -1)], -1).reshape(n * h, w, -1)
        state, _ = self.gru(inputs)  # teacher-forced: every column at once
        return self.head(torch.cat([state.reshape(n, h, w, -1), in_column(latents, self.cross)], -1))


class Synthesis(nn.Sequential):
    """Up-sampled grids and the row frequency ``(N, G + 1, H, W)`` → an image ``(N, 1, H, W)``: two 1 × 1
    and two 3 × 3 convolutions (replicate padding) with ReLUs between them.

    ``last_column`` (a 0-d tensor: a stacked fit's set padded to a wider width) makes every padded
    convolution read, past that column, copies of it, which is what replicate padding reads at the
    image's own right edge: the columns up to it are those of the image synthesised at its own width.
    """

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate"),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, 3, padding=1, padding_mode="replicate"),
        )
        nn.init.constant_(self[-1].bias, 0.5)

    def forward(self, x: torch.Tensor, last_column: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            if last_column is not None and getattr(layer, "padding", (0, 0)) != (0, 0):
                inside = torch.arange(x.shape[-1], device=x.device) <= last_column
                edge = torch.take_along_dim(x, last_column.view(1, 1, 1, 1).expand(*x.shape[:-1], 1), -1)
                x = torch.where(inside, x, edge)
            x = layer(x)
        return x


class LatentCodec(SpectrogramModel):
    """Latent grids per image, one synthesis and one entropy model for the whole set (see the module)."""

    default_lr = 1e-2
    size_knob = "synthesis"
    Config = LatentConfig

    def __init__(self, config: LatentConfig, *, n_images: int, height: int, width: int) -> None:
        super().__init__(config, n_images=n_images, height=height, width=width)
        if config.grids < 1 or config.first < 0 or config.entropy not in ENTROPY_MODELS or config.lam < 0:
            raise ValueError("need grids ≥ 1, first ≥ 0, lam ≥ 0 and entropy mlp or gru")
        self.scales = [2 ** (config.first + g) for g in range(config.grids)]
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(n_images, math.ceil(height / s), math.ceil(width / s)))
            for s in self.scales
        )
        self.synthesis = Synthesis(config.grids + 1, config.synthesis)
        model = EntropyMLP if config.entropy == "mlp" else EntropyGRU
        self.entropy = model(config.grids, config.entropy_hidden, config.cross)
        # (made on the CPU even under a meta-device context, where linspace and eye import sympy and
        # torch._dynamo: 1-2 s of a decode)
        self.register_buffer("frequency", torch.linspace(1, -1, height, device="cpu"), persistent=False)
        self.register_buffer("grid_codes", torch.eye(config.grids, device="cpu"), persistent=False)
        self.progress = 0.0  # share of the fit done, set by the loop
        for g, latent in enumerate(self.latents):  # 1 on the latent columns that are coded
            self.register_buffer(f"mask{g}", torch.ones(n_images, 1, latent.shape[-1]), persistent=False)

    @property
    def column_masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask{g}") for g in range(len(self.scales))]

    def set_widths(self, widths: list[int]) -> None:
        """Zero the latent columns that lie wholly in an image's padding: they are not coded."""
        for g, s in enumerate(self.scales):
            mask = getattr(self, f"mask{g}")
            mask.copy_(column_mask(widths, mask.shape[-1], s, device=mask.device))

    def set_progress(self, fraction: float) -> None:
        self.progress = fraction

    def param_groups(self) -> list[dict]:
        """The latents learn ``LATENT_LR_SCALE`` times faster than the networks."""
        return [
            {"params": list(self.weights().values()), "lr_scale": 1.0},
            {"params": list(self.latents), "lr_scale": LATENT_LR_SCALE},
        ]

    def weights(self) -> dict[str, nn.Parameter]:
        """The synthesis and the entropy model; the latents are coded by the entropy model."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("latents.")}

    def quantize(self, latent: torch.Tensor) -> torch.Tensor:
        """Rounding, or in training its stand-in for the current point of the schedule."""
        if not self.training:
            return torch.round(latent)
        return training_rounding(latent, self.progress, anneal=self.config.anneal)

    def coded_latents(self) -> list[torch.Tensor]:
        """The latents as the decoder sees them, ``(N, h_g, w_g)`` per grid (see :meth:`quantize`)."""
        return [self.quantize(y) * mask for y, mask in zip(self.latents, self.column_masks, strict=True)]

    def synthesize(self, latents: list[torch.Tensor], width: int | None = None) -> torch.Tensor:
        """Grids ``(N, h_g, w_g)`` → images ``(N, H, width)`` (default: the model's width)."""
        size = (self.height, width or self.width)
        return self.synthesis(synthesis_input(latents, self.frequency, size, fast=self.training))[:, 0]

    def latent_bits(
        self, latents: list[torch.Tensor], masks: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """Bits of every latent under the entropy model, ``(N, h_g, w_g)`` per grid, times the grids'
        column ``masks`` ``(N, 1, w_g)`` (default: the model's own; 0 in the padding)."""
        masks = self.column_masks if masks is None else masks
        return [
            latent_rate(y, self.entropy(y, self.grid_codes[g])) * mask
            for g, (y, mask) in enumerate(zip(latents, masks, strict=True))
        ]

    def forward(self) -> torch.Tensor:
        """The decode ``(N, H, W)`` from the (rounded) latents."""
        return self.synthesize(self.coded_latents())

    def loss(
        self,
        target: torch.Tensor,
        mask: torch.Tensor,
        *,
        grad_weight: float = 0.0,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """MSE (each pixel times its ``weight``, if given; plus the optional gradient term) + λ · bits per
        real pixel."""
        return self.rd_loss(self.coded_latents(), None, target, mask, grad_weight=grad_weight, weight=weight)

    def rd_loss(
        self,
        latents: list[torch.Tensor],
        masks: list[torch.Tensor] | None,
        target: torch.Tensor,
        mask: torch.Tensor,
        *,
        grad_weight: float = 0.0,
        lam: float | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`loss` of any coded grids ``(N, h_g, w_g)`` with their column ``masks`` (see
        :meth:`latent_bits`) against ``target (N, H, W)`` and ``mask (N, 1, W)`` (pixels weighed by
        ``weight (N, H, W)`` if given), at ``lam`` (default: the config's λ): the one formula of the latent
        codec's fit and of a decoder's training on crops."""
        image = self.synthesize(latents, target.shape[-1])
        mse = masked_loss(image, target, mask, grad_weight=grad_weight, weight=weight)
        pixels = mask.sum() * self.height
        lam = self.config.lam if lam is None else lam
        return mse + lam * sum(b.sum() for b in self.latent_bits(latents, masks)) / pixels

    def rates(self, mask: torch.Tensor) -> dict:
        """Where the bits go (rounded latents): ``bpp``, ``grid_bits`` (bits of each grid) and
        ``bits_per_column`` ``(N, W)`` (each latent's bits spread over the pixel columns it covers)."""
        with torch.no_grad():
            bits = self.latent_bits(self.coded_latents())
        per_column = sum(
            b.sum(1).repeat_interleave(s, dim=-1)[:, : self.width] / s
            for b, s in zip(bits, self.scales, strict=True)
        )
        total = sum(float(b.sum()) for b in bits)
        return {
            "bpp": total / float(mask.sum() * self.height),
            "grid_bits": [float(b.sum()) for b in bits],
            "bits_per_column": per_column,
        }
