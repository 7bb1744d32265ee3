"""``specnir train-decoder``: a decoder trained on crops, resumed after a stop, refusing bad corpora."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_SPEC_ARGS

from specnir.cli import main
from specnir.cli.args import spectrogram_params
from specnir.cli.parser import build_parser
from specnir.codec import decode
from specnir.codec.decoder_train import train_decoder, training_images
from specnir.codec.decoders import load_decoder
from specnir.codec.train_settings import TrainSettings
from specnir.convert import load_spectrogram
from specnir.fit import Callback
from specnir.image import write_png
from specnir.models.crops import CropLatents
from specnir.models.latent import LatentCodec, LatentConfig
from specnir.spectrogram import SpecParams

TINY = spectrogram_params(build_parser().parse_args(["compress", "-o", "x.snir", *TINY_SPEC_ARGS]))
QUICK = ["--steps", "12", "--batch", "3", "--crop", "8", "--eval-every", "6", "--reference-steps", "10"]


@pytest.fixture
def voices(tiny_wavs, tmp_path):
    """The tiny sweeps in two folders, as two voices of a corpus."""
    for k, wav in enumerate(tiny_wavs):
        folder = tmp_path / "corpus" / ("a" if k < 3 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, folder)
    return tmp_path / "corpus"


def test_train_decoder_end_to_end_and_a_set_coded_against_it(voices, tiny_wavs, tmp_path, capsys):
    out = tmp_path / "speech.snird"
    assert main(["train-decoder", str(voices), "-o", str(out), *QUICK, "--quiet", *TINY_SPEC_ARGS]) == 0
    printed = capsys.readouterr().out
    decoder = load_decoder(out)
    assert decoder.id in printed and f"{len(out.read_bytes()):,} bytes" in printed
    fit = decoder.header["fit"]
    assert fit["qualities"] == [1, 2, 3, 4] and fit["analysis"] == TINY.to_dict()
    assert fit["clips"] == 5 and fit["steps"] == 12 and set(fit["loss_by_quality"]) == {"1", "2", "3", "4"}
    assert all(v > 0 for v in fit["loss_by_quality"].values())
    assert not out.with_name(out.name + ".state").exists()  # (done: the state is gone)
    # a set of that analysis coded against it: latents only, and the file decodes with the decoder
    snir = tmp_path / "set.snir"
    args = ["compress", *map(str, tiny_wavs[:2]), "-o", str(snir), "--decoder", str(out), "--steps", "5"]
    assert main([*args, "--quiet", *TINY_SPEC_ARGS]) == 0
    blob = snir.read_bytes()
    assert blob[4] == 3 and decode(blob, decoder=decoder).names == ["tiny0", "tiny1"]


def test_crops_are_aligned_to_the_coarsest_grid_and_only_drawn_images_learn():
    torch.manual_seed(0)
    config = LatentConfig()  # grids at 1/2, 1/4, 1/8: crops start on multiples of 8
    model = CropLatents(config, height=16, widths=[40, 9, 70], lams=[1e-3, 1e-3, 2e-3], crop=13, batch=4)
    assert model.crop == 16
    for _ in range(20):
        images, starts = model.draw()
        assert len({model.image_lams[k] for k in images}) == 1  # one λ per step
        for k, x in zip(images, starts, strict=True):
            assert (
                x % 8 == 0 and 0 <= x < max(model.widths[k], 1) and (x == 0 or x + 16 <= model.widths[k] + 7)
            )
    target, mask = torch.rand(3, 16, 70), torch.ones(3, 1, 70)
    model.train()
    model.set_progress(0.5)
    loss = model.crop_loss(target, mask, [0, 0], [8, 16])
    loss.backward()
    grads = [p.grad is not None for p in model.latents]
    assert grads == [True] * 3 + [False] * 6  # image 0's three grids only
    # a crop's latents are the image's own: a crop's loss is the latent codec's on those columns
    model.eval()
    codec = LatentCodec(config, n_images=1, height=16, width=16)
    codec.load_state_dict(dict(model.weights()), strict=False)
    codec.eval()
    with torch.no_grad():
        first = model.crop_loss(target, mask, [0], [0])
        codec.load_state_dict(
            {f"latents.{g}": model.latents[g][None, :, : 16 // s] for g, s in enumerate(model.scales)},
            strict=False,
        )
        whole = codec.rd_loss(codec.coded_latents(), None, target[:1, :, :16], mask[:1, :, :16], lam=1e-3)
    assert float(first) == pytest.approx(float(whole), rel=1e-6)


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, loss, lr):
        if step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_stopped_training_resumes_to_the_same_decoder(voices, tmp_path):
    settings = TrainSettings(steps=12, batch=3, crop=8, eval_every=6, reference_steps=10)
    whole = train_decoder([voices], tmp_path / "whole.snird", settings, params=TINY, progress=False)
    out = tmp_path / "stopped.snird"
    with pytest.raises(KeyboardInterrupt):
        train_decoder([voices], out, settings, params=TINY, progress=False, callbacks=[_StopAt(4)])
    state = out.with_name(out.name + ".state")
    assert state.is_file() and not out.exists()  # nothing half-written, the state kept
    resumed = train_decoder([voices], out, settings, params=TINY, progress=False)
    assert resumed.blob == whole.blob and not state.exists()
    # another corpus or other settings do not resume from that state
    with pytest.raises(KeyboardInterrupt):
        train_decoder([voices], out, settings, params=TINY, progress=False, callbacks=[_StopAt(6)])
    with pytest.raises(Exception, match="the state of another training"):
        train_decoder([voices / "a"], out, settings, params=TINY, progress=False)


@pytest.mark.slow
def test_train_decoder_refuses_a_corpus_without_speech_or_of_mixed_analyses(tmp_path, voices, capsys):
    silent = tmp_path / "silent"
    silent.mkdir()
    sf.write(silent / "quiet.wav", np.zeros(4000, np.float32), 8000, subtype="PCM_16")
    sf.write(silent / "short.wav", np.random.default_rng(0).normal(0, 0.1, 300).astype(np.float32), 8000)
    out = tmp_path / "x.snird"
    assert main(["train-decoder", str(silent), "-o", str(out), *QUICK, *TINY_SPEC_ARGS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no usable speech in 2 clips" in err and str(silent) in err
    assert main(["train-decoder", str(tmp_path / "none"), "-o", str(out), *QUICK]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    wav = next(voices.glob("a/*.wav"))
    write_png(mixed / "a.png", load_spectrogram(wav, params=TINY))
    write_png(
        mixed / "b.png",
        load_spectrogram(wav, params=SpecParams(sample_rate=8000, n_fft=256, hop_length=32, n_mels=16)),
    )
    assert main(["train-decoder", str(mixed), "-o", str(out), *QUICK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b.png: another analysis than" in err and "hop_length" in err
    assert main(["train-decoder", str(voices), "-o", str(out), "--qualities", "4-5", *QUICK]) == 2
    assert "need different networks" in capsys.readouterr().err
    assert main(["train-decoder", str(voices), "-o", str(out), "--qualities", "3-", *QUICK]) == 2
    assert "is not a quality or a range" in capsys.readouterr().err
    assert not out.exists()


def test_a_corpus_smaller_than_its_qualities_still_gives_every_quality_a_reference(tiny_wavs, tmp_path):
    decoder = train_decoder(
        [tiny_wavs[0]],
        tmp_path / "one.snird",
        TrainSettings(steps=4, batch=2, crop=8, eval_every=4, reference_steps=4),
        params=TINY,
        progress=False,
    )
    assert set(decoder.header["fit"]["loss_by_quality"]) == {"1", "2", "3", "4"}


def test_the_full_resolution_qualities_get_a_decoder_of_their_own(tiny_wavs, tmp_path):
    """Qualities 5-8 (their own networks; 7 and 8 are the residual mode's by default): every reference is
    a latent fit."""
    settings = TrainSettings(
        qualities=(5, 6, 7, 8), steps=4, batch=2, crop=8, eval_every=4, reference_steps=4
    )
    decoder = train_decoder(tiny_wavs[:2], tmp_path / "q58.snird", settings, params=TINY, progress=False)
    assert decoder.header["fit"]["qualities"] == [5, 6, 7, 8]
    assert set(decoder.header["fit"]["loss_by_quality"]) == {"5", "6", "7", "8"}
    assert decoder.header["model_config"]["grids"] == 4 and decoder.header["model_config"]["first"] == 0


def test_long_clips_are_cut_into_pieces(tmp_path):
    wav = tmp_path / "long.wav"
    t = np.arange(8000 * 6) / 8000  # 6 s at 8 kHz, hop 64: 751 columns
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t / 6))).astype(np.float32), 8000)
    data, clips = training_images([wav], params=TINY, limit=10)
    assert clips == 1 and data.names == ["long.0", "long.1"] and sum(data.widths) == 751
    assert max(data.widths) <= 512 and torch.equal(data.target, torch.round(data.target * 255) / 255)
