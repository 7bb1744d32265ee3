"""The predictor's formulas have one home: the parallel training path and the sequential coder agree."""

import numpy as np
import pytest
import torch

from specnir.codec.residual import one_thread, predictive_loop
from specnir.models.predictor import PredictiveGRU, PredictorConfig, grey_level, scale_entry


@pytest.mark.parametrize("max_error", [0, 2])
def test_parallel_path_gives_the_sequential_coders_numbers(max_error):
    """On random weights and random images, the parallel path run in float64 on the decoded image gives
    the sequential decoder's rounded predictions and scale indices, identically."""
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    n, h, w, widths = 3, 12, 9, [9, 7, 9]
    model = PredictiveGRU(PredictorConfig(max_error=max_error, hidden=6), n_images=n, height=h, width=w)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.4)
        model.head.bias[0] = 0.5  # predictions inside [0, 1]
        model.head.bias[1] = 1.0  # scales of a few grey levels
    truth = rng.integers(0, 256, (n, h, w))  # bin 0 lowest
    delta, seen = 2 * max_error + 1, {}

    def coder(x, f, active, p):  # codes the truth, as the encoder does, and records
        seen[x, f] = p.grey.copy(), p.index.copy(), active.copy()
        return np.where(active, (truth[:, f, x] - p.rho + max_error) // delta - p.t0, 0)

    decoded = predictive_loop(model, widths, coder)[:, ::-1]  # uint8, bin 0 lowest
    for k, width in enumerate(widths):
        assert np.abs(decoded[k, :, :width].astype(int) - truth[k, :, :width]).max() <= max_error

    values = torch.from_numpy(decoded.astype(np.float64) / 255)
    with torch.no_grad(), one_thread():
        parallel = model.double()
        mean, log_b = parallel.predict(parallel.coefficients(values), values)
    grey, index = grey_level(mean).numpy(), scale_entry(log_b).numpy()
    spread = set()
    for (x, f), (g, i, active) in seen.items():
        np.testing.assert_array_equal(grey[active, f, x], g[active])  # identical, not allclose
        np.testing.assert_array_equal(index[active, f, x], i[active])
        spread.update(i[active].tolist())
    assert len(spread) > 5  # the test exercises many scales, not one clamped value
