"""The binary header's bytes alone: varints, what the decoder works out itself, and refusals."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_container import _header

from specnir.codec.compact import (
    Reader,
    _params_diff,
    decode_decoder_header,
    decode_header,
    encode_decoder_header,
    encode_header,
    varint,
)
from specnir.errors import SpecnirError


@given(st.integers(0, 2**62))
def test_varints_round_trip(value):
    raw = varint(value)
    assert Reader(raw).uv() == value and len(raw) == max(1, -(-value.bit_length() // 7))


@given(st.integers(-(2**40), 2**40))
def test_signed_varints_round_trip(value):
    from specnir.codec.compact import _Writer

    w = _Writer()
    w.sv(value)
    reader = Reader(bytes(w.out))
    assert reader.sv() == value and reader.pos == len(w.out)


def test_a_header_round_trips_and_leaves_out_what_follows_from_the_rest():
    header = _header()
    raw = encode_header(header)
    back = decode_header(raw)
    assert back == {
        **header,
        "tensors": [{k: e[k] for k in ("exponent", "min", "max", "scale_index")} for e in header["tensors"]],
    }
    # the spectrogram parameters at their defaults, and win_length = n_fft, f_max = Nyquist: nothing stored
    assert _params_diff(header["params"]) == {}
    assert _params_diff({**header["params"], "n_fft": 512, "win_length": 512}) == {"n_fft": 512}
    # a config field at the quality's own setting (λ of quality 3 is 2e-3) is not stored either
    quality_lam = {**header, "model_config": {**header["model_config"], "lam": 2e-3}}
    assert len(encode_header(quality_lam)) < len(raw)
    assert decode_header(encode_header(quality_lam))["model_config"]["lam"] == 2e-3


def test_version_3_adds_the_decoder_id():
    header = {**_header(), "tensors": [], "weight_count": 0, "decoder_id": "0123456789abcdef"}
    raw = encode_header(header, version=3)
    assert raw.endswith(bytes.fromhex("0123456789abcdef"))
    assert decode_header(raw, version=3)["decoder_id"] == "0123456789abcdef"
    with pytest.raises(SpecnirError, match="trailing bytes"):
        decode_header(raw, version=2)


def test_a_decoder_header_round_trips():
    header = {
        k: v for k, v in _header().items() if k in ("format", "arch", "mode", "quality", "model_config")
    }
    header |= {"tensors": _header()["tensors"], "weight_count": 99, "fit": {"loss": 0.0123, "sets": 4}}
    assert decode_decoder_header(encode_decoder_header(header)) == header


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\0", "trailing bytes"),
        (lambda raw: bytes([99]) + raw[1:], "unknown mode"),
        (lambda raw: raw[:1] + bytes([7]) + raw[2:], "unknown architecture"),
        (lambda raw: raw[:3] + bytes([3]) + b"{a:" + raw[4 + raw[3] :], "not valid JSON"),
        (lambda raw: raw[:3] + bytes([2]) + b"[]" + raw[4 + raw[3] :], "not a JSON object"),
        (lambda raw: raw[:3] + b"\xff" * 10 + raw[4:], "too large"),
    ],
)
def test_damaged_headers_are_refused(damage, problem):
    with pytest.raises(SpecnirError, match=problem):
        decode_header(damage(encode_header(_header())))


def test_what_cannot_be_stored_is_refused():
    with pytest.raises(SpecnirError, match="unsigned"):
        varint(-1)
    images = [{**_header()["images"][0], "width": 99}]
    with pytest.raises(SpecnirError, match="disagrees with its length"):
        encode_header({**_header(), "images": images})
