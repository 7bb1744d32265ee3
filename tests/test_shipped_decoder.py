"""The decoders specnir ships: pinned bytes, found by analysis and quality, the default, decoding alone."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import make_chirp

from specnir.cli import main
from specnir.codec import decode
from specnir.codec.container import pack, unpack
from specnir.codec.decoder_fit import fit_decoder
from specnir.codec.decoders import (
    DECODER_FILE,
    SHIPPED_FOLDER,
    load_decoder,
    shipped_decoder,
    shipped_decoders,
    shipped_with_id,
)
from specnir.codec.encode import Settings
from specnir.corpus import MANIFEST, read_manifest
from specnir.data import load_image_set
from specnir.errors import SpecnirError
from specnir.spectrogram import SpecParams

V3 = Path(__file__).parent / "fixtures" / "v3"
# The decoders' bytes: a new decoder is a new file with a new id (files name it), never new bytes here.
PINNED = {
    "speech1-q1-4.snird": "574626f4f27e4361defcdf11c45a01902e33a17c847ecac90ac5f62f8098c4de",
    "speech1-q5-8.snird": "40f097cd9ef04ce9ed1cf9ec9b7242397a4a695c3742af02bcfe7b4e3e8fe7af",
}


def test_the_shipped_decoders_are_the_pinned_bytes():
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED_FOLDER.glob("*.snird")}
    assert found == PINNED
    assert (SHIPPED_FOLDER / "README.md").is_file()  # how they were made, their licence and attribution
    assert sum(p.stat().st_size for p in SHIPPED_FOLDER.glob("*.snird")) < 300_000


def test_a_shipped_decoder_is_found_by_analysis_and_quality():
    default = SpecParams().to_dict()
    served = {q: shipped_decoder(default, q) for q in range(1, 9)}
    for decoder in shipped_decoders():
        assert shipped_with_id(decoder.id) is decoder
        for q in decoder.header["fit"]["qualities"]:
            assert served[q] is not None and q in served[q].header["fit"]["qualities"]
    assert served[4] is not None
    assert shipped_decoder({**default, "n_mels": 64}, 4) is None  # another analysis: none


FINGERPRINT = (
    "import hashlib, sys, torch\n"
    "torch.set_num_threads(int(sys.argv[1]))\n"
    "from specnir.codec import decode\n"
    "d = decode(open(sys.argv[2], 'rb').read())\n"
    "print(hashlib.sha256(b''.join(x.tobytes() for x in d.pixels)).hexdigest())\n"
)


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "image"), [("shipped-q4", "chirp"), ("shipped-q6", "Front_Center")])
def test_a_file_coded_against_a_shipped_decoder_decodes_alone_in_a_fresh_process(tmp_path, fixture, image):
    """The fixtures hold latents only and name a shipped decoder (qualities 1-4, 5-8): their bytes alone
    decode to the same pixels with one and two torch threads, in a process that was given no decoder."""
    alone = tmp_path / "alone.snir"
    shutil.copy(V3 / f"{fixture}.snir", alone)
    expected = np.load(V3 / "pixels.npz")
    pixels = decode(alone.read_bytes()).pixels
    np.testing.assert_array_equal(pixels[0], expected[f"{fixture}/{image}"])
    assert shipped_with_id(unpack(alone.read_bytes())[0]["decoder_id"]) is not None
    prints = [
        subprocess.run(
            [sys.executable, "-c", FINGERPRINT, str(threads), str(alone)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for threads in (1, 2)
    ]
    assert prints[0] == prints[1] == hashlib.sha256(b"".join(p.tobytes() for p in pixels)).hexdigest()


def test_a_file_naming_a_decoder_specnir_does_not_have_is_refused(tmp_path, capsys):
    header, words = unpack((V3 / "shipped-q4.snir").read_bytes())
    header["decoder_id"] = "00" * 8
    bad = tmp_path / "unknown.snir"
    bad.write_bytes(pack(header, words))
    with pytest.raises(SpecnirError, match="shared decoder 0000000000000000, which was not given and is not"):
        decode(bad.read_bytes(), source=str(bad))
    assert main(["decompress", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "0000000000000000" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compress_codes_speech_against_the_shipped_decoder_by_default(corpus, tmp_path, capsys):
    clips = sorted((corpus / "a").glob("*.wav"))[:2]  # two 0.4-s pieces of speech
    out = tmp_path / "set.snir"
    assert main(["compress", *map(str, clips), "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    blob = out.read_bytes()
    wanted = shipped_decoder(SpecParams().to_dict(), 4)
    assert blob[4] == 3 and unpack(blob)[0]["decoder_id"] == wanted.id
    assert f"specnir's own decoder {wanted.id}" in printed and "weights in" in printed
    assert decode(blob).names == [c.stem for c in clips]
    # a λ far from the decoder's references: no ratio to go by, so coded both ways and the better kept
    assert (
        main(["compress", *map(str, clips), "-o", str(out), "--quiet", "--lambda", "0.5", "--steps", "20"])
        == 0
    )
    assert "no reference loss of the decoder's at this λ" in capsys.readouterr().out
    # a sweep is no speech: the decoder serves it far worse, and its own networks are kept
    wav = tmp_path / "chirp.wav"
    sf.write(wav, make_chirp(0.5), 16000, subtype="PCM_16")
    assert main(["compress", str(wav), "-o", str(out), "--steps", "20", "--quiet"]) == 0
    assert out.read_bytes()[4] == 2 and "its own kept" in capsys.readouterr().out
    # --decoder none: the set's own networks, in its file
    assert main(["compress", str(wav), "-o", str(out), "--steps", "20", "--quiet", "--decoder", "none"]) == 0
    assert out.read_bytes()[4] == 2 and "bytes (" in capsys.readouterr().out
    # a mode without shared networks ignores the shipped decoder
    assert main(["compress", str(wav), "-o", str(out), "--steps", "5", "--quiet", "--mode", "residual"]) == 0
    assert out.read_bytes()[4] == 2


def test_info_says_a_file_uses_a_decoder_specnir_ships(capsys):
    assert main(["info", str(V3 / "shipped-q4.snir")]) == 0
    out = capsys.readouterr().out
    assert "format version 3" in out and f"in specnir's own decoder {shipped_decoders()[0].id}" in out


@pytest.mark.slow
def test_a_corpus_decoder_starts_from_the_shipped_one(corpus, tmp_path):
    """``specnir batch``'s decoder of a corpus of the default analysis starts from specnir's own: its fit
    record names it, and after a few steps its networks are still near those weights."""
    shipped = shipped_decoder(SpecParams().to_dict(), 4)
    out = tmp_path / "batch"
    args = ["batch", str(corpus / "a"), "-o", str(out), "--set-size", "2", "--decoder-sets", "2"]
    assert main([*args, "--steps", "3", "--quiet"]) == 0
    started = load_decoder(out / DECODER_FILE)
    assert started.header["fit"]["start"] == shipped.id
    assert {row["decoder"] for row in read_manifest(out / MANIFEST).values()} <= {started.id, None}
    sets = [
        load_image_set(sorted((corpus / "a").glob("*.wav"))[k : k + 2], params=SpecParams()) for k in (0, 2)
    ]
    scratch = fit_decoder(sets, Settings(quality=4, steps=3), served=3, progress=False)
    assert "start" not in scratch.header["fit"]

    def distance(decoder) -> float:
        return sum(float((w - shipped.weights()[n]).abs().sum()) for n, w in decoder.weights().items())

    assert distance(started) < 0.3 * distance(scratch)  # (the grids that rate–distortion picks move it)
