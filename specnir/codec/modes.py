"""Coding modes: what a ``.snir`` file holds besides the weights, and how it turns into pixels.

A mode picks the network that is fitted for a quality, knows how much quantisation may cost, and codes
and decodes the images after the weights. ``compress`` and ``decode`` run any mode the same way
(fit → quantise → header → weights → :meth:`CodingMode.encode`; header → weights → :meth:`CodingMode.decode`),
so a new mode is one class here and one entry in :data:`MODES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from specnir.codec.latents import MAX_ALPHABET, decode_latents, encode_latents
from specnir.codec.residual import decode_residuals, encode_residuals, one_thread
from specnir.codec.weights import Quantized, loss_on, quantize_and_tune, rd_exponents
from specnir.data import ImageSet
from specnir.errors import SpecnirError
from specnir.fit import FitConfig
from specnir.models import MODELS, SpectrogramModel, sized_config

QUALITIES = range(1, 9)


@dataclass(frozen=True)
class Options:
    """What a user may set beyond the quality: a max error bound (residual), a free λ (latent)."""

    max_error: int | None = None
    lam: float | None = None


class CodingMode:
    """One way of coding a set; subclasses fill in the class attributes and the four methods."""

    name: ClassVar[str]
    help: ClassVar[str]
    archs: ClassVar[tuple[str, ...]]  # what the user may ask for (``arch`` in the header), default first
    steps: ClassVar[int] = 800  # optimiser steps of the fit, unless the caller says otherwise
    # Relative loss increases tried for weight quantisation, coarse to fine (see quantize_and_tune).
    tolerances: ClassVar[tuple[float, ...]]

    def fit_steps(self, quality: int) -> int:
        """Optimiser steps of the fit at ``quality``, unless the caller says otherwise."""
        return self.steps

    def model_arch(self, arch: str) -> str:
        """The registry name of the network that is fitted and stored for ``arch``."""
        return arch

    def build(self, arch: str, quality: int, data: ImageSet, options: Options) -> SpectrogramModel:
        """The network to fit to ``data`` at ``quality`` (seeded by the caller)."""
        raise NotImplementedError

    def quantize(self, model: SpectrogramModel, data: ImageSet, fit_config: FitConfig) -> Quantized:
        """Put the fitted model's weights on their grids (see :mod:`specnir.codec.weights`)."""
        return quantize_and_tune(model, data, fit_config, self.tolerances)

    def encode(
        self, model: SpectrogramModel, data: ImageSet, encoder, header: dict
    ) -> tuple[np.ndarray, dict]:
        """Code what follows the weights (adding this mode's fields to ``header``, which is written
        after); returns the decoder's images ``(N, H, W)`` uint8 and what the report should add."""
        raise NotImplementedError

    def decode(self, model: SpectrogramModel, widths: list[int], decoder, header: dict) -> np.ndarray:
        """The images ``(N, H, W)`` uint8 (image orientation, padded to the widest)."""
        raise NotImplementedError

    def describe(self, header: dict) -> dict:
        """What ``specnir info`` shows of this mode's own settings in a header."""
        return {}

    def quality_config(self, quality: int) -> dict:
        """The config fields this mode sets for ``quality`` whatever the data (the header need not store
        them)."""
        return {}

    def check(self, arch: str, options: Options) -> None:
        """Refuse settings this mode cannot code (:class:`SpecnirError`, no flag names)."""
        if arch not in self.archs:
            raise SpecnirError(f"mode {self.name} codes with {' or '.join(self.archs)}, not {arch!r}")
        if options.max_error is not None:
            raise SpecnirError(f"a max error bound needs mode residual, not {self.name}")
        if options.lam is not None:
            raise SpecnirError(f"a free λ needs mode latent, not {self.name}")


def render(model: SpectrogramModel) -> np.ndarray:
    """The model's decode as 8-bit grey levels ``(N, H, W)``, on one thread (bit-exact)."""
    with torch.no_grad(), one_thread():
        return np.rint(model().clamp(0, 1).numpy() * 255).astype(np.uint8)


class ModelMode(CodingMode):
    name = "model"
    help = "the network is the code"
    archs = ("gru", "siren")  # (the latent codec needs its own mode: its latents are entropy-coded)
    tolerances = (10 ** (1.0 / 10) - 1, 10 ** (0.1 / 10) - 1)  # MSE up 1 dB, then 0.1 dB
    WEIGHTS: ClassVar[dict[int, int]] = {q: 500 * 2**q for q in QUALITIES}  # about 500 · 2^Q weights

    def build(self, arch, quality, data, options):
        shape = tuple(data.target.shape)
        config = sized_config(arch, self.WEIGHTS[quality], shape)
        return MODELS[arch](config, n_images=shape[0], height=shape[1], width=shape[2])

    def encode(self, model, data, encoder, header):
        return render(model), {}

    def decode(self, model, widths, decoder, header):
        return render(model)


class ResidualMode(CodingMode):
    name = "residual"
    help = "the GRU predicts every pixel, the residuals are stored (gru only)"
    archs = ("gru",)
    tolerances = (0.03, 0.005)  # bits per pixel up 3 %, then 0.5 %
    MAX_ERROR: ClassVar[dict[int, int]] = {1: 16, 2: 10, 3: 6, 4: 4, 5: 3, 6: 2, 7: 1, 8: 0}

    def model_arch(self, arch):
        return "predictor"

    def describe(self, header):
        return {"max_error": header["model_config"].get("max_error")}

    def check(self, arch, options):
        super().check(arch, Options(lam=options.lam))
        k = options.max_error
        if k is not None and not 0 <= k <= 127:
            raise SpecnirError(f"max error must be from 0 to 127 grey levels, not {k}")

    def build(self, arch, quality, data, options):
        n, h, w = data.target.shape
        k = self.MAX_ERROR[quality] if options.max_error is None else options.max_error
        cls = MODELS["predictor"]
        model = cls(cls.Config(max_error=k), n_images=n, height=h, width=w)
        model.bind(data.target)
        return model

    def encode(self, model, data, encoder, header):
        return encode_residuals(model, data, encoder), {}

    def decode(self, model, widths, decoder, header):
        return decode_residuals(model, widths, decoder)


class LatentMode(CodingMode):
    name = "latent"
    help = "latent grids coded by a causal entropy model, one synthesis for the set (lossy)"
    archs = ("latent",)
    steps = 1500  # qualities 1-4 (more steps keep gaining; 1,500 keep audio/ under 6 minutes on 2 CPU cores)
    steps_with_full_grid = 3000  # qualities 5-8: the full-resolution grid needs them (+0.7 dB at Q5)
    tolerances = ()
    # The LatentConfig fields of each quality (tuned on sets other than audio/, see the README): λ (weight
    # of bits per pixel against the MSE of [0, 1] images) halves per step; qualities 1-4 have grids at
    # 1/2, 1/4, 1/8 of the image (~0.2-0.4 bpp), 5-8 add a full-resolution grid (~0.6-1.4 bpp), which
    # does not pay below ~0.5 bpp.
    SETTINGS: ClassVar[dict[int, dict]] = {
        q: {"lam": 8e-3 / 2 ** (q - 1)} if q <= 4 else {"lam": 1e-3 / 2 ** (q - 5), "first": 0, "grids": 4}
        for q in QUALITIES
    }

    def quality_config(self, quality):
        return self.SETTINGS.get(quality, {})

    def fit_steps(self, quality):
        return self.steps_with_full_grid if self.SETTINGS[quality].get("grids") == 4 else self.steps

    def check(self, arch, options):
        super().check(arch, Options(max_error=options.max_error))
        if options.lam is not None and not 0 < options.lam <= 1:
            raise SpecnirError(f"λ must be above 0 and at most 1, not {options.lam}")

    def build(self, arch, quality, data, options):
        n, h, w = data.target.shape
        cls = MODELS["latent"]
        settings = self.quality_config(quality) | ({} if options.lam is None else {"lam": options.lam})
        config = cls.Config(**settings)
        return cls(config, n_images=n, height=h, width=w)

    def quantize(self, model, data, fit_config):
        loss_now = loss_on(model, data)
        float_loss = loss_now()
        pixels = int(data.mask.sum()) * model.height
        exponents = rd_exponents(model, loss_now, lam=model.config.lam, pixels=pixels)
        return Quantized(exponents, float_loss, loss_now())

    def encode(self, model, data, encoder, header):
        alphabets, bits = encode_latents(model, data.widths, encoder)
        header["latents"] = {"alphabets": alphabets}
        estimate = model.rates(data.mask)["grid_bits"]
        return render(model), {"latent_grid_bits": bits, "latent_estimate_bits": estimate}

    def decode(self, model, widths, decoder, header):
        alphabets = header.get("latents", {}).get("alphabets")
        if not (
            isinstance(alphabets, list)
            and len(alphabets) == len(model.scales)
            and all(isinstance(a, int) and 1 <= a <= MAX_ALPHABET for a in alphabets)
        ):
            raise SpecnirError("bad latent alphabets")
        grids = decode_latents(model, widths, alphabets, decoder)
        with torch.no_grad():
            for latent, grid in zip(model.latents, grids, strict=True):
                latent.copy_(grid)
        return render(model)

    def describe(self, header):
        return {"lambda": header["model_config"].get("lam"), "alphabets": header["latents"]["alphabets"]}


MODES: dict[str, CodingMode] = {mode.name: mode for mode in (ModelMode(), ResidualMode(), LatentMode())}
# The mode `compress` uses when none is asked for: the one whose file is smallest for its PSNR at that
# quality on the measured sets (README): latent up to ~35 dB, then residual's near-lossless and lossless.
DEFAULT_MODE: dict[int, str] = {q: "latent" if q <= 6 else "residual" for q in QUALITIES}
