"""Coding modes: what a ``.snir`` file holds besides the weights, and how it turns into pixels.

A mode picks the network that is fitted for a quality, knows how much quantisation may cost, and codes
and decodes the images after the weights. ``compress`` and ``decode`` run any mode the same way
(fit → quantise → header → weights → :meth:`CodingMode.encode`; header → weights → :meth:`CodingMode.decode`),
so a new mode is one class here and one entry in :data:`MODES`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from specnir.codec.residual import decode_residuals, encode_residuals, one_thread
from specnir.data import ImageSet
from specnir.errors import SpecnirError
from specnir.models import MODELS, SpectrogramModel, sized_config

QUALITIES = range(1, 9)


class CodingMode:
    """One way of coding a set; subclasses fill in the class attributes and the four methods."""

    name: ClassVar[str]
    help: ClassVar[str]
    archs: ClassVar[tuple[str, ...]]  # what the user may ask for (``arch`` in the header)
    # Relative loss increases tried for weight quantisation, coarse to fine (see quantize_and_tune).
    tolerances: ClassVar[tuple[float, ...]]

    def model_arch(self, arch: str) -> str:
        """The registry name of the network that is fitted and stored for ``arch``."""
        return arch

    def build(self, arch: str, quality: int, data: ImageSet, max_error: int | None) -> SpectrogramModel:
        """The network to fit to ``data`` at ``quality`` (seeded by the caller)."""
        raise NotImplementedError

    def encode(self, model: SpectrogramModel, data: ImageSet, encoder) -> np.ndarray:
        """Code what follows the weights; returns the decoder's images ``(N, H, W)`` uint8."""
        raise NotImplementedError

    def decode(self, model: SpectrogramModel, widths: list[int], decoder) -> np.ndarray:
        """The images ``(N, H, W)`` uint8 (image orientation, padded to the widest)."""
        raise NotImplementedError

    def describe(self, header: dict) -> dict:
        """What ``specnir info`` shows of this mode's own settings in a header."""
        return {}

    def check(self, arch: str, max_error: int | None) -> None:
        """Refuse settings this mode cannot code (:class:`SpecnirError`, no flag names)."""
        if arch not in self.archs:
            raise SpecnirError(f"mode {self.name} codes with {' or '.join(self.archs)}, not {arch!r}")
        if max_error is not None:
            raise SpecnirError(f"a max error bound needs mode residual, not {self.name}")


def render(model: SpectrogramModel) -> np.ndarray:
    """The model's decode as 8-bit grey levels ``(N, H, W)``, on one thread (bit-exact)."""
    with torch.no_grad(), one_thread():
        return np.rint(model().clamp(0, 1).numpy() * 255).astype(np.uint8)


class ModelMode(CodingMode):
    name = "model"
    help = "the network is the code"
    archs = ("siren", "gru")  # (the latent codec needs its own mode: its latents are entropy-coded)
    tolerances = (10 ** (1.0 / 10) - 1, 10 ** (0.1 / 10) - 1)  # MSE up 1 dB, then 0.1 dB
    WEIGHTS: ClassVar[dict[int, int]] = {q: 500 * 2**q for q in QUALITIES}  # about 500 · 2^Q weights

    def build(self, arch, quality, data, max_error):
        shape = tuple(data.target.shape)
        config = sized_config(arch, self.WEIGHTS[quality], shape)
        return MODELS[arch](config, n_images=shape[0], height=shape[1], width=shape[2])

    def encode(self, model, data, encoder):
        return render(model)

    def decode(self, model, widths, decoder):
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

    def check(self, arch, max_error):
        super().check(arch, None)
        if max_error is not None and not 0 <= max_error <= 127:
            raise SpecnirError(f"max error must be from 0 to 127 grey levels, not {max_error}")

    def build(self, arch, quality, data, max_error):
        n, h, w = data.target.shape
        k = self.MAX_ERROR[quality] if max_error is None else max_error
        cls = MODELS["predictor"]
        model = cls(cls.Config(max_error=k), n_images=n, height=h, width=w)
        model.bind(data.target)
        return model

    def encode(self, model, data, encoder):
        return encode_residuals(model, data, encoder)

    def decode(self, model, widths, decoder):
        return decode_residuals(model, widths, decoder)


MODES: dict[str, CodingMode] = {mode.name: mode for mode in (ModelMode(), ResidualMode())}
