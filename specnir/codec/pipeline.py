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

import constriction
import numpy as np
import torch

from specnir.codec.compact import encode_header
from specnir.codec.container import pack, unpack
from specnir.codec.header import build_header, read_header
from specnir.codec.modes import DEFAULT_MODE, MODES, QUALITIES, Options
from specnir.codec.weights import decode_weights, encode_weights, tensor_entries
from specnir.data import ImageSet, load_image_set, to_spectrograms
from specnir.errors import SpecnirError
from specnir.fit import FitConfig, fit
from specnir.metrics import psnr_from_mse
from specnir.spectrogram import SpecParams, Spectrogram

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


def decode(blob: bytes, *, source: str = "<bytes>") -> Decoded:
    """Decode a ``.snir`` file's bytes; any damage raises :class:`SpecnirError` naming ``source``."""
    header, words = unpack(blob, source=source)
    try:
        model, params, layouts, entries = read_header(header)
        header = {**header, "tensors": entries}  # (version 2: with the names and shapes of the network)
        decoder = constriction.stream.queue.RangeDecoder(words)
        model.load_state_dict(decode_weights(decoder, entries), strict=False)  # the rest: the mode's own
        model.eval()
        padded = MODES[header["mode"]].decode(model, [im.width for im in layouts], decoder, header)
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
) -> Compressed:
    """Fit, quantise, entropy-code and verify; nothing is written (see :func:`specnir.codec.write`)."""
    options = Options(max_error=max_error, lam=lam)
    coding = _coding_mode(mode, quality, device, arch, options)
    arch = arch or coding.archs[0]
    coding.check(arch, options)
    data = eight_bit(load_image_set(inputs, params=params or SpecParams()))
    torch.manual_seed(seed)
    model = coding.build(arch, quality, data, options)
    start = time.perf_counter()
    steps = steps or coding.fit_steps(quality)
    fit_config = FitConfig(steps=steps, seed=seed, device=device, eval_every=max(steps // 5, 1))
    fit(model, data, fit_config, progress=progress)
    model.cpu().eval()
    quantized = coding.quantize(model, data, fit_config)
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    header = build_header(arch=arch, mode=coding.name, quality=quality, model=model, data=data)
    header["tensors"], ints = tensor_entries(model, quantized.exponents)
    encoder = constriction.stream.queue.RangeEncoder()
    encode_weights(encoder, header["tensors"], ints)
    weight_bits = encoder.num_bits()
    recon, mode_report = coding.encode(model, data, encoder, header)
    blob = pack(header, encoder.get_compressed())
    decoded = decode(blob, source="the new file")
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
        "steps": steps,
        "weight_bits": weight_bits,
        "float_loss": quantized.float_loss,
        "quantized_loss": quantized.quantized_loss,
        "fit_seconds": round(fit_seconds, 2),
        "code_seconds": round(time.perf_counter() - start, 2),
        **mode_report,
    }
    truth = [np.rint(t * 255).astype(np.int64) for t in data.images(data.target)]
    return Compressed(blob, decoded, report(blob, truth, decoded, extra))


def _coding_mode(mode: str | None, quality: int, device: str, arch: str | None, options: Options):
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
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecnirError("device cuda: no CUDA device is available")
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
