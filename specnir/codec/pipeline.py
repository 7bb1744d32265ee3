"""``compress`` and ``decode``: a set of spectrograms to one ``.snir`` file's bytes and back, bit for bit.

What is coded is the 8-bit image of each spectrogram (``round(255 · normalised)``), the same pixels the
classical codecs see. The coding mode (:mod:`specnir.codec.modes`) decides what is fitted and what follows
the weights. ``compress`` decodes its own bytes before returning and refuses a file that does not decode to
the encoder's reconstruction.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from specnir.codec.compact import encode_header
from specnir.codec.container import pack, unpack
from specnir.codec.header import build_header, read_header
from specnir.codec.modes import DEFAULT_MODE, MODES, QUALITIES, CodingMode, Options
from specnir.codec.weights import Quantized, decode_weights, encode_weights, loss_on, tensor_entries
from specnir.data import ImageSet, load_image_set, to_spectrograms
from specnir.errors import SpecnirError
from specnir.fit import FitConfig, fit
from specnir.metrics import psnr_from_mse
from specnir.models import SpectrogramModel
from specnir.models.stacked import StackedLatents, can_stack
from specnir.spectrogram import SpecParams, Spectrogram

if TYPE_CHECKING:
    from specnir.codec.shared import SharedDecoder

# A set whose loss with a shared decoder is above this many times the mean loss of the sets the decoder was
# fitted on is also fitted with its own networks (the better file is kept): see compress_sets. Measured on
# asterisk-en at the default steps: its speech sets 1.00-1.05, its two sets of low-level noise 1.41 and 1.50.
OWN_NETWORKS_ABOVE = 1.25

# What a damaged payload can raise inside torch, numpy or constriction (AssertionError: constriction).
DECODE_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    RuntimeError,
    OverflowError,
    IndexError,
    ZeroDivisionError,
    AssertionError,
)


@dataclass
class Decoded:
    """A decoded ``.snir`` file: the header, the images and their spectrograms."""

    header: dict
    names: list[str]
    pixels: list[np.ndarray]  # per image (H, W_k) uint8, image orientation (row 0 = highest frequency)
    specs: list[Spectrogram]


@dataclass
class Compressed:
    blob: bytes
    decoded: Decoded
    report: dict


def eight_bit(data: ImageSet) -> ImageSet:
    """The set with its target rounded to the 8-bit grey levels that are coded."""
    return dataclasses.replace(data, target=torch.round(data.target * 255) / 255)


def decode(blob: bytes, *, source: str = "<bytes>", decoder: SharedDecoder | None = None) -> Decoded:
    """Decode a ``.snir`` file's bytes; any damage raises :class:`SpecnirError` naming ``source``. A file
    whose networks are in a shared decoder (format version 3) needs that ``decoder``
    (:mod:`specnir.codec.shared`)."""
    header, words = unpack(blob, source=source)
    shared = header.get("decoder")
    if shared:
        if not isinstance(shared, str) or not isinstance(header.get("model_config"), dict):
            raise SpecnirError(f"{source}: malformed .snir header (decoder)")
        if decoder is None:
            raise SpecnirError(
                f"{source}: its networks are in the shared decoder {shared}, which was not given"
            )
        if decoder.id != shared:
            raise SpecnirError(
                f"{source}: needs the shared decoder {shared}, not {decoder.id} ({decoder.source})"
            )
        decoder.check_config(header["model_config"], source=source)
        header = {
            **header,
            "tensors": decoder.header["tensors"],
            "weight_count": decoder.header["weight_count"],
        }
    try:
        model, params, layouts, entries = read_header(header)
        header = {**header, "tensors": entries}  # (version 2: with the names and shapes of the network)
        stream = constriction.stream.queue.RangeDecoder(words)
        weights = decoder.weights() if shared else decode_weights(stream, entries)
        model.load_state_dict(weights, strict=False)  # the rest: the mode's own
        model.eval()
        padded = MODES[header["mode"]].decode(model, [im.width for im in layouts], stream, header)
    except SpecnirError as exc:
        raise SpecnirError(f"{source}: malformed .snir header: {exc}") from None
    except DECODE_ERRORS as exc:
        raise SpecnirError(f"{source}: malformed .snir file ({type(exc).__name__})") from None
    pixels = [padded[k, :, : im.width] for k, im in enumerate(layouts)]
    specs = to_spectrograms(padded.astype(np.float32) / 255, layouts, params)
    return Decoded(header, [im.name for im in layouts], pixels, specs)


def compress(
    inputs: list[str | os.PathLike],
    *,
    arch: str | None = None,
    mode: str | None = None,
    quality: int = 4,
    max_error: int | None = None,
    lam: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    params: SpecParams | None = None,
    progress: bool = True,
    decoder: SharedDecoder | None = None,
) -> Compressed:
    """Fit, quantise, entropy-code and verify; nothing is written (see :func:`specnir.codec.write`). With
    a shared ``decoder``, only the latents are fitted and coded (:mod:`specnir.codec.shared`)."""
    settings = Settings(arch=arch, mode=mode, quality=quality, max_error=max_error, lam=lam, steps=steps)
    settings.coding()  # refuse impossible settings before any input is read
    check_device(device)
    data = load_image_set(inputs, params=params or SpecParams())
    return compress_sets([data], settings, seed=seed, device=device, progress=progress, decoder=decoder)[0]


@dataclass(frozen=True)
class Settings:
    """What ``compress`` is asked for besides the inputs (``None``: the quality's own)."""

    arch: str | None = None
    mode: str | None = None
    quality: int = 4
    max_error: int | None = None
    lam: float | None = None
    steps: int | None = None

    def coding(self) -> tuple[CodingMode, str, Options]:
        """The coding mode, architecture and options, after refusing what cannot be done."""
        options = Options(max_error=self.max_error, lam=self.lam)
        coding = _coding_mode(self.mode, self.quality, self.arch, options)
        arch = self.arch or coding.archs[0]
        coding.check(arch, options)
        return coding, arch, options


def compress_sets(
    sets: list[ImageSet],
    settings: Settings,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    decoder: SharedDecoder | None = None,
) -> list[Compressed]:
    """Compress each set to its own file's bytes, as :func:`compress` does one set.

    Sets whose models stack (the latent mode: :mod:`specnir.models.stacked`) are fitted together as one
    model, each from the initial weights ``compress`` would give it with ``seed``; the rest are fitted one
    after another. With a shared ``decoder`` every set starts from its networks, frozen, and its file
    holds only the latents — unless the decoder serves the set far worse than the sets it was fitted on
    and the set's own networks do better (:func:`_own_networks_if_better`). Every file is decoded and
    checked against its encoder's reconstruction.
    """
    coding, arch, _ = settings.coding()
    check_device(device)
    if decoder is not None and coding.name != "latent":
        raise SpecnirError(f"a shared decoder holds the latent mode's networks; mode {coding.name} has none")
    sets = [eight_bit(data) for data in sets]
    models = build_models(sets, settings, seed=seed)
    for model in models if decoder is not None else ():
        decoder.load_into(model)
    fit_config = fit_config_for(settings, seed=seed, device=device)
    start = time.perf_counter()
    stack = len(sets) > 1 and can_stack(models)
    if stack:
        stacked = StackedLatents(models, [data.widths for data in sets], shared=decoder is not None)
        fit_whole(stacked, joined(sets), fit_config, progress)
        stacked.unstack(models)
        fit_seconds = [(time.perf_counter() - start) / len(sets)] * len(sets)
    else:
        fit_seconds = []
        for model, data in zip(models, sets, strict=True):
            fit_whole(model, data, fit_config, progress)
            fit_seconds.append(time.perf_counter() - start - sum(fit_seconds))
    extra = {"steps": fit_config.steps, "sets_per_fit": len(sets) if stack else 1}
    results = [
        _code(
            coding,
            arch,
            settings.quality,
            model,
            data,
            fit_config,
            {**extra, "fit_seconds": seconds},
            decoder,
        )
        for model, data, seconds in zip(models, sets, fit_seconds, strict=True)
    ]
    if decoder is None or decoder.reference_loss is None:
        return results
    own = settings, seed, device, progress
    return [_own_networks_if_better(r, data, decoder, *own) for r, data in zip(results, sets, strict=True)]


def _own_networks_if_better(result, data, decoder, settings, seed, device, progress) -> Compressed:
    """A set that the shared decoder serves much worse than the sets it was fitted on (its loss above
    :data:`OWN_NETWORKS_ABOVE` times theirs: noise in a speech corpus) is fitted with its own networks
    too, and the file whose rate–distortion cost (MSE + λ · all its bits per pixel) is lower is kept. Its
    report gains ``decoder_loss_ratio`` (the set's loss with the decoder over the decoder's), ``both_fitted``
    and, if both were, the two fits' seconds."""
    ratio = result.report["quantized_loss"] / decoder.reference_loss
    result.report.update(decoder_loss_ratio=ratio, both_fitted=ratio > OWN_NETWORKS_ABOVE)
    if ratio <= OWN_NETWORKS_ABOVE:
        return result
    own = compress_sets([data], settings, seed=seed, device=device, progress=progress)[0]
    kept = own if rd_cost(own) < rd_cost(result) else result
    seconds = own.report["fit_seconds"] + result.report["fit_seconds"]
    kept.report.update(decoder_loss_ratio=ratio, both_fitted=True, fit_seconds=seconds)
    return kept


def rd_cost(result: Compressed) -> float:
    """MSE + λ · bits per pixel of a file: the fitting loss plus what its weights cost (none with a shared
    decoder)."""
    lam = result.decoded.header["model_config"]["lam"]
    return result.report["quantized_loss"] + lam * result.report["weight_bits"] / result.report["pixels"]


def build_models(sets: list[ImageSet], settings: Settings, *, seed: int) -> list[SpectrogramModel]:
    """The network each set is fitted with, each seeded with ``seed`` as :func:`compress` seeds it."""
    coding, arch, options = settings.coding()
    models = []
    for data in sets:
        torch.manual_seed(seed)
        models.append(coding.build(arch, settings.quality, data, options))
    return models


def fit_config_for(settings: Settings, *, seed: int, device: str) -> FitConfig:
    """How a set is fitted: the steps asked for, or the mode's for the quality."""
    coding, _, _ = settings.coding()
    steps = settings.steps or coding.fit_steps(settings.quality)
    return FitConfig(steps=steps, seed=seed, device=device, eval_every=max(steps // 5, 1))


def fit_whole(model, data: ImageSet, fit_config: FitConfig, progress: bool) -> None:
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


def _code(coding, arch, quality, model, data, fit_config, extra, decoder=None) -> Compressed:
    """Quantise a fitted model, write the file's bytes, decode them and check them (see :func:`compress`);
    with a shared ``decoder`` the weights are its own, already on their grids, and not stored."""
    model.cpu().eval()
    start = time.perf_counter()
    if decoder is None:
        quantized = coding.quantize(model, data, fit_config)
    else:
        loss = loss_on(model, data)()
        quantized = Quantized({}, loss, loss)
    extra["fit_seconds"] = round(extra["fit_seconds"] + time.perf_counter() - start, 2)
    start = time.perf_counter()
    header = build_header(arch=arch, mode=coding.name, quality=quality, model=model, data=data)
    encoder = constriction.stream.queue.RangeEncoder()
    if decoder is None:
        header["tensors"], ints = tensor_entries(model, quantized.exponents)
        encode_weights(encoder, header["tensors"], ints)
    else:
        header["tensors"], header["decoder"] = [], decoder.id
    weight_bits = encoder.num_bits()
    recon, mode_report = coding.encode(model, data, encoder, header)
    blob = pack(header, encoder.get_compressed())
    decoded = decode(blob, source="the new file", decoder=decoder)
    for k, (width, pixels) in enumerate(zip(data.widths, decoded.pixels, strict=True)):
        if not np.array_equal(recon[k, :, :width], pixels):
            raise RuntimeError(
                f"internal error: {data.names[k]} does not decode to the encoder's reconstruction"
            )
    extra = {
        "header_bytes": len(blob) - encoder.num_bits() // 8,  # all but the payload: header and framing
        # what a container adds around the coded data: magic, version, lengths, CRC and the image names
        "framing_bytes": len(blob)
        - encoder.num_bits() // 8
        - len(encode_header(header))
        + sum(1 + len(name.encode()) for name in data.names),
        "weight_bits": weight_bits,
        "decoder": None if decoder is None else decoder.id,
        "float_loss": quantized.float_loss,
        "quantized_loss": quantized.quantized_loss,
        **extra,
        "code_seconds": round(time.perf_counter() - start, 2),
        **mode_report,
    }
    truth = [np.rint(t * 255).astype(np.int64) for t in data.images(data.target)]
    return Compressed(blob, decoded, report(blob, truth, decoded, extra))


def check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecnirError("device cuda: no CUDA device is available")


def _coding_mode(mode: str | None, quality: int, arch: str | None, options: Options) -> CodingMode:
    """The mode asked for, after refusing what cannot be done (before any input is read). Without one:
    the quality's default mode, unless the architecture or an option needs another (a max error:
    residual; λ: latent; an architecture: the first mode that codes with it)."""
    if quality not in QUALITIES:
        raise SpecnirError(
            f"quality must be an integer from {QUALITIES[0]} to {QUALITIES[-1]}, not {quality}"
        )
    if mode is None:
        preferred = "residual" if options.max_error is not None else "latent" if options.lam else None
        candidates = [preferred or DEFAULT_MODE[quality], *MODES]
        mode = next((m for m in candidates if arch is None or arch in MODES[m].archs), candidates[0])
    if mode not in MODES:
        raise SpecnirError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return MODES[mode]


def report(blob: bytes, truth: list[np.ndarray], decoded: Decoded, extra: dict) -> dict:
    """Bytes, bits per pixel, PSNR on the 8-bit images (peak 255), largest error, weights."""
    pixels = sum(t.size for t in truth)
    errors = [p.astype(np.int64) - t for p, t in zip(decoded.pixels, truth, strict=True)]
    squared = sum(float((e**2).sum()) for e in errors)
    return {
        "bytes": len(blob),
        "pixels": pixels,
        "bpp": len(blob) * 8 / pixels,
        "psnr": psnr_from_mse(squared / pixels, peak=255),
        "psnr_per_image": [psnr_from_mse(float((e**2).mean()), peak=255) for e in errors],
        "max_error": int(max(np.abs(e).max() for e in errors)),
        "weights": sum(math.prod(e["shape"]) for e in decoded.header["tensors"]),
        "weight_bpp": extra["weight_bits"] / pixels,
        **extra,
    }
