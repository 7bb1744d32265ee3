"""``specnir bench rd``: rate and distortion of specnir and of the codecs users already have.

Classical codecs code each image alone through imagecodecs, as they must (:mod:`specnir.bench.codecs`);
specnir codes the whole set in one ``.snir`` file. Bits per pixel = bytes × 8 / pixels of all images; PSNR
over all pixels together. BD-rates (:mod:`specnir.bench.bdrate`) are given between 30 and 45 dB (and 25–40)
against the best classical lossy codec.
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

import numpy as np
import torch

from specnir.audio import load_audio
from specnir.bench.bdrate import bd_tables
from specnir.bench.codecs import EAR, OWN, parse_method, run_classical
from specnir.bench.figures import plot_rd
from specnir.bench.listen import write_listening_page
from specnir.bench.speech import audio_rows, plot_listening
from specnir.codec.encode import SHIPPED, compress, eight_bit
from specnir.convert import expand_inputs
from specnir.data import load_image_set
from specnir.errors import SpecnirError, atomic_path
from specnir.spectrogram import SpecParams


def run_specnir(
    inputs, methods: list[str], qualities: list[int], *, steps: int | None, params, progress, on_row=None
) -> list[dict]:
    """Compress the set with every method and quality; one row each (with the decode, for audio).

    ``on_row(row)`` is called as each row is done (the CLI prints it: these take minutes)."""
    rows = []
    for text in methods:
        method, method_qualities = parse_method(text, qualities)
        arch, _, mode = method.removesuffix(EAR).removesuffix(OWN).rpartition("-")
        decoder = None if method.endswith(OWN) else SHIPPED
        distortion = "ear" if method.endswith(EAR) else None
        for q in method_qualities:
            start = time.perf_counter()
            result = compress(
                inputs,
                arch=arch or None,
                mode=mode,
                quality=q,
                steps=steps,
                distortion=distortion,
                params=params,
                progress=progress,
                decoder=decoder,
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
    originals = _recordings(inputs, params) if audio else None
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
            "imagecodecs": _imagecodecs_version(),
        },
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "lossless": lossless_summary(rows),
        "bd_all": bd_tables(rows),
    }
    report["bd"] = report["bd_all"][0]  # 30–45 dB, files as written: the table the CLI prints
    pages = _listening(outdir, report, data, originals, rows, params) if audio else []
    report["files"] = [str(p) for p in write_report(outdir, report, rows, also=pages)]
    return report


def _recordings(inputs: list, params: SpecParams) -> list[np.ndarray]:
    """The original recordings (the reference of every listening score), at ``params.sample_rate``."""
    files = expand_inputs(inputs)
    if any(f.suffix.lower() == ".png" for f in files):
        raise SpecnirError("audio scores need audio inputs (the original recordings are the reference)")
    return [load_audio(f, sample_rate=params.sample_rate)[0] for f in files]


def _listening(
    outdir: Path, report: dict, data, originals, rows: list[dict], params: SpecParams
) -> list[Path]:
    """Every specnir decode and Opus scored by ear (into ``report["audio"]``), the listening page and
    ``pesq.png``; returns those two files."""
    heard = audio_rows(data, originals, [r for r in rows if r["method"].startswith("specnir")])
    report["audio"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in heard]
    return [
        write_listening_page(outdir, data.names, originals, heard, params=params),
        plot_listening(report["audio"], outdir / "pesq.png"),
    ]


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


def _imagecodecs_version() -> str:
    import imagecodecs

    return imagecodecs.__version__
