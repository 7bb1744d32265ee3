"""Bjøntegaard delta rates: how many more or fewer bits one codec needs than another at equal PSNR.

Log-rate is interpolated against PSNR (monotone cubic) and averaged where both curves reach; the tables
are given between 30 and 45 dB and between 25 and 40 dB, against the best classical lossy codec.
"""

from __future__ import annotations

import math

BD_RANGE = (30.0, 45.0)
LOSSY_ANCHORS = ("jpegxl", "avif", "webp")


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]], lo: float, hi: float):
    """Bjøntegaard delta rate of ``test`` against ``anchor`` in percent (negative: fewer bits).

    Points are ``(bpp, psnr)``; log-rate is interpolated against PSNR (monotone cubic) and averaged over
    the overlap of both curves with ``[lo, hi]`` dB. ``None`` if they do not overlap by 0.5 dB.
    """
    from scipy.interpolate import PchipInterpolator

    def curve(points):
        pts = sorted((p, math.log(r)) for r, p in points if math.isfinite(p) and r > 0)
        keep = [pts[0]] if pts else []
        for p, lr in pts[1:]:  # strictly increasing PSNR, the lower rate for ties
            if p > keep[-1][0] + 1e-9:
                keep.append((p, lr))
        return keep

    a, t = curve(anchor), curve(test)
    if len(a) < 2 or len(t) < 2:
        return None
    low, high = max(lo, a[0][0], t[0][0]), min(hi, a[-1][0], t[-1][0])
    if high - low < 0.5:
        return None
    fa = PchipInterpolator([p for p, _ in a], [r for _, r in a])
    ft = PchipInterpolator([p for p, _ in t], [r for _, r in t])
    diff = (ft.integrate(low, high) - fa.integrate(low, high)) / (high - low)
    return 100 * (math.exp(diff) - 1)


def points(rows: list[dict], method: str, rate: str = "bpp") -> list[tuple[float, float]]:
    return [(r[rate], r["psnr"]) for r in rows if r["method"] == method and "bpp" in r]


def bd_table(rows: list[dict], lo: float = BD_RANGE[0], hi: float = BD_RANGE[1], rate: str = "bpp") -> dict:
    """BD-rate of every lossy method against the best of JPEG-XL, AVIF and WebP (the anchor is the one
    the other two lose to on average), between ``lo`` and ``hi`` dB; ``rate`` is ``bpp`` (files as
    written) or ``coded_bpp`` (without containers)."""
    anchors = [m for m in LOSSY_ANCHORS if len(points(rows, m, rate)) >= 2]
    if not anchors:
        return {}

    def bd(anchor: str, method: str):
        return bd_rate(points(rows, anchor, rate), points(rows, method, rate), lo, hi)

    def mean_bd(m):
        vals = [v for v in (bd(o, m) for o in anchors if o != m) if v is not None]
        return sum(vals) / len(vals) if vals else 0.0

    anchor = min(anchors, key=mean_bd)
    methods = sorted({r["method"] for r in rows if rate in r} - {anchor})
    table = {m: bd(anchor, m) for m in methods}
    return {"anchor": anchor, "range_db": [lo, hi], "rate": rate, "bd_rate_percent": table}


def bd_tables(rows: list[dict]) -> list[dict]:
    """The BD-rate tables the report gives: 30–45 and 25–40 dB, files as written and without containers."""
    return [
        bd_table(rows, lo, hi, rate) for lo, hi in (BD_RANGE, (25.0, 40.0)) for rate in ("bpp", "coded_bpp")
    ]
