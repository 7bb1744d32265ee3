"""The ``.snir`` format, written down in one place, and its container: magic, version, header, payload, CRC.

Version 2 (what specnir writes; ``uv`` = unsigned LEB128 varint)::

    offset      size  field
    0           4     magic  b"SNIR"
    4           1     format version (2)
    5           1-3   uv header length H (at most 1 MiB)
    5+u         H     header: binary (:mod:`specnir.codec.compact` lists its fields)
    5+u+H       P     payload: one range-coded stream, constriction's 32-bit words (P a multiple of 4)
    end−4       4     CRC32 (zlib, little-endian) of every byte before it

Version 1 (still read)::

    0 magic | 4 version (1) | 5 uint32 header length H | 9 header: UTF-8 JSON, keys sorted |
    9+H uint32 payload length P | 13+H payload | 13+H+P CRC32

Header fields (as :func:`unpack` returns them, both versions; :mod:`specnir.codec.header` checks them):

    format        "snir"
    arch          the architecture asked for: "gru", "siren" or "latent"
    mode          "model", "residual" or "latent" (:mod:`specnir.codec.modes`)
    quality       1-8, as asked (informative)
    model_config  the fitted network's config dataclass as an object: ColumnGRU's or Siren's in mode
                  "model", PredictiveGRU's in mode "residual" (its max_error is the error bound K),
                  LatentCodec's in mode "latent" (version 2 stores only the fields off their defaults)
    params        every STFT/mel parameter (SpecParams): sample_rate, n_fft, hop_length, win_length,
                  window, scale, n_mels, f_min, f_max, top_db, ref
    height        rows of every image (= n_mels, or n_fft // 2 + 1 for a linear STFT)
    images        per image, in order: name, width (time columns), db_min and db_max (dB of grey 0 and
                  255; 1/100 dB in version 2), length (samples of the recording, or null);
                  width = 1 + length // hop_length
    tensors       per stored weight tensor, in the network's order: name and shape (version 1; version 2
                  takes them from the network), exponent e (the weights are integers q · 2^-e), min and
                  max of q, and the Laplace that codes q: scale (version 1) or scale_index (version 2)
    latents       mode "latent" only: alphabets, the largest |latent − floor(predicted mean)| of each grid

Payload, in this order:

1. The weights: for each tensor with min < max, its integers q (row-major), coded with a Laplace of mean 0
   over min..max: version 2 with the portable frequency table of scale 2^((scale_index − 64)/8)
   (:mod:`specnir.codec.portable`), version 1 with constriction's ``QuantizedLaplace(min, max, 0, scale)``;
   a tensor with min = max is all min and costs nothing.
2. What the mode codes after the weights. ``model``: nothing (the decoder runs the network and rounds
   ``255 · clamp(output, 0, 1)``). ``residual``: for each time column x, each bin f from the lowest up, each
   image still running at x (x < width) in order, the index σ of the reconstruction level on the grid of
   step 2K + 1 at the rounded prediction, coded with ``QuantizedLaplace`` over the symbol range of K and the
   prediction's mean and scale (:mod:`specnir.codec.residual`). ``latent``: grid by grid, each grid's
   latents in wavefront order, each as ``latent − floor(mean) + A`` under the portable table that the
   integer entropy model picks (:mod:`specnir.codec.latents`); then the decoder runs the synthesis.

Images are decoded to 8-bit grey levels in image orientation (row 0 = highest frequency), then to dB with
their own range.

Version rules: the version byte changes whenever a reader of the old version would decode a new file to
other pixels, or not at all; a file whose version this reader does not know is refused (never guessed at).
Every reader decodes every older version: ``tests/fixtures/v<N>/`` holds a file of every mode of version N
with the pixels it decoded to when it was written, and the tests decode them on every change. A field or
(empty) weight tensor that a later version retires is dropped on reading (the model's ``upgrade``), which
does not need a new version: version 1 files of the GRU with ``latent: 0`` and an empty ``latents`` tensor
still decode.

This module checks the container; :mod:`specnir.codec.header` checks what the header says.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from specnir.codec.compact import Reader, decode_header, encode_header, varint
from specnir.errors import SpecnirError, atomic_path

MAGIC = b"SNIR"
VERSION = 2  # what this specnir writes; it reads every version in READABLE
READABLE = (1, 2)
MAX_HEADER = 1 << 20
# What a damaged header can raise while it is read (beyond SpecnirError).
HEADER_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def pack(header: dict, payload: np.ndarray) -> bytes:
    """The version-2 file's bytes for ``header`` (the dict :func:`unpack` returns) and payload words
    ``(n,) uint32``."""
    head = encode_header(header)
    words = np.ascontiguousarray(payload, dtype="<u4").tobytes()
    body = MAGIC + bytes([VERSION]) + varint(len(head)) + head + words
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(blob: bytes, *, source: str = "<bytes>") -> tuple[dict, np.ndarray]:
    """``(header, payload words)`` of a file's bytes, any version this reader knows; a
    :class:`SpecnirError` naming ``source`` if the container is damaged (wrong magic, unknown version,
    truncated, CRC mismatch, unreadable header)."""

    def fail(problem: str) -> SpecnirError:
        return SpecnirError(f"{source}: {problem}")

    if len(blob) < 4 or blob[:4] != MAGIC:
        raise fail("not a .snir file (wrong magic bytes)")
    if len(blob) < 10:
        raise fail("truncated .snir file")
    if blob[4] not in READABLE:
        raise fail(f".snir format version {blob[4]} not supported (this specnir reads versions 1 and 2)")
    head, payload = _split_v1(blob, fail) if blob[4] == 1 else _split_v2(blob, fail)
    if zlib.crc32(blob[:-4]) != struct.unpack_from("<I", blob, len(blob) - 4)[0]:
        raise fail("CRC mismatch: the file is damaged or truncated")
    if len(payload) % 4:
        raise fail("payload length is not a whole number of 32-bit words")
    try:
        header = _read_json(head, fail) if blob[4] == 1 else decode_header(head)
    except SpecnirError as exc:
        raise fail(f"malformed .snir header: {exc}") from None
    except HEADER_ERRORS as exc:
        raise fail(f"malformed .snir header ({type(exc).__name__})") from None
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _split_v1(blob: bytes, fail) -> tuple[bytes, bytes]:
    (head_len,) = struct.unpack_from("<I", blob, 5)
    if head_len > MAX_HEADER or 9 + head_len + 8 > len(blob):
        raise fail("truncated .snir file (header runs past the end)")
    (pay_len,) = struct.unpack_from("<I", blob, 9 + head_len)
    end = 13 + head_len + pay_len
    if end + 4 != len(blob):
        raise fail("truncated .snir file" if end + 4 > len(blob) else "trailing bytes after the .snir data")
    return blob[9 : 9 + head_len], blob[13 + head_len : end]


def _split_v2(blob: bytes, fail) -> tuple[bytes, bytes]:
    reader = Reader(blob, pos=5, end=len(blob) - 4)
    try:
        head_len = reader.uv()
    except SpecnirError:
        raise fail("truncated .snir file (header length)") from None
    pos = reader.pos
    if head_len > MAX_HEADER or pos + head_len > len(blob) - 4:
        raise fail("truncated .snir file (header runs past the end)")
    return blob[pos : pos + head_len], blob[pos + head_len : -4]


def _read_json(head: bytes, fail) -> dict:
    try:
        header = json.loads(head.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise fail("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    return header


def write(path: str | os.PathLike, blob: bytes) -> Path:
    """Write the file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return path


def read(path: str | os.PathLike) -> tuple[dict, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    return unpack(path.read_bytes(), source=str(path))
