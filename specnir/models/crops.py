"""A corpus's latents and one synthesis and entropy model, trained on random crops: a decoder's training.

A decoder for everyone is fitted on thousands of images; computing all of them at every step (as a
stacked fit does, :mod:`specnir.models.stacked`) would take days on a CPU. :class:`CropLatents` keeps one
set of latent grids per image of the corpus and, at each step of the fitting loop, draws ``batch`` images
of one λ (the corpus's images are spread over the qualities a decoder serves) and one crop of ``crop``
columns from each — aligned to the coarsest grid, so that a crop's latents are exactly the image's — and
minimises the latent codec's own loss (:meth:`~specnir.models.latent.LatentCodec.rd_loss`) on those
crops: minibatches, as learned image codecs train. Only the drawn images' latents receive a gradient
(each is a parameter of its own, which Adam leaves alone when it has none), so a step costs the same
whatever the corpus's size. The networks are a :class:`~specnir.models.latent.LatentCodec`'s, so the
trained decoder is that codec's synthesis and entropy model, name for name.

Evaluation (``model.eval()``) measures every image whole, at its own λ: :meth:`forward` decodes them all
and :meth:`loss` is the mean over the λs of their images' ``MSE + λ · bits per pixel``
(:attr:`group_losses` keeps each). Shapes: ``N`` images of ``H`` rows and widths ``W_k`` (``W`` the
widest), ``B`` crops of ``C`` columns.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from specnir.models.base import SpectrogramModel
from specnir.models.latent import LATENT_LR_SCALE, LatentCodec, LatentConfig, column_mask

EVAL_CHUNK = 16  # images decoded at once when evaluating


class CropLatents(SpectrogramModel):
    """``widths`` images' latents and one latent codec's networks, trained on ``batch`` crops of ``crop``
    columns per step, each image at its own λ (``lams``, one per image; see the module)."""

    default_lr = LatentCodec.default_lr

    def __init__(
        self,
        config: LatentConfig,
        *,
        height: int,
        widths: list[int],
        lams: list[float],
        crop: int,
        batch: int,
    ) -> None:
        if len(lams) != len(widths) or not widths or batch < 1 or crop < 1:
            raise ValueError("need one λ per image, at least one image, crop ≥ 1 and batch ≥ 1")
        super().__init__(config, n_images=len(widths), height=height, width=max(widths))
        self.codec = LatentCodec(config, n_images=1, height=height, width=1)  # the networks
        self.scales = self.codec.scales
        self.unit = max(self.scales)  # crops start and end on the coarsest grid's columns
        self.crop, self.batch = -(-crop // self.unit) * self.unit, batch
        self.widths = list(widths)
        self.lams = sorted(set(lams))
        self.groups = [[k for k, lam in enumerate(lams) if lam == value] for value in self.lams]
        self.image_lams = list(lams)
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(math.ceil(height / s), math.ceil(w / s)))
            for w in widths
            for s in self.scales
        )
        self.group_losses: dict[float, float] = {}

    def image_latents(self, k: int) -> list[torch.Tensor]:
        """Image ``k``'s grids, ``(h_g, w_g)`` each."""
        g = len(self.scales)
        return list(self.latents[k * g : (k + 1) * g])

    def set_progress(self, fraction: float) -> None:
        self.codec.set_progress(fraction)

    def param_groups(self) -> list[dict]:
        return [
            {"params": list(self.codec.weights().values()), "lr_scale": 1.0},
            {"params": list(self.latents), "lr_scale": LATENT_LR_SCALE},
        ]

    def weights(self) -> dict[str, nn.Parameter]:
        """The networks, by their names in a :class:`LatentCodec`."""
        return self.codec.weights()

    def _window(self, images: list[int], starts: list[int], width: int):
        """The coded grids ``(B, h_g, width / s_g)`` and their column masks of images ``images`` from
        columns ``starts`` on, ``width`` columns wide (zeros past an image's end)."""
        latents, masks = [], []
        for g, s in enumerate(self.scales):
            columns = -(-width // s)
            grids = []
            for k, x in zip(images, starts, strict=True):
                y = self.latents[k * len(self.scales) + g][:, x // s : x // s + columns]
                grids.append(F.pad(y, (0, columns - y.shape[-1])))
            real = [self.widths[k] - x for k, x in zip(images, starts, strict=True)]
            mask = column_mask(real, columns, s, device=grids[0].device)
            latents.append(self.codec.quantize(torch.stack(grids)) * mask)
            masks.append(mask)
        return latents, masks

    def _pixels(self, values: torch.Tensor, images: list[int], starts: list[int], width: int) -> torch.Tensor:
        """Columns ``starts`` to ``starts + width`` of ``values (N, ·, W)`` for ``images`` (zero-padded)."""
        pieces = [values[k, :, x : x + width] for k, x in zip(images, starts, strict=True)]
        return torch.stack([F.pad(p, (0, width - p.shape[-1])) for p in pieces])

    def crop_loss(
        self,
        target: torch.Tensor,
        mask: torch.Tensor,
        images: list[int],
        starts: list[int],
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The latent codec's loss on crops of ``images`` from columns ``starts`` (all of one λ; pixels
        weighed by the corpus's ``weight (N, H, W)`` if given)."""
        latents, masks = self._window(images, starts, self.crop)
        target_crop = self._pixels(target, images, starts, self.crop)
        mask_crop = self._pixels(mask, images, starts, self.crop)
        weight_crop = None if weight is None else self._pixels(weight, images, starts, self.crop)
        lam = self.image_lams[images[0]]
        return self.codec.rd_loss(latents, masks, target_crop, mask_crop, lam=lam, weight=weight_crop)

    def draw(self) -> tuple[list[int], list[int]]:
        """A training step's crops: ``batch`` images of one λ (torch's generator) and their starts."""
        group = self.groups[int(torch.randint(len(self.groups), ()))]
        images = [group[int(i)] for i in torch.randint(len(group), (self.batch,))]
        starts = []
        for k, u in zip(images, torch.rand(self.batch).tolist(), strict=True):
            count = max(-(-(self.widths[k] - self.crop) // self.unit), 0) + 1
            starts.append(self.unit * min(int(u * count), count - 1))
        return images, starts

    def loss(
        self,
        target: torch.Tensor,
        mask: torch.Tensor,
        *,
        grad_weight: float = 0.0,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training: the loss of one draw of crops (:meth:`draw`). Evaluation: every image whole, the
        mean over the λs (see the module). ``target (N, H, W)``, ``mask (N, 1, W)`` and the pixels'
        ``weight (N, H, W)`` (if any) are the corpus's."""
        if grad_weight:
            raise ValueError("a decoder is trained on a distortion + λ · rate only")
        if self.training:
            return self.crop_loss(target, mask, *self.draw(), weight)
        self.group_losses = {}
        for lam, group in zip(self.lams, self.groups, strict=True):
            total, pixels = 0.0, 0.0
            for chunk in _chunks(group):
                width = max(self.widths[k] for k in chunk)
                latents, masks = self._window(chunk, [0] * len(chunk), width)
                m = self._pixels(mask, chunk, [0] * len(chunk), width)
                t = self._pixels(target, chunk, [0] * len(chunk), width)
                w = None if weight is None else self._pixels(weight, chunk, [0] * len(chunk), width)
                n = float(m.sum())
                total += float(self.codec.rd_loss(latents, masks, t, m, lam=lam, weight=w)) * n
                pixels += n
            self.group_losses[lam] = total / pixels
        return torch.tensor(sum(self.group_losses.values()) / len(self.group_losses))

    def forward(self) -> torch.Tensor:
        """Every image decoded whole, ``(N, H, W)`` (past an image's width: what its zero latents make)."""
        out = []
        for chunk in _chunks(list(range(self.n_images))):
            latents, _ = self._window(chunk, [0] * len(chunk), self.width)
            out.append(self.codec.synthesize(latents, self.width))
        return torch.cat(out)


def _chunks(images: list[int]) -> list[list[int]]:
    return [images[i : i + EVAL_CHUNK] for i in range(0, len(images), EVAL_CHUNK)]
