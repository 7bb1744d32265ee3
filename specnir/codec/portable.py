"""Probability tables that every machine computes bit for bit: the entropy coder's side of version 2.

A range decoder decodes correctly only if it sees exactly the encoder's probabilities. ``exp`` and ``log``
come from each platform's maths library and may differ in the last bit; the four basic IEEE operations are
correctly rounded everywhere. So the tables here are built from + − × ÷ alone (:func:`portable_exp`) and
turned into integer frequencies before the coder sees them: a discretised Laplace of a given scale, over an
integer range, for a mean at a given fraction of a step. Both the weights and the latent codec's latents
are coded with them (constriction's ``Categorical`` with probabilities ``frequency / 2^precision``, exact
in float64).
"""

from __future__ import annotations

import constriction
import numpy as np

LN2 = 0.6931471805599453  # a literal: parsed to the same float64 everywhere


def portable_exp(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` from + − × ÷ only: ``x / 2^16`` through a degree-10 Taylor polynomial, then squared 16
    times; relative error about 1e−11 for |x| ≤ 700 (clamped there)."""
    y = np.clip(np.asarray(x, np.float64), -700.0, 700.0) / 65536.0
    result = np.ones_like(y)
    for k in range(10, 0, -1):  # Horner: 1 + y(1 + y/2(1 + y/3(…)))
        result = 1.0 + result * y / k
    for _ in range(16):
        result = result * result
    return result


def power_of_two(x: np.ndarray) -> np.ndarray:
    """``2^x`` through :func:`portable_exp`."""
    return portable_exp(np.asarray(x, np.float64) * LN2)


def laplace_frequencies(
    lo: int, hi: int, fractions: np.ndarray, scales: np.ndarray, *, precision: int
) -> np.ndarray:
    """Integer frequencies ``(R, S, hi − lo + 1)`` summing to ``2^precision``, at least 1 each, of the
    integers ``lo..hi`` under a Laplace of mean ``fractions[r]`` (in steps) and scale ``scales[s]``; the end
    symbols take the tails. The largest frequency takes what rounding leaves over."""
    n = hi - lo + 1
    if not 0 < n < 1 << precision:
        raise ValueError(f"{n} symbols do not fit {precision}-bit frequencies")
    edges = np.arange(lo, hi + 2)[None, None, :] - 0.5 - np.asarray(fractions, np.float64)[:, None, None]
    tail = 0.5 * portable_exp(-np.abs(edges) / np.asarray(scales, np.float64)[None, :, None])
    cdf = np.where(edges < 0, tail, 1.0 - tail)  # P(X ≤ edge)
    cdf[..., 0], cdf[..., -1] = 0.0, 1.0
    freq = np.floor(np.diff(cdf, axis=-1) * ((1 << precision) - n)).astype(np.int64) + 1
    top = np.argmax(freq, axis=-1)[..., None]
    left = (1 << precision) - freq.sum(-1, keepdims=True)
    np.put_along_axis(freq, top, np.take_along_axis(freq, top, -1) + left, -1)
    return freq


def categorical():
    """The coder's model family: one categorical distribution per symbol."""
    return constriction.stream.model.Categorical(perfect=False)


def probabilities(freq: np.ndarray, precision: int) -> np.ndarray:
    """Frequencies as the float64 probabilities the coder takes (exact: a power-of-two denominator)."""
    return freq / float(1 << precision)
