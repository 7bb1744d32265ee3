"""Rate control: ``--kbps`` and ``--bytes`` land within ±5 % by a search over λ, or are refused."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from test_batch import TINY

import specnir.codec.rate as rate
from specnir.cli import main
from specnir.codec.decoders import load_decoder
from specnir.codec.networks import DecoderNetworks
from specnir.codec.rate import TOLERANCE, RateTarget, compress_at_rate, seconds_of
from specnir.corpus import read_manifest
from specnir.data import load_image_set
from specnir.errors import SpecnirError

V3_DECODER = "tests/fixtures/v3/decoder.snird"


def _fake_fits(monkeypatch, bytes_at, least=100):
    """Replace the fits by ``bytes_at(λ, quality)`` (and the empty file by ``least`` bytes); returns the
    (λ, quality) of every fit asked for."""
    asked = []

    def fake(data, settings, **_):
        asked.append((settings.lam, settings.quality))
        size = int(round(bytes_at(settings.lam, settings.quality)))
        return SimpleNamespace(
            report={"bytes": size}, decoded=SimpleNamespace(header={"quality": settings.quality})
        )

    monkeypatch.setattr(rate, "compress_data", fake)
    monkeypatch.setattr(rate, "empty_size", lambda *a, **k: least)
    return asked


@pytest.mark.parametrize(
    ("exponent", "at_1e3", "wiggle"),
    [(-0.35, 0.5, 0.0), (-0.8, 0.1, 0.0), (-0.15, 0.6, 0.0), (-0.35, 0.5, 0.03)],
)
def test_the_search_lands_within_tolerance_in_few_fits(tiny_wavs, monkeypatch, exponent, at_1e3, wiggle):
    """Sizes that fall with λ as a power law (``at_1e3`` bpp at λ 1e-3), steep or flat, far from the rate
    model, or with ±3 % of noise: a few fits, with the networks of qualities 1-4 below FULL_GRID_BPP and of
    5-8 above."""
    data = load_image_set(tiny_wavs, params=TINY)
    pixels = sum(data.widths) * data.target.shape[1]

    def size(lam, quality):
        noise = 1 + wiggle * math.sin(1e4 * lam)  # (deterministic, not monotone)
        return at_1e3 * pixels / 8 * (lam / 1e-3) ** exponent * (1.0 if quality <= 4 else 1.5) * noise

    asked = _fake_fits(monkeypatch, size, least=5)
    families = set()
    ran = 0
    for bpp in (0.2, 0.3, 1.0, 2.0):
        asked.clear()
        wanted = bpp * pixels / 8
        quality = 5 if bpp >= rate.FULL_GRID_BPP else 1
        if not size(rate.LAM_RANGE[1], quality) < wanted < size(rate.LAM_RANGE[0], quality):
            continue  # (a flat curve does not span every target)
        ran += 1
        result = compress_at_rate(tiny_wavs, RateTarget(size=round(wanted)), params=TINY, progress=False)
        assert abs(result.report["bytes"] / wanted - 1) <= TOLERANCE
        assert len(asked) <= 5 and result.report["rate_control"]["fits"][-1]["lambda"] == asked[-1][0]
        full = {q > 4 for _, q in asked}
        assert full == {bpp >= rate.FULL_GRID_BPP}
        families |= full
    assert ran >= 1 and (families == {False, True} or exponent > -0.2)


def test_where_the_coarse_networks_cannot_reach_the_target_the_full_grids_do(tiny_wavs, monkeypatch):
    """Qualities 1-4's networks that stop short of a target below FULL_GRID_BPP: the search moves on."""
    pixels = sum(load_image_set(tiny_wavs, params=TINY).widths) * 16
    wanted = round(0.3 * pixels / 8)
    top = wanted * 0.8  # all that qualities 1-4 spend

    def size(lam, quality):
        return (
            min(wanted * (lam / 1e-3) ** -0.35, top) if quality <= 4 else 1.2 * wanted * (lam / 2e-3) ** -0.35
        )

    asked = _fake_fits(monkeypatch, size, least=5)
    result = compress_at_rate(tiny_wavs, RateTarget(size=wanted), params=TINY, progress=False)
    assert abs(result.report["bytes"] / wanted - 1) <= TOLERANCE and asked[-1][1] > 4 and asked[0][1] <= 4
    assert len(asked) <= rate.MAX_FITS


def test_targets_that_cannot_be_met_are_refused(tiny_wavs, monkeypatch):
    asked = _fake_fits(monkeypatch, lambda lam, q: 200 * lam**-0.35, least=400)
    with pytest.raises(SpecnirError, match=r"below what an empty file of these clips costs \(400 bytes"):
        compress_at_rate(tiny_wavs, RateTarget(size=300), params=TINY, progress=False)
    assert not asked  # refused before any fit
    pixels = sum(load_image_set(tiny_wavs, params=TINY).widths) * 16
    with pytest.raises(SpecnirError, match="at least the 8-bit pixels uncompressed"):
        compress_at_rate(tiny_wavs, RateTarget(size=pixels), params=TINY, progress=False)
    _fake_fits(monkeypatch, lambda lam, q: min(200 * lam**-0.35, 900))  # the mode spends 900 bytes at most
    with pytest.raises(SpecnirError, match="above what the lossy mode spends on these clips"):
        compress_at_rate(tiny_wavs, RateTarget(size=1000), params=TINY, progress=False)
    _fake_fits(monkeypatch, lambda lam, q: 300 if lam > 1e-3 else 3000)  # a jump over the target
    with pytest.raises(SpecnirError, match=r"not reached within ±5% in \d fits \(sizes 300, .*3,000"):
        compress_at_rate(tiny_wavs, RateTarget(size=1000), params=TINY, progress=False)
    with pytest.raises(SpecnirError, match="above 0, not 0.0"):
        RateTarget(kbps=0.0)
    with pytest.raises(SpecnirError, match="corpus's decoder"):
        compress_at_rate(tiny_wavs, RateTarget(size=800), params=TINY, decoder=load_decoder(V3_DECODER))


def test_a_decoder_trained_at_each_quality_has_a_reference_at_every_lam_between():
    decoder = load_decoder("specnir/decoders/speech1-q1-4.snird")
    networks = DecoderNetworks(decoder)
    lams = {q: 8e-3 / 2 ** (q - 1) for q in (1, 2, 3, 4)}
    for q, lam in lams.items():
        assert networks._reference(q, lam) == decoder.reference_loss(q)
    between = networks._reference(2, math.sqrt(lams[2] * lams[3]))
    assert min(decoder.reference_loss(2), decoder.reference_loss(3)) < between
    assert between < max(decoder.reference_loss(2), decoder.reference_loss(3))
    assert networks._reference(4, lams[4] / 2) is not None  # a little past the ends: extrapolated
    assert networks._reference(4, lams[4] / 100) is None and networks._reference(1, 1.0) is None


def test_kbps_lands_within_tolerance_on_a_tiny_set_of_speech(corpus, tmp_path, capsys):
    """End to end on two 0.4-s pieces of speech against the shipped decoder, few steps: the file written
    is the one found, within ±5 % of the bitrate asked."""
    clips = [str(c) for c in sorted((corpus / "a").glob("*.wav"))[:2]]
    out = tmp_path / "x.snir"
    assert main(["compress", *clips, "-o", str(out), "--kbps", "4", "--steps", "80", "--quiet"]) == 0
    printed = capsys.readouterr().out
    data = load_image_set(clips, params=rate.SpecParams())
    kbps = out.stat().st_size * 8 / seconds_of(data) / 1000
    assert abs(kbps / 4 - 1) <= TOLERANCE and "for the 4 kbps asked" in printed and "fits in" in printed
    for bad in (["--kbps", "0.05"], ["--kbps", "6", "--lambda", "1e-3"], ["--kbps", "6", "--bytes", "900"]):
        try:
            code = main(["compress", *clips, "-o", str(tmp_path / "y.snir"), *bad, "--steps", "5", "--quiet"])
        except SystemExit as exc:  # (argparse: two targets at once)
            code = exc.code
        err = capsys.readouterr().err.strip()
        assert code == 2 and not (tmp_path / "y.snir").exists()
        assert err.startswith("usage:") or (err.count("\n") == 0 and err.startswith("specnir: error:"))


@pytest.mark.slow
def test_a_batch_codes_each_set_at_the_rate_asked_and_resumes(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "batch",
        str(corpus / "a"),
        "-o",
        str(out),
        "--set-size",
        "3",
        "--kbps",
        "6",
        "--steps",
        "30",
        "--quiet",
    ]
    assert main([*args, "--decoder-sets", "2"]) == 2  # a corpus decoder is fitted at one λ
    assert "no decoder sets" in capsys.readouterr().err and not (out / "manifest.jsonl").exists()
    assert main(args) == 0
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 2 and all(
        r["status"] == "ok" and r["settings"]["rate"] == "6 kbps" for r in rows.values()
    )
    for row in rows.values():
        data = load_image_set(row["clips"], params=rate.SpecParams())
        kbps = (out / row["file"]).stat().st_size * 8 / seconds_of(data) / 1000
        assert abs(kbps / 6 - 1) <= TOLERANCE and row["decoder"]  # each against a decoder specnir ships
    capsys.readouterr()
    assert main(args) == 0 and "2 before this run, 0 now" in capsys.readouterr().out
