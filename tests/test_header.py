"""What a header says, checked before anything is decoded: layouts, the network it describes, its tensors."""

import pytest
import torch
from test_container import IMAGES, _header

from specnir.codec.header import LIMITS, build_header, describe, read_decoder_header, read_header, read_layout
from specnir.data import load_image_set
from specnir.errors import SpecnirError
from specnir.models import LatentCodec
from specnir.spectrogram import SpecParams


def _named() -> dict:
    """:func:`_header` with its tensor entries named and shaped, as version 1 and decoders carry them."""
    header = _header()
    model = LatentCodec(LatentCodec.Config(lam=1e-3), n_images=5, height=128, width=183)
    entries = [
        {**e, "name": n, "shape": list(p.shape)}
        for e, (n, p) in zip(header["tensors"], model.weights().items(), strict=True)
    ]
    return {**header, "tensors": entries}


def test_a_good_header_gives_the_network_the_layouts_and_the_tensors():
    model, params, layouts, entries = read_header(_header())
    assert isinstance(model, LatentCodec) and model.config.lam == 1e-3 and model.n_images == len(IMAGES)
    assert model.width == max(im["width"] for im in IMAGES) and params.n_mels == model.height == 128
    assert [im.name for im in layouts] == [im["name"] for im in IMAGES]
    assert [e["name"] for e in entries] == list(model.weights())  # (version 2: named from the network)
    assert read_header(_named())[3] == entries


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda h: {**h, "format": "png"}, "not a specnir header"),
        (lambda h: {**h, "height": 64}, "height disagrees"),
        (lambda h: {**h, "images": []}, "bad image list"),
        (lambda h: {**h, "images": [{**IMAGES[0], "width": 25}]}, "disagrees with its length"),
        (lambda h: {**h, "images": [{**IMAGES[1], "db_max": -90.0}]}, "bad dB range"),
        (lambda h: {**h, "images": [{**IMAGES[1], "width": LIMITS["width"] + 1}]}, "bad width"),
        (lambda h: {**h, "images": [IMAGES[1]] * (LIMITS["images"] + 1)}, "bad image list"),
        (lambda h: {**h, "mode": "jpeg"}, "unknown mode"),
        (lambda h: {**h, "arch": "gru"}, "unknown architecture"),
        (lambda h: {**h, "model_config": {**h["model_config"], "colour": 1}}, "unknown model config keys"),
        (lambda h: {**h, "model_config": {**h["model_config"], "synthesis": 10**6}}, "out of range"),
        (
            lambda h: {**h, "model_config": {**h["model_config"], "synthesis": 0}},
            "synthesis must be at least 1",
        ),
        (lambda h: {**h, "tensors": h["tensors"][:-1]}, "weight shapes disagree"),
        (lambda h: {**h, "weight_count": h["weight_count"] + 1}, "weight shapes disagree"),
    ],
)
def test_lying_headers_are_refused(change, problem):
    with pytest.raises(SpecnirError, match=problem):
        read_header(change(_header()))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e[::-1], "out of order"),
        (lambda e: [{**e[0], "shape": [1, 2]}, *e[1:]], "weight shapes disagree"),
        (lambda e: [{**e[0], "exponent": 31}, *e[1:]], "bad quantisation"),
        (lambda e: [{**e[0], "min": 9, "max": 1}, *e[1:]], "bad quantisation"),
        (lambda e: [{**e[0], "scale_index": 256}, *e[1:]], "bad scale"),
    ],
)
def test_lying_tensor_entries_are_refused(change, problem):
    header = _named()
    with pytest.raises(SpecnirError, match=problem):
        read_header({**header, "tensors": change(header["tensors"])})


def test_a_huge_network_is_refused_before_anything_is_allocated():
    """The shapes are checked on torch's meta device: a config asking for ~10^10 weights costs nothing."""
    header = _named()
    config = {**header["model_config"], "synthesis": 4000}  # (within LIMITS["config"])
    huge = {**header, "model_config": config}
    with torch.device("meta"):
        asked = LatentCodec(LatentCodec.Config(**config), n_images=5, height=128, width=183).n_weights()
    assert asked > LIMITS["weights"] * 9  # (160 M weights: 0.6 GB, had they been allocated)
    with pytest.raises(SpecnirError, match="weight shapes disagree"):
        read_header(huge)


def test_build_header_and_describe(tiny_wavs):
    params = SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)
    data = load_image_set(tiny_wavs[:2], params=params)
    model = LatentCodec(LatentCodec.Config(), n_images=2, height=16, width=max(data.widths))
    header = build_header(arch="latent", mode="latent", quality=3, model=model, data=data)
    assert read_layout(header) == (params, data.layouts)
    shown = describe(_header())
    assert shown["mode"] == "latent" and shown["alphabets"] == [1, 2, 3] and shown["lambda"] == 1e-3
    assert shown["weights"] == _header()["weight_count"] and len(shown["images"]) == len(IMAGES)
    in_decoder = describe({**_header(), "tensors": [], "decoder_id": "00ff00ff00ff00ff"})
    assert in_decoder["weights"] == "in the shared decoder 00ff00ff00ff00ff"


def test_a_decoder_header_names_its_tensors_and_holds_a_mode_that_shares():
    header = {
        k: v for k, v in _header().items() if k in ("format", "arch", "mode", "quality", "model_config")
    }
    header |= {"tensors": _header()["tensors"], "weight_count": _header()["weight_count"]}
    entries = read_decoder_header(header)
    assert [e["name"] for e in entries][:2] == ["synthesis.0.weight", "synthesis.0.bias"]
    with pytest.raises(SpecnirError, match="mode residual has no shared decoder"):
        read_decoder_header({**header, "mode": "residual", "arch": "gru"})
