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
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import torch

from specnir.codec import MAX_ERROR, compress, eight_bit
from specnir.data import ImageSet, load_image_set
from specnir.errors import SpecnirError, atomic_path
from specnir.spectrogram import SpecParams, Spectrogram, spectrogram_to_audio

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
            (4.0, 3.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.15),
            effort=7,
        ),
        "avif": settings(avif_enc, avif_dec, "level", (30, 45, 60, 70, 80, 88, 94)),
        "webp": settings(webp_enc, webp_dec, "level", (20, 40, 60, 75, 85, 92, 97), lossless=False),
        "jpeg": settings(ic.jpeg8_encode, ic.jpeg8_decode, "level", (30, 50, 70, 85, 92, 97)),
    }


def distortion(truth: list[np.ndarray], decoded: list[np.ndarray]) -> tuple[float, int]:
    """PSNR (dB, over all pixels of all images, peak 255) and the largest absolute error."""
    sq, n, worst = 0.0, 0, 0
    for t, d in zip(truth, decoded, strict=True):
        err = d.astype(np.int64) - t.astype(np.int64)
        sq, n, worst = sq + float((err**2).sum()), n + err.size, max(worst, int(np.abs(err).max()))
    mse = sq / n
    return (10 * math.log10(255**2 / mse) if mse > 0 else math.inf), worst


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


def _points(rows: list[dict], method: str) -> list[tuple[float, float]]:
    return [(r["bpp"], r["psnr"]) for r in rows if r["method"] == method and "bpp" in r]


def bd_table(rows: list[dict]) -> dict:
    """BD-rate of every lossy method against the best of JPEG-XL, AVIF and WebP (the anchor is the one
    the other two lose to on average)."""
    lo, hi = BD_RANGE
    anchors = [m for m in LOSSY_ANCHORS if len(_points(rows, m)) >= 2]
    if not anchors:
        return {}

    def mean_bd(m):
        vals = [bd_rate(_points(rows, o), _points(rows, m), lo, hi) for o in anchors if o != m]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else 0.0

    anchor = min(anchors, key=mean_bd)
    methods = sorted({r["method"] for r in rows if "bpp" in r} - {anchor})
    table = {m: bd_rate(_points(rows, anchor), _points(rows, m), lo, hi) for m in methods}
    return {"anchor": anchor, "range_db": [lo, hi], "bd_rate_percent": table}


METHODS = ("gru-residual", "siren-model", "gru-model")


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
    inputs, methods: list[str], qualities: list[int], *, steps: int, params, progress
) -> list[dict]:
    """Compress the set with every method and quality; one row each (with the decode, for audio)."""
    rows = []
    for text in methods:
        method, method_qualities = parse_method(text, qualities)
        arch, mode = method.split("-")
        for q in method_qualities:
            start = time.perf_counter()
            result = compress(
                inputs, arch=arch, mode=mode, quality=q, steps=steps, params=params, progress=progress
            )
            r = result.report
            rows.append(
                {
                    "method": f"specnir-{method}",
                    "setting": f"quality={q}"
                    + (f" (max error {MAX_ERROR[q]})" if mode == "residual" else ""),
                    "bytes": r["bytes"],
                    "bpp": r["bpp"],
                    "psnr": r["psnr"],
                    "max_error": r["max_error"],
                    "weights": r["weights"],
                    "weight_bpp": r["weight_bpp"],
                    "steps": steps,
                    "seconds": round(time.perf_counter() - start, 1),
                    "_decoded": result.decoded,
                }
            )
            print(
                f"  specnir-{method} quality {q}: {r['bpp']:.3f} bpp, {r['psnr']:.2f} dB, "
                f"max error {r['max_error']} ({rows[-1]['seconds']:.0f} s)",
                flush=True,
            )
    return rows


# --- audio ----------------------------------------------------------------------------------------------


def _speech_scores(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> dict:
    """PESQ-WB and STOI of ``degraded`` against ``reference`` (resampled to 16 kHz for PESQ)."""
    import librosa
    from pesq import pesq
    from pystoi import stoi

    n = min(len(reference), len(degraded))
    ref, deg = reference[:n].astype(np.float64), degraded[:n].astype(np.float64)
    if sample_rate != 16000:
        ref = librosa.resample(ref, orig_sr=sample_rate, target_sr=16000)
        deg = librosa.resample(deg, orig_sr=sample_rate, target_sr=16000)
    try:
        pesq_wb = float(pesq(16000, ref, deg, "wb"))
    except Exception:  # pesq refuses silence or too-short clips
        pesq_wb = float("nan")
    return {"pesq_wb": pesq_wb, "stoi": float(stoi(ref, deg, 16000, extended=False))}


def _mean_scores(pairs) -> dict:
    scores = [_speech_scores(ref, deg, sr) for ref, deg, sr in pairs]
    return {k: float(np.nanmean([s[k] for s in scores])) for k in ("pesq_wb", "stoi")}


def _opus_rows(originals: list[np.ndarray], sample_rate: int, kbps_list=(6, 8, 12, 16)) -> list[dict]:
    """Opus at several bitrates through opusenc/opusdec, if they are installed."""
    import soundfile as sf

    if not (shutil.which("opusenc") and shutil.which("opusdec")):
        return [{"method": "opus", "setting": "skipped: opusenc/opusdec not installed (Debian opus-tools)"}]
    rows = []
    seconds = sum(len(w) for w in originals) / sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        for kbps in kbps_list:
            size, pairs = 0, []
            for i, wave in enumerate(originals):
                src, enc, dec = (Path(tmp) / f"{i}.{ext}" for ext in ("wav", "opus", "out.wav"))
                sf.write(src, wave, sample_rate)
                subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), str(src), str(enc)], check=True)
                subprocess.run(
                    ["opusdec", "--quiet", "--rate", str(sample_rate), str(enc), str(dec)], check=True
                )
                size += enc.stat().st_size
                pairs.append((wave, sf.read(dec)[0], sample_rate))
            rows.append(
                {
                    "method": "opus",
                    "setting": f"bitrate={kbps}",
                    "bytes": size,
                    "kbps": size * 8 / seconds / 1000,
                    **_mean_scores(pairs),
                }
            )
    return rows


def audio_rows(
    data: ImageSet, originals: list[np.ndarray], specnir_rows: list[dict], *, n_iter: int
) -> list[dict]:
    """PESQ-WB / STOI of Griffin-Lim on the uncompressed spectrograms, of every specnir decode, and Opus."""
    sr = data.params.sample_rate
    seconds = sum(len(w) for w in originals) / sr

    def scores(specs: list[Spectrogram]) -> dict:
        return _mean_scores(
            (orig, spectrogram_to_audio(spec, n_iter=n_iter), sr)
            for orig, spec in zip(originals, specs, strict=True)
        )

    rows = [{"method": "griffin-lim (uncompressed)", "setting": f"n_iter={n_iter}", **scores(data.specs)}]
    for row in specnir_rows:
        rows.append(
            {
                "method": row["method"],
                "setting": row["setting"],
                "bytes": row["bytes"],
                "kbps": row["bytes"] * 8 / seconds / 1000,
                **scores(row["_decoded"].specs),
            }
        )
    return rows + _opus_rows(originals, sr)


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _fmt(value, spec: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "lossless"
    return format(value, spec)


def print_table(rows: list[dict]) -> None:
    print(f"{'method':<26} {'setting':<28} {'bpp':>7} {'PSNR dB':>9} {'max err':>7}")
    for r in rows:
        if "bpp" not in r:
            print(f"{r['method']:<26} {r['setting'][:28]:<28} {r.get('error', '')}")
            continue
        print(
            f"{r['method']:<26} {r['setting'][:28]:<28} {r['bpp']:>7.3f} {_fmt(r['psnr'], '9.2f'):>9} "
            f"{r['max_error']:>7}"
        )


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
    steps: int,
    audio: bool = False,
    n_iter: int = 32,
    params: SpecParams | None = None,
    progress: bool = True,
) -> dict:
    """Run the benchmark; writes ``rd.csv``, ``rd.json`` (with audio scores if asked) and ``rd.png``."""
    outdir = Path(outdir)
    params = params or SpecParams()
    data = eight_bit(load_image_set(inputs, params=params))
    images = [np.rint(im * 255).astype(np.uint8) for im in data.images(data.target)]
    print(f"{len(images)} images, {sum(im.size for im in images):,} pixels; classical codecs ...", flush=True)
    rows = run_classical(images)
    rows += run_specnir(inputs, methods, qualities, steps=steps, params=params, progress=progress)
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
        "bd": bd_table(rows),
    }
    if audio:
        from specnir.audio import load_audio
        from specnir.convert import expand_inputs

        files = expand_inputs(inputs)
        if any(f.suffix.lower() == ".png" for f in files):
            raise SpecnirError("--audio needs audio inputs (the original recordings are the reference)")
        originals = [load_audio(f, sample_rate=params.sample_rate)[0] for f in files]
        specnir_rows = [r for r in rows if r["method"].startswith("specnir")]
        report["audio"] = audio_rows(data, originals, specnir_rows, n_iter=n_iter)
    fields = [
        "method",
        "setting",
        "bytes",
        "bpp",
        "psnr",
        "max_error",
        "weights",
        "weight_bpp",
        "seconds",
        "error",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report["rows"])
    with atomic_path(outdir / "rd.csv") as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_path(outdir / "rd.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    plot_rd(rows, outdir / "rd.png")
    print_table(rows)
    print("\nsmallest lossless bpp:", {k: round(v, 3) for k, v in report["lossless"]["max_error_0"].items()})
    print(
        "smallest bpp at max error ≤ 1:",
        {k: round(v, 3) for k, v in report["lossless"]["max_error_1"].items()},
    )
    if report["bd"]:
        lo, hi = report["bd"]["range_db"]
        print(f"\nBD-rate against {report['bd']['anchor']} ({lo:.0f}–{hi:.0f} dB; negative = fewer bytes):")
        for method, value in report["bd"]["bd_rate_percent"].items():
            print(f"  {method:<26} {_fmt(value, '+.1f')}{'%' if value is not None else ' (no overlap)'}")
    if audio:
        print(f"\n{'method':<26} {'setting':<28} {'kbps':>6} {'PESQ-WB':>8} {'STOI':>6}")
        for r in report["audio"]:
            print(
                f"{r['method']:<26} {r['setting'][:28]:<28} {_fmt(r.get('kbps'), '6.2f'):>6} "
                f"{_fmt(r.get('pesq_wb'), '8.2f'):>8} {_fmt(r.get('stoi'), '6.3f'):>6}"
            )
    print(f"\nwritten: {outdir / 'rd.csv'}, {outdir / 'rd.json'}, {outdir / 'rd.png'}")
    return report
