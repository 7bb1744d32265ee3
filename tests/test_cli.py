import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile as sf
from PIL import Image, PngImagePlugin

from specnir.cli import main
from specnir.image import read_metadata, read_png


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_audio_to_image_to_audio(tmp_path, chirp_wav, capsys):
    code, out, _ = run(["audio2img", chirp_wav, "-o", tmp_path / "img"], capsys)
    assert code == 0 and "chirp.png" in out
    png = tmp_path / "img" / "chirp.png"
    meta = read_metadata(png)
    assert meta["params"]["n_mels"] == 128 and meta["length"] == 8000 and meta["bit_depth"] == 16

    code, out, _ = run(["img2audio", png, "-o", tmp_path / "wav", "--n-iter", "8"], capsys)
    assert code == 0
    info = sf.info(tmp_path / "wav" / "chirp.wav")
    assert info.samplerate == 16000 and info.frames == 8000

    code, out, _ = run(["info", png], capsys)
    assert code == 0 and "n_fft" in out and "1024" in out and "length" in out

    # The phase start is a flag; both starts give the clip back, the default (PGHI) a closer one.
    from specnir.metrics import spectral_convergence
    from specnir.spectrogram import SpecParams

    pghi = sf.read(tmp_path / "wav" / "chirp.wav")[0]  # the default inversion, above
    code, _, _ = run(["img2audio", png, "-o", tmp_path / "zero", "--n-iter", "8", "--phase", "zero"], capsys)
    assert code == 0
    zero = sf.read(tmp_path / "zero" / "chirp.wav")[0]
    original = sf.read(chirp_wav)[0]
    params = SpecParams()
    assert spectral_convergence(original, pghi, params=params) < spectral_convergence(
        original, zero, params=params
    )

    code, _, err = run(["img2audio", png, "-o", tmp_path / "bad", "--n-iter", "-1"], capsys)
    assert (
        code == 2
        and err.count("\n") == 1
        and "--n-iter: must be at least 0" in err
        and not (tmp_path / "bad").exists()
    )


def test_linear_8_bit_and_other_rates(tmp_path, chirp, capsys):
    path = tmp_path / "c44.wav"
    sf.write(path, np.stack([chirp, chirp], 1), 44100)  # stereo 44.1 kHz input
    args = ["audio2img", path, "-o", tmp_path, "--linear", "--bit-depth", "8", "--n-fft", "512"]
    assert run(args, capsys)[0] == 0
    spec = read_png(tmp_path / "c44.png")
    assert spec.params.scale == "linear" and spec.db.shape[0] == 257
    assert spec.params.sample_rate == 16000
    with Image.open(tmp_path / "c44.png") as image:
        assert image.mode == "L"


def test_colormapped_figure_without_metadata(tmp_path, chirp_wav, capsys):
    assert main(["audio2img", str(chirp_wav), "-o", str(tmp_path)]) == 0
    spec = read_png(tmp_path / "chirp.png")
    levels = np.round(np.flipud(spec.normalized) * 255).astype(np.uint8)
    plt.imsave(tmp_path / "fig.png", levels, cmap="magma", vmin=0, vmax=255)
    code, _, err = run(["img2audio", tmp_path / "fig.png", "-o", tmp_path / "w", "--n-iter", "4"], capsys)
    assert code == 0 and err == ""
    plt.imsave(tmp_path / "vir.png", levels, cmap="viridis", vmin=0, vmax=255)
    code, _, err = run(["img2audio", tmp_path / "vir.png", "-o", tmp_path / "w", "--n-iter", "4"], capsys)
    assert code == 0 and "warning" in err and "not exactly invertible" in err


def test_roundtrip_report(tmp_path, chirp_wavs, capsys):
    code, out, _ = run(["roundtrip", *chirp_wavs, "-o", tmp_path / "rt", "--n-iter", "16"], capsys)
    assert code == 0 and "sweep0.wav" in out
    report = json.loads((tmp_path / "rt" / "roundtrip.json").read_text())
    assert [r["file"] for r in report["files"]] == [str(p) for p in chirp_wavs]
    for row in report["files"]:
        assert row["max_db_error"] < 0.01 and 0 < row["spectral_convergence"] < 0.3
    assert (tmp_path / "rt" / "sweep1.wav").exists() and (tmp_path / "rt" / "sweep1.png").exists()


def _bad_files(tmp_path, chirp_wav):
    main(["audio2img", str(chirp_wav), "-o", str(tmp_path)])
    good = (tmp_path / "chirp.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[:200])
    (tmp_path / "notaudio.wav").write_text("RIFF? no.")
    sf.write(tmp_path / "silent.wav", np.zeros(4000, np.float32), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    image = Image.open(tmp_path / "chirp.png")
    info = PngImagePlugin.PngInfo()
    info.add_text("specnir", '{"version": 1, "params": ')
    image.save(tmp_path / "badmeta.png", pnginfo=info)
    return tmp_path


@pytest.mark.parametrize(
    "command, name, message",
    [
        ("audio2img", "missing.wav", "no such file"),
        ("audio2img", "notaudio.wav", "not a readable audio file"),
        ("audio2img", "silent.wav", "silent"),
        ("audio2img", "empty.wav", "empty"),
        ("img2audio", "trunc.png", "corrupt or truncated"),
        ("img2audio", "badmeta.png", "malformed specnir metadata"),
        ("info", "trunc.png", "corrupt or truncated"),
        ("roundtrip", "silent.wav", "silent"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, chirp_wav, capsys, command, name, message):
    where = _bad_files(tmp_path / "in", chirp_wav)
    capsys.readouterr()
    out_dir = tmp_path / "out"
    argv = [command, where / name] + ([] if command == "info" else ["-o", out_dir])
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("specnir: error: ") and name in err and message in err
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_bad_file_in_a_batch_writes_nothing(tmp_path, chirp_wav, capsys):
    where = _bad_files(tmp_path / "in", chirp_wav)
    code, _, err = run(["audio2img", chirp_wav, where / "silent.wav", "-o", tmp_path / "o"], capsys)
    assert code == 2 and not (tmp_path / "o").exists()


def test_unknown_colormap_and_missing_metadata(tmp_path, chirp_wav, capsys):
    Image.fromarray(np.zeros((128, 8, 3), np.uint8) + 40).save(tmp_path / "rgb.png")
    code, _, err = run(["img2audio", tmp_path / "rgb.png", "-o", tmp_path / "o", "--colormap", "jet"], capsys)
    assert code == 2 and "unknown colormap 'jet'" in err and err.count("\n") == 1
    code, _, err = run(["info", tmp_path / "rgb.png"], capsys)
    assert code == 2 and "rgb.png" in err and "no specnir metadata" in err


# --- inputs that are too short, outputs that cannot be written, no bundled clips -------------------------


@pytest.fixture
def short_wavs(tmp_path):
    """Clips of 478 and 100 samples: shorter than half of n_fft 1024 (the STFT's reflect padding)."""
    paths = []
    for n in (478, 100):
        path = tmp_path / f"short{n}.wav"
        sf.write(path, 0.3 * np.sin(np.arange(n) / 3.0).astype(np.float32), 16000)
        paths.append(path)
    return paths


@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize(
    "command",
    [
        ["audio2img", "{wav}", "-o", "{out}"],
        ["roundtrip", "{wav}", "-o", "{out}"],
        ["compress", "{wav}", "-o", "{out}/set.snir", "--steps", "2"],
        ["fit", "{wav}", "-o", "{out}", "--steps", "2"],
        ["bench", "rd", "{wav}", "-o", "{out}", "--steps", "2"],
    ],
    ids=lambda c: c[0] if isinstance(c, list) else c,
)
def test_too_short_audio_is_one_line_and_writes_nothing(tmp_path, short_wavs, capsys, command, n):
    wav, out = short_wavs[n], tmp_path / "out"
    code, _, err = run([a.format(wav=wav, out=out) for a in command], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"specnir: error: {wav}: audio too short:")
    assert "samples at 16000 Hz" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["audio2img", "{wav}", "-o", "{blocked}/img"],
        ["img2audio", "{png}", "-o", "{blocked}/wav"],
        ["roundtrip", "{wav}", "-o", "{blocked}/rt"],
        ["compress", "{wav}", "-o", "{blocked}/set.snir", "--steps", "2"],
        ["compress", "{wav}", "-o", "{folder}", "--steps", "2"],
        ["decompress", "{snir}", "-o", "{blocked}/d"],
        ["fit", "{wav}", "-o", "{blocked}/run", "--steps", "2"],
        ["reconstruct", "{ckpt}", "-o", "{blocked}/r"],
        ["bench", "rd", "{wav}", "-o", "{blocked}/b", "--steps", "2"],
    ],
    ids=lambda c: " ".join(c[:1] + c[-1:]),
)
def test_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path, chirp_wav, capsys, command):
    from conftest import ROOT

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    folder = tmp_path / "folder.snir"
    folder.mkdir()
    png = tmp_path / "chirp.png"
    assert main(["audio2img", str(chirp_wav), "-o", str(tmp_path)]) == 0
    capsys.readouterr()
    names = {
        "wav": chirp_wav,
        "png": png,
        "blocked": blocked,
        "folder": folder,
        "snir": ROOT / "tests" / "fixtures" / "v1" / "siren-model.snir",
        "ckpt": ROOT / "checkpoints" / "siren-alsa5.pt",
    }
    before = sorted(tmp_path.rglob("*"))
    code, _, err = run([a.format(**names) for a in command], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "cannot write there" in err and "Traceback" not in err, err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize(
    "command", [["fit"], ["compress", "-o", "{out}/set.snir"], ["bench", "rd", "-o", "{out}"]]
)
def test_no_input_and_no_bundled_clips_is_a_clear_error(tmp_path, capsys, monkeypatch, command):
    from specnir.cli import commands

    monkeypatch.setattr(commands, "BUNDLED_AUDIO", tmp_path / "not-installed" / "audio")
    monkeypatch.chdir(tmp_path)
    code, _, err = run([a.format(out=tmp_path / "out") for a in command], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no INPUT given" in err and "not with the installed package" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        (["fit"], "--steps", "-5"),
        (["fit"], "--eval-every", "0"),
        (["fit"], "--lr", "0"),
        (["fit"], "--grad-weight", "-1"),
        (["fit", "--arch", "gru"], "--hidden", "0"),
        (["fit", "--arch", "siren"], "--depth", "0"),
        (["fit"], "--n-iter", "-2"),
        (["compress", "-o", "{out}/set.snir"], "--steps", "0"),
        (["compress", "-o", "{out}/set.snir"], "--max-error", "-1"),
        (["batch", "{wav}", "-o", "{out}"], "--steps", "-1"),
        (["batch", "{wav}", "-o", "{out}"], "--set-size", "0"),
        (["batch", "{wav}", "-o", "{out}"], "--sets-per-fit", "0"),
        (["batch", "{wav}", "-o", "{out}"], "--decoder-sets", "-1"),
        (["batch", "{wav}", "-o", "{out}"], "--workers", "0"),
        (["decompress", "{wav}", "-o", "{out}"], "--workers", "0"),
        (["bench", "rd", "-o", "{out}"], "--steps", "-3"),
        (["reconstruct", "{wav}", "-o", "{out}"], "--time-scale", "0"),
        (["img2audio", "{wav}", "-o", "{out}"], "--n-iter", "-1"),
        (["fit"], "--steps", "many"),
    ],
)
def test_numbers_that_make_no_sense_are_refused_on_every_command(
    tmp_path, chirp_wav, capsys, command, flag, value
):
    argv = [a.format(out=tmp_path / "out", wav=chirp_wav) for a in command] + [flag, value]
    code, out, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("specnir: error: ") and not out, err
    assert f"argument {flag}: " in err and value in err and f"specnir {command[0]}" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_the_library_refuses_them_too():
    from specnir.codec.encode import Settings
    from specnir.errors import SpecnirError
    from specnir.fit_config import FitConfig
    from specnir.models import GRUConfig, LatentConfig

    for make, problem in [
        (lambda: FitConfig(steps=0), "steps must be at least 1, not 0"),
        (lambda: FitConfig(lr=-1e-3), "lr must be above 0"),
        (lambda: GRUConfig(hidden=0), "hidden must be at least 1"),
        (lambda: LatentConfig(lam=-1.0), "lam must be at least 0"),
        (lambda: Settings(steps=-5).coding(), "steps must be at least 1, not -5"),
    ]:
        with pytest.raises(SpecnirError, match=problem):
            make()
