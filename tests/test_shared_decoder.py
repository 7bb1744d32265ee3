"""A decoder shared by a corpus: files that refer to it, finding it, refusing the wrong one, batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_batch import FAST, TINY, check_folder, fingerprint, fingerprints_in_fresh_process

from specnir.cli import main
from specnir.cli.tables import compress_summary
from specnir.codec import decode
from specnir.codec.container import pack_decoder, unpack_decoder
from specnir.codec.decoder_fit import fit_decoder
from specnir.codec.decoders import DECODER_FILE, SharedDecoder, find_decoder, load_decoder
from specnir.codec.encode import Settings, compress_sets
from specnir.codec.networks import DecoderNetworks
from specnir.codec.report import rd_cost
from specnir.corpus import MANIFEST, find_sets
from specnir.data import load_image_set
from specnir.errors import SpecnirError

V3 = Path(__file__).parent / "fixtures" / "v3"


def another_decoder() -> bytes:
    """A valid decoder that is not the fixture's (one tensor on another grid)."""
    header, words = unpack_decoder((V3 / DECODER_FILE).read_bytes())
    header["tensors"][0]["exponent"] += 1
    return pack_decoder(header, words)


def test_a_file_alone_names_the_decoder_it_needs(tmp_path, capsys):
    alone = tmp_path / "set.snir"
    shutil.copy(V3 / "latent-q3-shared.snir", alone)
    wanted = load_decoder(V3 / DECODER_FILE).id
    assert main(["decompress", str(alone), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and str(alone) in err and wanted in err and "--decoder" in err
    )  # (the CLI says how to give it)
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(SpecnirError, match=f"shared decoder {wanted}, which was not given"):
        decode(alone.read_bytes(), source=str(alone))
    # given, it decodes to the fixture's pixels
    assert (
        main(["decompress", str(alone), "-o", str(tmp_path / "out"), "--decoder", str(V3 / DECODER_FILE)])
        == 0
    )
    expected = np.load(V3 / "pixels.npz")
    for name in ("tiny0", "tiny1", "tiny2"):
        png = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        np.testing.assert_array_equal(png, expected[f"latent-q3-shared/{name}"])


def test_the_wrong_decoder_is_refused(tmp_path, capsys):
    other = tmp_path / DECODER_FILE
    other.write_bytes(another_decoder())
    blob = (V3 / "latent-q3-shared.snir").read_bytes()
    with pytest.raises(SpecnirError, match="needs the shared decoder .*, not "):
        decode(blob, source="x.snir", decoder=load_decoder(other))
    shutil.copy(V3 / "latent-q3-shared.snir", tmp_path / "set.snir")  # beside a decoder with another id
    with pytest.raises(SpecnirError, match="no decoder.snird with that id"):
        find_decoder(tmp_path / "set.snir", load_decoder(V3 / DECODER_FILE).id)
    (tmp_path / "sub").mkdir()  # a folder above holds the right one: it is found
    shutil.copy(V3 / "latent-q3-shared.snir", tmp_path / "sub" / "set.snir")
    shutil.copy(V3 / DECODER_FILE, tmp_path / "sub" / DECODER_FILE)
    assert (
        main(["decompress", str(tmp_path / "sub" / "set.snir"), "-o", str(tmp_path / "o"), "--no-audio"]) == 0
    )
    (tmp_path / "damaged.snird").write_bytes(b"SNRD\x01" + bytes(20))
    assert (
        main(
            [
                "decompress",
                str(tmp_path / "set.snir"),
                "-o",
                str(tmp_path / "o2"),
                "--decoder",
                str(tmp_path / "damaged.snird"),
            ]
        )
        == 2
    )
    assert "damaged.snird: CRC mismatch" in capsys.readouterr().err


def test_info_on_a_decoder_and_on_a_file_that_uses_one(capsys):
    decoder = load_decoder(V3 / DECODER_FILE)
    assert main(["info", str(V3 / DECODER_FILE)]) == 0
    out = capsys.readouterr().out
    assert "specnir shared decoder, format version 1" in out and decoder.id in out and "latent" in out
    assert main(["info", str(V3 / "latent-q3-shared.snir")]) == 0
    out = capsys.readouterr().out
    assert (
        "format version 3" in out and f"in the shared decoder {decoder.id}" in out and "tiny0 (16×24)" in out
    )


def test_compress_with_a_decoder_refuses_what_it_cannot_code(tmp_path, tiny_wavs, capsys, monkeypatch):
    monkeypatch.setattr("specnir.codec.networks.OWN_NETWORKS_ABOVE", float("inf"))  # (5 steps: no fallback)
    decoder = str(V3 / DECODER_FILE)
    args = ["compress", *map(str, tiny_wavs[:2]), "-o", str(tmp_path / "x.snir"), "--decoder", decoder]
    tiny = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--n-mels", "16", "--quiet"]
    for extra, problem in [
        (
            ["--quality", "7"],
            "mode residual cannot use a shared decoder",
        ),  # quality 7 codes residuals: no latent networks
        (["--quality", "6"], "other networks (first, grids)"),  # another latent network
    ]:
        assert main([*args, *extra, *tiny, "--steps", "5"]) == 2
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.snir").exists()
    # λ alone may differ (quality 2: the same networks): the file names the decoder and decodes with it
    assert main([*args, "--quality", "2", *tiny, "--steps", "5"]) == 0
    blob = (tmp_path / "x.snir").read_bytes()
    assert blob[4] == 3 and decode(blob, decoder=SharedDecoder.from_bytes(Path(decoder).read_bytes())).names


def test_a_set_the_decoder_serves_badly_is_also_fitted_with_its_own_networks(
    tiny_wavs, tmp_path, monkeypatch
):
    """Above the threshold a set is fitted both ways and the file with the lower MSE + λ·bpp (its
    weights' bits included) is kept; below it, only the shared decoder's (thresholds forced here)."""
    decoder = load_decoder(V3 / DECODER_FILE)
    assert decoder.reference_loss(3) and decoder.header["fit"]["sets"] == 2
    data = [load_image_set(tiny_wavs[:2], params=TINY)]
    settings = Settings(quality=3, steps=20)
    monkeypatch.setattr("specnir.codec.networks.OWN_NETWORKS_ABOVE", float("inf"))
    shared = compress_sets(data, settings, progress=False, networks=DecoderNetworks(decoder))[0]
    assert shared.report["decoder_id"] == decoder.id and not shared.report["both_fitted"]
    ratio = shared.report["quantized_loss"] / decoder.reference_loss(3)
    assert shared.report["decoder_loss_ratio"] == pytest.approx(ratio) and ratio > 0
    monkeypatch.setattr("specnir.codec.networks.OWN_NETWORKS_ABOVE", 0.0)
    both = compress_sets(data, settings, progress=False, networks=DecoderNetworks(decoder))[0]
    own = compress_sets(data, settings, progress=False)[0]
    kept = min((shared, own), key=rd_cost)
    assert both.blob == kept.blob and both.blob[4] == (3 if kept is shared else 2)
    assert both.report["both_fitted"] and both.report["decoder_loss_ratio"] == pytest.approx(ratio)
    summary = compress_summary(Path("x.snir"), both.report, header=both.decoded.header, n_images=2)
    assert f"loss was {ratio:.2f} ×" in summary
    assert f"and {'its own' if kept is own else 'the decoder' + chr(39) + 's'} kept" in summary
    assert ("in the shared decoder" in summary) == (kept is shared)
    monkeypatch.setattr("specnir.codec.networks.rd_cost", lambda r: -r.report["weight_bits"])
    assert (
        compress_sets(data, settings, progress=False, networks=DecoderNetworks(decoder))[0].blob == own.blob
    )
    assert decode(own.blob).names == ["tiny0", "tiny1"]  # its own networks: no decoder needed


@pytest.mark.slow
def test_a_batch_keeps_its_decoder_refits_it_only_for_other_settings_and_refuses_losing_it(
    corpus,
    tmp_path,
    capsys,
):
    out = tmp_path / "out"
    args = ["batch", str(corpus / "a"), "-o", str(out), "--set-size", "3", *FAST]
    assert main(args) == 0
    first = load_decoder(out / DECODER_FILE)
    stamp = (out / DECODER_FILE).stat().st_mtime_ns
    (out / DECODER_FILE).rename(tmp_path / "kept.snird")  # the finished sets' networks are gone
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "decoder.snird is missing" in err and first.id in err and err.count("\n") == 1
    (tmp_path / "kept.snird").rename(out / DECODER_FILE)
    for path in [out / MANIFEST, *out.rglob("*.snir")]:  # killed after the decoder, before any set:
        path.unlink()
    assert main(args) == 0  # the decoder is used again, not fitted again
    assert (out / DECODER_FILE).stat().st_mtime_ns == stamp
    assert {r["decoder"] for r in check_folder(out, 2).values()} == {first.id}
    for path in [out / MANIFEST, *out.rglob("*.snir")]:
        path.unlink()
    assert main([*args, "--quality", "3"]) == 0  # other settings: another decoder
    assert load_decoder(out / DECODER_FILE).id != first.id
    rows = check_folder(out, 2)
    assert {r["decoder"] for r in rows.values()} == {load_decoder(out / DECODER_FILE).id}
    assert main([*args, "--quality", "3", "--decoder-sets", "0"]) == 2  # its sets use the decoder
    assert "other settings (decoder_sets)" in capsys.readouterr().err
    assert main([*args, "--mode", "residual", "--decoder-sets", "2", "-o", str(tmp_path / "r")]) == 2
    assert "mode residual cannot use a shared decoder" in capsys.readouterr().err


@pytest.mark.slow
def test_a_shared_decoder_costs_fewer_bytes_than_every_set_its_own(corpus, tmp_path):
    """Four sets of three real speech pieces at 150 steps: the files plus the decoder are smaller than four
    files with their own networks, at a mean PSNR within 1 dB."""
    results = {}
    for name, k in (("own", "0"), ("shared", "2")):
        out = tmp_path / name
        args = ["batch", str(corpus / "b"), "-o", str(out), "--set-size", "3", "--decoder-sets", k]
        assert main([*args, *FAST[:-3], "--steps", "150", "--quiet"]) == 0
        rows = check_folder(out, 4)
        decoder = (out / DECODER_FILE).stat().st_size if k != "0" else 0
        results[name] = (
            sum(r["bytes"] for r in rows.values()) + decoder,
            np.mean([r["psnr"] for r in rows.values()]),
        )
        assert {r["weight_bytes"] == 0 for r in rows.values()} == {k != "0"}
    assert results["shared"][0] < 0.9 * results["own"][0], results
    assert abs(results["shared"][1] - results["own"][1]) < 1.0, results


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_decoder_and_its_sets_fitted_on_cuda_decode_alike_in_a_fresh_cpu_process(corpus, tmp_path):
    sets = [load_image_set(list(s.clips), params=TINY) for s in find_sets([corpus], set_size=3)]
    settings = Settings(quality=2, steps=60)
    decoder = fit_decoder(sets[:2], settings, served=len(sets), device="cuda", progress=False)
    (tmp_path / DECODER_FILE).write_bytes(decoder.blob)
    results = compress_sets(sets, settings, device="cuda", progress=False, networks=DecoderNetworks(decoder))
    paths = []
    for k, result in enumerate(results):
        paths.append(tmp_path / f"{k}.snir")
        paths[-1].write_bytes(result.blob)
    assert fingerprints_in_fresh_process(paths) == [fingerprint(p) for p in paths]
