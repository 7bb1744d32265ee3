"""Fitting tiny real spectrograms (16 mel bands, 20-24 columns) through the CLI, in-process."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_SPEC_ARGS
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from specnir.checkpoint import load_checkpoint
from specnir.cli import main
from specnir.errors import SpecnirError
from specnir.metrics import sobel_magnitude
from specnir.models.loss import masked_loss
from specnir.run import reconstruct


def fit(tmp_path, wavs, arch, steps, *extra):
    run = tmp_path / f"run-{arch}"
    argv = ["fit", *map(str, wavs), "-o", str(run), "--arch", arch, "--steps", str(steps), "--quiet"]
    argv += ["--eval-every", str(max(steps // 3, 1)), "--n-iter", "2", *TINY_SPEC_ARGS, *extra]
    assert main(argv) == 0
    return run, json.loads((run / "metrics.json").read_text())


# Measured 2026-11-24: siren (width 32, depth 3, lr 2e-3) reaches 46.0 dB in 300 steps (1.5 s).
def test_siren_fits_tiny_set(tmp_path, tiny_wavs):
    run, metrics = fit(tmp_path, tiny_wavs, "siren", 300, "--width", "32")
    assert metrics["psnr"] > 40.0
    assert len(metrics["psnr_per_image"]) == 5 and metrics["shape"] == [5, 16, 24]
    for key in ("arch", "params", "steps", "seconds", "gmsd", "ssim"):
        assert key in metrics
    # Unequal widths are kept: each reconstruction has its own image's width.
    widths = [Image.open(run / "recon" / f"tiny{k}.png").size[0] for k in range(5)]
    assert widths == [24, 23, 24, 22, 20]
    assert all((run / "recon" / f"tiny{k}.wav").stat().st_size > 44 for k in range(5))


@pytest.mark.slow
# Measured 2026-11-24: gru (hidden 12, 16 sine features, lr 2e-2) decoding free-running reaches 35.5 dB
# in 150 steps (28.2 dB without the sine features).
def test_gru_fits_tiny_set_free_running(tmp_path, tiny_wavs):
    run, metrics = fit(tmp_path, tiny_wavs, "gru", 150, "--hidden", "12")
    assert metrics["psnr"] > 32.0
    assert "teacher_forced/psnr" in metrics
    # reconstruct from the checkpoint alone reproduces the run's free-running decode exactly.
    files, values = reconstruct(run / "model.pt", tmp_path / "again", n_iter=2)
    for k in range(5):
        a = np.asarray(Image.open(run / "recon" / f"tiny{k}.png"))
        b = np.asarray(Image.open(tmp_path / "again" / f"tiny{k}.png"))
        np.testing.assert_array_equal(a, b)
    ckpt = load_checkpoint(run / "model.pt")
    with torch.no_grad():
        assert torch.equal(ckpt.model(), values)


@pytest.mark.slow
def test_runs_are_reproducible(tmp_path, tiny_wavs):
    _, a = fit(tmp_path / "a", tiny_wavs, "siren", 20, "--width", "8")
    _, b = fit(tmp_path / "b", tiny_wavs, "siren", 20, "--width", "8")
    assert a["psnr_per_image"] == b["psnr_per_image"]


def test_tensorboard_has_column_error_figure_and_audio(tmp_path, tiny_wavs):
    run, _ = fit(tmp_path, tiny_wavs, "gru", 6, "--hidden", "4")
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert "eval/column_error" in tags["images"] and "eval/column_error_heatmap" in tags["images"]
    assert {"target/tiny0", "recon/tiny0", "recon/tiny4"} <= set(tags["audio"])
    assert {"train/loss", "eval/psnr/tiny0", "eval/gmsd/tiny0", "eval/ssim/tiny0"} <= set(tags["scalars"])
    assert "eval/teacher_forced/psnr" in tags["scalars"]
    audio = events.Audio("recon/tiny0")[-1]
    assert audio.sample_rate == 8000


@pytest.mark.slow
def test_resume_continues(tmp_path, tiny_wavs):
    run, first = fit(tmp_path, tiny_wavs, "siren", 40, "--width", "16")
    assert main(["fit", "--resume", str(run), "--steps", "120", "--quiet"]) == 0
    second = json.loads((run / "metrics.json").read_text())
    assert second["steps"] == 120 and second["psnr"] > first["psnr"]
    assert main(["fit", "--resume", str(run), "--steps", "100", "--quiet"]) == 2  # already past it


def test_siren_renders_at_other_resolutions(tmp_path, tiny_wavs):
    run, _ = fit(tmp_path, tiny_wavs, "siren", 10, "--width", "8")
    files, values = reconstruct(run / "model.pt", tmp_path / "big", time_scale=2, freq_scale=2, n_iter=2)
    assert values.shape == (5, 32, 48)
    # Same duration at half the hop: 1 + 1472 // 32 = 47 columns for the 1472-sample clip (24 before).
    assert Image.open(tmp_path / "big" / "tiny0.png").size == (47, 32)
    assert sf.info(tmp_path / "big" / "tiny0.wav").frames == 1472
    with pytest.raises(SpecnirError, match="whole samples"):
        reconstruct(run / "model.pt", tmp_path / "odd", time_scale=3)


def test_the_gradient_term_weighs_edges_not_levels(tmp_path, tiny_wavs):
    """``--grad-weight W`` adds W × the MSE of Sobel gradient magnitudes to the loss: nothing for an image
    off by a constant (its edges are the target's), and what a blur costs for a blurred one; a fit with it
    records the weight in its checkpoint."""
    target = torch.rand(2, 16, 24)
    mask = torch.ones(2, 1, 24)
    shifted, blurred = target + 0.1, torch.nn.functional.avg_pool2d(target[:, None], 3, 1, 1)[:, 0]
    assert float(masked_loss(shifted, target, mask, grad_weight=5.0)) == pytest.approx(0.01, rel=1e-4)
    edges = float(((sobel_magnitude(blurred) - sobel_magnitude(target)) ** 2).mean())
    plain = float(masked_loss(blurred, target, mask))
    assert float(masked_loss(blurred, target, mask, grad_weight=2.0)) == pytest.approx(
        plain + 2 * edges, rel=1e-4
    )
    assert edges > 0.1 * plain
    run, metrics = fit(tmp_path, tiny_wavs, "siren", 20, "--width", "8", "--grad-weight", "1.0")
    assert (
        load_checkpoint(run / "model.pt").fit_config.grad_weight == 1.0
        and len(metrics["psnr_per_image"]) == 5
    )


def test_bad_fit_inputs(tmp_path, tiny_wavs, capsys):
    other = tmp_path / "img"
    assert main(["audio2img", str(tiny_wavs[0]), "-o", str(other), *TINY_SPEC_ARGS]) == 0
    assert (
        main(
            [
                "audio2img",
                str(tiny_wavs[1]),
                "-o",
                str(other),
                "--n-mels",
                "12",
                "--sample-rate",
                "8000",
                "--n-fft",
                "256",
                "--hop-length",
                "64",
            ]
        )
        == 0
    )
    capsys.readouterr()
    code = main(["fit", str(other), "-o", str(tmp_path / "r"), "--steps", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "differ" in err and "n_mels" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fit", str(empty), "--steps", "2", "--quiet"]) == 2
    assert "no audio or image files" in capsys.readouterr().err


def test_bad_checkpoints(tmp_path, tiny_wavs, capsys):
    run, _ = fit(tmp_path, tiny_wavs, "siren", 3, "--width", "4")
    good = (run / "model.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    capsys.readouterr()
    for name, message in [
        ("trunc.pt", "truncated"),
        ("other.pt", "not a specnir"),
        ("foreign.pt", "not a specnir"),
        ("missing.pt", "no such file"),
    ]:
        code = main(["reconstruct", str(tmp_path / name), "-o", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and name in err and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def _tiny_set(tiny_wavs):
    from specnir.data import load_image_set
    from specnir.spectrogram import SpecParams

    return load_image_set(tiny_wavs, params=SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16))


def test_ctrl_c_stops_cleanly_with_the_best_weights(tiny_wavs):
    from specnir.fit import Callback, FitConfig, evaluate
    from specnir.fit import fit as fit_loop
    from specnir.models import Siren, SirenConfig

    class Interrupt(Callback):
        def on_step(self, step, loss, lr):
            if step == 25:
                raise KeyboardInterrupt

    data = _tiny_set(tiny_wavs)
    model = Siren(SirenConfig(width=16), n_images=5, height=16, width=24)
    result = fit_loop(
        model,
        data,
        FitConfig(steps=100, eval_every=10),
        callbacks=[Interrupt()],
        progress=False,
    )
    assert result.interrupted and result.last_step == 25
    with torch.no_grad():
        assert evaluate(data, model())["psnr"] == pytest.approx(result.best_metrics["psnr"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ["siren", "gru"])
def test_cuda_fit_matches_cpu(tiny_wavs, arch):
    from specnir.fit import FitConfig
    from specnir.fit import fit as fit_loop
    from specnir.models import MODELS

    data = _tiny_set(tiny_wavs)
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = MODELS[arch](MODELS[arch].Config(), n_images=5, height=16, width=24)
        cfg = FitConfig(steps=50, device=device, eval_every=50)
        results[device] = fit_loop(model, data, cfg, progress=False).best_metrics["psnr"]
    assert results["cuda"] == pytest.approx(results["cpu"], abs=0.5)
