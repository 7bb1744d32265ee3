"""``specnir bench rd``: BD-rate arithmetic, listening scores and the written report."""

import json
import math

import numpy as np
import pytest
from conftest import ROOT, TINY_SPEC_ARGS, make_chirp

from specnir.cli import main


def test_bd_rate_of_known_curves():
    from specnir.bench.bdrate import bd_rate

    anchor = [(r, 30 + 6 * math.log2(r)) for r in (0.5, 1, 2, 4)]
    half = [(r / 2, p) for r, p in anchor]
    assert bd_rate(anchor, anchor, 30, 45) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(anchor, half, 30, 45) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(anchor, [(r * 1.1, p) for r, p in anchor], 30, 45) == pytest.approx(10.0, abs=1e-6)
    assert bd_rate(anchor, [(1, 60), (2, 70)], 30, 45) is None  # no overlap


@pytest.mark.slow
def test_bench_rd_writes_table_json_and_plot(tmp_path, tiny_wavs, capsys):
    args = [
        "bench",
        "rd",
        *tiny_wavs,
        "-o",
        tmp_path,
        "--methods",
        "gru-residual:8,6",
        "latent:2",
        "--steps",
        "5",
        "--quiet",
    ]
    assert main([str(a) for a in args + TINY_SPEC_ARGS]) == 0
    out = capsys.readouterr().out
    assert "BD-rate against" in out and "jpegxl-lossless" in out
    report = json.loads((tmp_path / "rd.json").read_text())
    methods = {r["method"] for r in report["rows"]}
    assert {"png", "jpegls", "jpegxl", "avif", "webp", "jpeg", "specnir-gru-residual"} <= methods
    lossless_rows = [r for r in report["rows"] if r["method"] in ("png", "jpegls", "jpegxl-lossless")]
    assert all(r["max_error"] == 0 for r in lossless_rows)
    ours = [r for r in report["rows"] if r["method"] == "specnir-gru-residual"]
    assert [r["max_error"] for r in ours] == [0, 2]
    latent = [r for r in report["rows"] if r["method"] == "specnir-latent"]
    assert len(latent) == 1 and latent[0]["header_bytes"] < latent[0]["bytes"]
    for row in report["rows"]:  # without containers: never more than the file, AVIF and WebP less
        if "bpp" in row:
            assert 0 < row["coded_bpp"] <= row["bpp"]
            assert row["coded_bpp"] < row["bpp"] or row["method"] not in ("avif", "webp", "specnir-latent")
    assert len(report["bd_all"]) == 4 and {b["rate"] for b in report["bd_all"]} == {"bpp", "coded_bpp"}
    assert (tmp_path / "rd.csv").read_text().startswith("method,setting,bytes,bpp,coded_bpp,psnr")
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"


def test_speech_scores_rank_clean_above_noisy():
    from specnir.bench.speech import speech_scores as _speech_scores

    clean = make_chirp(2.0, 16000, 200, 3000) + 0.3 * make_chirp(2.0, 16000, 400, 6000)
    noisy = clean + 0.2 * np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    same, worse = _speech_scores(clean, clean, 16000), _speech_scores(clean, noisy, 16000)
    assert same["stoi"] > 0.99 and same["pesq_wb"] > 4.0
    assert worse["stoi"] < same["stoi"] and worse["pesq_wb"] < 2.5


@pytest.mark.slow
def test_bench_rd_audio_has_opus_rows_and_a_listening_page(tmp_path, tiny_wavs, capsys):
    pytest.importorskip("av")
    args = ["bench", "rd", *tiny_wavs, "-o", tmp_path, "--methods", "latent:1", "--steps", "5", "--quiet"]
    assert main([str(a) for a in [*args, "--audio", *TINY_SPEC_ARGS]]) == 0
    report = json.loads((tmp_path / "rd.json").read_text())
    audio = report["audio"]
    assert [r["method"] for r in audio[:2]] == ["uncompressed", "specnir-latent"]
    opus = [r for r in audio if r["method"] == "opus"]
    assert [r["setting"] for r in opus] == [f"bitrate={k}" for k in (6, 8, 12, 16, 24)]
    assert all(r["packet_kbps"] < r["kbps"] for r in opus)  # the Ogg pages cost bytes of their own
    assert [r["bytes"] for r in opus] == sorted(r["bytes"] for r in opus)
    assert not any(k.startswith("_") for r in audio for k in r)
    page = tmp_path / "listen.html"
    assert str(page) in report["files"] and page.read_text().count("<h2>") == len(tiny_wavs)
    assert (tmp_path / "pesq.png").read_bytes()[:4] == b"\x89PNG"
    assert "opus" in capsys.readouterr().out


@pytest.mark.slow
def test_a_latent_method_with_own_networks_beside_the_default(tmp_path):
    """``latent`` is compress's default (the shipped decoder for speech of the default analysis at
    quality 1–4: a file of latents only); ``latent-own`` codes the same set with its own networks."""
    from specnir.bench.codecs import parse_method
    from specnir.bench.rd import run_specnir
    from specnir.spectrogram import SpecParams

    assert parse_method("latent-own:1,4", [2]) == ("latent-own", [1, 4])
    clip = sorted((ROOT / "audio").glob("*.wav"))[0]
    rows = [
        *run_specnir([clip], ["latent:1"], [], steps=None, params=SpecParams(), progress=False),
        *run_specnir([clip], ["latent-own:1"], [], steps=3, params=SpecParams(), progress=False),
    ]
    assert [r["method"] for r in rows] == ["specnir-latent", "specnir-latent-own"]
    assert rows[0]["weight_bpp"] == 0 < rows[1]["weight_bpp"]  # the shipped decoder's are in no file
    assert rows[0]["_decoded"].header["decoder_id"] and "decoder_id" not in rows[1]["_decoded"].header
