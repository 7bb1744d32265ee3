"""Where a set's networks come from: its own, fitted and stored in its file, or a shared decoder's.

The encoder (:mod:`specnir.codec.encode`) is given one of these objects and asks it, at each step, what
the source of the networks changes: before the fit (:meth:`Networks.prepare`), at quantisation, when the
weights are written, and which file to keep. A new source (a decoder shipped with specnir) is one more
class here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from specnir.codec.decoders import SharedDecoder
from specnir.codec.modes import MODES, CodingMode
from specnir.codec.nnquant import Quantized, loss_on, quantize
from specnir.codec.report import Compressed, rd_cost
from specnir.codec.weights import encode_weights, tensor_entries
from specnir.data import ImageSet
from specnir.fit_config import FitConfig
from specnir.models import SpectrogramModel

# A set whose loss with a shared decoder is above this many times the mean loss of the sets the decoder was
# fitted on is also fitted with its own networks (the better file is kept): see DecoderNetworks.keep.
# Measured on asterisk-en at the default steps: its speech sets 1.00-1.05, its two sets of low-level noise
# 1.41 and 1.50.
OWN_NETWORKS_ABOVE = 1.25
# How far past its references' λs (a factor) a trained decoder's reference loss is extrapolated.
REFERENCE_REACH = 4.0
# The share of the mode's steps that a set's latents take against a decoder trained on many voices. On
# audio/ against the shipped decoders, with grids at 1/2 to 1/8 of the image (qualities 1-4): a quarter
# (375) gives quality 4 4,107 bytes at 31.03 dB; a half 4,223 bytes at 31.47 dB in 1.4 times the time
# (along its curve 31.03 dB takes ~3,560 bytes, 13 % fewer); three quarters 4,319 bytes at 31.65 dB in 2.3
# times. With a full-resolution grid (qualities 5-8): half gives quality 6 9,880 bytes at 35.58 dB, all of
# them 9,856 bytes at 35.92 dB (on the held-out alsa clips a quarter 6,112 bytes at 34.65 dB, half 6,004 at
# 35.22).
SHIPPED_STEPS = {"coarse": 0.5, "full": 1.0}


class Networks:
    """The set's own networks: fitted from the mode's initial weights, quantised, stored in its file."""

    decoder: SharedDecoder | None = None  # the shared decoder a file names (None: the file holds them)
    shared_networks = False  # the sets of one fit use one synthesis and one entropy model

    def check(self, coding: CodingMode) -> None:
        """Refuse a mode these networks cannot serve (before any input is read)."""

    def prepare(self, model: SpectrogramModel) -> None:
        """Before the fit: the model starts from these networks' weights."""

    def fit_steps(self, coding: CodingMode, quality: int) -> int:
        """The optimiser steps of a set's fit: the mode's for the quality."""
        return coding.fit_steps(quality)

    def quantize(
        self, coding: CodingMode, model: SpectrogramModel, data: ImageSet, fit_config: FitConfig
    ) -> Quantized:
        """Put the fitted model's weights on their grids (:func:`specnir.codec.nnquant.quantize`)."""
        return quantize(model, data, fit_config, tolerances=coding.tolerances)

    def write(self, model: SpectrogramModel, exponents: dict[str, int], header: dict, stream) -> None:
        """The file's weights: their header entries, and their integers coded onto ``stream``."""
        header["tensors"], ints = tensor_entries(model, exponents)
        encode_weights(stream, header["tensors"], ints)

    def keep(self, result: Compressed, refit: Callable[[], Compressed]) -> Compressed:
        """The file to keep, given one coded with these networks and a way to code it with the set's own."""
        return result


OWN_NETWORKS = Networks()


class DecoderNetworks(Networks):
    """A shared decoder's networks, frozen: only the latents are fitted and the file names the decoder."""

    shared_networks = True

    def __init__(self, decoder: SharedDecoder) -> None:
        self.decoder = decoder

    def check(self, coding):
        coding.check_shared_decoder()

    def prepare(self, model):
        self.decoder.load_into(model)

    def fit_steps(self, coding, quality):
        """A decoder trained on many voices (:mod:`specnir.codec.decoder_train`) has learnt its networks
        for latents fitted anew: :data:`SHIPPED_STEPS` of the mode's steps reach their quality."""
        steps = coding.fit_steps(quality)
        if "qualities" not in self.decoder.header["fit"]:
            return steps
        full = self.decoder.header["model_config"].get("first") == 0  # a grid at the image's resolution
        return max(round(steps * SHIPPED_STEPS["full" if full else "coarse"]), 1)

    def quantize(self, coding, model, data, fit_config):
        loss = loss_on(model, data, fit_config)()  # (the decoder's weights are on their grids already)
        theirs = dataclasses.replace(fit_config, distortion=self.decoder.distortion)
        return Quantized({}, loss, loss, loss_on(model, data, theirs)() if theirs != fit_config else loss)

    def write(self, model, exponents, header, stream):
        header["tensors"], header["decoder_id"] = [], self.decoder.id

    def keep(self, result, refit):
        """A set that the decoder serves much worse than the sets it was fitted on (its loss above
        :data:`OWN_NETWORKS_ABOVE` times theirs: noise in a speech corpus) is coded with its own networks
        too, and the file whose rate–distortion cost (MSE + λ · all its bits per pixel) is lower is kept.
        The report gains ``decoder_loss_ratio`` (the set's loss with the decoder over the decoder's),
        ``both_fitted`` and, if both were, the two fits' seconds. A set coded at another λ than the
        decoder's references (:meth:`_reference`) has no ratio to go by: it is coded both ways. The set's loss
        is measured with the references' distortion (:data:`~specnir.models.loss.DISTORTIONS`) whatever its
        fit's."""
        header = result.decoded.header
        if self.decoder.reference_loss(header["quality"]) is None:
            return result
        reference = self._reference(header["quality"], header["model_config"]["lam"])
        ratio = math.inf if reference is None else result.report["decoder_loss"] / reference
        result.report.update(decoder_loss_ratio=ratio, both_fitted=ratio > OWN_NETWORKS_ABOVE)
        if ratio <= OWN_NETWORKS_ABOVE:
            return result
        own = refit()
        kept = own if rd_cost(own) < rd_cost(result) else result
        seconds = own.report["fit_seconds"] + result.report["fit_seconds"]
        ratio = ratio if math.isfinite(ratio) else None
        kept.report.update(decoder_loss_ratio=ratio, both_fitted=True, fit_seconds=seconds)
        return kept

    def _reference(self, quality: int, lam: float) -> float | None:
        """The loss a set of speech reaches against the decoder at ``lam``: a corpus decoder's reference
        at the λ it was fitted with (None at another); a trained decoder's
        (:mod:`~specnir.codec.decoder_train`, measured at each quality's own λ) at ``lam`` itself, or
        interpolated on log loss against log λ between the two nearest (extrapolated up to
        :data:`REFERENCE_REACH` times past the ends; None farther)."""
        if "qualities" not in self.decoder.header["fit"]:
            return (
                self.decoder.reference_loss(quality)
                if lam == self.decoder.header["model_config"]["lam"]
                else None
            )
        mode = MODES[self.decoder.header["mode"]]
        by_lam = {
            mode.quality_config(q)["lam"]: loss
            for q in self.decoder.header["fit"]["qualities"]
            if (loss := self.decoder.reference_loss(q)) is not None
        }
        if lam in by_lam:
            return by_lam[lam]
        known = sorted((math.log(q_lam), math.log(loss)) for q_lam, loss in by_lam.items())
        x, reach = math.log(lam), math.log(REFERENCE_REACH)
        if len(known) < 2 or not known[0][0] - reach <= x <= known[-1][0] + reach:
            return None
        return math.exp(piecewise_linear(known, x))


def piecewise_linear(points: list[tuple[float, float]], x: float) -> float:
    """``y`` at ``x`` on the line through the two of ``points`` (at least two, sorted by ``x``) around it,
    or through the end pair beyond them."""
    k = min(max(sum(px < x for px, _ in points), 1), len(points) - 1)
    (x0, y0), (x1, y1) = points[k - 1], points[k]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def networks_for(decoder: SharedDecoder | None) -> Networks:
    """The set's own networks, or the given shared decoder's."""
    return OWN_NETWORKS if decoder is None else DecoderNetworks(decoder)
