"""The version-2 and -3 header in bytes: version 1's fields, without what the decoder can work out itself.

At 116k pixels a 1–2 kB JSON header is a tenth of a lossy file, so version 2 writes (``uv`` = unsigned
LEB128 varint, ``sv`` = zigzag varint, ``json`` = ``uv`` length + UTF-8 JSON object, keys sorted)::

    1 byte   mode id                         1 byte  arch id                        1 byte  quality
             (the ids are the modes' own: :mod:`specnir.codec.modes`)
    json     model_config: only the fields that differ from the mode's settings for the quality (latent)
             or the config class's defaults
    json     params: only the SpecParams fields that differ from the defaults (usually "{}" → 2 bytes)
    uv       number of images; per image: uv name length, UTF-8 name, uv length + 1 (0: unknown),
             uv width only when the length is unknown (else 1 + length // hop_length),
             sv db_min and sv db_max in 1/100 dB
    uv       number of weight tensors, uv number of weights (checked against the network before any
             weight is decoded); per tensor (in the network's order; names and shapes come from
             the network the config describes): 1 byte exponent, sv min, sv max, 1 byte scale index
             (:func:`specnir.codec.weights.scale_of_index`)
    uv       number of mode fields, then each as uv (:meth:`~specnir.codec.modes.CodingMode.header_fields`:
             the latent mode's alphabet A of every grid; the other modes have none)
    8 bytes  version 3 only: the id of the shared decoder that holds the weights (the file then has no
             weight tensors: ``0, 0``)

A shared decoder's header (:func:`encode_decoder_header`) is the same fields without the images and the
mode fields — mode, arch, quality, model_config, the weight tensors — then ``json`` fit: what the encoder
needs again and the decoder does not (``loss``: the mean fitting loss, MSE + λ·bpp, of the sets it was
fitted on, with its weights on their grids; ``sets``: how many).

The dB range is kept to 1/100 dB (an 8-bit grey level is about 0.3 dB). Reading checks every count against
:data:`~specnir.codec.header.LIMITS` and refuses truncated or trailing bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math

from specnir.codec.modes import MODES, arch_with_id, mode_with_id
from specnir.errors import SpecnirError
from specnir.models import MODELS
from specnir.spectrogram import SpecParams

MAX_COUNT = 1 << 20
DECODER_ID_BYTES = 8


def varint(value: int) -> bytes:
    """``value`` (≥ 0) as an unsigned LEB128 varint."""
    if value < 0:
        raise SpecnirError(f"cannot store {value} as an unsigned number")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def byte(self, value: int) -> None:
        if not 0 <= value <= 255:
            raise SpecnirError(f"cannot store {value} in one byte")
        self.out.append(value)

    def uv(self, value: int) -> None:
        self.out += varint(value)

    def sv(self, value: int) -> None:
        self.uv(value * 2 if value >= 0 else -value * 2 - 1)

    def text(self, value: str) -> None:
        raw = value.encode()
        self.uv(len(raw))
        self.out += raw

    def json(self, value: dict) -> None:
        self.text(json.dumps(value, separators=(",", ":"), sort_keys=True) if value else "")


class Reader:
    """Reads ``data[pos:end]``; running past ``end`` raises :class:`SpecnirError`."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise SpecnirError("header is truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def uv(self, limit: int = 1 << 62) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 63:
                raise SpecnirError("header holds a number too large")
        if value > limit:
            raise SpecnirError("header holds a count out of range")
        return value

    def sv(self) -> int:
        value = self.uv()
        return value // 2 if value % 2 == 0 else -(value + 1) // 2

    def text(self) -> str:
        n = self.uv(MAX_COUNT)
        if self.pos + n > self.end:
            raise SpecnirError("header is truncated")
        raw, self.pos = self.data[self.pos : self.pos + n], self.pos + n
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise SpecnirError("header holds text that is not UTF-8") from None

    def json(self) -> dict:
        raw = self.text()
        try:
            value = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, RecursionError):
            raise SpecnirError("header holds a field that is not valid JSON") from None
        if not isinstance(value, dict):
            raise SpecnirError("header holds a field that is not a JSON object")
        return value


def _defaults(config_class) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config_class)}


def _config_defaults(mode: str, arch: str, quality: int) -> dict:
    """What a config field is when the header leaves it out: the mode's setting for the quality, else the
    config class's default."""
    return {**_defaults(_config_class(mode, arch)), **MODES[mode].quality_config(quality)}


def _config_class(mode: str, arch: str):
    if mode not in MODES or arch not in MODES[mode].archs:
        raise SpecnirError(f"no mode {mode!r} for architecture {arch!r}")
    return MODELS[MODES[mode].model_arch(arch)].Config


def _params_diff(params: dict) -> dict:
    """The spectrogram parameters that differ from the defaults, without the ones that follow from the
    others (win_length = n_fft, f_max = sample_rate / 2 when left unset)."""
    diff = {k: v for k, v in params.items() if v != _defaults(SpecParams).get(k)}
    for derived in ("win_length", "f_max"):
        rest = {k: v for k, v in diff.items() if k != derived}
        if derived in diff and _spec_params(rest)[derived] == diff[derived]:
            diff = rest
    return diff


def _spec_params(diff: dict) -> dict:
    """All the spectrogram parameters, from those off their defaults."""
    return SpecParams.from_dict({**_defaults(SpecParams), **diff}).to_dict()


def encode_header(header: dict, *, version: int = 2) -> bytes:
    """A version-1-style header dict (see :mod:`specnir.codec.container`) in version 2's or 3's bytes."""
    w = _Writer()
    _write_network(w, header)
    params = SpecParams.from_dict(header["params"])
    w.json(_params_diff(header["params"]))
    w.uv(len(header["images"]))
    for im in header["images"]:
        w.text(im["name"])
        w.uv(0 if im["length"] is None else im["length"] + 1)
        if im["length"] is None:
            w.uv(im["width"])
        elif im["width"] != 1 + im["length"] // params.hop_length:
            raise SpecnirError(f"width of {im['name']} disagrees with its length")
        w.sv(round(im["db_min"] * 100))
        w.sv(round(im["db_max"] * 100))
    _write_tensors(w, header)
    fields = MODES[header["mode"]].header_fields(header)
    w.uv(len(fields))
    for value in fields:
        w.uv(value)
    if version >= 3:
        w.out += bytes.fromhex(header["decoder_id"])
    return bytes(w.out)


def encode_decoder_header(header: dict) -> bytes:
    """A shared decoder's header (mode, arch, quality, model_config, tensors) in bytes."""
    w = _Writer()
    _write_network(w, header)
    _write_tensors(w, header)
    w.json(header.get("fit", {}))
    return bytes(w.out)


def _write_network(w: _Writer, header: dict) -> None:
    mode = MODES[header["mode"]]
    w.byte(mode.id)
    w.byte(mode.archs[header["arch"]])
    w.byte(header["quality"])
    defaults = _config_defaults(header["mode"], header["arch"], header["quality"])
    w.json({k: v for k, v in header["model_config"].items() if v != defaults.get(k)})


def _write_tensors(w: _Writer, header: dict) -> None:
    w.uv(len(header["tensors"]))
    count = header.get("weight_count")  # (a header read from a version-2 file has no shapes)
    w.uv(sum(math.prod(e["shape"]) for e in header["tensors"]) if count is None else count)
    for entry in header["tensors"]:
        w.byte(entry["exponent"])
        w.sv(entry["min"])
        w.sv(entry["max"])
        w.byte(entry["scale_index"])


def decode_header(data: bytes, *, version: int = 2) -> dict:
    """Version 2's or 3's bytes → the header dict (tensor entries without names and shapes: the
    network's own, filled in by :func:`specnir.codec.header.read_header`)."""
    r = Reader(data)
    header = _read_network(r)
    params = _spec_params(r.json())
    hop = SpecParams.from_dict(params).hop_length
    images = []
    for _ in range(r.uv(MAX_COUNT)):
        name, length = r.text(), r.uv() - 1
        width = r.uv(MAX_COUNT) if length < 0 else 1 + length // hop
        db_min, db_max = r.sv() / 100, r.sv() / 100
        images.append(
            {
                "name": name,
                "width": width,
                "db_min": db_min,
                "db_max": db_max,
                "length": length if length >= 0 else None,
            }
        )
    header |= {"params": params, "height": SpecParams.from_dict(params).n_bins, "images": images}
    header |= _read_tensors(r)
    header |= MODES[header["mode"]].read_header_fields([r.uv(MAX_COUNT) for _ in range(r.uv(64))])
    if version >= 3:
        header["decoder_id"] = bytes(r.byte() for _ in range(DECODER_ID_BYTES)).hex()
    if r.pos != r.end:
        raise SpecnirError("trailing bytes after the header")
    return header


def decode_decoder_header(data: bytes) -> dict:
    """A shared decoder's header bytes → ``{format, arch, mode, quality, model_config, tensors,
    weight_count, fit}`` (tensor entries without names and shapes, as in :func:`decode_header`)."""
    r = Reader(data)
    header = _read_network(r) | _read_tensors(r) | {"fit": r.json()}
    if r.pos != r.end:
        raise SpecnirError("trailing bytes after the header")
    return header


def _read_network(r: Reader) -> dict:
    mode = mode_with_id(r.byte())
    arch, quality, mode = arch_with_id(mode, r.byte()), r.byte(), mode.name
    config = {**_config_defaults(mode, arch, quality), **r.json()}
    return {"format": "snir", "arch": arch, "mode": mode, "quality": quality, "model_config": config}


def _read_tensors(r: Reader) -> dict:
    n_tensors, n_weights = r.uv(MAX_COUNT), r.uv()
    tensors = [
        {"exponent": r.byte(), "min": r.sv(), "max": r.sv(), "scale_index": r.byte()}
        for _ in range(n_tensors)
    ]
    return {"tensors": tensors, "weight_count": n_weights}
