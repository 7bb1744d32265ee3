"""Coding modes: what a ``.snir`` file holds besides the weights, and how it turns into pixels.

A mode is one :class:`CodingMode` subclass, added to :data:`MODES` with :func:`register`; no other
module's code names a mode. It declares its ids in the header (``id``, and ``archs``: each architecture's
id), the options it takes, its own header fields (:meth:`~CodingMode.header_fields` and
:meth:`~CodingMode.read_header_fields`), how its weights are quantised (``tolerances``), whether its
networks can live in a shared decoder (``shares_decoder``) and whether many sets can be fitted as one
model (``stacks``). The encoder (:mod:`specnir.codec.encode`) and the decoder (:mod:`specnir.codec.decode`)
run every mode the same way: build → fit → quantise → header → weights → :meth:`~CodingMode.encode`, and
header → weights → :meth:`~CodingMode.decode`.

Ids are the header's bytes: a mode's and an architecture's id never change and are never reused, so that
every file ever written still decodes (``model`` 0, ``residual`` 1, ``latent`` 2; ``gru`` 0, ``siren`` 1,
``latent`` 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np
import torch

from specnir.codec.latents import MAX_ALPHABET, decode_latents, encode_latents
from specnir.codec.residual import decode_residuals, encode_residuals, one_thread
from specnir.data import ImageSet
from specnir.errors import SpecnirError
from specnir.models import MODELS, SpectrogramModel, sized_config
from specnir.models.loss import DISTORTIONS

QUALITIES = range(1, 9)


@dataclass(frozen=True)
class Options:
    """What a user may set beyond the quality; each mode names those it takes (:attr:`CodingMode.options`)."""

    max_error: int | None = field(default=None, metadata={"what": "a max error bound"})
    lam: float | None = field(default=None, metadata={"what": "a free λ"})
    distortion: str | None = field(default=None, metadata={"what": "a distortion"})

    def given(self) -> list[str]:
        """The names of the options that are set, in field order."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


class CodingMode:
    """One way of coding a set; subclasses fill in the class attributes and the methods they need."""

    name: ClassVar[str]
    id: ClassVar[int]  # the header's mode byte
    # what the user may ask for (``arch`` in the header) → its id in the header; the first is the default
    archs: ClassVar[dict[str, int]]
    options: ClassVar[tuple[str, ...]] = ()  # the Options fields this mode takes
    help: ClassVar[str]  # one line for ``--mode``
    quality_help: ClassVar[str]  # what ``--quality`` sets in this mode
    steps: ClassVar[int] = 800  # optimiser steps of the fit, unless the caller says otherwise
    # Weight quantisation (specnir.codec.nnquant.quantize): relative loss increases tried coarse to fine,
    # each fine-tuned; None: the grids that minimise the model's own MSE + λ · rate, weights' bits counted.
    tolerances: ClassVar[tuple[float, ...] | None] = None
    shares_decoder: ClassVar[bool] = False  # its networks can be a shared decoder's (the file holds none)
    stacks: ClassVar[bool] = False  # many sets' models can be fitted as one (specnir.models.stacked)

    def fit_steps(self, quality: int) -> int:
        """Optimiser steps of the fit at ``quality``, unless the caller says otherwise."""
        return self.steps

    def model_arch(self, arch: str) -> str:
        """The registry name (:data:`specnir.models.MODELS`) of the network fitted and stored for ``arch``."""
        return arch

    def quality_config(self, quality: int) -> dict:
        """The config fields this mode sets for ``quality`` whatever the data (the header need not store
        them)."""
        return {}

    def check(self, arch: str, options: Options) -> None:
        """Refuse settings this mode cannot code (:class:`SpecnirError`); a mode that takes options checks
        their values too."""
        if arch not in self.archs:
            raise SpecnirError(f"mode {self.name} codes with {' or '.join(self.archs)}, not {arch!r}")
        for name in options.given():
            if name not in self.options:
                what = Options.__dataclass_fields__[name].metadata["what"]
                takers = " or ".join(m.name for m in MODES.values() if name in m.options)
                raise SpecnirError(f"{what} needs mode {takers}, not {self.name}")

    def check_shared_decoder(self) -> None:
        """Refuse a shared decoder for a mode whose files hold their networks."""
        if not self.shares_decoder:
            raise SpecnirError(f"mode {self.name} cannot use a shared decoder: its files hold their networks")

    def build(self, arch: str, quality: int, data: ImageSet, options: Options) -> SpectrogramModel:
        """The network to fit to ``data`` at ``quality`` (seeded by the caller)."""
        raise NotImplementedError

    def encode(
        self, model: SpectrogramModel, data: ImageSet, stream, header: dict
    ) -> tuple[np.ndarray, dict]:
        """Code what follows the weights onto ``stream`` (a range encoder), adding this mode's fields to
        ``header`` (written after); returns the decoder's images ``(N, H, W)`` uint8 and what the report
        should add."""
        raise NotImplementedError

    def decode(self, model: SpectrogramModel, widths: list[int], stream, header: dict) -> np.ndarray:
        """The images ``(N, H, W)`` uint8 (image orientation, padded to the widest), read from ``stream``
        (a range decoder) after the weights."""
        raise NotImplementedError

    def header_fields(self, header: dict) -> list[int]:
        """This mode's own header fields, as the unsigned integers the binary header stores."""
        return []

    def read_header_fields(self, values: list[int]) -> dict:
        """What :meth:`header_fields` wrote, back as header entries."""
        if values:
            raise SpecnirError(f"mode {self.name} has no header fields")
        return {}

    def describe(self, header: dict) -> dict:
        """What ``specnir info`` shows of this mode's own settings in a header."""
        return {}


MODES: dict[str, CodingMode] = {}


def register(mode: CodingMode) -> CodingMode:
    """Add ``mode`` to :data:`MODES`; refused (``ValueError``) if its name is taken, or its id or an
    architecture's id is another mode's or another architecture's (ids are the header's bytes)."""
    if mode.name in MODES:
        raise ValueError(f"mode {mode.name} is registered already")
    if len(set(mode.archs.values())) < len(mode.archs):
        raise ValueError(f"mode {mode.name}: two architectures share an id")
    for other in MODES.values():
        if other.id == mode.id:
            raise ValueError(f"mode {mode.name}: id {mode.id} is mode {other.name}'s")
        for arch, arch_id in mode.archs.items():
            for theirs, their_id in other.archs.items():
                if (arch == theirs) != (arch_id == their_id):
                    raise ValueError(
                        f"mode {mode.name}: architecture {arch} {arch_id} clashes with {other.name}"
                    )
    MODES[mode.name] = mode
    return mode


def mode_with_id(mode_id: int) -> CodingMode:
    """The mode whose header byte is ``mode_id``."""
    for mode in MODES.values():
        if mode.id == mode_id:
            return mode
    raise SpecnirError("header names an unknown mode")


def arch_with_id(mode: CodingMode, arch_id: int) -> str:
    """The architecture of ``mode`` whose header byte is ``arch_id``."""
    for arch, known in mode.archs.items():
        if known == arch_id:
            return arch
    raise SpecnirError(f"header names an unknown architecture for mode {mode.name}")


# The mode `compress` uses when none is asked for: the one whose file is smallest for its PSNR at that
# quality on the measured sets (docs/results.md): latent up to ~35 dB, then residual's near-lossless.
DEFAULT_MODE: dict[int, str] = {q: "latent" if q <= 6 else "residual" for q in QUALITIES}


def choose_mode(mode: str | None, quality: int, arch: str | None, options: Options) -> CodingMode:
    """The mode asked for; without one, the quality's default mode unless the architecture or an option
    needs another (the first mode that codes with the architecture and takes every option given). The
    quality and the name are checked here; the rest by :meth:`CodingMode.check`."""
    if quality not in QUALITIES:
        raise SpecnirError(
            f"quality must be an integer from {QUALITIES[0]} to {QUALITIES[-1]}, not {quality}"
        )
    if mode is None:
        candidates = [MODES[DEFAULT_MODE[quality]], *MODES.values()]
        fits = [
            m
            for m in candidates
            if (arch is None or arch in m.archs) and set(options.given()) <= set(m.options)
        ]
        return (fits or candidates)[0]
    if mode not in MODES:
        raise SpecnirError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return MODES[mode]


def render(model: SpectrogramModel) -> np.ndarray:
    """The model's decode as 8-bit grey levels ``(N, H, W)``, on one thread (bit-exact)."""
    with torch.no_grad(), one_thread():
        return np.rint(model().clamp(0, 1).numpy() * 255).astype(np.uint8)


class ModelMode(CodingMode):
    name, id = "model", 0
    help = "the network is the code"
    quality_help = "about 500*2^Q weights"
    archs = {"gru": 0, "siren": 1}  # (the latent codec needs its own mode: its latents are entropy-coded)
    tolerances = (10 ** (1.0 / 10) - 1, 10 ** (0.1 / 10) - 1)  # MSE up 1 dB, then 0.1 dB
    WEIGHTS: ClassVar[dict[int, int]] = {q: 500 * 2**q for q in QUALITIES}

    def build(self, arch, quality, data, options):
        shape = tuple(data.target.shape)
        config = sized_config(arch, self.WEIGHTS[quality], shape)
        return MODELS[arch](config, n_images=shape[0], height=shape[1], width=shape[2])

    def encode(self, model, data, stream, header):
        return render(model), {}

    def decode(self, model, widths, stream, header):
        return render(model)


class ResidualMode(CodingMode):
    name, id = "residual", 1
    help = "the GRU predicts every pixel, the residuals are stored (gru only)"
    archs = {"gru": 0}
    options = ("max_error",)
    tolerances = (0.03, 0.005)  # bits per pixel up 3 %, then 0.5 %
    MAX_ERROR: ClassVar[dict[int, int]] = {1: 16, 2: 10, 3: 6, 4: 4, 5: 3, 6: 2, 7: 1, 8: 0}
    quality_help = "max error " + ",".join(str(k) for k in MAX_ERROR.values())

    def model_arch(self, arch):
        return "predictor"

    def check(self, arch, options):
        super().check(arch, options)
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

    def encode(self, model, data, stream, header):
        return encode_residuals(model, data, stream), {}

    def decode(self, model, widths, stream, header):
        return decode_residuals(model, widths, stream)

    def describe(self, header):
        return {"max_error": header["model_config"].get("max_error")}


class LatentMode(CodingMode):
    name, id = "latent", 2
    help = "latent grids coded by a causal entropy model, one synthesis for the set (lossy)"
    quality_help = "λ 8e-3 halved per step, a full-resolution grid from 5 on"
    archs = {"latent": 2}
    options = ("lam", "distortion")
    shares_decoder = stacks = True
    steps = 1500  # qualities 1-4 (more steps keep gaining; 1,500 keep audio/ under 6 minutes on 2 CPU cores)
    steps_with_full_grid = 3000  # qualities 5-8: the full-resolution grid needs them (+0.7 dB at Q5)
    # The LatentConfig fields of each quality (tuned on sets other than audio/, docs/results.md): λ (weight
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
        super().check(arch, options)
        if options.lam is not None and not 0 < options.lam <= 1:
            raise SpecnirError(f"λ must be above 0 and at most 1, not {options.lam}")
        if options.distortion not in (None, *DISTORTIONS):
            raise SpecnirError(f"distortion: one of {', '.join(DISTORTIONS)}, not {options.distortion!r}")

    def build(self, arch, quality, data, options):
        n, h, w = data.target.shape
        cls = MODELS["latent"]
        settings = self.quality_config(quality) | ({} if options.lam is None else {"lam": options.lam})
        return cls(cls.Config(**settings), n_images=n, height=h, width=w)

    def encode(self, model, data, stream, header):
        alphabets, bits = encode_latents(model, data.widths, stream)
        header["latents"] = {"alphabets": alphabets}
        estimate = model.rates(data.mask)["grid_bits"]
        return render(model), {"latent_grid_bits": bits, "latent_estimate_bits": estimate}

    def decode(self, model, widths, stream, header):
        alphabets = header.get("latents", {}).get("alphabets")
        if not (
            isinstance(alphabets, list)
            and len(alphabets) == len(model.scales)
            and all(isinstance(a, int) and 1 <= a <= MAX_ALPHABET for a in alphabets)
        ):
            raise SpecnirError("bad latent alphabets")
        grids = decode_latents(model, widths, alphabets, stream)
        with torch.no_grad():
            for latent, grid in zip(model.latents, grids, strict=True):
                latent.copy_(grid)
        return render(model)

    def header_fields(self, header):
        return header["latents"]["alphabets"]  # the alphabet A of every grid

    def read_header_fields(self, values):
        return {"latents": {"alphabets": values}}

    def describe(self, header):
        return {"lambda": header["model_config"].get("lam"), "alphabets": header["latents"]["alphabets"]}


for _mode in (ModelMode(), ResidualMode(), LatentMode()):
    register(_mode)
