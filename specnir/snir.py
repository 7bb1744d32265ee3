"""The ``.snir`` container: magic, version, a JSON header, the range-coded payload, and a CRC32.

Byte layout (integers little-endian)::

    offset      size  field
    0           4     magic  b"SNIR"
    4           1     format version (1)
    5           4     header length H
    9           H     header: UTF-8 JSON (architecture, its config, mode, spectrogram parameters,
                      image names, widths and dB ranges, quantisation of every weight tensor)
    9+H         4     payload length P (a multiple of 4)
    13+H        P     payload: the range coder's 32-bit words (weights, then residuals if any)
    13+H+P      4     CRC32 of every byte before it

This module checks the container; :mod:`specnir.codec` checks what the header says.
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
