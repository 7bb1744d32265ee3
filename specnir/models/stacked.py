"""Many sets' latent codecs fitted as one model: their weights stacked along a leading set dimension.

``StackedLatents(models, widths)`` takes B :class:`~specnir.models.latent.LatentCodec` s — one per set, each
built and seeded exactly as ``compress`` builds it — and computes all B losses in one pass: the latents'
rounding, the entropy MLP (batched matrix products, one weight matrix per set), the rates, the errors and
the optimiser step run once for all sets. The networks are the latent codec's own modules, called with
each set's weights (``torch.func.functional_call``): one set after another at the set's own size, the
arithmetic of a fit of the set alone (the CPU's way), or ``batched`` — all sets at once through
``torch.func.vmap`` (grouped convolutions and batched products: a GPU's way, where B small launches a step
would leave it idle), each set's grids up-sampled to its own width by its own linear taps
(:func:`linear_taps`) and its synthesis reading its own right edge
(:class:`~specnir.models.latent.Synthesis`), so that every set's pixels are those of its own synthesis up
to the arithmetic's rounding. Sets are
padded to the widest set and the most images (masked out: padding costs nothing), so every set
minimises exactly its own ``MSE + λ · bits per pixel``; only the arithmetic's order and the training
noise (one draw for all sets) differ from a fit of the set alone. :meth:`unstack` puts each set's weights
and latents back into its own model, which ``compress`` then quantises and codes as usual. With
``shared_networks``, the sets share one synthesis and one entropy model, fitted to the sum of their
losses (a decoder for a whole corpus) or frozen (a shared decoder's).

Shapes below: ``B`` sets, ``n`` images per set (padded), ``H × W`` pixels (padded), ``G`` grids.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from specnir.models.base import SpectrogramModel
from specnir.models.latent import (
    LATENT_LR_SCALE,
    LatentCodec,
    column_mask,
    latent_rate,
    synthesis_input,
    training_rounding,
)


def linear_taps(size: int, out: int, *, pad_to: int = 0, dense: bool = False):
    """Linear up-sampling from ``size`` to ``out`` samples as ``F.interpolate`` computes it (half-pixel
    centres): the matrix ``(out, size)`` (``dense``), or every output's two source indices and weights
    ``(2, pad_to)``, the last output's repeated up to ``pad_to``."""
    matrix = F.interpolate(torch.eye(size)[None], size=out, mode="linear", align_corners=False)[0].T
    if dense:
        return matrix
    weight, index = F.pad(matrix, (0, 1)).topk(2, dim=1)  # (out, 2): at most two sources are not zero
    index = torch.where(weight > 0, index, index[:, :1])  # (a zero weight's index: any real one)
    repeat = torch.full((max(pad_to - out, 0),), out - 1)
    index, weight = (torch.cat([t, t[repeat]]).T.contiguous() for t in (index, weight))
    return index, weight


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

    def __init__(
        self,
        models: list[LatentCodec],
        widths: list[list[int]],
        *,
        shared_networks: bool = False,
        batched: bool = False,
    ) -> None:
        if not can_stack(models):
            raise ValueError("only latent codecs with the same settings and the MLP entropy model stack")
        first = models[0]
        b, n = len(models), max(m.n_images for m in models)
        height, width = first.height, max(m.width for m in models)
        super().__init__(first.config, n_images=sum(m.n_images for m in models), height=height, width=width)
        self.template = [first]  # the networks' modules (a list: its parameters are not ours)
        self.scales, self.sets, self.per_set = first.scales, b, n
        self.shared_networks, self.batched = shared_networks, batched
        self.register_buffer("lam", torch.tensor([m.config.lam for m in models]))
        real = [s * n + k for s, m in enumerate(models) for k in range(m.n_images)]
        self.register_buffer("real", torch.tensor(real))  # rows of the (B·n) padded images that exist
        image_widths = [ws + [0] * (n - len(ws)) for ws in widths]  # (B, n), 0: a padding image
        flat = [w for ws in image_widths for w in ws]
        self.register_buffer("pixel_mask", column_mask(flat, width, 1).view(b, n, 1, width))
        self.latents = nn.ParameterList()
        for g, s in enumerate(self.scales):
            h, w = first.latents[g].shape[-2], -(-width // s)
            stacked = torch.zeros(b, n, h, w)
            for k, m in enumerate(models):
                stacked[k, : m.n_images, :, : m.latents[g].shape[-1]] = m.latents[g].detach()
            self.latents.append(nn.Parameter(stacked))
            self.register_buffer(f"mask{g}", column_mask(flat, w, s).view(b, n, 1, w))
        # each set's image count, width and latent grid widths
        self.shapes = [(m.n_images, m.width, [y.shape[-1] for y in m.latents]) for m in models]
        last = torch.tensor([w - 1 for _, w, _ in self.shapes])  # each set's last column (batched)
        self.register_buffer("last_column", last, persistent=False)
        self.register_buffer("inside", (torch.arange(width)[None, :] <= last[:, None]), persistent=False)
        for g, y in enumerate(first.latents):  # the up-sampling's taps (see _synthesize_batched)
            self.register_buffer(f"rows{g}", linear_taps(y.shape[-2], height, dense=True), persistent=False)
            taps = [linear_taps(sizes[g], w, pad_to=width) for _, w, sizes in self.shapes]
            self.register_buffer(f"taps{g}", torch.stack([t[0] for t in taps]), persistent=False)
            self.register_buffer(f"tap_weights{g}", torch.stack([t[1] for t in taps]), persistent=False)
        owners = models[:1] if shared_networks else models  # one synthesis and entropy model for all sets
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
        return p.expand(self.sets, *p.shape[1:])  # (shared networks: the same weights for every set)

    def _module_weights(self, prefix: str) -> tuple[dict[str, torch.Tensor], int | None]:
        """The weights of the template's module ``prefix`` (``synthesis`` or ``entropy``) by their names in
        it, and how ``vmap`` maps them: ``(B, …)`` each and ``0``, or with shared networks ``(…)`` and
        ``None``."""
        module = getattr(self.template[0], prefix)
        weights = {
            name: self.stacked[f"{prefix}__{name.replace('.', '__')}"]
            for name, _ in module.named_parameters()
        }
        if self.shared_networks:
            return {name: p[0] for name, p in weights.items()}, None
        return weights, 0

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
        """Grids ``(B, n, h_g, w_g)`` → images ``(B, n, H, W)``, zero past each set's width."""
        if self.batched:
            return self._synthesize_batched(latents)
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

    def _synthesize_batched(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`_synthesize` for all sets at once. Each set's grids are up-sampled to its own width by
        the taps of :func:`linear_taps` (what ``F.interpolate`` computes, as products), its last column
        repeated to the widest set's; the synthesis (:class:`~specnir.models.latent.Synthesis`) runs once,
        mapped over the sets, each reading its own right edge."""
        first, b, n = self.template[0], self.sets, self.per_set
        up = []
        for g, y in enumerate(latents):
            index, weight = getattr(self, f"taps{g}"), getattr(self, f"tap_weights{g}")  # (B, 2, W)
            wide = sum(
                torch.take_along_dim(y, index[:, None, None, t], -1) * weight[:, None, None, t]
                for t in range(2)
            )  # (B, n, h_g, W)
            up.append(torch.matmul(getattr(self, f"rows{g}"), wide))  # (B, n, H, W)
        frequency = first.frequency.to(y.device)[None, None, :, None].expand(b, n, self.height, self.width)
        x = torch.stack([*up, frequency], 2)  # (B, n, G + 1, H, W)
        weights, mapped = self._module_weights("synthesis")

        def one_set(weights, x, last):  # (n, G + 1, H, W) → (n, H, W)
            return functional_call(first.synthesis, weights, (x, last))[:, 0]

        image = vmap(one_set, in_dims=(mapped, 0, 0))(weights, x, self.last_column)
        return image * self.inside.view(b, 1, 1, self.width)

    def _bits(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """Bits of each set's latents under its own entropy model, ``(B,)``."""
        if self.batched:
            return sum(self._grid_bits(g, y) for g, y in enumerate(latents))
        return torch.stack([self._set_bits(k, latents) for k in range(self.sets)])

    def _grid_bits(self, g: int, y: torch.Tensor) -> torch.Tensor:
        """Bits of grid ``g`` ``(B, n, h, w)`` of every set, ``(B,)``: the entropy model mapped over sets."""
        entropy, code = self.template[0].entropy, self.template[0].grid_codes.to(y.device)[g]
        weights, mapped = self._module_weights("entropy")

        def one_set(weights, y):  # (n, h, w) → (n, h, w, 2)
            return functional_call(entropy, weights, (y, code))

        predicted = vmap(one_set, in_dims=(mapped, 0))(weights, y)
        return (latent_rate(y, predicted) * getattr(self, f"mask{g}")).sum((1, 2, 3))

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

    def set_losses(self, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``MSE + λ · bits per pixel`` of every set, ``(B,)``; ``target`` is the real images
        ``(N_1 + … + N_B, H, W)``, ``weight`` their pixels' weights in the MSE (same shape), if any."""
        latents = self.coded_latents()
        error = (self._synthesize(latents) - self._by_set(target)) ** 2
        if weight is not None:
            error = error * self._by_set(weight)
        pixels = self.pixel_mask.sum((1, 2, 3)) * self.height
        mse = (error * self.pixel_mask).sum((1, 2, 3)) / pixels
        return mse + self.lam * self._bits(latents) / pixels

    def _by_set(self, values: torch.Tensor) -> torch.Tensor:
        """The real images' ``values (N_1 + … + N_B, H, W)`` as ``(B, n, H, W)``, zero in the padding."""
        full = values.new_zeros(self.sets * self.per_set, self.height, self.width)
        full[self.real] = values
        return full.view(self.sets, self.per_set, self.height, -1)

    def loss(
        self,
        target: torch.Tensor,
        mask: torch.Tensor,
        *,
        grad_weight: float = 0.0,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The sum of the sets' losses: each set's gradient is its own loss's (``mask`` is implied)."""
        if grad_weight:
            raise ValueError("stacked latent codecs fit a distortion + λ · rate only")
        return self.set_losses(target, weight).sum()

    def unstack(self, models: list[LatentCodec]) -> None:
        """Copy each set's fitted weights and latents into its own model (the ones given at construction)."""
        with torch.no_grad():
            for k, model in enumerate(models):
                for name, p in model.weights().items():
                    p.copy_(self.weight(name)[k])
                for g, latent in enumerate(model.latents):
                    latent.copy_(self.latents[g][k, : model.n_images, :, : latent.shape[-1]])
