"""A decoder shared by a corpus against independent sets: `specnir batch` run both ways on the same sets.

    python benchmarks/shared_decoder.py ../shared/data/asterisk-en/digits --sets 12 \\
        --sample-rate 8000 --n-fft 512 --hop-length 64 --n-mels 80 -o docs/corpus/shared-decoder.json

The first ``--sets`` sets of the corpus (by folder, ``--set-size`` clips each) are compressed by the
product itself (:func:`specnir.batch.run_batch`, one set per fit, in this process): with
``--decoder-sets 0`` ("own": every set coded as ``compress`` codes it — with its own networks, or against
the decoder specnir ships where one serves the analysis and quality) and with ``--decoder-sets K``
("shared": one decoder fitted on K of them, stored once, every file only latents). Where specnir ships a
decoder for the analysis, the corpus decoder starts from it, and a third run ("scratch") fits it from the
mode's initial weights instead (the start switched off in this process). Prints a table per set and
writes JSON: bytes, PSNR and seconds per set, the decoder's bytes and fitting time, and the totals (the
decoder's bytes included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from specnir.batch import BatchJob, run_batch
from specnir.cli.args import add_spectrogram_args, spectrogram_params
from specnir.codec.decoders import DECODER_FILE
from specnir.codec.encode import Settings
from specnir.corpus import MANIFEST, find_sets, read_manifest
from specnir.errors import atomic_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--sets", type=int, default=12, help="the first N sets of the corpus")
    parser.add_argument("--set-size", type=int, default=5)
    parser.add_argument("--decoder-sets", type=int, default=4, help="K: sets the shared decoder is fitted on")
    parser.add_argument("--steps", type=int, help="default: the quality's")
    parser.add_argument("--quality", type=int, default=4)
    add_spectrogram_args(parser)
    args = parser.parse_args(argv)
    params = spectrogram_params(args)
    found = find_sets(args.corpus, set_size=args.set_size)[: args.sets]
    clips = [str(c) for s in found for c in s.clips]
    settings = Settings(quality=args.quality, steps=args.steps)

    runs = {}
    variants = [("own", 0), ("shared", args.decoder_sets)]
    if BatchJob(settings, params).shipped() is not None:
        variants.append(("scratch", args.decoder_sets))
    with tempfile.TemporaryDirectory() as tmp:
        for name, k in variants:
            out = Path(tmp) / name
            start = time.perf_counter()
            job = BatchJob(settings, params, decoder_sets=k)
            with _no_start() if name == "scratch" else contextlib.nullcontext():
                report = run_batch(clips, out, job=job, set_size=args.set_size, progress=False)
            runs[name] = {
                "seconds": time.perf_counter() - start,
                "rows": read_manifest(out / MANIFEST),
                "decoder_bytes": report.decoder_bytes,
                "failed": report.failed,
            }
            print(
                f"{name}: {report.bytes + report.decoder_bytes:,} B in {runs[name]['seconds']:.0f} s",
                flush=True,
            )
            if name != "own":
                runs[name]["decoder_file_bytes"] = (out / DECODER_FILE).stat().st_size
    own, shared = runs["own"], runs["shared"]
    rows = []
    print(f"{'set':<24} {'own B':>7} {'dB':>6} {'s':>5}   {'shared B':>8} {'dB':>6} {'s':>5}")
    for name, a in own["rows"].items():
        b = shared["rows"][name]
        rows.append(
            {
                "set": name,
                "own_bytes": a["bytes"],
                "own_weight_bytes": a["weight_bytes"],
                "own_psnr": a["psnr"],
                "own_seconds": a["seconds"],
                "shared_bytes": b["bytes"],
                "shared_psnr": b["psnr"],
                "shared_seconds": b["seconds"],
            }
        )
        print(
            f"{name:<24} {a['bytes']:>7} {a['psnr']:>6.2f} {a['seconds']:>5.0f}"
            f"   {b['bytes']:>8} {b['psnr']:>6.2f} {b['seconds']:>5.0f}"
        )
    own_total = sum(r["own_bytes"] for r in rows)
    shared_total = sum(r["shared_bytes"] for r in rows) + shared["decoder_bytes"]
    summary = {
        "sets": len(rows),
        "own_bytes": own_total,
        "shared_bytes_with_decoder": shared_total,
        "decoder_bytes": shared["decoder_bytes"],
        "bytes_ratio": round(shared_total / own_total, 4),
        "bytes_per_set_ratio": round(statistics.median(r["shared_bytes"] / r["own_bytes"] for r in rows), 4),
        "own_psnr_mean": round(statistics.mean(r["own_psnr"] for r in rows), 3),
        "shared_psnr_mean": round(statistics.mean(r["shared_psnr"] for r in rows), 3),
        "own_wall_seconds": round(own["seconds"], 1),
        "shared_wall_seconds": round(shared["seconds"], 1),
        "decoder_fit_seconds": round(shared["seconds"] - sum(r["shared_seconds"] for r in rows), 1),
        "set_seconds_median_ratio": round(
            statistics.median(r["shared_seconds"] / r["own_seconds"] for r in rows), 3
        ),
    }
    summary["psnr_difference_db"] = round(summary["shared_psnr_mean"] - summary["own_psnr_mean"], 3)
    summary["cost"] = {name: rd_costs(run, settings) for name, run in runs.items()}
    print(json.dumps(summary, indent=1))
    if "scratch" in runs:
        scratch = runs["scratch"]
        summary["scratch_bytes_with_decoder"] = (
            sum(r["bytes"] for r in scratch["rows"].values()) + scratch["decoder_bytes"]
        )
        summary["scratch_psnr_mean"] = round(statistics.mean(r["psnr"] for r in scratch["rows"].values()), 3)
        summary["scratch_wall_seconds"] = round(scratch["seconds"], 1)
        for r in rows:
            r["scratch_bytes"], r["scratch_psnr"] = (scratch["rows"][r["set"]][k] for k in ("bytes", "psnr"))
        print(json.dumps({k: v for k, v in summary.items() if k.startswith("scratch")}, indent=1))
    report = {
        "corpus": args.corpus,
        "quality": args.quality,
        "steps": args.steps,
        "decoder_sets": args.decoder_sets,
        "params": params.to_dict(),
        "summary": summary,
        "rows": rows,
    }
    with atomic_path(Path(args.output)) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return 0


def rd_costs(run: dict, settings: Settings) -> dict:
    """A run's PSNR over all pixels, bpp and MSE + λ·bpp (λ of the quality), with the decoder's bytes
    (as this corpus pays them) and without (a corpus large enough that they vanish)."""
    rows = run["rows"].values()
    pixels = sum(r["pixels"] for r in rows)
    mse = sum(10 ** (-r["psnr"] / 10) * r["pixels"] for r in rows) / pixels
    coding, _, _ = settings.coding()
    lam = coding.quality_config(settings.quality)["lam"]
    bpp = sum(r["bytes"] for r in rows) * 8 / pixels
    with_decoder = bpp + run["decoder_bytes"] * 8 / pixels
    return {
        "psnr": round(10 * math.log10(1 / mse), 3),
        "bpp": round(with_decoder, 4),
        "cost": float(f"{mse + lam * with_decoder:.5g}"),
        "cost_without_decoder": float(f"{mse + lam * bpp:.5g}"),
    }


@contextlib.contextmanager
def _no_start():
    """The batch's corpus decoder fitted from the mode's initial weights, not the shipped decoder's."""
    saved = BatchJob.shipped
    BatchJob.shipped = lambda job: None  # (run_batch asks it only when it fits no corpus decoder)
    try:
        yield
    finally:
        BatchJob.shipped = saved


if __name__ == "__main__":
    sys.exit(main())
