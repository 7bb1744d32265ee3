"""The ``.snir`` format, written down in one place, and its container: magic, version, header, payload, CRC.

Versions 2 and 3 (what specnir writes; ``uv`` = unsigned LEB128 varint)::

    offset      size  field
    0           4     magic  b"SNIR"
    4           1     format version: 2, or 3 for a file whose weights are in a shared decoder
    5           1-3   uv header length H (at most 1 MiB)
    5+u         H     header: binary (:mod:`specnir.codec.compact` lists its fields)
    5+u+H       P     payload: one range-coded stream, constriction's 32-bit words (P a multiple of 4)
    end−4       4     CRC32 (zlib, little-endian) of every byte before it

Version 3 is version 2 plus one header field, the id of a **shared decoder** (below) that holds the
networks' weights; such a file stores no weights. A file that holds its own weights is written as version 2,
which every version-2 reader decodes.

A shared decoder (``OUTDIR/decoder.snird`` of a batch: the synthesis and entropy model that a corpus's
sets share) has the same framing with its own magic::

    0 magic b"SNRD" | 4 version (1) | 5 uv header length H | header (mode, arch, quality, model_config,
    weight tensors: :func:`specnir.codec.compact.encode_decoder_header`) | the weights, coded as below |
    CRC32 of every byte before it

The header ends with a free JSON record, ``fit``: what the decoder was fitted on. A decoder that specnir
ships (``specnir/decoders/``, :func:`specnir.codec.decoders.shipped_decoder`) records there the analysis
(``analysis``: the ``SpecParams`` it serves), its qualities (``qualities``) and each quality's reference
loss (``loss_by_quality``); a corpus's decoder its loss (``loss``) and its sets (``sets``).

Its id is the first 8 bytes of the SHA-256 of all its bytes; a set's file names the decoder by that id,
and decoding refuses a decoder with another id or another model config than the set's (λ aside).

Version 1 (still read)::

    0 magic | 4 version (1) | 5 uint32 header length H | 9 header: UTF-8 JSON, keys sorted |
    9+H uint32 payload length P | 13+H payload | 13+H+P CRC32

Header fields (as :func:`unpack` returns them, every version; :mod:`specnir.codec.header` checks them):

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
    decoder_id    version 3 only: the shared decoder's id (16 hex digits); ``tensors`` is then empty

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

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from specnir.codec.compact import (
    DECODER_ID_BYTES,
    Reader,
    decode_decoder_header,
    decode_header,
    encode_decoder_header,
    encode_header,
    varint,
)
from specnir.errors import SpecnirError, atomic_path

MAGIC = b"SNIR"
VERSION = 3  # the newest this specnir writes (2 for a file with its own weights); it reads READABLE
READABLE = (1, 2, 3)
DECODER_MAGIC = b"SNRD"
DECODER_VERSION = 1
MAX_HEADER = 1 << 20
# What a damaged header can raise while it is read (beyond SpecnirError).
HEADER_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def pack(header: dict, payload: np.ndarray) -> bytes:
    """The file's bytes for ``header`` (the dict :func:`unpack` returns) and payload words ``(n,)
    uint32``: version 3 if the header names a shared decoder, else version 2."""
    version = 3 if header.get("decoder_id") else 2
    return _framed(MAGIC, version, encode_header(header, version=version), payload)


def pack_decoder(header: dict, payload: np.ndarray) -> bytes:
    """A shared decoder's bytes for its header (as :func:`unpack_decoder` returns it) and weight words."""
    return _framed(DECODER_MAGIC, DECODER_VERSION, encode_decoder_header(header), payload)


def decoder_id(blob: bytes) -> str:
    """The id a set's header gives its shared decoder: the first 8 bytes of SHA-256, in hex."""
    return hashlib.sha256(blob).digest()[:DECODER_ID_BYTES].hex()


def _framed(magic: bytes, version: int, head: bytes, payload: np.ndarray) -> bytes:
    words = np.ascontiguousarray(payload, dtype="<u4").tobytes()
    body = magic + bytes([version]) + varint(len(head)) + head + words
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(blob: bytes, *, source: str = "<bytes>") -> tuple[dict, np.ndarray]:
    """``(header, payload words)`` of a file's bytes, any version this reader knows; a
    :class:`SpecnirError` naming ``source`` if the container is damaged (wrong magic, unknown version,
    truncated, CRC mismatch, unreadable header)."""
    return _unpacked(blob, source, ".snir")


def unpack_decoder(blob: bytes, *, source: str = "<bytes>") -> tuple[dict, np.ndarray]:
    """``(header, weight words)`` of a shared decoder's bytes (damage raises as :func:`unpack` does)."""
    return _unpacked(blob, source, "specnir decoder")


def _unpacked(blob: bytes, source: str, kind: str) -> tuple[dict, np.ndarray]:
    """What :func:`unpack` (``kind`` ".snir") and :func:`unpack_decoder` ("specnir decoder") share."""

    def fail(problem: str) -> SpecnirError:
        return SpecnirError(f"{source}: {problem}")

    magic, readable = (MAGIC, READABLE) if kind == ".snir" else (DECODER_MAGIC, (DECODER_VERSION,))
    if len(blob) < 4 or blob[:4] != magic:
        raise fail(f"not a {kind} file (wrong magic bytes)")
    if len(blob) < 10:
        raise fail(f"truncated {kind} file")
    version = blob[4]
    if version not in readable:
        known = ", ".join(map(str, readable))
        raise fail(f"{kind} format version {version} not supported (this specnir reads: {known})")
    head, payload = _split_v1(blob, fail) if (magic, version) == (MAGIC, 1) else _split_v2(blob, fail)
    if zlib.crc32(blob[:-4]) != struct.unpack_from("<I", blob, len(blob) - 4)[0]:
        raise fail("CRC mismatch: the file is damaged or truncated")
    if len(payload) % 4:
        raise fail("payload length is not a whole number of 32-bit words")
    try:
        if magic == DECODER_MAGIC:
            header = decode_decoder_header(head)
        else:
            header = _read_json(head, fail) if version == 1 else decode_header(head, version=version)
    except SpecnirError as exc:
        raise fail(f"malformed {kind} header: {exc}") from None
    except HEADER_ERRORS as exc:
        raise fail(f"malformed {kind} header ({type(exc).__name__})") from None
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _split_v1(blob: bytes, fail) -> tuple[bytes, bytes]:
    (head_len,) = struct.unpack_from("<I", blob, 5)
    if head_len > MAX_HEADER or 9 + head_len + 8 > len(blob):
        raise fail("truncated file (header runs past the end)")
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
        raise fail("truncated file (header length)") from None
    pos = reader.pos
    if head_len > MAX_HEADER or pos + head_len > len(blob) - 4:
        raise fail("truncated file (header runs past the end)")
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
