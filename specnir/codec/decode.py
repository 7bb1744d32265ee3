"""``decode``: a ``.snir`` file's bytes back to its images and spectrograms, bit for bit.

The bitstream's half of the codec: it reads the container, checks the header, decodes the weights (or
takes them from the shared decoder the file names) and lets the file's coding mode decode the rest. It
needs no training code: a data loader that reads compressed sets loads no optimiser and no fitting loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from specnir.codec.container import unpack
from specnir.codec.decoders import SharedDecoder, shipped_with_id
from specnir.codec.header import read_header
from specnir.codec.modes import MODES
from specnir.codec.weights import decode_weights
from specnir.data import to_spectrograms
from specnir.errors import SpecnirError
from specnir.spectrogram import Spectrogram

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


def _with_decoder_weights(
    header: dict, decoder: SharedDecoder | None, source: str
) -> tuple[dict, SharedDecoder]:
    """A version-3 header with the tensor entries of the shared decoder it names (``decoder``, or the
    shipped one with that id), checked against it, and that decoder."""
    wanted = header["decoder_id"]
    if not isinstance(wanted, str) or not isinstance(header.get("model_config"), dict):
        raise SpecnirError(f"{source}: malformed .snir header (decoder)")
    if decoder is None or decoder.id != wanted:
        decoder = shipped_with_id(wanted) or decoder
    if decoder is None:
        raise SpecnirError(
            f"{source}: its networks are in the shared decoder {wanted}, which was not given and is not"
            " one of specnir's own"
        )
    if decoder.id != wanted:
        raise SpecnirError(
            f"{source}: needs the shared decoder {wanted}, not {decoder.id} ({decoder.source})"
        )
    decoder.check_config(header["model_config"], source=source)
    entries = {"tensors": decoder.header["tensors"], "weight_count": decoder.header["weight_count"]}
    return {**header, **entries}, decoder


def decode(blob: bytes, *, source: str = "<bytes>", decoder: SharedDecoder | None = None) -> Decoded:
    """Decode a ``.snir`` file's bytes; any damage raises :class:`SpecnirError` naming ``source``. A file
    whose networks are in a shared decoder (format version 3) needs that ``decoder``, unless it is one
    that specnir ships (:mod:`specnir.codec.decoders`)."""
    header, words = unpack(blob, source=source)
    in_decoder = bool(header.get("decoder_id"))
    if in_decoder:
        header, decoder = _with_decoder_weights(header, decoder, source)
    try:
        model, params, layouts, entries = read_header(header)
        header = {**header, "tensors": entries}  # (version 2: with the names and shapes of the network)
        stream = constriction.stream.queue.RangeDecoder(words)
        weights = decoder.weights() if in_decoder else decode_weights(stream, entries)
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
