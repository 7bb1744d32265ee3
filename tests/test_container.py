"""The .snir container alone: pack/unpack round trips and refusal of damaged bytes, without any fit."""

import json
import struct
import zlib

import numpy as np
import pytest

from specnir.codec.container import (
    DECODER_MAGIC,
    MAGIC,
    VERSION,
    decoder_id,
    pack,
    pack_decoder,
    read,
    unpack,
    unpack_decoder,
    write,
)
from specnir.codec.decoders import SharedDecoder
from specnir.codec.header import read_header
from specnir.errors import SpecnirError
from specnir.models import LatentCodec, LatentConfig

IMAGES = [
    {"name": "ä", "width": 24, "db_min": -70.25, "db_max": 9.5, "length": 2944},
    {"name": "b", "width": 9, "db_min": -60.0, "db_max": 0.0, "length": None},
    *(
        {"name": f"clip{k}", "width": 180 + k, "db_min": -81.17, "db_max": 13.02, "length": 128 * (179 + k)}
        for k in range(3)
    ),
]


def _header() -> dict:
    """A version-2 header as :func:`unpack` returns it, for a small latent codec (unfitted)."""
    model = LatentCodec(LatentConfig(lam=1e-3), n_images=5, height=128, width=183)
    return {
        "format": "snir",
        "arch": "latent",
        "mode": "latent",
        "quality": 3,
        "model_config": {**vars(LatentConfig()), "lam": 1e-3},
        "params": {
            "sample_rate": 16000,
            "n_fft": 1024,
            "hop_length": 128,
            "win_length": 1024,
            "window": "hann",
            "scale": "mel",
            "n_mels": 128,
            "f_min": 0.0,
            "f_max": 8000.0,
            "top_db": 80.0,
            "ref": 1.0,
        },
        "height": 128,
        "images": IMAGES,
        "tensors": [{"exponent": 7, "min": -3, "max": 5, "scale_index": 70} for _ in model.weights()],
        "weight_count": sum(p.numel() for p in model.weights().values()),
        "latents": {"alphabets": [1, 2, 3]},
    }


def test_pack_unpack_round_trip(tmp_path):
    words = np.random.default_rng(0).integers(0, 2**32, 17, dtype=np.uint64).astype(np.uint32)
    header = _header()
    shaped = [{**e, "shape": [1]} for e in header["tensors"]]  # (pack counts the weights from the shapes)
    blob = pack({**header, "tensors": shaped, "weight_count": None}, words)
    assert blob[:4] == MAGIC and blob[4] == 2  # (a file with its own weights: what a version-2 reader reads)
    back_header, back = unpack(blob)
    assert np.array_equal(back, words) and back.dtype == np.uint32
    assert back_header == {**header, "weight_count": len(shaped)}
    head_len = len(blob) - 4 - 1 - 1 - 17 * 4 - 4  # (a one-byte header length)
    names = sum(len(im["name"].encode()) for im in IMAGES)
    assert head_len - names <= 150 - 10  # five images: at most 150 bytes with the framing, names aside
    path = write(tmp_path / "x.snir", blob)
    assert path.read_bytes() == blob and read(path)[0] == back_header
    assert not [p for p in tmp_path.iterdir() if p.name != "x.snir"]  # no temporary file left


def test_version_2_header_names_the_network_tensors():
    header = _header()
    blob = pack(
        {
            **header,
            "tensors": [
                {**e, "shape": [p.numel()]}
                for e, p in zip(
                    header["tensors"],
                    LatentCodec(LatentConfig(), n_images=5, height=128, width=183).weights().values(),
                    strict=True,
                )
            ],
        },
        np.zeros(0, np.uint32),
    )
    model, params, layouts, entries = read_header(unpack(blob)[0])
    assert [e["name"] for e in entries] == list(model.weights())
    assert [im.width for im in layouts] == [24, 9, 180, 181, 182] and layouts[0].db_min == -70.25
    assert isinstance(model, LatentCodec) and model.config.lam == 1e-3 and params.n_mels == 128


def pack_v1(header: dict, words: np.ndarray) -> bytes:
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = MAGIC + b"\x01" + struct.pack("<I", len(head)) + head + struct.pack("<I", 4 * words.size)
    return _resign(body + words.astype("<u4").tobytes())


def _resign(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda b: b"PNG!" + b[4:], "wrong magic"),
        (lambda b: b"", "wrong magic"),
        (lambda b: b[:4] + bytes([VERSION + 1]) + b[5:], f"version {VERSION + 1} not supported"),
        (lambda b: b[:4] + bytes([0]) + b[5:], "version 0 not supported"),
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
    blob = pack_v1({"format": "snir", "pad": "a" * 60}, np.arange(4, dtype=np.uint32))
    with pytest.raises(SpecnirError, match=problem) as info:
        unpack(damage(blob), source="bad.snir")
    assert str(info.value).startswith("bad.snir: ")


def test_read_names_a_missing_file(tmp_path):
    with pytest.raises(SpecnirError, match="no such file"):
        read(tmp_path / "missing.snir")


def _v2_blob() -> bytes:
    header = _header()
    return pack(
        {**header, "tensors": [{**e, "shape": [1]} for e in header["tensors"]]}, np.arange(3, dtype=np.uint32)
    )


def _varint(n: int) -> bytes:
    return bytes([n & 0x7F | 0x80, n >> 7]) if n >= 0x80 else bytes([n])


def _rebuild(blob: bytes, edit) -> bytes:
    """A version-2 file with its (header, payload) edited, length and CRC made valid again."""
    length, pos = blob[5] & 0x7F | (blob[6] << 7 if blob[5] & 0x80 else 0), 7 if blob[5] & 0x80 else 6
    head, payload = edit(blob[pos : pos + length], blob[pos + length : -4])
    return _resign(blob[:5] + _varint(len(head)) + head + payload)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda b: b[:5], "truncated"),
        (lambda b: _resign(b[:5] + b"\xff\xff\xff\xff\x7f" + b[7:-4]), "header"),
        (lambda b: _rebuild(b, lambda h, p: (h + p[:4], p[4:])), "trailing bytes after the header"),
        (lambda b: _rebuild(b, lambda h, p: (h[:-4], h[-4:] + p)), "header is truncated"),
        (lambda b: _rebuild(b, lambda h, p: (bytes([9]) + h[1:], p)), "unknown mode"),
        (lambda b: _rebuild(b, lambda h, p: (h, p[:-2])), "whole number of 32-bit words"),
        (lambda b: b[:-8] + b[-4:], "CRC mismatch"),
        (lambda b: b + b"\0", "CRC mismatch"),
    ],
)
def test_damaged_version_2_files_are_refused(damage, problem):
    with pytest.raises(SpecnirError, match=problem) as info:
        unpack(damage(_v2_blob()), source="bad.snir")
    assert str(info.value).startswith("bad.snir: ")


def _decoder_blob() -> bytes:
    header = _header()
    network = {key: header[key] for key in ("format", "arch", "mode", "quality", "model_config")}
    return pack_decoder(
        {**network, "tensors": header["tensors"], "weight_count": header["weight_count"]},
        np.arange(5, dtype=np.uint32),
    )


def test_a_file_that_refers_to_a_shared_decoder_is_version_3_and_names_it():
    header = _header()
    decoder = _decoder_blob()
    blob = pack({**header, "tensors": [], "weight_count": 0, "decoder_id": decoder_id(decoder)}, np.arange(3))
    assert blob[4] == VERSION == 3 and len(decoder_id(decoder)) == 16
    back, _ = unpack(blob)
    assert back["decoder_id"] == decoder_id(decoder) and back["tensors"] == [] and back["images"] == IMAGES
    assert len(blob) == len(pack({**header, "tensors": [], "weight_count": 0}, np.arange(3))) + 8
    # a version-2 reader would misread it: the version byte says so (tested by every v2 file's decode)


def test_shared_decoder_round_trip_and_its_checks():
    blob = _decoder_blob()
    assert blob[:4] == DECODER_MAGIC and blob[4] == 1
    header, words = unpack_decoder(blob)
    assert np.array_equal(words, np.arange(5)) and header["model_config"] == _header()["model_config"]
    decoder = SharedDecoder.from_bytes(blob, source="d.snird")
    names = [e["name"] for e in decoder.header["tensors"]]
    model = LatentCodec(LatentConfig(lam=1e-3), n_images=1, height=8, width=8)
    assert names == list(model.weights()) and decoder.id == decoder_id(blob)
    with pytest.raises(SpecnirError, match="other networks .*synthesis"):
        decoder.check_config({**_header()["model_config"], "synthesis": 5}, source="x.snir")
    decoder.check_config({**_header()["model_config"], "lam": 0.5}, source="x.snir")  # λ only weighs the rate


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda b: MAGIC + b[4:], "not a specnir decoder file"),
        (lambda b: b[:4] + bytes([2]) + b[5:], "version 2 not supported"),
        (lambda b: b[:-9], "truncated"),
        (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "CRC mismatch"),
        (lambda b: _rebuild(b, lambda h, p: (h + b"\0", p)), "trailing bytes after the header"),
        (lambda b: _rebuild(b, lambda h, p: (bytes([0, 0]) + h[2:], p)), "mode model has no shared decoder"),
        (lambda b: _rebuild(b, lambda h, p: (h[:-4], p)), "header is truncated"),
    ],
)
def test_damaged_shared_decoders_are_refused(damage, problem):
    with pytest.raises(SpecnirError, match=problem) as info:
        SharedDecoder.from_bytes(damage(_decoder_blob()), source="bad.snird")
    assert str(info.value).startswith("bad.snird: ") and "\n" not in str(info.value)
