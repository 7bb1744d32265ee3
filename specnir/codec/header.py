"""The ``.snir`` header: built from a fitted set, and checked field by field before anything is decoded.

Fields (JSON, see :mod:`specnir.codec.container` for the whole format): ``format`` ("snir"), ``arch``,
``mode``, ``quality``, ``model_config`` (the network's config dataclass as a dict), ``params``
(:class:`~specnir.spectrogram.SpecParams`), ``height`` (rows of every image), ``images`` (one
:class:`~specnir.data.ImageLayout` each: ``name``, ``width``, ``db_min``, ``db_max``, ``length``) and
``tensors`` (per weight tensor, in the network's parameter order: ``name``, ``shape``, ``exponent``,
``min``, ``max``, ``scale``).

A lying header must not make the decoder allocate or loop without bound: sizes are capped
(:data:`LIMITS`) and the tensor shapes are compared with the network the header describes on torch's meta
device, before any weight is allocated.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from specnir.codec.modes import MODES
from specnir.codec.weights import MAX_INTEGER
from specnir.data import ImageLayout, ImageSet
from specnir.errors import SpecnirError
from specnir.models import MODELS, SpectrogramModel
from specnir.spectrogram import SpecParams

LIMITS = {"images": 1024, "width": 1 << 17, "pixels": 1 << 27, "config": 4096, "weights": 1 << 24}


def build_header(*, arch: str, mode: str, quality: int, model: SpectrogramModel, data: ImageSet) -> dict:
    """Everything but ``tensors``, which :func:`specnir.codec.weights.tensor_entries` adds."""
    return {
        "format": "snir",
        "arch": arch,
        "mode": mode,
        "quality": quality,
        "model_config": dataclasses.asdict(model.config),
        "params": data.params.to_dict(),
        "height": int(data.target.shape[1]),
        "images": [im.to_dict() for im in data.layouts],
    }


def _check(condition: bool, problem: str) -> None:
    if not condition:
        raise SpecnirError(problem)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_layout(header: dict) -> tuple[SpecParams, list[ImageLayout]]:
    """The spectrogram parameters and the images the header describes, validated."""
    _check(header.get("format") == "snir", "header is not a specnir header")
    params = SpecParams.from_dict(header["params"])
    images, height = header["images"], header["height"]
    _check(isinstance(images, list) and 0 < len(images) <= LIMITS["images"], "bad image list")
    _check(_is_int(height) and height == params.n_bins, "height disagrees with the spectrogram parameters")
    layouts = []
    for im in images:
        _check(isinstance(im, dict) and isinstance(im.get("name"), str), "bad image entry")
        name = im["name"]
        _check(_is_int(im.get("width")) and 0 < im["width"] <= LIMITS["width"], f"bad width of {name}")
        _check(
            _finite(im.get("db_min")) and _finite(im.get("db_max")) and im["db_min"] < im["db_max"],
            f"bad dB range of {name}",
        )
        length = im.get("length")
        _check(length is None or (_is_int(length) and length >= 0), "bad length")
        if length is not None:  # a centred STFT has 1 + length // hop_length frames
            frames = 1 + length // params.hop_length
            _check(im["width"] == frames, f"width of {name} disagrees with its length ({frames} frames)")
        layouts.append(ImageLayout(name, im["width"], float(im["db_min"]), float(im["db_max"]), length))
    _check(height * sum(im.width for im in layouts) <= LIMITS["pixels"], "too many pixels")
    return params, layouts


def _network(header: dict) -> tuple[type[SpectrogramModel], dict, list]:
    """The class and config of the network the header describes, and its tensor entries; fields and
    (empty) tensors that older versions wrote and this one retired are dropped."""
    arch, mode, config, entries = header["arch"], header["mode"], header["model_config"], header["tensors"]
    _check(mode in MODES, f"unknown mode {mode!r}")
    _check(arch in MODES[mode].archs, f"unknown architecture {arch!r} for {mode}")
    _check(isinstance(config, dict), "bad model config")
    _check(isinstance(entries, list) and all(isinstance(e, dict) for e in entries), "bad tensor list")
    for value in config.values():
        _check(
            not isinstance(value, int | float) or abs(value) <= LIMITS["config"], "model config out of range"
        )
    cls = MODELS[MODES[mode].model_arch(arch)]
    try:
        config, dropped = cls.upgrade(config, {e.get("name"): e.get("shape") for e in entries})
    except ValueError as exc:
        raise SpecnirError(str(exc)) from None
    names = {f.name for f in dataclasses.fields(cls.Config)}
    _check(set(config) <= names, f"unknown model config keys {sorted(set(config) - names)}")
    return cls, config, [e for e in entries if e.get("name") not in dropped]


def _named(model: SpectrogramModel, entries: list[dict], count) -> list[dict]:
    """Version 2's entries carry no names or shapes: they are the network's, in order; ``count`` (the
    number of weights the file holds) must be the network's too."""
    if all("name" not in e and "shape" not in e for e in entries):
        weights = model.weights()
        _check(
            len(entries) == len(weights) and count == sum(p.numel() for p in weights.values()),
            "weight shapes disagree with the model the header describes",
        )
        return [
            {**e, "name": n, "shape": list(p.shape)}
            for e, (n, p) in zip(entries, weights.items(), strict=True)
        ]
    return entries


def _check_tensors(model: SpectrogramModel, entries) -> None:
    expected = {name: list(p.shape) for name, p in model.weights().items()}
    got = {}
    for e in entries:
        _check(isinstance(e.get("name"), str), "bad tensor entry")
        name = e["name"]
        _check(
            isinstance(e.get("shape"), list) and all(_is_int(d) for d in e["shape"]), f"bad shape of {name}"
        )
        _check(all(_is_int(e.get(key)) for key in ("exponent", "min", "max")), f"bad quantisation of {name}")
        _check(0 <= e["exponent"] <= 30 and e["min"] <= e["max"], f"bad quantisation of {name}")
        _check(max(abs(e["min"]), abs(e["max"])) < 2**24, f"bad quantisation of {name}")
        if "scale_index" in e:
            _check(_is_int(e["scale_index"]) and 0 <= e["scale_index"] <= 255, f"bad scale of {name}")
            _check(max(abs(e["min"]), abs(e["max"])) < MAX_INTEGER, f"bad quantisation of {name}")
        else:
            _check(_finite(e.get("scale")) and 0 < e["scale"] < 1e9, f"bad scale of {name}")
        got[name] = e["shape"]
    _check(got == expected, "weight shapes disagree with the model the header describes")
    _check([e["name"] for e in entries] == list(expected), "weight tensors out of order")
    _check(sum(math.prod(s) for s in got.values()) <= LIMITS["weights"], "too many weights")


def read_header(header: dict) -> tuple[SpectrogramModel, SpecParams, list[ImageLayout], list[dict]]:
    """Validate ``header``: the (untrained) network it describes, the spectrogram parameters, the image
    layouts and the tensor entries of the weights in the payload.

    Raises :class:`SpecnirError` naming the first problem; the shapes are checked on the meta device.
    """
    params, layouts = read_layout(header)
    cls, config, entries = _network(header)

    def build() -> SpectrogramModel:
        width = max(im.width for im in layouts)
        return cls(cls.Config(**config), n_images=len(layouts), height=params.n_bins, width=width)

    with torch.device("meta"):  # shapes first, without allocating what a lying header asks for
        entries = _named(build(), entries, header.get("weight_count"))
        _check_tensors(build(), entries)
    return build(), params, layouts, entries


def read_decoder_header(header: dict) -> list[dict]:
    """Validate a shared decoder's header (:mod:`specnir.codec.decoders`): its tensor entries, named."""
    mode = MODES.get(header.get("mode"))
    _check(mode is not None and mode.shares_decoder, f"mode {header.get('mode')} has no shared decoder")
    cls, config, entries = _network(header)
    with torch.device("meta"):  # the networks' shapes do not depend on the images
        model = cls(cls.Config(**config), n_images=1, height=8, width=8)
        entries = _named(model, entries, header.get("weight_count"))
        _check_tensors(model, entries)
    return entries


def describe(header: dict) -> dict:
    """What ``specnir info`` prints for a ``.snir`` header (checked first, like :func:`read_header`)."""
    try:
        if header.get("decoder_id"):  # the weights are in a shared decoder: the rest is checked
            params, layouts = read_layout(header)
            _network(header)
            weights = exponents = f"in the shared decoder {header['decoder_id']}"
        else:
            model, params, layouts, entries = read_header(header)
            weights = sum(p.numel() for p in model.weights().values())
            exponents = {e["name"]: e["exponent"] for e in entries}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecnirError(f"malformed header ({type(exc).__name__})") from None
    return {
        "arch": header["arch"],
        "mode": header["mode"],
        "quality": header.get("quality"),
        **MODES[header["mode"]].describe(header),
        "weights": weights,
        "images": [f"{im.name} ({params.n_bins}×{im.width})" for im in layouts],
        "model_config": header["model_config"],
        "params": params.to_dict(),
        "exponents": exponents,
    }
