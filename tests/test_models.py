import math

import pytest
import torch

from specnir.models import IMAGE_MODELS, MODELS, ColumnGRU, GRUConfig, Siren, SirenConfig, sized_config
from specnir.models.siren import siren_grid


def test_registry():
    assert set(MODELS) == {"siren", "gru", "latent", "predictor"}
    assert IMAGE_MODELS == ("siren", "gru", "latent")  # the predictor needs decoded pixels to predict from
    for name in IMAGE_MODELS:
        model = MODELS[name](MODELS[name].Config(), n_images=2, height=8, width=6)
        assert model().shape == (2, 8, 6)
    predictor = MODELS["predictor"](MODELS["predictor"].Config(), n_images=2, height=8, width=6)
    target = torch.rand(2, 8, 6)
    predictor.bind(target)
    assert predictor().shape == (2, 8, 6)
    assert predictor.loss(target, torch.ones(2, 1, 6)).ndim == 0


@pytest.mark.parametrize("arch", ["siren", "gru", "predictor", "latent"])
def test_sized_config_lands_near_the_target(arch):
    cls = MODELS[arch]
    for target in (1000, 4000):
        model = cls(sized_config(arch, target, (5, 16, 24)), n_images=5, height=16, width=24)
        assert abs(model.n_weights() - target) < 0.25 * target


def test_siren_coordinates_are_normalised_per_axis():
    grid = siren_grid(3, 10, 40, "index")
    assert grid.shape == (3, 10, 40, 3)
    t, f, k = grid[..., 0], grid[..., 1], grid[..., 2]
    assert t.min() == -1 and t.max() == 1 and f.min() == -1 and f.max() == 1
    assert torch.equal(k[:, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))
    tile = siren_grid(2, 4, 5, "tile")[..., 0]
    assert tile[0, 0, 0] == -1 and tile[1, 0, -1] == 1 and tile[0, 0, -1] < tile[1, 0, 0]


def test_siren_initialisation_bounds():
    cfg = SirenConfig(width=64, depth=3, w0=30.0)
    model = Siren(cfg, n_images=5, height=16, width=16)
    first, second = model.net[0].linear.weight, model.net[1].linear.weight
    assert first.abs().max() <= 1 / 3 and first.abs().max() > 0.9 / 3
    bound = math.sqrt(6 / 64) / 30
    assert second.abs().max() <= bound and second.abs().max() > 0.9 * bound


@pytest.mark.parametrize("multi", ["index", "tile", "heads"])
def test_siren_designs(multi):
    model = Siren(SirenConfig(width=16, depth=2, multi=multi), n_images=5, height=8, width=10)
    assert model().shape == (5, 8, 10)
    assert model.render_scaled(time_scale=2, freq_scale=1.5).shape == (5, 12, 20)


def test_gru_weights_do_not_grow_with_height():
    counts = {h: ColumnGRU(GRUConfig(), n_images=5, height=h, width=30).n_weights() for h in (16, 128, 513)}
    assert len(set(counts.values())) == 1


def test_gru_decodes_from_its_own_outputs():
    torch.manual_seed(0)
    model = ColumnGRU(GRUConfig(hidden=8), n_images=2, height=6, width=7)
    torch.nn.init.normal_(model.out.weight)
    free = model()
    target = torch.rand(2, 6, 7)
    forced = model.diagnostics(target)["teacher_forced"]
    assert forced.shape == free.shape
    assert torch.equal(forced[..., 0], free[..., 0])  # both start from the same silent column
    assert not torch.allclose(forced[..., 1:], free[..., 1:])
    # The free-running decode depends on nothing but the weights.
    assert torch.equal(free, model())
