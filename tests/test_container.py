"""The .snir container alone: pack/unpack round trips and refusal of damaged bytes, without any fit."""

import struct
import zlib

import numpy as np
import pytest

from specnir.codec.container import MAGIC, VERSION, pack, read, unpack, write
from specnir.errors import SpecnirError

HEADER = {"format": "snir", "arch": "gru", "images": [{"name": "ä", "width": 3}], "x": 1.5}


def test_pack_unpack_round_trip(tmp_path):
    words = np.random.default_rng(0).integers(0, 2**32, 17, dtype=np.uint64).astype(np.uint32)
    blob = pack(HEADER, words)
    assert blob[:4] == MAGIC and blob[4] == VERSION
    assert len(blob) == 4 + 1 + 4 + struct.unpack_from("<I", blob, 5)[0] + 4 + 17 * 4 + 4
    header, back = unpack(blob)
    assert header == HEADER and np.array_equal(back, words) and back.dtype == np.uint32
    path = write(tmp_path / "x.snir", blob)
    assert path.read_bytes() == blob and read(path)[0] == HEADER
    assert not [p for p in tmp_path.iterdir() if p.name != "x.snir"]  # no temporary file left
    assert unpack(pack({}, np.zeros(0, np.uint32)))[0] == {}


def _resign(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda b: b"PNG!" + b[4:], "wrong magic"),
        (lambda b: b"", "wrong magic"),
        (lambda b: b[:4] + bytes([VERSION + 1]) + b[5:], f"version {VERSION + 1} not supported"),
        (lambda b: b[:-7], "truncated"),
        (lambda b: b[:12], "truncated"),
        (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "CRC mismatch"),
        (lambda b: b + b"\0", "trailing bytes"),
        (lambda b: _resign(b[:9] + b"[" * 40 + b[49:-4]), "not valid JSON"),
        (lambda b: _resign(b[:5] + struct.pack("<I", 2) + b"[]" + struct.pack("<I", 0)), "not a JSON object"),
        (lambda b: _resign(b[: -4 - 8] + b"\0\0\0\0"), "truncated"),
    ],
)
def test_damaged_containers_are_refused(damage, problem):
    blob = pack({"format": "snir", "pad": "a" * 60}, np.arange(4, dtype=np.uint32))
    with pytest.raises(SpecnirError, match=problem) as info:
        unpack(damage(blob), source="bad.snir")
    assert str(info.value).startswith("bad.snir: ")


def test_read_names_a_missing_file(tmp_path):
    with pytest.raises(SpecnirError, match="no such file"):
        read(tmp_path / "missing.snir")
