"""The latent codec's entropy path in integers: every machine decodes the same latents.

The entropy model that training fits (:class:`~specnir.models.latent.EntropyMLP`, float) becomes, once its
weights are on their power-of-two grids, an **integer MLP**: weights as fixed-point integers with
:data:`WEIGHT_BITS` fractional bits, activations with :data:`ACT_BITS`, products summed in int64 and
shifted back (floor) after each layer, everything clipped to bounds that make overflow impossible. Its two
outputs become the coder's discrete parameters: the mean rounded to 1/16 (:data:`MEAN_STEPS`) and the
log-scale to one of :data:`N_SCALES` levels. Each (mean fraction, scale level) pair has a fixed table of
integer frequencies over the symbols ``d = y − floor(mean)`` in ``[−A, A]``
(:mod:`specnir.codec.portable`: the same on every machine).
``A`` (per grid) is the largest ``|d|`` of the set, stored in the header.

Order: grid by grid, then along anti-diagonal **wavefronts** ``t = 3x + (h − 1 − f)``: the context of latent
``(f, x)`` (columns x−1, x−2 and the bins below in column x, :data:`~specnir.models.latent.PAST` and
``BELOW``) always lies on earlier wavefronts, so the decoder decodes a whole wavefront of every image in one
vectorised call. Images in order within a wavefront; latent columns in an image's padding are not coded.
"""

from __future__ import annotations

import numpy as np
import torch

from specnir.codec.portable import categorical, laplace_frequencies, portable_exp, probabilities
from specnir.errors import SpecnirError
from specnir.models.latent import BELOW, PAST, LatentCodec

WEIGHT_BITS = 16  # fractional bits of the integer MLP's weights
ACT_BITS = 12  # fractional bits of its activations
WEIGHT_LIMIT = 1 << 24  # |weight| < 256 in fixed point
ACT_LIMIT = 1 << 24  # |activation| < 4096 in fixed point (then every dot product fits in 53 bits)
MEAN_STEPS = 16  # the mean is rounded to 1/16 of a latent step
# Log-scale levels: LOG_LOW/4096 = ln 0.02, N_SCALES steps of STEP/4096 ≈ 0.144 up to ln 200 (integers:
# no platform's log decides a level).
LOG_LOW, LOG_STEP, N_SCALES = -16024, 589, 64
LATENT_PRECISION = 16  # every table's frequencies sum to 2^16; each symbol gets at least 1
MAX_ALPHABET = 255  # A: largest |latent − floor(mean)| a file may declare
OFFSETS = PAST + BELOW  # the context, in the entropy model's input order


def scale_of_level(levels: np.ndarray) -> np.ndarray:
    """The Laplace scale of each log-scale level (its interval's centre)."""
    return portable_exp((LOG_LOW + (np.asarray(levels) + 0.5) * LOG_STEP) / 4096.0)


def latent_tables(alphabet: int) -> np.ndarray:
    """Frequencies ``(MEAN_STEPS, N_SCALES, 2A + 1)`` of ``d = y − floor(mean)`` in ``[−A, A]`` for a mean
    ``r / MEAN_STEPS`` above ``floor(mean)`` and each scale level."""
    fractions = np.arange(MEAN_STEPS) / MEAN_STEPS
    return laplace_frequencies(
        -alphabet, alphabet, fractions, scale_of_level(np.arange(N_SCALES)), precision=LATENT_PRECISION
    )


def _fixed(values: torch.Tensor, bits: int, limit: int) -> np.ndarray:
    """``floor(values · 2^bits)`` as int64 in ``[−limit, limit]`` (exact for weights on grids of step
    ≥ 2^−bits)."""
    return np.clip(np.floor(values.detach().double().numpy() * 2.0**bits), -limit, limit).astype(np.int64)


class IntegerEntropyModel:
    """The fitted :class:`~specnir.models.latent.EntropyMLP` in fixed point (see the module)."""

    def __init__(self, model: LatentCodec) -> None:
        config = model.config
        if config.entropy != "mlp" or config.cross:
            raise SpecnirError("the latent file codes with the causal MLP entropy model only (no cross)")
        linear = [m for m in model.entropy.net if isinstance(m, torch.nn.Linear)]
        self.layers = [
            (
                _fixed(m.weight, WEIGHT_BITS, WEIGHT_LIMIT),
                _fixed(m.bias, WEIGHT_BITS + ACT_BITS, WEIGHT_LIMIT << ACT_BITS),  # |bias| < 256
            )
            for m in linear
        ]
        self.n_grids = config.grids

    def __call__(self, near: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded neighbours ``(P, len(OFFSETS))`` int64 of latents of grid ``grid`` → the coder's
        ``(mean in 1/16, scale level)``, each ``(P,)`` int64."""
        code = np.zeros((len(near), self.n_grids), np.int64)
        code[:, grid] = 1
        act = np.clip(np.concatenate([near, code], 1) << ACT_BITS, -ACT_LIMIT, ACT_LIMIT)
        for i, (weight, bias) in enumerate(self.layers):
            total = act @ weight.T + bias  # units of 2^−(WEIGHT_BITS + ACT_BITS); |total| < 2^53
            act = np.clip(total >> WEIGHT_BITS, -ACT_LIMIT, ACT_LIMIT)
            if i < len(self.layers) - 1:
                act = np.maximum(act, 0)
        shift = ACT_BITS - 4  # MEAN_STEPS = 2^4
        mean = (act[:, 0] + (1 << (shift - 1))) >> shift
        level = np.clip((act[:, 1] - LOG_LOW) // LOG_STEP, 0, N_SCALES - 1)
        return mean, level


class GridOrder:
    """The coded latents of one grid in decoding order: wavefronts, images in order within each."""

    def __init__(self, shape: tuple[int, int, int], columns: list[int]) -> None:
        n, h, w = shape
        k, f, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
        coded = x < np.asarray(columns)[:, None, None]
        k, f, x = k[coded], f[coded], x[coded]
        t = 3 * x + (h - 1 - f)
        order = np.lexsort((k, t))  # by wavefront, then image (then row: a wavefront has one per column)
        self.k, self.f, self.x, t = k[order], f[order], x[order], t[order]
        self.starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1], True])
        self.shape = shape

    def context(self, padded: np.ndarray, sel: slice) -> np.ndarray:
        """The neighbours of the latents ``sel`` from ``padded`` ``(N, h + 6, w + 2)`` (3 rows of zeros
        above and below, 2 columns before): ``(P, len(OFFSETS))``."""
        k, f, x = self.k[sel], self.f[sel], self.x[sel]
        return np.stack([padded[k, 3 + f + df, 2 + x + dx] for df, dx in OFFSETS], 1)

    def wavefronts(self):
        return (slice(a, b) for a, b in zip(self.starts[:-1], self.starts[1:], strict=True))


def coded_column_counts(model: LatentCodec) -> list[list[int]]:
    """Per grid, the latent columns of each image that are coded (those not wholly in its padding: the
    model's column masks, set by :meth:`~specnir.models.latent.LatentCodec.set_widths`)."""
    return [[int(n) for n in mask.sum(-1).reshape(-1)] for mask in model.column_masks]


def _probabilities(tables: np.ndarray, mean: np.ndarray, level: np.ndarray) -> np.ndarray:
    return probabilities(tables[mean % MEAN_STEPS, level], LATENT_PRECISION)


def encode_latents(model: LatentCodec, widths: list[int], stream) -> tuple[list[int], list[float]]:
    """Code the model's rounded latents (images ``widths`` wide) onto ``stream`` (a range encoder); returns
    each grid's alphabet ``A`` and its coded bits."""
    model.set_widths(widths)
    entropy = IntegerEntropyModel(model)
    alphabets, bits = [], []
    for g, (latent, columns) in enumerate(zip(model.latents, coded_column_counts(model), strict=True)):
        y = (torch.round(latent.detach()) * model.column_masks[g]).to(torch.int64).numpy()  # padding: 0
        order = GridOrder(y.shape, columns)
        padded = np.zeros((y.shape[0], y.shape[1] + 6, y.shape[2] + 2), np.int64)
        padded[:, 3:-3, 2:] = y
        mean, level = entropy(order.context(padded, slice(None)), g)
        d = y[order.k, order.f, order.x] - (mean >> 4)
        alphabet = max(int(np.abs(d).max(initial=0)), 1)  # (the coder needs two symbols or more)
        if alphabet > MAX_ALPHABET:
            raise SpecnirError(
                f"a latent lies {alphabet} steps from its predicted mean (at most {MAX_ALPHABET})"
            )
        before = stream.num_bits()
        if d.size:
            tables = latent_tables(alphabet)
            stream.encode((d + alphabet).astype(np.int32), categorical(), _probabilities(tables, mean, level))
        alphabets.append(alphabet)
        bits.append(float(stream.num_bits() - before))
    return alphabets, bits


def decode_latents(model: LatentCodec, widths: list[int], alphabets: list[int], stream) -> list[torch.Tensor]:
    """The rounded latents ``(N, h_g, w_g)`` per grid that :func:`encode_latents` coded, read from
    ``stream`` (a range decoder)."""
    model.set_widths(widths)
    entropy = IntegerEntropyModel(model)
    grids = []
    for g, (latent, columns) in enumerate(zip(model.latents, coded_column_counts(model), strict=True)):
        n, h, w = latent.shape
        order, alphabet = GridOrder((n, h, w), columns), alphabets[g]
        tables = latent_tables(alphabet)
        padded = np.zeros((n, h + 6, w + 2), np.int64)
        for sel in order.wavefronts():
            mean, level = entropy(order.context(padded, sel), g)
            d = stream.decode(categorical(), _probabilities(tables, mean, level))
            padded[order.k[sel], 3 + order.f[sel], 2 + order.x[sel]] = (
                np.asarray(d, np.int64) - alphabet + (mean >> 4)
            )
        grids.append(torch.from_numpy(padded[:, 3:-3, 2:].astype(np.float32)))
    return grids
