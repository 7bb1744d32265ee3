"""The .snir file: compress → decompress round trips, error bounds, bytes, and refusal of bad files."""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPEC_ARGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from specnir import codec as snir
from specnir.cli import main
from specnir.codec import decode
from specnir.codec.decoders import decoder_for
from specnir.codec.encode import compress, eight_bit
from specnir.data import load_image_set
from specnir.errors import SpecnirError
from specnir.spectrogram import SpecParams

FIXTURES = Path(__file__).parent / "fixtures"
# tests/fixtures/v<N>/: files of every mode of each format version (3 tiny sweeps) and the pixels they
# decoded to then. Every later version must decode them to the same pixels.

TINY = SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)


def truth_pixels(inputs) -> list[np.ndarray]:
    data = eight_bit(load_image_set(inputs, params=TINY))
    return [np.rint(im * 255).astype(np.int64) for im in data.images(data.target)]


@pytest.fixture(scope="session")
def lossless(tiny_wavs):
    return compress(tiny_wavs, mode="residual", max_error=0, steps=40, params=TINY, progress=False)


@pytest.fixture(scope="session")
def tiny_siren(tiny_wavs):
    return compress(tiny_wavs, arch="siren", mode="model", quality=2, steps=200, params=TINY, progress=False)


def decode_in_fresh_process(path, outdir) -> list[np.ndarray]:
    """``specnir decompress`` in a new Python process; the 8-bit PNGs it wrote, in input order."""
    argv = ["decompress", str(path), "-o", str(outdir)]
    code = f"import sys; from specnir.cli import main; sys.exit(main({argv!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    names = [im["name"] for im in snir.read(path)[0]["images"]]
    return [np.asarray(Image.open(outdir / f"{n}.png")).astype(np.int64) for n in names]


@pytest.mark.slow
@pytest.mark.parametrize("max_error", [0, 2])
def test_residual_round_trip_is_exact_in_a_fresh_process(tmp_path, tiny_wavs, max_error, lossless):
    result = (
        lossless
        if max_error == 0
        else compress(tiny_wavs, mode="residual", max_error=max_error, steps=40, params=TINY, progress=False)
    )
    path = snir.write(tmp_path / "set.snir", result.blob)
    assert path.stat().st_size == len(result.blob) == result.report["bytes"]
    decoded = decode_in_fresh_process(path, tmp_path / "out")
    truth = truth_pixels(tiny_wavs)
    for enc, dec, t in zip(result.decoded.pixels, decoded, truth, strict=True):
        assert np.array_equal(enc, dec)  # bit-exact: the encoder's reconstruction
        assert np.abs(dec - t).max() <= max_error  # the promised bound
    assert result.report["max_error"] <= max_error
    if max_error:
        assert result.report["max_error"] == max_error  # the bound is used, not wasted
    assert (tmp_path / "out" / "tiny0.wav").is_file()


@pytest.mark.slow
def test_gru_model_mode_round_trip(tmp_path, tiny_wavs):
    result = compress(tiny_wavs, arch="gru", mode="model", quality=1, steps=20, params=TINY, progress=False)
    path = snir.write(tmp_path / "g.snir", result.blob)
    decoded = decode_in_fresh_process(path, tmp_path / "out")
    for enc, dec in zip(result.decoded.pixels, decoded, strict=True):
        assert np.array_equal(enc, dec)
    assert result.report["float_loss"] > 0 and result.report["weights"] > 0


@pytest.mark.slow
def test_model_mode_round_trip_and_quantization(tmp_path, tiny_wavs, tiny_siren):
    path = snir.write(tmp_path / "s.snir", tiny_siren.blob)
    decoded = decode_in_fresh_process(path, tmp_path / "out")
    for enc, dec in zip(tiny_siren.decoded.pixels, decoded, strict=True):
        assert np.array_equal(enc, dec)
    r = tiny_siren.report
    # Quantised weights cost at most 0.1 dB against the float model (MSE ratio 10^0.01) ...
    assert r["quantized_loss"] <= r["float_loss"] * 10 ** (0.1 / 10)
    # ... at 9.6 bits a weight on this 40 dB fit (SIREN's sin(30·x) layers need fine steps).
    assert r["weight_bits"] / r["weights"] < 11
    assert r["psnr"] > 25  # measured 30.5 dB at 200 steps


@pytest.mark.slow
def test_residual_rate_matches_the_model_estimate(lossless):
    """What the range coder writes is what the predictor's own likelihood says it should."""
    _, words = snir.unpack(lossless.blob)
    r = lossless.report
    residual_bits = words.size * 32 - r["weight_bits"]
    model_bits = r["quantized_loss"] * r["pixels"]  # the fitted model's bits per pixel, after quantisation
    assert abs(residual_bits - model_bits) < 0.02 * model_bits + 64


@pytest.mark.slow
def test_cli_compress_info_decompress(tmp_path, tiny_wavs, capsys):
    out = tmp_path / "set.snir"
    args = [
        "compress",
        *tiny_wavs,
        "-o",
        out,
        "--mode",
        "residual",
        "--quality",
        "7",
        "--steps",
        "10",
        "--quiet",
    ]
    assert main([str(a) for a in args + TINY_SPEC_ARGS]) == 0
    text = capsys.readouterr().out
    assert f"{out.stat().st_size:,} bytes" in text and "max error 1 grey levels" in text
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "format version 2" in text and "residual" in text and "tiny0 (16×24)" in text
    assert main(["decompress", str(out), "-o", str(tmp_path / "d"), "--no-audio"]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [f"tiny{k}.png" for k in range(5)]


def test_compress_refuses_bad_options(tmp_path, tiny_wavs, capsys):
    cases = [
        ["--arch", "siren", "--mode", "residual"],
        ["--quality", "9"],
        ["--mode", "model", "--max-error", "1"],
        ["--mode", "residual", "--max-error", "-1"],
    ]
    for extra in cases:
        code = main(["compress", str(tiny_wavs[0]), "-o", str(tmp_path / "x.snir"), *extra, *TINY_SPEC_ARGS])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("specnir: error:") and err.count("\n") == 1, extra
    assert main(["compress", str(tiny_wavs[0]), "-o", str(tmp_path / "x.bin")]) == 2
    assert "must end in .snir" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.snir"))


def pack_v1(header: dict, words: np.ndarray) -> bytes:
    """A version-1 file (JSON header), as the first specnir wrote them."""
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = snir.MAGIC + b"\x01" + struct.pack("<I", len(head)) + head + struct.pack("<I", 4 * words.size)
    body += words.astype("<u4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def _repack(blob: bytes, edit, pack=pack_v1) -> bytes:
    header, words = snir.unpack(blob)
    edit(header)
    return pack(header, words)


def _bad_files(blob: bytes) -> dict[str, tuple[bytes, str]]:
    """Damaged version-1 files."""
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    version = bytearray(blob)
    version[4] = 9
    head_len = struct.unpack_from("<I", blob, 5)[0]

    def wider(h):
        h["images"][0]["width"] += 3

    def taller(h):
        h["height"] = 17

    def bigger_tensor(h):
        h["tensors"][0]["shape"] = [h["tensors"][0]["shape"][0] + 1, *h["tensors"][0]["shape"][1:]]

    def no_arch(h):
        del h["arch"]

    def huge(h):
        h["model_config"]["hidden"] = 10**9

    def bigger_model(h):  # within limits, but not the weights the file holds: refused before allocating
        h["model_config"]["hidden"] = 4000

    return {
        "magic": (b"PNG!" + blob[4:], "wrong magic"),
        "empty": (b"", "wrong magic"),
        "version": (bytes(version), "version 9 not supported"),
        "truncated": (blob[: len(blob) - 7], "truncated"),
        "header cut": (blob[: 9 + head_len // 2], "truncated"),
        "flipped bit": (bytes(flipped), "CRC mismatch"),
        "trailing": (blob + b"\0", "trailing bytes"),
        "not json": (
            (lambda body: body + struct.pack("<I", zlib.crc32(body)))(
                blob[:9] + b"{" * head_len + blob[9 + head_len : -4]
            ),
            "not valid JSON",
        ),
        "wider image": (_repack(blob, wider), "disagrees with its length"),
        "taller image": (_repack(blob, taller), "height disagrees"),
        "tensor shape": (_repack(blob, bigger_tensor), "weight shapes disagree"),
        "no arch": (_repack(blob, no_arch), "malformed"),
        "huge config": (_repack(blob, huge), "out of range"),
        "bigger model": (_repack(blob, bigger_model), "weight shapes disagree"),
    }


@pytest.fixture(scope="session")
def v1_lossless() -> bytes:
    return (FIXTURES / "v1" / "gru-residual-k0.snir").read_bytes()


def test_bad_files_give_one_line_and_exit_2(tmp_path, v1_lossless, capsys):
    for name, (blob, problem) in _bad_files(v1_lossless).items():
        path = tmp_path / f"{name.replace(' ', '_')}.snir"
        path.write_bytes(blob)
        code = main(["decompress", str(path), "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.startswith(f"specnir: error: {path}: ") and err.count("\n") == 1, (name, err)
        assert problem in err, (name, err)
        code = main(["info", str(path)])  # info reads the same header and refuses it the same way
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"specnir: error: {path}: ") and err.count("\n") == 1, (name, err)
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert main(["decompress", str(tmp_path / "missing.snir"), "-o", str(tmp_path / "out")]) == 2


def fuzz_one(blob: bytes, data) -> None:
    """Random bytes and mutated valid files: the decoder either decodes or raises SpecnirError."""
    kind = data.draw(st.sampled_from(["random", "mutate", "resign", "splice"]))
    if kind == "random":
        candidate = data.draw(st.binary(max_size=400))
        if data.draw(st.booleans()):
            candidate = snir.MAGIC + bytes([snir.VERSION]) + candidate
    elif kind == "splice":
        cut = data.draw(st.integers(0, len(blob)))
        candidate = blob[:cut] + data.draw(st.binary(max_size=50))
    else:
        mutable = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            mutable[i] = data.draw(st.integers(0, 255))
        candidate = bytes(mutable)
        if kind == "resign":  # a valid CRC over damaged content reaches the header and payload checks
            candidate = candidate[:-4] + struct.pack("<I", zlib.crc32(candidate[:-4]))
    try:
        decoded = decode(candidate, source="fuzz.snir")
    except SpecnirError as exc:
        assert str(exc).startswith("fuzz.snir: ")
    else:
        assert all(p.dtype == np.uint8 for p in decoded.pixels)


FUZZ = {"deadline": None, "derandomize": True, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@settings(max_examples=60, **FUZZ)
@given(data=st.data())
def test_fuzzed_files_only_raise_format_errors(v1_lossless, data):
    fuzz_one(v1_lossless, data)


@pytest.mark.slow
@settings(max_examples=2000, **FUZZ)
@given(data=st.data())
def test_fuzzed_files_only_raise_format_errors_many(v1_lossless, data):
    fuzz_one(v1_lossless, data)


@pytest.mark.parametrize(
    "version, stems",
    [
        ("v1", {"gru-residual-k0", "gru-residual-k2", "gru-model", "siren-model"}),
        ("v2", {"gru-residual-k2", "gru-model", "siren-model", "latent-q3", "latent-q6"}),
        ("v3", {"latent-q3-shared", "shipped-q4", "shipped-q6"}),  # decoder.snird beside it; specnir's own
    ],
)
def test_older_versions_still_decode_to_their_pixels(version, stems):
    expected = np.load(FIXTURES / version / "pixels.npz")
    files = sorted((FIXTURES / version).glob("*.snir"))
    assert {p.stem for p in files} == stems
    for path in files:
        blob = path.read_bytes()
        assert blob[4] == int(version[1:])
        decoded = decode(blob, source=str(path), decoder=decoder_for(path, blob))
        assert decoded.names == sorted(k.split("/")[1] for k in expected if k.startswith(f"{path.stem}/"))
        for name, pixels in zip(decoded.names, decoded.pixels, strict=True):
            np.testing.assert_array_equal(pixels, expected[f"{path.stem}/{name}"], err_msg=str(path))


def test_version_1_file_decodes_bit_exactly_in_a_fresh_process(tmp_path):
    path = FIXTURES / "v1" / "gru-residual-k2.snir"
    expected = np.load(FIXTURES / "v1" / "pixels.npz")
    for name, pixels in zip(
        ["tiny0", "tiny1", "tiny2"], decode_in_fresh_process(path, tmp_path), strict=True
    ):
        np.testing.assert_array_equal(pixels, expected[f"gru-residual-k2/{name}"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "arch, mode", [("gru", "residual"), ("gru", "model"), ("siren", "model"), ("latent", "latent")]
)
def test_cuda_fitted_files_decode_exactly_in_a_fresh_cpu_process(tmp_path, tiny_wavs, arch, mode):
    result = compress(
        tiny_wavs, arch=arch, mode=mode, quality=2, steps=60, device="cuda", params=TINY, progress=False
    )
    path = snir.write(tmp_path / "cuda.snir", result.blob)
    for enc, dec in zip(result.decoded.pixels, decode_in_fresh_process(path, tmp_path / "out"), strict=True):
        assert np.array_equal(enc, dec)
