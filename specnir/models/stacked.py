"""Many sets' latent codecs fitted as one model: their weights stacked along a leading set dimension.

``StackedLatents(models, widths)`` takes B :class:`~specnir.models.latent.LatentCodec` s — one per set, each
built and seeded exactly as ``compress`` builds it — and computes all B losses in one pass: the latents'
rounding, the entropy MLP (batched matrix products, one weight matrix per set), the rates, the errors and
the optimiser step run once for all sets; the synthesis runs per set, at the set's own size and through
the same layers as a fit of the set alone (:func:`~specnir.models.latent.synthesis_input`). Sets are
padded to the widest set and the most images (masked out: padding costs nothing), so every set
minimises exactly its own ``MSE + λ · bits per pixel``; only the arithmetic's order and the training
noise (one draw for all sets) differ from a fit of the set alone. :meth:`unstack` puts each set's weights
and latents back into its own model, which ``compress`` then quantises and codes as usual. With
``shared``, the sets share one synthesis and one entropy model, fitted to the sum of their losses (a
decoder for a whole corpus; measured by ``benchmarks/shared_decoder.py``).

Shapes below: ``B`` sets, ``n`` images per set (padded), ``H × W`` pixels (padded), ``G`` grids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from specnir.models.base import SpectrogramModel
from specnir.models.latent import (
    LATENT_LR_SCALE,
    LatentCodec,
    coded_columns,
    latent_rate,
    synthesis_input,
    training_rounding,
)

# Devices where the entropy MLP runs as one batched product per layer for all sets; elsewhere (a CPU) small
# batched products are slower than one product per set.
BATCHED_ENTROPY = {"cuda"}


def can_stack(models: list[SpectrogramModel]) -> bool:
    """Whether these models can be fitted as one: latent codecs with the MLP entropy model, without
    cross-image context, alike in everything but λ and their images' count and width."""
    first = models[0]
    if not all(isinstance(m, LatentCodec) for m in models):
        return False
    alike = [{**vars(m.config), "lam": 0} for m in models]
    return (
        first.config.entropy == "mlp"
        and not first.config.cross
        and all(a == alike[0] for a in alike)
        and len({m.height for m in models}) == 1
    )


class StackedLatents(SpectrogramModel):
    """B sets' latent codecs as one model (see the module). ``forward()`` and the loop's data hold only
    the real images of all sets, set after set: ``(N_1 + … + N_B, H, W)``."""

    default_lr = LatentCodec.default_lr

    def __init__(self, models: list[LatentCodec], widths: list[list[int]], *, shared: bool = False) -> None:
        if not can_stack(models):
            raise ValueError("only latent codecs with the same settings and the MLP entropy model stack")
        first = models[0]
        b, n = len(models), max(m.n_images for m in models)
        height, width = first.height, max(m.width for m in models)
        super().__init__(first.config, n_images=sum(m.n_images for m in models), height=height, width=width)
        self.template = [first]  # the layers' shapes and padding (a list: its parameters are not ours)
        self.scales, self.sets, self.per_set = first.scales, b, n
        self.register_buffer("lam", torch.tensor([m.config.lam for m in models]))
        real = [s * n + k for s, m in enumerate(models) for k in range(m.n_images)]
        self.register_buffer("real", torch.tensor(real))  # rows of the (B·n) padded images that exist
        image_widths = [ws + [0] * (n - len(ws)) for ws in widths]  # (B, n), 0: a padding image
        flat = [w for ws in image_widths for w in ws]
        self.register_buffer("pixel_mask", coded_columns(flat, width, 1).view(b, n, 1, width))
        self.latents = nn.ParameterList()
        for g, s in enumerate(self.scales):
            h, w = first.latents[g].shape[-2], -(-width // s)
            stacked = torch.zeros(b, n, h, w)
            for k, m in enumerate(models):
                stacked[k, : m.n_images, :, : m.latents[g].shape[-1]] = m.latents[g].detach()
            self.latents.append(nn.Parameter(stacked))
            self.register_buffer(f"mask{g}", coded_columns(flat, w, s).view(b, n, 1, w))
        # each set's image count, width and latent grid widths
        self.shapes = [(m.n_images, m.width, [y.shape[-1] for y in m.latents]) for m in models]
        owners = models[:1] if shared else models  # shared: one synthesis and entropy model for all sets
        self.stacked = nn.ParameterDict(
            {
                name.replace(".", "__"): nn.Parameter(
                    torch.stack([m.weights()[name].detach() for m in owners]),
                    requires_grad=first.weights()[name].requires_grad,  # (frozen: a shared decoder's)
                )
                for name in first.weights()
            }
        )
        self.progress = 0.0

    def weight(self, name: str) -> torch.Tensor:
        """The stacked parameter ``(B, *shape)`` of the template's parameter ``name``."""
        p = self.stacked[name.replace(".", "__")]
        return p.expand(self.sets, *p.shape[1:])  # (a shared one: the same weights for every set)

    def set_progress(self, fraction: float) -> None:
        self.progress = fraction

    def param_groups(self) -> list[dict]:
        return [
            {"params": list(self.stacked.values()), "lr_scale": 1.0},
            {"params": list(self.latents), "lr_scale": LATENT_LR_SCALE},
        ]

    def weights(self) -> dict[str, nn.Parameter]:
        return dict(self.stacked)

    def coded_latents(self) -> list[torch.Tensor]:
        """``(B, n, h_g, w_g)`` per grid, rounded (or its training stand-in) and masked."""
        anneal, out = self.config.anneal, []
        for g, y in enumerate(self.latents):
            q = training_rounding(y, self.progress, anneal=anneal) if self.training else torch.round(y)
            out.append(q * getattr(self, f"mask{g}"))
        return out

    def _synthesize(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Grids ``(B, n, h_g, w_g)`` → images ``(B, n, H, W)``: each set through its own synthesis at its
        own size (the convolutions dominate and gain nothing from grouping on a CPU; on a GPU they are
        B small launches a step)."""
        first, out = self.template[0], []
        frequency = first.frequency.to(latents[0].device)
        for k, (n, width, sizes) in enumerate(self.shapes):
            grids = [y[k, :n, :, :w] for y, w in zip(latents, sizes, strict=True)]
            x = synthesis_input(grids, frequency, (self.height, width), fast=self.training)
            weights = {
                name: self.weight(f"synthesis.{name}")[k] for name, _ in first.synthesis.named_parameters()
            }
            image = functional_call(first.synthesis, weights, (x,))[:, 0]
            out.append(F.pad(image, (0, self.width - width, 0, 0, 0, self.per_set - n)))
        return torch.stack(out)

    def _bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Bits of each set's latents under its own entropy model, ``(B,)``."""
        if latents[0].device.type in BATCHED_ENTROPY:
            return sum(self._grid_bits(g, y) for g, y in enumerate(latents))
        return torch.stack([self._set_bits(k, latents) for k in range(self.sets)])

    def _grid_bits(self, g: int, y: torch.Tensor) -> torch.Tensor:
        """Bits of grid ``g`` ``(B, n, h, w)`` of every set, ``(B,)``: one batched product per layer."""
        entropy, (b, n, h, w) = self.template[0].entropy, y.shape
        x = entropy.inputs(y.reshape(b * n, h, w), self.template[0].grid_codes.to(y.device)[g])
        x = x.reshape(b, n * h * w, -1)
        for i, layer in enumerate(entropy.net):
            if isinstance(layer, nn.ReLU):
                x = F.relu(x)
            else:
                weight, bias = self.weight(f"entropy.net.{i}.weight"), self.weight(f"entropy.net.{i}.bias")
                x = torch.baddbmm(bias[:, None, :], x, weight.transpose(1, 2))
        return (latent_rate(y, x.view(b, n, h, w, 2)) * getattr(self, f"mask{g}")).sum((1, 2, 3))

    def _set_bits(self, k: int, latents: list[torch.Tensor]) -> torch.Tensor:
        """Bits of set ``k``'s latents, at its own size, through its own entropy model (a scalar)."""
        entropy, (n, _, sizes) = self.template[0].entropy, self.shapes[k]
        weights = {name: self.weight(f"entropy.{name}")[k] for name, _ in entropy.named_parameters()}
        codes, bits = self.template[0].grid_codes.to(latents[0].device), 0
        for g, (y, w) in enumerate(zip(latents, sizes, strict=True)):
            y, mask = y[k, :n, :, :w], getattr(self, f"mask{g}")[k, :n, :, :w]
            bits = bits + (latent_rate(y, functional_call(entropy, weights, (y, codes[g]))) * mask).sum()
        return bits

    def forward(self) -> torch.Tensor:
        """The real images of every set, ``(N_1 + … + N_B, H, W)``, from the rounded latents."""
        recon = self._synthesize(self.coded_latents())
        return recon.reshape(-1, self.height, self.width)[self.real]

    def set_losses(self, target: torch.Tensor) -> torch.Tensor:
        """``MSE + λ · bits per pixel`` of every set, ``(B,)``; ``target`` is the real images
        ``(N_1 + … + N_B, H, W)``."""
        latents = self.coded_latents()
        full = target.new_zeros(self.sets * self.per_set, self.height, self.width)
        full[self.real] = target
        error = (self._synthesize(latents) - full.view(self.sets, self.per_set, self.height, -1)) ** 2
        pixels = self.pixel_mask.sum((1, 2, 3)) * self.height
        mse = (error * self.pixel_mask).sum((1, 2, 3)) / pixels
        return mse + self.lam * self._bits(latents) / pixels

    def loss(self, target: torch.Tensor, mask: torch.Tensor, *, grad_weight: float = 0.0) -> torch.Tensor:
        """The sum of the sets' losses: each set's gradient is its own loss's (``mask`` is implied)."""
        if grad_weight:
            raise ValueError("stacked latent codecs fit MSE + λ · rate only")
        return self.set_losses(target).sum()

    def unstack(self, models: list[LatentCodec]) -> None:
        """Copy each set's fitted weights and latents into its own model (the ones given at construction)."""
        with torch.no_grad():
            for k, model in enumerate(models):
                for name, p in model.weights().items():
                    p.copy_(self.weight(name)[k])
                for g, latent in enumerate(model.latents):
                    latent.copy_(self.latents[g][k, : model.n_images, :, : latent.shape[-1]])
