"""Many sets' latent codecs fitted as one model: each set's loss, decode and gradients are its own."""

import pytest
import torch

from specnir.models import LatentCodec, LatentConfig
from specnir.models.stacked import StackedLatents, can_stack, linear_taps

WIDTHS = [[150, 133, 141], [97, 120], [160, 160, 150, 111]]


def _models(shared: bool = False) -> tuple[list[LatentCodec], list[torch.Tensor], list[torch.Tensor]]:
    """Three sets of unequal counts and widths, with random weights and latents (the first's networks
    for all with ``shared``), their targets and masks."""
    models, targets, masks = [], [], []
    for ws in WIDTHS:
        model = LatentCodec(LatentConfig(first=0, grids=4), n_images=len(ws), height=32, width=max(ws))
        model.set_widths(ws)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * (3 if p.dim() == 3 else 0.1))
            if shared and models:
                for name, p in model.weights().items():
                    p.copy_(models[0].weights()[name])
        mask = (torch.arange(max(ws))[None, None, :] < torch.tensor(ws)[:, None, None]).float()
        models.append(model.eval())
        targets.append(torch.rand(len(ws), 32, max(ws)) * mask)
        masks.append(mask)
    return models, targets, masks


def _joined(stacked: StackedLatents, targets: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([torch.nn.functional.pad(t, (0, stacked.width - t.shape[-1])) for t in targets])


@pytest.mark.parametrize(("size", "out"), [(1, 5), (2, 3), (19, 150), (38, 150), (20, 160)])
def test_linear_taps_up_sample_as_interpolate_does(size, out):
    """The GPU's up-sampling taps give F.interpolate's values, and repeat the last one past ``out``."""
    y = torch.randn(3, size)
    expected = torch.nn.functional.interpolate(y[None], size=out, mode="linear", align_corners=False)[0]
    index, weight = linear_taps(size, out, pad_to=out + 4)
    got = (y[:, index] * weight).sum(1)  # (3, out + 4)
    torch.testing.assert_close(got[:, :out], expected, rtol=0, atol=1e-6)
    assert torch.equal(got[:, out:], got[:, out - 1 : out].expand(3, 4))
    torch.testing.assert_close(y @ linear_taps(size, out, dense=True).T, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("batched", "shared"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["per-set", "batched", "per-set-shared", "batched-shared"],
)
def test_stacked_latents_compute_each_sets_own_loss(batched, shared):
    """Three sets of unequal counts and widths (not multiples of the grids' scales) as one model: every
    set's loss and decode are its own model's (eval: rounded latents), with the entropy model and the
    synthesis run per set (the same arithmetic) or all sets at once through vmap (equal up to rounding),
    each set with its own networks or all with the first's (a shared decoder)."""
    models, targets, masks = _models(shared)
    stacked = StackedLatents(models, WIDTHS, shared_networks=shared, batched=batched).eval()
    with torch.no_grad():
        losses = stacked.set_losses(_joined(stacked, targets))
        expected = torch.stack([m.loss(t, k) for m, t, k in zip(models, targets, masks, strict=True)])
        assert torch.allclose(losses, expected, rtol=1e-5)
        recon, start = stacked(), 0
        for model, ws in zip(models, WIDTHS, strict=True):
            alone = model()
            assert recon[start : start + len(ws)].abs().max() > 0.1  # (not trivially equal)
            for k, w in enumerate(ws):
                if batched:
                    torch.testing.assert_close(recon[start + k, :, :w], alone[k, :, :w], rtol=0, atol=1e-5)
                else:
                    assert torch.equal(recon[start + k, :, :w], alone[k, :, :w])
                assert not recon[start + k, :, max(ws) :].any()  # zero past the set's width
            start += len(ws)


@pytest.mark.parametrize("batched", [False, True], ids=["per-set", "batched"])
def test_each_sets_networks_get_the_gradient_of_its_own_loss(batched):
    models, targets, masks = _models()
    stacked = StackedLatents(models, WIDTHS, batched=batched).eval()
    stacked.set_losses(_joined(stacked, targets)).sum().backward()
    for k, (model, target, mask) in enumerate(zip(models, targets, masks, strict=True)):
        model.loss(target, mask).backward()
        for name, p in model.weights().items():
            torch.testing.assert_close(
                stacked.stacked[name.replace(".", "__")].grad[k], p.grad, rtol=1e-4, atol=1e-6
            )


def test_unstack_gives_each_model_its_own_weights_and_latents():
    models, _, _ = _models()
    originals = [{n: p.detach().clone() for n, p in m.state_dict().items()} for m in models]
    stacked = StackedLatents(models, WIDTHS)
    with torch.no_grad():
        for p in stacked.parameters():
            p.mul_(2)
    stacked.unstack(models)
    for model, before in zip(models, originals, strict=True):
        assert model.state_dict().keys() == before.keys()
        for name, value in model.state_dict().items():  # the synthesis, the entropy model, the latents
            assert torch.equal(value, 2 * before[name]), name


def test_only_alike_latent_codecs_stack():
    def codec(**config):
        return LatentCodec(LatentConfig(**config), n_images=2, height=16, width=20)

    assert can_stack([codec(lam=1e-3), codec(lam=2e-3)])  # λ only weighs the rate
    assert not can_stack([codec(), codec(synthesis=8)])
    assert not can_stack([codec(entropy="gru"), codec(entropy="gru")])
    assert not can_stack([codec(cross=True), codec(cross=True)])
    with pytest.raises(ValueError, match="stack"):
        StackedLatents([codec(), codec(grids=2)], [[20, 20], [20, 20]])
