"""Weight quantisation and weight coding, without any fit."""

import constriction
import numpy as np
import pytest
import torch
from torch import nn

from specnir.codec.nnquant import (
    choose_exponents,
    freeze_quantized,
    quantization_aware,
    rd_exponents,
    weight_bits,
)
from specnir.codec.weights import (
    decode_weights,
    encode_weights,
    from_integers,
    round_to_step,
    tensor_entries,
    to_integers,
)


def test_integers_round_trip_exactly():
    values = torch.randn(1000) * 3
    for exponent in (0, 4, 12, 20):
        ints = to_integers(values, exponent)
        back = from_integers(ints, exponent)
        assert torch.equal(to_integers(back, exponent), ints)  # on the grid: exact both ways
        assert (back.double() - values.double()).abs().max() <= 2.0 ** (-exponent - 1) + 1e-12


class Toy(nn.Sequential):
    def weights(self) -> dict:
        return dict(self.named_parameters())


def _toy():
    torch.manual_seed(0)
    model = Toy(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(64, 6)
    y = torch.randn(64, 1)

    def loss() -> float:
        with torch.no_grad():
            return float(((model(x) - y) ** 2).mean())

    return model, loss


def test_choose_exponents_takes_the_coarsest_step_within_the_tolerance():
    model, loss = _toy()
    base, tolerance = loss(), 0.02
    limit = base + tolerance / 4 * base  # four tensors share the tolerance
    exponents = choose_exponents(model, loss, tolerance=tolerance)
    assert set(exponents) == {name for name, _ in model.named_parameters()}
    assert loss() == base  # the model is left as it was
    for name, param in model.named_parameters():
        original = param.detach().clone()
        for exponent, ok in ((exponents[name], True), (exponents[name] - 1, False)):
            if exponent < 0:
                continue
            with torch.no_grad():
                param.copy_(round_to_step(original, exponent))
            assert (loss() <= limit) == ok, (name, exponent)
        with torch.no_grad():
            param.copy_(original)


def test_straight_through_rounding_and_freezing():
    model, loss = _toy()
    exponents = {name: 3 for name, _ in model.named_parameters()}
    quantization_aware(model, exponents)
    weight = model[0].weight  # now read through the rounding
    assert torch.equal(weight, round_to_step(weight, 3))
    x = torch.randn(5, 6)
    model[0](x).sum().backward()
    original = model[0].parametrizations.weight.original
    # the gradient passes as if rounding were the identity: d/dW sum(W x + b) = sum over rows of x
    np.testing.assert_allclose(original.grad.numpy(), x.sum(0).expand(8, 6).numpy(), rtol=1e-6)
    freeze_quantized(model, exponents)
    for name, param in model.named_parameters():
        assert torch.equal(param, round_to_step(param, 3)), name
        assert "parametrizations" not in name


def test_weights_code_and_decode_exactly():
    model, _ = _toy()
    model.register_parameter("constant", nn.Parameter(torch.full((3,), 0.5)))
    model.register_parameter("empty", nn.Parameter(torch.zeros(4, 0)))
    exponents = {name: 6 for name, _ in model.named_parameters()}
    freeze_quantized(model, exponents)
    entries, ints = tensor_entries(model, exponents)
    assert [e["name"] for e in entries] == [name for name, _ in model.named_parameters()]
    stream = constriction.stream.queue.RangeEncoder()
    encode_weights(stream, entries, ints)
    words = stream.get_compressed()
    assert 0 < stream.num_bits() < 8 * sum(i.size for i in ints)  # fewer than 8 bits a weight
    state = decode_weights(constriction.stream.queue.RangeDecoder(words), entries)
    for name, param in model.named_parameters():
        assert torch.equal(state[name], param.detach()), name


@pytest.mark.parametrize("exponent", [0, 10])
def test_dequantised_weights_are_exact_in_float32(exponent):
    ints = torch.arange(-(2**20), 2**20, 4099)
    assert torch.equal(from_integers(ints, exponent).double() * 2.0**exponent, ints.double())


def test_rd_exponents_trade_bits_for_loss():
    """The larger λ, the coarser the steps: fewer weight bits, more loss; λ = 0 keeps the finest."""
    results = []
    for lam in (0.0, 0.1, 3.0):
        model, loss = _toy()
        exponents = rd_exponents(model, loss, lam=lam, pixels=1000)
        bits = sum(
            weight_bits(to_integers(p, exponents[n]).reshape(-1).numpy()) for n, p in model.named_parameters()
        )
        for name, param in model.named_parameters():  # left on the chosen grids
            assert torch.equal(param, round_to_step(param, exponents[name]))
        results.append((bits, loss()))
    assert results[0][0] > results[1][0] > results[2][0]
    assert results[0][1] <= results[1][1] <= results[2][1]
