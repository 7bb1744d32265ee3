"""The distortion a latent fit minimises: the ear's weights on a synthetic spectrogram, and every loss that
takes them (one model, stacked sets, crops of a corpus) weighing pixels alike."""

from __future__ import annotations

import pytest
import torch
from test_batch import TINY
from test_stacked import WIDTHS, _joined, _models

from specnir.cli import main
from specnir.codec.encode import Settings, compress
from specnir.errors import SpecnirError
from specnir.models import LatentCodec, LatentConfig
from specnir.models.crops import CropLatents
from specnir.models.loss import EAR_FLOOR, ear_weights, masked_loss, pixel_weights
from specnir.models.stacked import StackedLatents


def _spectrogram() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32-band images: a quiet floor (0.1-0.2), a loud formant (0.9) and a softer band (0.5); the
    second 40 of 50 columns wide."""
    g = torch.Generator().manual_seed(0)
    target = 0.1 + 0.1 * torch.rand(2, 32, 50, generator=g)
    target[:, 4:8, 10:30] = 0.9
    target[:, 16:20, 10:30] = 0.5
    mask = torch.ones(2, 1, 50)
    mask[1, :, 40:] = 0
    return target, mask


def test_the_ears_weights_favour_loud_bins_and_floor_silent_ones():
    target, mask = _spectrogram()
    w = ear_weights(target, mask)
    assert w.shape == target.shape
    assert torch.all(w[1, :, 40:] == 0)  # no weight in the padding
    for k, width in enumerate((50, 40)):
        real = w[k, :, :width]
        assert real.mean() == pytest.approx(1.0, abs=1e-5)  # the MSE's scale: λ means what it did
        loud, soft, quiet = real[4:8, 10:30].mean(), real[16:20, 10:30].mean(), real[24:, 35:].mean()
        assert loud > soft > quiet > 0
        floor = real.min()
        assert floor > 0 and torch.allclose(
            real[target[k, :, :width] <= target[k, :, :width].quantile(0.2)], floor
        )
        assert loud / floor == pytest.approx(1 / EAR_FLOOR, rel=0.05)  # the loudest bins over the floor's
    assert pixel_weights(target, mask, "mse") is None
    assert torch.equal(pixel_weights(target, mask, "ear"), w)
    with pytest.raises(ValueError, match="distortion"):
        pixel_weights(target, mask, "loudness")


def test_a_weighted_loss_weighs_each_pixels_squared_error():
    target, mask = _spectrogram()
    recon = torch.rand_like(target)
    w = ear_weights(target, mask)
    full = mask.expand_as(target)
    expected = (w * full * (recon - target) ** 2).sum() / full.sum()
    assert masked_loss(recon, target, mask, weight=w) == pytest.approx(float(expected), rel=1e-6)
    assert masked_loss(recon, target, mask, weight=torch.ones_like(target)) == pytest.approx(
        float(masked_loss(recon, target, mask)), rel=1e-6
    )


def test_stacked_sets_and_crops_weigh_pixels_as_one_model_does():
    models, targets, masks = _models()
    weights = [ear_weights(t, m) for t, m in zip(targets, masks, strict=True)]
    stacked = StackedLatents(models, WIDTHS, shared_networks=False).eval()
    with torch.no_grad():
        got = stacked.set_losses(_joined(stacked, targets), _joined(stacked, weights))
        want = [m.loss(t, k, weight=w) for m, t, k, w in zip(models, targets, masks, weights, strict=True)]
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-7)
    # crops: an image's whole-width evaluation with weights is its codec's weighted loss
    target, mask = targets[0][:1], masks[0][:1]
    crops = CropLatents(LatentConfig(), height=32, widths=[WIDTHS[0][0]], lams=[2e-3], crop=32, batch=1)
    crops.eval()
    w = ear_weights(target, mask)
    with torch.no_grad():
        weighted, plain = crops.loss(target, mask, weight=w), crops.loss(target, mask)
        window, grid_masks = crops._window([0], [0], target.shape[-1])
        direct = crops.codec.rd_loss(window, grid_masks, target, mask, lam=2e-3, weight=w)
    assert float(weighted) == pytest.approx(float(direct), rel=1e-5) and float(weighted) != float(plain)


def test_the_ear_distortion_is_the_latent_modes_and_changes_its_fit(tiny_wavs, tmp_path, capsys):
    mse = compress(tiny_wavs[:2], quality=3, steps=30, params=TINY, progress=False)
    ear = compress(tiny_wavs[:2], quality=3, steps=30, params=TINY, progress=False, distortion="ear")
    assert ear.report["distortion"] == "ear" and mse.report["distortion"] == "mse"
    assert ear.blob != mse.blob and ear.decoded.names == mse.decoded.names  # a file like any other
    assert (
        compress(tiny_wavs[:2], quality=3, steps=30, params=TINY, progress=False, distortion="mse").blob
        == mse.blob
    )
    with pytest.raises(SpecnirError, match="a distortion needs mode latent, not residual"):
        Settings(mode="residual", quality=7, distortion="ear").coding()
    out = tmp_path / "x.snir"
    tiny = [str(p) for p in tiny_wavs[:2]]
    args = ["compress", *tiny, "-o", str(out), "--steps", "5", *("--sample-rate", "8000", "--n-fft", "256")]
    args += ["--hop-length", "64", "--n-mels", "16"]
    assert main([*args, "--mode", "residual", "--quality", "7", "--distortion", "ear"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "distortion" in err and not out.exists()
    assert main([*args, "--distortion", "ear"]) == 0 and out.is_file()


def test_a_predictive_model_refuses_a_distortion():
    from specnir.data import ImageSet
    from specnir.fit import fit
    from specnir.fit_config import FitConfig
    from specnir.models import PredictorConfig, build_model

    predictor = build_model("predictor", PredictorConfig(), n_images=1, height=8, width=8)
    data = ImageSet(["a"], [], torch.zeros(1, 8, 8), torch.ones(1, 1, 8))
    with pytest.raises(ValueError, match="distortion"):
        fit(predictor, data, FitConfig(steps=1, distortion="ear"), progress=False)


def test_the_quantisers_and_the_fallback_measure_the_fits_distortion(tiny_wavs):
    """``loss_on`` (what weight quantisation and a decoder's file measure) takes the fit's distortion; a
    set fitted to the ear against an MSE decoder is judged by the MSE, as the decoder's references are."""
    from specnir.codec.decoders import load_decoder
    from specnir.codec.networks import DecoderNetworks
    from specnir.codec.nnquant import loss_on
    from specnir.data import load_image_set
    from specnir.fit_config import FitConfig

    data = load_image_set(tiny_wavs[:2], params=TINY)
    model = LatentCodec(LatentConfig(), n_images=2, height=16, width=data.target.shape[-1])
    model.set_widths(data.widths)
    model.eval()
    decoder = load_decoder("tests/fixtures/v3/decoder.snird")
    decoder.load_into(model)
    weight = ear_weights(data.target, data.mask)
    with torch.no_grad():
        plain, heard = model.loss(data.target, data.mask), model.loss(data.target, data.mask, weight=weight)
    assert loss_on(model, data, FitConfig(distortion="ear"))() == pytest.approx(float(heard), rel=1e-6)
    assert loss_on(model, data, FitConfig())() == pytest.approx(float(plain), rel=1e-6)
    assert decoder.distortion == "mse"
    got = DecoderNetworks(decoder).quantize(None, model, data, FitConfig(distortion="ear"))
    assert got.quantized_loss == pytest.approx(float(heard), rel=1e-6)
    assert got.decoder_loss == pytest.approx(float(plain), rel=1e-6)


def test_settings_say_the_mse_one_way_and_manifests_keep_their_old_form():
    from specnir.batch import BatchJob
    from specnir.spectrogram import SpecParams

    assert Settings(distortion="mse") == Settings() and Settings(mode="residual", distortion="mse").coding()
    record = BatchJob(Settings(), SpecParams()).record()
    assert "distortion" not in record and "rate" not in record  # (lines written before either existed)
    assert BatchJob(Settings(distortion="ear"), SpecParams()).record()["distortion"] == "ear"
