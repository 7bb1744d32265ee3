"""Rate control: ``compress --kbps K`` or ``--bytes N``, a file of the size asked for within ±5 %.

The latent mode's size is set by λ, and the size a λ gives depends on the clips, so the encoder searches
λ: a first guess from :data:`RATE_MODEL` (the kbps of each quality's λ, measured on speech), then secant
steps on log bytes against log λ through the fits made so far (the model's slope until there are two),
until a file lands within :data:`AIM` of the target (at most :data:`MAX_FITS` fits; once fits lie on both
sides of it, between the nearest two). Every fit is a whole ``compress`` of the set at that λ and the
quality whose networks it uses, so the file kept is what ``compress --quality Q --lambda L`` writes.

The networks' shape follows the target: below :data:`FULL_GRID_BPP` bits per pixel those of qualities
1-4, above it those of 5-8 (a full-resolution grid; also where 1-4's cannot reach the target), each with
the decoder specnir ships for them; a quality's decoder serves λs around its own
(:meth:`~specnir.codec.networks.DecoderNetworks.keep` measures them against references interpolated
between its qualities). ``kbps`` counts the whole file over the clips' total duration.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

from specnir.codec.decoders import SharedDecoder
from specnir.codec.encode import SHIPPED, Settings, compress_data, empty_size
from specnir.codec.modes import MODES
from specnir.codec.networks import piecewise_linear
from specnir.codec.report import Compressed
from specnir.data import ImageSet, load_image_set
from specnir.errors import SpecnirError
from specnir.spectrogram import SpecParams

TOLERANCE = 0.05  # what --kbps and --bytes promise: the file within ±5 % of the target
AIM = 0.03  # the search stops at a file this close (a margin inside the tolerance)
MAX_FITS = 8
SATURATED = 0.05  # a slope of log bytes against log λ this flat: the networks spend no more
# The networks of qualities 5-8 (a full-resolution grid) from this many bits per pixel: on the held-out alsa
# clips those of 1-4 stop at ~0.32 bpp (30.69 dB at λ 5e-4, 30.64 at 1e-3), where 5-8's reach 32.68 dB at
# 0.48 bpp and, extrapolated, ~30.4 dB at 0.32.
FULL_GRID_BPP = 0.35
# kbps of the default command at each quality's λ on audio/ (docs/rd.json): only the first guess.
RATE_MODEL = {1: 2.80, 2: 3.41, 3: 4.07, 4: 4.66, 5: 8.75, 6: 10.87, 7: 13.05, 8: 15.67}
LAM_RANGE = (2e-5, 5e-2)  # the λs searched


@dataclasses.dataclass(frozen=True)
class RateTarget:
    """A size asked for: ``kbps`` (over the clips' duration) or ``size`` (bytes), exactly one."""

    kbps: float | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if (self.kbps is None) == (self.size is None):
            raise ValueError("a rate target is kbps or bytes, one of them")
        if (self.kbps is not None and not self.kbps > 0) or (self.size is not None and self.size < 1):
            raise SpecnirError(
                f"a target must be above 0, not {self.kbps if self.size is None else self.size}"
            )

    def bytes_for(self, data: ImageSet) -> float:
        """The target in bytes for the clips of ``data``."""
        return self.size if self.size is not None else self.kbps * 1000 * seconds_of(data) / 8

    def describe(self, wanted: float | None = None) -> str:
        """``8 kbps`` or ``900 bytes``; with ``wanted`` (its bytes): ``8 kbps (7,250 bytes)``."""
        if self.kbps is None:
            return f"{self.size:,} bytes"
        return f"{self.kbps:g} kbps" + ("" if wanted is None else f" ({wanted:,.0f} bytes)")


def seconds_of(data: ImageSet) -> float:
    """The clips' total duration: their recordings' lengths, or their columns × hop where unknown."""
    p = data.params
    return sum((s.length or s.db.shape[1] * p.hop_length) / p.sample_rate for s in data.specs)


def compress_at_rate(
    inputs: list[str | os.PathLike],
    target: RateTarget,
    *,
    steps: int | None = None,
    distortion: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    params: SpecParams | None = None,
    progress: bool = True,
    decoder: SharedDecoder | str | None = SHIPPED,
) -> Compressed:
    """Compress ``inputs`` in the latent mode to a file within :data:`TOLERANCE` of ``target`` (see the
    module); the report gains ``rate_control`` (the target, every fit's λ and bytes, the seconds). A
    target the mode cannot reach is refused (:class:`SpecnirError`)."""
    data = load_image_set(inputs, params=params or SpecParams())
    return compress_data_at_rate(
        data,
        target,
        steps=steps,
        distortion=distortion,
        seed=seed,
        device=device,
        progress=progress,
        decoder=decoder,
    )


def compress_data_at_rate(
    data: ImageSet,
    target: RateTarget,
    *,
    steps: int | None = None,
    distortion: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    decoder: SharedDecoder | str | None = SHIPPED,
) -> Compressed:
    """:func:`compress_at_rate` of a set already loaded (``decoder``: :data:`SHIPPED` or None, the set's
    own networks; a corpus's decoder serves one λ, not a search over them)."""
    if decoder not in (SHIPPED, None):
        raise SpecnirError(
            "a rate target searches λ, which a corpus's decoder (fitted at one) does not serve"
        )
    wanted = target.bytes_for(data)
    pixels = sum(data.widths) * data.target.shape[1]
    if wanted >= pixels:
        raise SpecnirError(
            f"{target.describe()} is at least the 8-bit pixels uncompressed ({pixels:,} bytes)"
        )
    families = [[q for q in MODES["latent"].SETTINGS if _full_grid(q) == full] for full in (False, True)]
    if wanted * 8 / pixels >= FULL_GRID_BPP:
        families = families[1:]
    seconds = seconds_of(data)
    kbps = wanted * 8 / seconds / 1000
    search = _Search(
        data, wanted, steps, distortion, dict(seed=seed, device=device, progress=progress, decoder=decoder)
    )
    least = empty_size(data, search.settings(_first_guess(kbps, families[0]), families[0]), decoder=decoder)
    if wanted < least * (1 - TOLERANCE):
        raise SpecnirError(
            f"{target.describe(wanted)} is below what an empty file of these clips costs"
            f" ({least:,} bytes: header, names and zero latents)"
        )
    start = time.perf_counter()
    for qualities in families:  # (the next family only where these networks spend too little)
        if search.run(_first_guess(kbps, qualities), qualities) or search.most() >= wanted * (1 - TOLERANCE):
            break
    best = min(search.tried, key=lambda t: abs(t[1].report["bytes"] / wanted - 1))[1]
    best.report["rate_control"] = search.report(target, time.perf_counter() - start, best, seconds)
    if abs(best.report["bytes"] / wanted - 1) > TOLERANCE:
        raise SpecnirError(_missed(target, wanted, search.tried))
    return best


@dataclasses.dataclass
class _Search:
    """The fits of one rate search (every family's), in order: (λ, the file) each."""

    data: ImageSet
    wanted: float
    steps: int | None
    distortion: str | None
    options: dict  # compress_data's
    tried: list[tuple[float, Compressed]] = dataclasses.field(default_factory=list)

    def most(self) -> int:
        """The largest file so far."""
        return max(r.report["bytes"] for _, r in self.tried)

    def settings(self, lam: float, qualities: list[int]) -> Settings:
        """The latent mode at ``lam``, with the networks of the quality of ``qualities`` nearest it."""
        quality = min(qualities, key=lambda q: abs(math.log(_lam(q)) - math.log(lam)))
        return Settings(mode="latent", quality=quality, lam=lam, steps=self.steps, distortion=self.distortion)

    def report(self, target: RateTarget, elapsed: float, best: Compressed, seconds: float) -> dict:
        """The search for the report: the target, every fit's λ, quality and bytes, the seconds, the kbps."""
        return {
            "target": target.describe(),
            "target_bytes": round(self.wanted),
            "fits": [
                {"lambda": lm, "quality": r.decoded.header["quality"], "bytes": r.report["bytes"]}
                for lm, r in self.tried
            ],
            "seconds": round(elapsed, 1),
            "kbps": best.report["bytes"] * 8 / seconds / 1000,
        }

    def run(self, lam: float, qualities: list[int]) -> bool:
        """Fit from ``lam`` with the networks of ``qualities`` until a file lands within :data:`AIM`
        (True), the fits run out or λ cannot move (False)."""
        mine: list[tuple[float, Compressed]] = []
        while len(self.tried) < MAX_FITS:
            result = compress_data(self.data, self.settings(lam, qualities), **self.options)
            mine.append((lam, result))
            self.tried.append((lam, result))
            if abs(result.report["bytes"] / self.wanted - 1) <= AIM:
                return True
            lam = _next_lam(mine, self.wanted, qualities)
            if lam is None:
                return False
        return False


def _full_grid(quality: int) -> bool:
    return MODES["latent"].quality_config(quality).get("first") == 0


def _first_guess(kbps: float, qualities: list[int]) -> float:
    """λ for ``kbps`` from :data:`RATE_MODEL`, on log kbps against log λ (the end slopes beyond it)."""
    points = sorted((math.log(RATE_MODEL[q]), math.log(_lam(q))) for q in qualities)
    return _clamp(math.exp(piecewise_linear(points, math.log(kbps))))


def _next_lam(tried: list[tuple[float, Compressed]], wanted: float, qualities: list[int]) -> float | None:
    """The next λ, on log bytes against log λ: between the nearest fits on either side of the target once
    there are both; else a step from the nearest fit with the slope of the last two (the rate model's
    while they give none that falls). None when that λ was tried already (λ cannot move)."""
    points = [(math.log(lam), math.log(r.report["bytes"])) for lam, r in tried]
    y = math.log(wanted)
    over = [p for p in points if p[1] > y]  # too large: λ must rise
    under = [p for p in points if p[1] < y]
    if over and under:
        (x0, y0), (x1, y1) = min(over, key=lambda p: p[1]), max(under, key=lambda p: p[1])
        x = x0 + (x1 - x0) * (y - y0) / (y1 - y0)
    else:
        slope = _model_slope(qualities)
        if len(points) > 1 and points[-1][0] != points[-2][0]:
            measured = (points[-1][1] - points[-2][1]) / (points[-1][0] - points[-2][0])
            if measured > -SATURATED and under:
                return None  # a smaller λ buys these networks (nearly) no bytes: they spend no more
            slope = measured if measured < -SATURATED else slope  # (sizes fall as λ rises)
        x0, y0 = min(points, key=lambda p: abs(p[1] - y))
        x = x0 + (y - y0) / slope
    lam = _clamp(math.exp(x))
    return None if any(math.isclose(lam, t, rel_tol=1e-9) for t, _ in tried) else lam


def _model_slope(qualities: list[int]) -> float:
    """d log kbps / d log λ of :data:`RATE_MODEL` over ``qualities``."""
    lo, hi = qualities[0], qualities[-1]
    return (math.log(RATE_MODEL[hi]) - math.log(RATE_MODEL[lo])) / (math.log(_lam(hi)) - math.log(_lam(lo)))


def _lam(quality: int) -> float:
    return MODES["latent"].quality_config(quality)["lam"]


def _clamp(lam: float) -> float:
    return min(max(lam, LAM_RANGE[0]), LAM_RANGE[1])


def _missed(target: RateTarget, wanted: float, tried: list[tuple[float, Compressed]]) -> str:
    sizes = sorted(r.report["bytes"] for _, r in tried)
    if wanted < sizes[0] and any(lm == LAM_RANGE[1] for lm, _ in tried):
        return f"{target.describe(wanted)} is below the smallest file of these clips ({sizes[0]:,} bytes)"
    if wanted > sizes[-1]:
        return (
            f"{target.describe(wanted)} is above what the lossy mode spends on these clips (at most"
            f" {sizes[-1]:,} bytes); --quality 7 or 8 codes them near-lossless"
        )
    return (
        f"{target.describe(wanted)} not reached within ±{TOLERANCE:.0%} in {len(tried)} fits"
        f" (sizes {', '.join(f'{s:,}' for s in sizes)}); give --lambda instead"
    )
