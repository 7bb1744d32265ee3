"""``compress``: a set of spectrograms to one ``.snir`` file's bytes, verified by decoding them.

One pipeline for every mode and every source of networks: build (:func:`build_models`) → fit, several
sets as one model where the mode stacks (:func:`fit_sets`) → quantise → code → decode and compare
(:func:`code_set`). What is coded is the 8-bit image of each spectrogram (``round(255 · normalised)``),
the same pixels the classical codecs see. Where a set's networks come from (its own, or a shared
decoder's) is the :class:`~specnir.codec.networks.Networks` object the pipeline is given; fitting a shared
decoder (:mod:`specnir.codec.decoder_fit`) runs the same build and fit.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from specnir.codec.compact import encode_header
from specnir.codec.container import pack
from specnir.codec.decode import decode
from specnir.codec.decoders import SharedDecoder, shipped_decoder, shipped_with_id
from specnir.codec.header import build_header
from specnir.codec.modes import CodingMode, Options, choose_mode
from specnir.codec.networks import OWN_NETWORKS, Networks, networks_for
from specnir.codec.report import Compressed, file_report
from specnir.data import ImageSet, load_image_set
from specnir.errors import check_bounds
from specnir.fit import check_device, fit
from specnir.fit_config import FitConfig
from specnir.models import SpectrogramModel
from specnir.models.stacked import StackedLatents, can_stack
from specnir.spectrogram import SpecParams

SHIPPED = "shipped"  # compress's default decoder: specnir's own for the set's analysis and quality


@dataclass(frozen=True)
class Settings:
    """What ``compress`` is asked for besides the inputs (``None``: the quality's own)."""

    arch: str | None = None
    mode: str | None = None
    quality: int = 4
    max_error: int | None = None
    lam: float | None = None
    steps: int | None = field(default=None, metadata={"min": 1})
    distortion: str | None = None  # the fit's (specnir.models.loss.DISTORTIONS; None: the MSE)

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.distortion == "mse":  # (the default, one way: a set coded with it is coded without it)
            object.__setattr__(self, "distortion", None)

    def coding(self) -> tuple[CodingMode, str, Options]:
        """The coding mode, architecture and options, after refusing what cannot be done."""
        options = Options(max_error=self.max_error, lam=self.lam, distortion=self.distortion)
        coding = choose_mode(self.mode, self.quality, self.arch, options)
        arch = self.arch or next(iter(coding.archs))
        coding.check(arch, options)
        return coding, arch, options


def eight_bit(data: ImageSet) -> ImageSet:
    """The set with its target rounded to the 8-bit grey levels that are coded."""
    return dataclasses.replace(data, target=torch.round(data.target * 255) / 255)


def compress(
    inputs: list[str | os.PathLike],
    *,
    arch: str | None = None,
    mode: str | None = None,
    quality: int = 4,
    max_error: int | None = None,
    lam: float | None = None,
    steps: int | None = None,
    distortion: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    params: SpecParams | None = None,
    progress: bool = True,
    decoder: SharedDecoder | str | None = SHIPPED,
) -> Compressed:
    """Fit, quantise, entropy-code and verify; nothing is written (see :func:`specnir.codec.write`).

    ``decoder``: :data:`SHIPPED` (the default) codes only the latents against the decoder specnir ships
    for the set's analysis and quality, where the mode shares networks and there is one (else the set's
    own networks); a :class:`SharedDecoder` (a corpus's) codes them against that one; ``None`` fits and
    stores the set's own networks (:mod:`specnir.codec.decoders`). A set that a decoder serves badly is
    also fitted with its own networks (:meth:`~specnir.codec.networks.DecoderNetworks.keep`).
    ``distortion``: what the latent fit minimises besides λ · rate (:data:`~specnir.models.loss.DISTORTIONS`;
    None: the MSE)."""
    settings = Settings(
        arch=arch,
        mode=mode,
        quality=quality,
        max_error=max_error,
        lam=lam,
        steps=steps,
        distortion=distortion,
    )
    coding = settings.coding()[0]
    if isinstance(decoder, SharedDecoder):
        networks_for(decoder).check(coding)  # refuse impossible settings before any input is read
    elif decoder not in (SHIPPED, None):
        raise ValueError(f"decoder: a SharedDecoder, {SHIPPED!r} or None, not {decoder!r}")
    check_device(device)
    data = load_image_set(inputs, params=params or SpecParams())
    return compress_data(data, settings, decoder=decoder, seed=seed, device=device, progress=progress)


def compress_data(
    data: ImageSet,
    settings: Settings,
    *,
    decoder: SharedDecoder | str | None = SHIPPED,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> Compressed:
    """:func:`compress` of a set already loaded."""
    networks = networks_for(set_decoder(data, settings, decoder))
    return compress_sets([data], settings, networks=networks, seed=seed, device=device, progress=progress)[0]


def set_decoder(
    data: ImageSet, settings: Settings, decoder: SharedDecoder | str | None
) -> SharedDecoder | None:
    """The shared decoder ``data`` is coded against: ``decoder``, or for :data:`SHIPPED` the one specnir ships
    for its analysis and quality where the mode shares networks (None: the set's own networks)."""
    return shipped_for(settings, data.params) if decoder == SHIPPED else decoder


def shipped_for(settings: Settings, params: SpecParams) -> SharedDecoder | None:
    """The decoder specnir ships for the analysis ``params`` and the settings' quality, where their mode
    shares networks (else None)."""
    if not settings.coding()[0].shares_decoder:
        return None
    return shipped_decoder(params.to_dict(), settings.quality)


def empty_size(data: ImageSet, settings: Settings, *, decoder: SharedDecoder | str | None = SHIPPED) -> int:
    """The bytes of ``data``'s file with every latent zero (no fit): the least a file of the set costs."""
    networks = networks_for(set_decoder(data, settings, decoder))
    data = eight_bit(data)
    model = build_models([data], settings, seed=0)[0]
    networks.prepare(model)
    with torch.no_grad():
        for latent in getattr(model, "latents", ()):
            latent.zero_()
    fit_config = fit_config_for(settings, seed=0, device="cpu", networks=networks)
    coding, arch, _ = settings.coding()
    return len(
        code_set(coding, arch, settings.quality, model, data, fit_config, networks, {"fit_seconds": 0}).blob
    )


def compress_sets(
    sets: list[ImageSet],
    settings: Settings,
    *,
    networks: Networks = OWN_NETWORKS,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    batched: bool | None = None,
) -> list[Compressed]:
    """Compress each set to its own file's bytes, as :func:`compress` does one set.

    Sets whose models stack (:attr:`~specnir.codec.modes.CodingMode.stacks`) are fitted together as one
    model, each from the initial weights ``compress`` would give it with ``seed``; the rest are fitted one
    after another (``batched``: a stacked fit computes all sets at once; ``None``: on a GPU, where that
    pays). ``networks`` says where their networks come from (the sets' own, or a shared decoder's,
    frozen) and which file is kept (:meth:`~specnir.codec.networks.Networks.keep`). Every file is decoded
    and checked against its encoder's reconstruction.
    """
    coding, arch, _ = settings.coding()
    networks.check(coding)
    check_device(device)
    sets = [eight_bit(data) for data in sets]
    models = build_models(sets, settings, seed=seed)
    for model in models:
        networks.prepare(model)
    fit_config = fit_config_for(settings, seed=seed, device=device, networks=networks)
    seconds, per_fit = fit_sets(
        coding,
        models,
        sets,
        fit_config,
        shared_networks=networks.shared_networks,
        batched=batched,
        progress=progress,
    )
    extra = {"steps": fit_config.steps, "sets_per_fit": per_fit, "distortion": fit_config.distortion}
    results = [
        code_set(
            coding, arch, settings.quality, model, data, fit_config, networks, {**extra, "fit_seconds": s}
        )
        for model, data, s in zip(models, sets, seconds, strict=True)
    ]

    def refit(data: ImageSet) -> Compressed:
        return compress_sets([data], settings, seed=seed, device=device, progress=progress)[0]

    return [networks.keep(r, lambda data=data: refit(data)) for r, data in zip(results, sets, strict=True)]


def build_models(sets: list[ImageSet], settings: Settings, *, seed: int) -> list[SpectrogramModel]:
    """The network each set is fitted with, each seeded with ``seed`` as :func:`compress` seeds it."""
    coding, arch, options = settings.coding()
    models = []
    for data in sets:
        torch.manual_seed(seed)
        models.append(coding.build(arch, settings.quality, data, options))
    return models


def fit_config_for(
    settings: Settings, *, seed: int, device: str, networks: Networks = OWN_NETWORKS
) -> FitConfig:
    """How a set is fitted: the steps asked for, or those its networks take at the mode's quality."""
    coding, _, _ = settings.coding()
    steps = settings.steps or networks.fit_steps(coding, settings.quality)
    return FitConfig(
        steps=steps,
        seed=seed,
        device=device,
        eval_every=max(steps // 5, 1),
        distortion=settings.distortion or "mse",
    )


def fit_whole(model: SpectrogramModel, data: ImageSet, fit_config: FitConfig, progress: bool) -> None:
    """The fit, all of it: a fit stopped by Ctrl-C stops the compression too (no file from half a fit)."""
    if fit(model, data, fit_config, progress=progress).interrupted:
        raise KeyboardInterrupt


def joined(sets: list[ImageSet]) -> ImageSet:
    """Several sets' images as one set, in order, padded to the widest (what a stacked fit sees)."""
    width = max(data.target.shape[-1] for data in sets)
    return ImageSet(
        [f"{k}/{name}" for k, data in enumerate(sets) for name in data.names],
        [spec for data in sets for spec in data.specs],
        torch.cat([F.pad(data.target, (0, width - data.target.shape[-1])) for data in sets]),
        torch.cat([F.pad(data.mask, (0, width - data.mask.shape[-1])) for data in sets]),
    )


def fit_together(
    models: list[SpectrogramModel],
    sets: list[ImageSet],
    fit_config: FitConfig,
    *,
    shared_networks: bool,
    progress: bool,
    batched: bool | None = None,
) -> StackedLatents:
    """Fit the sets' models as one (:class:`~specnir.models.stacked.StackedLatents`; ``shared_networks``: one
    synthesis and entropy model for all; ``batched``: all sets computed at once, by default on a GPU);
    returns the stacked model."""
    batched = fit_config.device == "cuda" if batched is None else batched
    stacked = StackedLatents(
        models, [data.widths for data in sets], shared_networks=shared_networks, batched=batched
    )
    fit_whole(stacked, joined(sets), fit_config, progress)
    return stacked


def fit_sets(
    coding: CodingMode,
    models: list[SpectrogramModel],
    sets: list[ImageSet],
    fit_config: FitConfig,
    *,
    shared_networks: bool,
    progress: bool,
    batched: bool | None = None,
) -> tuple[list[float], int]:
    """Fit every set's model: all as one where the mode stacks and the models can, else one after
    another. Returns each set's share of the fitting seconds and the number of sets per fit."""
    start = time.perf_counter()
    if len(sets) > 1 and coding.stacks and can_stack(models):
        stacked = fit_together(
            models, sets, fit_config, shared_networks=shared_networks, progress=progress, batched=batched
        )
        stacked.unstack(models)
        return [(time.perf_counter() - start) / len(sets)] * len(sets), len(sets)
    seconds: list[float] = []
    for model, data in zip(models, sets, strict=True):
        fit_whole(model, data, fit_config, progress)
        seconds.append(time.perf_counter() - start - sum(seconds))
    return seconds, 1


def code_set(
    coding: CodingMode,
    arch: str,
    quality: int,
    model: SpectrogramModel,
    data: ImageSet,
    fit_config: FitConfig,
    networks: Networks,
    extra: dict,
) -> Compressed:
    """Quantise a fitted model, write the file's bytes, decode them and check them (see :func:`compress`)."""
    model.cpu().eval()
    start = time.perf_counter()
    quantized = networks.quantize(coding, model, data, fit_config)
    extra["fit_seconds"] = round(extra["fit_seconds"] + time.perf_counter() - start, 2)
    start = time.perf_counter()
    header = build_header(arch=arch, mode=coding.name, quality=quality, model=model, data=data)
    stream = constriction.stream.queue.RangeEncoder()
    networks.write(model, quantized.exponents, header, stream)
    weight_bits = stream.num_bits()
    recon, mode_report = coding.encode(model, data, stream, header)
    blob = pack(header, stream.get_compressed())
    decoded = decode(blob, source="the new file", decoder=networks.decoder)
    for k, (width, pixels) in enumerate(zip(data.widths, decoded.pixels, strict=True)):
        if not np.array_equal(recon[k, :, :width], pixels):
            raise RuntimeError(
                f"internal error: {data.names[k]} does not decode to the encoder's reconstruction"
            )
    payload_bytes = stream.num_bits() // 8
    extra = {
        "header_bytes": len(blob) - payload_bytes,  # all but the payload: header and framing
        # what a container adds around the coded data: magic, version, lengths, CRC and the image names
        "framing_bytes": len(blob)
        - payload_bytes
        - len(encode_header(header))
        + sum(1 + len(name.encode()) for name in data.names),
        "weight_bits": weight_bits,
        "decoder_id": None if networks.decoder is None else networks.decoder.id,
        "decoder_shipped": networks.decoder is not None and shipped_with_id(networks.decoder.id) is not None,
        "float_loss": quantized.float_loss,
        "quantized_loss": quantized.quantized_loss,
        **({"decoder_loss": quantized.decoder_loss} if quantized.decoder_loss is not None else {}),
        **extra,
        "code_seconds": round(time.perf_counter() - start, 2),
        **mode_report,
    }
    truth = [np.rint(t * 255).astype(np.int64) for t in data.images(data.target)]
    return Compressed(blob, decoded, file_report(blob, truth, decoded, extra))
