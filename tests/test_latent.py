"""The latent codec's model: causal entropy context, rate properties, and a fit through the CLI."""

import json

import pytest
import torch
from conftest import TINY_SPEC_ARGS
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from specnir.cli import main
from specnir.fit import FitConfig, fit
from specnir.models import LatentCodec, LatentConfig
from specnir.models.latent import BELOW, PAST, context


def _decoded_before(k: int, f: int, x: int, shape) -> torch.Tensor:
    """True where a latent is decoded before (k, f, x): earlier columns; in column x, earlier images;
    in image k's column x, lower rows (larger f)."""
    images, rows, cols = torch.meshgrid(*(torch.arange(n) for n in shape), indexing="ij")
    same = cols == x
    return (cols < x) | (same & (images < k)) | (same & (images == k) & (rows > f))


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("entropy", ["mlp", "gru"])
def test_entropy_model_sees_only_latents_decoded_before(entropy, cross):
    """Changing one latent changes no distribution of a latent decoded before it (nor its own)."""
    torch.manual_seed(0)
    config = LatentConfig(entropy=entropy, grids=1, first=0, cross=cross)
    model = LatentCodec(config, n_images=3, height=9, width=11)
    with torch.no_grad():
        for p in model.entropy.parameters():
            p.normal_(0, 0.5)
    y = torch.randn(3, 9, 11) * 3
    code = model.grid_codes[0]
    before = model.entropy(y, code)
    for k, f, x in [(1, 4, 5), (0, 0, 0), (2, 8, 10), (1, 8, 3), (0, 0, 7)]:
        changed = y.clone()
        changed[k, f, x] += 5.0
        differs = (model.entropy(changed, code) - before).abs().amax(-1) > 0  # (N, h, w)
        assert not differs[_decoded_before(k, f, x, y.shape)].any(), (entropy, k, f, x)
        assert not differs[k, f, x], (entropy, k, f, x)
        if x + 1 < 11:
            assert differs[k, :, x + 1].any()  # ... and it does inform what comes after
        if cross and k + 1 < 3:
            assert differs[k + 1, :, x].any()  # ... the next image's column too


def test_context_offsets_are_causal_and_zero_outside():
    assert all(dx < 0 for _, dx in PAST) and all(dx == 0 and df > 0 for df, dx in BELOW)
    y = torch.arange(1.0, 13.0).reshape(1, 3, 4)
    near = context(y, [(0, -1), (1, 0)])
    assert near[0, 1, 2, 0] == y[0, 1, 1] and near[0, 1, 2, 1] == y[0, 2, 2]
    assert near[0, 0, 0, 0] == 0 and near[0, 2, 0, 1] == 0  # before the first column, below the last row


def test_padding_columns_are_not_coded():
    model = LatentCodec(LatentConfig(grids=2, first=1), n_images=2, height=8, width=12)
    model.set_widths([12, 5])
    with torch.no_grad():
        for latent in model.latents:
            latent.fill_(3.0)
    model.eval()
    coded = model.coded_latents()
    # image 1 is 5 columns wide: grid 0 (every 2nd column) codes columns 0-2, grid 1 (every 4th) 0-1
    assert coded[0][1, :, 3:].abs().sum() == 0 and coded[0][1, :, :3].min() == 3
    assert coded[1][1, :, 2:].abs().sum() == 0 and coded[1][1, :, :2].min() == 3
    bits = model.latent_bits(coded)
    assert bits[0][1, :, 3:].sum() == 0 and bits[0][0].min() > 0


def _tiny_data(tiny_wavs):
    from specnir.data import load_image_set
    from specnir.spectrogram import SpecParams

    return load_image_set(tiny_wavs, params=SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16))


def _fitted_rate(data, lam: float, steps: int = 150) -> tuple[float, float]:
    torch.manual_seed(0)
    n, h, w = data.target.shape
    model = LatentCodec(LatentConfig(lam=lam), n_images=n, height=h, width=w)
    result = fit(model, data, FitConfig(steps=steps, eval_every=steps), progress=False)
    return result.best_metrics["rates"]["bpp"], result.best_metrics["psnr"]


@pytest.mark.slow
def test_larger_lambda_gives_fewer_bits(tiny_wavs):
    data = _tiny_data(tiny_wavs)
    low_rate, low_psnr = _fitted_rate(data, 2e-4)
    high_rate, high_psnr = _fitted_rate(data, 2e-2)
    assert high_rate < low_rate and high_psnr < low_psnr


def test_a_constant_image_costs_almost_no_latent_bits(tiny_wavs):
    data = _tiny_data(tiny_wavs)
    data.target.fill_(0.5)
    rate, psnr = _fitted_rate(data, 2e-3)
    assert rate < 0.02 and psnr > 30  # the synthesis' bias does it; the latents stay at zero


def test_fit_latent_through_the_cli_logs_where_the_bits_go(tmp_path, tiny_wavs):
    run = tmp_path / "run"
    argv = ["fit", *map(str, tiny_wavs), "-o", str(run), "--arch", "latent", "--steps", "20", "--quiet"]
    assert main(argv + ["--eval-every", "10", "--n-iter", "1", "--entropy", "gru", *TINY_SPEC_ARGS]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["arch"] == "latent" and len(metrics["latent_grid_bits"]) == 3 and metrics["latent_bpp"] > 0
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert "eval/bits_per_column" in events.Tags()["images"]
    assert {"eval/rate/bpp", "eval/rate/grid0_bits", "eval/rate/grid2_bits"} <= set(events.Tags()["scalars"])
    assert main(["reconstruct", str(run / "model.pt"), "-o", str(tmp_path / "again"), "--n-iter", "1"]) == 0


def test_an_interrupted_latent_fit_resumes_exactly(tiny_wavs):
    """The training noise comes from torch's generator, which the fit's state carries."""
    from specnir.fit import Callback

    class StopAt(Callback):
        def on_step(self, step, loss, lr):
            if step == 20:
                raise KeyboardInterrupt

    data = _tiny_data(tiny_wavs)
    config = FitConfig(steps=40, eval_every=10)

    def new_model() -> LatentCodec:
        torch.manual_seed(0)
        return LatentCodec(LatentConfig(synthesis=4), n_images=5, height=16, width=24)

    whole = new_model()
    expected = fit(whole, data, config, progress=False)
    stopped = fit(new_model(), data, config, callbacks=[StopAt()], progress=False)
    assert stopped.interrupted and stopped.state.step == 20
    torch.manual_seed(123)  # whatever the generator did meanwhile, the state puts it back
    resumed_model = new_model()
    resumed = fit(resumed_model, data, config, resume=stopped.state, progress=False)
    assert resumed.best_step == expected.best_step and resumed.last_step == 40
    for (name, a), b in zip(whole.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_soft_rounding_and_its_noise():
    from specnir.models.latent import kumaraswamy_noise, softround

    x = torch.linspace(-3, 3, 61)
    off_ties = x[(x - x.floor() - 0.5).abs() > 0.05]  # cold: rounding (away from the half-way points)
    assert torch.allclose(softround(off_ties, 1e-3), torch.round(off_ties))
    assert (softround(x, 10.0) - x).abs().max() < 0.01  # hot: nearly the identity
    torch.manual_seed(0)
    for a in (1.0, 2.0):
        noise = kumaraswamy_noise(torch.zeros(20000), a)
        assert noise.min() >= -0.5 and noise.max() <= 0.5 and abs(float(noise.mean())) < 0.02
    peaked, flat = kumaraswamy_noise(torch.zeros(20000), 2.0), kumaraswamy_noise(torch.zeros(20000), 1.0)
    assert (peaked.abs() < 0.1).float().mean() > 1.3 * (flat.abs() < 0.1).float().mean()


def test_the_schedule_ends_with_true_rounding_and_a_gradient():
    model = LatentCodec(LatentConfig(grids=1), n_images=1, height=8, width=8)
    latent = model.latents[0]
    with torch.no_grad():
        latent.copy_(torch.randn_like(latent) * 2)
    model.train()
    model.set_progress(0.0)
    early = model.quantize(latent)
    assert not torch.equal(early, torch.round(latent))  # noisy and soft while annealing
    model.set_progress(0.95)  # the straight-through phase
    late = model.quantize(latent)
    assert torch.equal(late.detach(), torch.round(latent).detach())
    late.sum().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
    model.eval()
    assert torch.equal(model.quantize(latent), torch.round(latent))
