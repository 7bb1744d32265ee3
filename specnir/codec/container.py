"""The ``.snir`` format, written down in one place, and its container: magic, version, header, payload, CRC.

Byte layout (integers little-endian)::

    offset      size  field
    0           4     magic  b"SNIR"
    4           1     format version (1)
    5           4     header length H (at most 1 MiB)
    9           H     header: UTF-8 JSON object, keys sorted, no spaces
    9+H         4     payload length P (a multiple of 4)
    13+H        P     payload: one range-coded stream, constriction's 32-bit words
    13+H+P      4     CRC32 (zlib) of every byte before it

Header fields (version 1; :mod:`specnir.codec.header` builds and checks them):

    format        "snir"
    arch          the architecture asked for: "gru" or "siren"
    mode          "model" or "residual" (:mod:`specnir.codec.modes`)
    quality       1-8, as asked (informative)
    model_config  the fitted network's config dataclass as an object: ColumnGRU's or Siren's in mode
                  "model", PredictiveGRU's in mode "residual" (its max_error is the error bound K)
    params        every STFT/mel parameter (SpecParams): sample_rate, n_fft, hop_length, win_length,
                  window, scale, n_mels, f_min, f_max, top_db, ref
    height        rows of every image (= n_mels, or n_fft // 2 + 1 for a linear STFT)
    images        per image, in order: name, width (time columns), db_min and db_max (dB of grey 0 and
                  255), length (samples of the recording, or null); width = 1 + length // hop_length
    tensors       per weight tensor, in the network's parameter order: name, shape, exponent e (the
                  weights are integers q · 2^-e), min and max of q, and scale (of the Laplace that codes q)

Payload, in this order:

1. The weights: for each tensor with min < max, its integers q (row-major) coded with
   ``QuantizedLaplace(min, max, mean 0, scale)``; a tensor with min = max is all min and costs nothing.
2. What the mode codes after the weights. ``model``: nothing (the decoder runs the network and rounds
   ``255 · clamp(output, 0, 1)``). ``residual``: for each time column x, each bin f from the lowest up, each
   image still running at x (x < width) in order, the index σ of the reconstruction level on the grid of
   step 2K + 1 at the rounded prediction, coded with ``QuantizedLaplace`` over the symbol range of K and the
   prediction's mean and scale (:mod:`specnir.codec.residual`).

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

from specnir.errors import SpecnirError, atomic_path

MAGIC = b"SNIR"
VERSION = 1
MAX_HEADER = 1 << 20


def pack(header: dict, payload: np.ndarray) -> bytes:
    """The file's bytes for ``header`` and payload words ``(n,) uint32``."""
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    words = np.ascontiguousarray(payload, dtype="<u4").tobytes()
    body = MAGIC + bytes([VERSION]) + struct.pack("<I", len(head)) + head + struct.pack("<I", len(words))
    body += words
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(blob: bytes, *, source: str = "<bytes>") -> tuple[dict, np.ndarray]:
    """``(header, payload words)`` of a file's bytes; a :class:`SpecnirError` naming ``source`` if the
    container is damaged (wrong magic, unknown version, truncated, CRC mismatch, header not JSON)."""

    def fail(problem: str) -> SpecnirError:
        return SpecnirError(f"{source}: {problem}")

    if len(blob) < 4 or blob[:4] != MAGIC:
        raise fail("not a .snir file (wrong magic bytes)")
    if len(blob) < 17:
        raise fail("truncated .snir file")
    if blob[4] != VERSION:
        raise fail(f".snir format version {blob[4]} not supported (this specnir reads version {VERSION})")
    (head_len,) = struct.unpack_from("<I", blob, 5)
    if head_len > MAX_HEADER or 9 + head_len + 8 > len(blob):
        raise fail("truncated .snir file (header runs past the end)")
    (pay_len,) = struct.unpack_from("<I", blob, 9 + head_len)
    end = 13 + head_len + pay_len
    if end + 4 != len(blob):
        raise fail("truncated .snir file" if end + 4 > len(blob) else "trailing bytes after the .snir data")
    (crc,) = struct.unpack_from("<I", blob, end)
    if zlib.crc32(blob[:end]) != crc:
        raise fail("CRC mismatch: the file is damaged")
    if pay_len % 4:
        raise fail("payload length is not a whole number of 32-bit words")
    try:
        header = json.loads(blob[9 : 9 + head_len].decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise fail("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise fail("header is not a JSON object")
    return header, np.frombuffer(blob, dtype="<u4", count=pay_len // 4, offset=13 + head_len).astype(
        np.uint32
    )


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
