"""``specnir bench rd``: rate and distortion of specnir and of the codecs users already have.

Every method codes the same 8-bit images (``round(255 · normalised)``, row 0 = highest frequency).
Classical codecs code each image alone through imagecodecs, as they must; specnir codes the whole set in
one ``.snir`` file. Bits per pixel = bytes × 8 / pixels of all images; PSNR over all pixels together.
BD-rates (Bjøntegaard, log-rate against PSNR, monotone cubic interpolation) are given between 30 and
45 dB against the best classical lossy codec.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import torch

from specnir.codec import MODES, compress, eight_bit
from specnir.data import load_image_set
from specnir.errors import SpecnirError, atomic_path
from specnir.metrics import psnr_from_mse
from specnir.spectrogram import SpecParams

BD_RANGE = (30.0, 45.0)
LOSSY_ANCHORS = ("jpegxl", "avif", "webp")


def _gray3(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))


def _first_channel(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.ndim == 3 else img


# name → (setting label → (encode, decode)); lossy settings sweep from low to high quality.
def classical_codecs() -> dict[str, list[tuple[str, Callable, Callable]]]:
    ic = imagecodecs

    def settings(encode, decode, key, values, **fixed):
        return [(f"{key}={v}", (lambda im, v=v: encode(im, **{key: v}, **fixed)), decode) for v in values]

    webp_enc = lambda im, **kw: ic.webp_encode(_gray3(im), **kw)  # noqa: E731  WebP has no grey mode
    webp_dec = lambda b: _first_channel(ic.webp_decode(b))  # noqa: E731
    # imagecodecs codes a 2-D array as lossless AVIF; a grey RGB image in YUV 4:0:0 is lossy monochrome.
    avif_enc = lambda im, **kw: ic.avif_encode(_gray3(im), pixelformat=ic.AVIF.PIXEL_FORMAT.YUV400, **kw)  # noqa: E731
    avif_dec = lambda b: _first_channel(ic.avif_decode(b))  # noqa: E731
    return {
        "png": [("level=9", lambda im: ic.png_encode(im, level=9), ic.png_decode)],
        "webp-lossless": [("lossless", lambda im: webp_enc(im, lossless=True, method=6), webp_dec)],
        "jpegls": [("lossless", lambda im: ic.jpegls_encode(im, level=0), ic.jpegls_decode)],
        "jpegls-near": settings(ic.jpegls_encode, ic.jpegls_decode, "level", (8, 6, 4, 3, 2, 1)),
        "jpegxl-lossless": [
            ("lossless", lambda im: ic.jpegxl_encode(im, lossless=True, effort=9), ic.jpegxl_decode)
        ],
        "jpegxl": settings(
            ic.jpegxl_encode,
            ic.jpegxl_decode,
            "distance",
            (12.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.15),
            effort=9,
        ),
        "avif": settings(avif_enc, avif_dec, "level", (15, 22, 30, 45, 60, 70, 80, 88, 94), speed=1),
        "webp": settings(
            webp_enc, webp_dec, "level", (0, 2, 5, 10, 20, 40, 60, 75, 85, 92, 97), lossless=False, method=6
        ),
        "jpeg": settings(ic.jpeg8_encode, ic.jpeg8_decode, "level", (30, 50, 70, 85, 92, 97)),
    }


def _boxes(blob: bytes):
    """Top-level ISO-BMFF boxes ``(type, payload start, payload end)`` of an AVIF file."""
    pos = 0
    while pos + 8 <= len(blob):
        size, kind, head = int.from_bytes(blob[pos : pos + 4], "big"), blob[pos + 4 : pos + 8], 8
        if size == 1:  # a 64-bit size follows
            size, head = int.from_bytes(blob[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # to the end of the file
            size = len(blob) - pos
        yield kind, pos + head, pos + size
        pos += max(size, 8)


def coded_bytes(codec: str, blob: bytes) -> int:
    """The bytes of the coded image without its container: AVIF's ``mdat`` payload (the AV1 data), WebP's
    ``VP8``/``VP8L`` chunk payloads; JPEG-XL (a bare codestream here) and the others as written."""
    if codec == "avif":
        return sum(b - a for kind, a, b in _boxes(blob) if kind == b"mdat")
    if codec.startswith("webp") and blob[:4] == b"RIFF":
        pos, total = 12, 0
        while pos + 8 <= len(blob):
            kind, size = blob[pos : pos + 4], int.from_bytes(blob[pos + 4 : pos + 8], "little")
            total += size if kind in (b"VP8 ", b"VP8L") else 0
            pos += 8 + size + (size & 1)
        return total
    return len(blob)


def distortion(truth: list[np.ndarray], decoded: list[np.ndarray]) -> tuple[float, int]:
    """PSNR (dB, over all pixels of all images, peak 255) and the largest absolute error."""
    sq, n, worst = 0.0, 0, 0
    for t, d in zip(truth, decoded, strict=True):
        err = d.astype(np.int64) - t.astype(np.int64)
        sq, n, worst = sq + float((err**2).sum()), n + err.size, max(worst, int(np.abs(err).max()))
    return psnr_from_mse(sq / n, peak=255), worst


def run_classical(images: list[np.ndarray]) -> list[dict]:
    """Every classical codec and setting: bytes, bpp, PSNR, max error (each image decoded and checked)."""
    pixels = sum(im.size for im in images)
    rows = []
    for codec, table in classical_codecs().items():
        for setting, encode, decode in table:
            try:
                blobs = [encode(np.ascontiguousarray(im)) for im in images]
                decoded = [np.asarray(decode(b)) for b in blobs]
            except Exception as exc:  # a codec missing from this imagecodecs build
                rows.append({"method": codec, "setting": setting, "error": f"{type(exc).__name__}: {exc}"})
                continue
            size = sum(len(b) for b in blobs)
            psnr, worst = distortion(images, decoded)
            rows.append(
                {
                    "method": codec,
                    "setting": setting,
                    "bytes": size,
                    "bpp": size * 8 / pixels,
                    "coded_bpp": sum(coded_bytes(codec, b) for b in blobs) * 8 / pixels,
                    "psnr": psnr,
                    "max_error": worst,
                }
            )
    return rows


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


def _points(rows: list[dict], method: str, rate: str = "bpp") -> list[tuple[float, float]]:
    return [(r[rate], r["psnr"]) for r in rows if r["method"] == method and "bpp" in r]


def bd_table(rows: list[dict], lo: float = BD_RANGE[0], hi: float = BD_RANGE[1], rate: str = "bpp") -> dict:
    """BD-rate of every lossy method against the best of JPEG-XL, AVIF and WebP (the anchor is the one
    the other two lose to on average), between ``lo`` and ``hi`` dB; ``rate`` is ``bpp`` (files as
    written) or ``coded_bpp`` (without containers)."""
    anchors = [m for m in LOSSY_ANCHORS if len(_points(rows, m, rate)) >= 2]
    if not anchors:
        return {}

    def bd(anchor: str, method: str):
        return bd_rate(_points(rows, anchor, rate), _points(rows, method, rate), lo, hi)

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


# ARCH-MODE for every mode and the architectures it codes with (gru-model, siren-model, gru-residual),
# or the mode alone where it has one architecture of its own name (latent).
METHODS = tuple(
    name if mode.archs == (name,) else f"{arch}-{name}" for name, mode in MODES.items() for arch in mode.archs
)


def parse_method(text: str, qualities: list[int]) -> tuple[str, list[int]]:
    """``"gru-residual"`` or ``"gru-residual:2,4,8"`` → (method, its qualities)."""
    name, _, qs = text.partition(":")
    if name not in METHODS:
        raise SpecnirError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    try:
        return name, [int(q) for q in qs.split(",")] if qs else list(qualities)
    except ValueError:
        raise SpecnirError(f"{text!r}: qualities must be integers, e.g. {name}:2,4,8") from None


def run_specnir(
    inputs, methods: list[str], qualities: list[int], *, steps: int | None, params, progress, on_row=None
) -> list[dict]:
    """Compress the set with every method and quality; one row each (with the decode, for audio).

    ``on_row(row)`` is called as each row is done (the CLI prints it: these take minutes)."""
    rows = []
    for text in methods:
        method, method_qualities = parse_method(text, qualities)
        arch, _, mode = method.rpartition("-")
        arch = arch or None
        for q in method_qualities:
            start = time.perf_counter()
            result = compress(
                inputs, arch=arch, mode=mode, quality=q, steps=steps, params=params, progress=progress
            )
            r = result.report
            bound = result.decoded.header["model_config"].get("max_error")
            rows.append(
                {
                    "method": f"specnir-{method}",
                    "setting": f"quality={q}" + (f" (max error {bound})" if bound is not None else ""),
                    "bytes": r["bytes"],
                    "bpp": r["bpp"],
                    "coded_bpp": (r["bytes"] - r["framing_bytes"]) * 8 / r["pixels"],
                    "psnr": r["psnr"],
                    "max_error": r["max_error"],
                    "weights": r["weights"],
                    "weight_bpp": r["weight_bpp"],
                    "header_bytes": r["header_bytes"],
                    **{k: r[k] for k in ("latent_grid_bits",) if k in r},
                    "steps": r["steps"],
                    "seconds": round(time.perf_counter() - start, 1),
                    "_decoded": result.decoded,
                }
            )
            if on_row is not None:
                on_row(rows[-1])
    return rows


# --- report ---------------------------------------------------------------------------------------------


def plot_rd(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted(p for p in _points(rows, method) if math.isfinite(p[1]))
        if pts:
            style = "o-" if method.startswith("specnir") else ".--"
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                label=method,
                lw=2 if "specnir" in method else 1,
            )
    ax.set_xlabel("bits per pixel (all images)")
    ax.set_ylabel("PSNR on the 8-bit images (dB)")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("rate–distortion (lossless points are in rd.csv)")
    save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, atomically."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def lossless_summary(rows: list[dict]) -> dict:
    """Smallest bpp per method with max error 0 and with max error ≤ 1."""
    out = {}
    for bound in (0, 1):
        best = {}
        for r in rows:
            if "bpp" in r and r["max_error"] <= bound:
                best[r["method"]] = min(best.get(r["method"], math.inf), r["bpp"])
        out[f"max_error_{bound}"] = dict(sorted(best.items(), key=lambda kv: kv[1]))
    return out


def bench_rd(
    inputs: list,
    outdir: str | Path,
    *,
    methods: list[str],
    qualities: list[int],
    steps: int | None = None,
    audio: bool = False,
    params: SpecParams | None = None,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Run the benchmark; writes ``rd.csv``, ``rd.json`` (with audio scores if asked), ``rd.png`` and, with
    ``audio``, ``listen.html`` (:mod:`specnir.bench.listen`) and ``pesq.png`` to ``outdir``; returns the
    report (``rows``, ``lossless``, ``bd``, ``audio``, ``files``).

    ``on_row(row)`` sees each row as it is measured."""
    outdir = Path(outdir)
    params = params or SpecParams()
    data = eight_bit(load_image_set(inputs, params=params))
    if audio:
        from specnir.audio import load_audio
        from specnir.convert import expand_inputs

        files = expand_inputs(inputs)
        if any(f.suffix.lower() == ".png" for f in files):
            raise SpecnirError("audio scores need audio inputs (the original recordings are the reference)")
        originals = [load_audio(f, sample_rate=params.sample_rate)[0] for f in files]
    images = [np.rint(im * 255).astype(np.uint8) for im in data.images(data.target)]
    rows = run_classical(images)
    for row in rows if on_row else ():
        on_row(row)
    rows += run_specnir(
        inputs, methods, qualities, steps=steps, params=params, progress=progress, on_row=on_row
    )
    report = {
        "inputs": [str(i) for i in inputs],
        "pixels": sum(im.size for im in images),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "imagecodecs": imagecodecs.__version__,
        },
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "lossless": lossless_summary(rows),
        "bd_all": bd_tables(rows),
    }
    report["bd"] = report["bd_all"][0]  # 30–45 dB, files as written: the table the CLI prints
    if audio:
        from specnir.bench.listen import write_listening_page
        from specnir.bench.speech import audio_rows, plot_listening

        specnir_rows = [r for r in rows if r["method"].startswith("specnir")]
        heard = audio_rows(data, originals, specnir_rows)
        report["audio"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in heard]
        pages = [
            write_listening_page(outdir, data.names, originals, heard, params=params),
            plot_listening(report["audio"], outdir / "pesq.png"),
        ]
    report["files"] = [str(p) for p in write_report(outdir, report, rows, also=pages if audio else [])]
    return report


def write_report(outdir: Path, report: dict, rows: list[dict], *, also: list[Path] = ()) -> list[Path]:
    """``rd.csv`` (one row per method and setting), ``rd.json`` (the report) and ``rd.png`` (the plot);
    returns their paths and ``also`` (files written beside them, listed in the report)."""
    fields = [
        "method",
        "setting",
        "bytes",
        "bpp",
        "coded_bpp",
        "psnr",
        "max_error",
        "weights",
        "weight_bpp",
        "header_bytes",
        "latent_grid_bits",
        "seconds",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*fields, "error"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report["rows"])
    paths = [outdir / name for name in ("rd.csv", "rd.json", "rd.png")] + list(also)
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps({**report, "files": [str(p) for p in paths]}, indent=2, default=str))
    plot_rd(rows, paths[2])
    return paths
