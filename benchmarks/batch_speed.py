"""Sets per hour: B sets fitted as one model (``--sets-per-fit B``) against one set at a time.

    python benchmarks/batch_speed.py ../shared/data/asterisk-en/digits --sets 16 --steps 300 \\
        --sample-rate 8000 --n-fft 512 --hop-length 64 --n-mels 80 -o docs/corpus/batch-cpu.json

Longer clips: ``../shared/data/asterisk-en --min-seconds 3 --max-seconds 10 --clips 20 --sets 4
--batch-sizes 1 4`` (the first 20 prompts of 3-10 s). The same sets (the first ``--sets`` of the corpus,
grouped by folder) are compressed once per B in
``--batch-sizes``, all with the same seed and steps; the table gives wall seconds per set (median over the
fits of B = 1), sets per hour, the ratio to B = 1, and the bytes and PSNR of every set against its B = 1
file. Fewer steps than the default keep it short; ``projected_per_set_s`` scales the fit to the mode's
default steps (a projection, labelled so).

On a GPU (``--device cuda --sets 256 --batch-sizes 1 16 64 256 --fits 2``): ``--fits F`` times only the
first F fits of each B (the bytes and PSNR are then compared over the sets B = 1 fitted); ``--sets``
beyond the corpus's count repeats its sets in order (the JSON says how many are repeats; a set's data does
not change what a step costs). ``--decoder-sets K`` first fits a shared decoder on K sets spread over the
corpus (timed apart) and fits every set with it, as ``specnir batch`` does by default. ``--per-set B...``
times these B again with the per-set arithmetic a CPU uses (one synthesis and entropy model call per set
and step) instead of the batched one (``compress_sets(..., batched=False)``): what batching buys on a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import soundfile as sf
import torch

from specnir.cli.args import add_spectrogram_args, spectrogram_params
from specnir.codec.decoder_fit import fit_decoder
from specnir.codec.encode import Settings, compress_sets
from specnir.codec.networks import networks_for
from specnir.corpus import find_sets
from specnir.data import load_image_set
from specnir.errors import atomic_path


def measure(
    sets, settings: Settings, batch: int, device: str, *, fits: int | None, decoder, batched: bool
) -> tuple[list[float], list[dict]]:
    """Wall seconds of each fit (of ``batch`` sets; the first ``fits``) and every set's report."""
    seconds, reports = [], []
    for k in list(range(0, len(sets), batch))[:fits]:
        start = time.perf_counter()
        results = compress_sets(
            sets[k : k + batch],
            settings,
            device=device,
            progress=False,
            networks=networks_for(decoder),
            batched=batched,
        )
        seconds.append(time.perf_counter() - start)
        reports += [r.report for r in results]
    return seconds, reports


def chosen_clips(args: argparse.Namespace) -> list:
    """The corpus, or its clips within the length bounds (in the order a batch finds them), the first N."""
    if args.min_seconds is None and args.max_seconds is None and args.clips is None:
        return args.corpus
    lo, hi = args.min_seconds or 0.0, args.max_seconds or float("inf")
    clips = [c for s in find_sets(args.corpus, set_size=1) for c in s.clips]
    clips = [c for c in clips if lo <= sf.info(c).duration <= hi]
    return clips[: args.clips]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="+")
    parser.add_argument("-o", "--output", required=True, help="JSON file")
    parser.add_argument("--sets", type=int, default=16)
    parser.add_argument("--min-seconds", type=float, help="only audio clips at least this long")
    parser.add_argument("--max-seconds", type=float, help="only audio clips at most this long")
    parser.add_argument("--clips", type=int, help="only the first N clips (after the length filter)")
    parser.add_argument("--set-size", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quality", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fits", type=int, help="time only the first F fits of each B")
    parser.add_argument("--decoder-sets", type=int, default=0, help="fit with a decoder shared by K sets")
    parser.add_argument("--per-set", type=int, nargs="*", default=[], help="B to time per set too")
    add_spectrogram_args(parser)
    args = parser.parse_args(argv)
    params = spectrogram_params(args)
    found = find_sets(chosen_clips(args), set_size=args.set_size)[: args.sets]
    unique = [load_image_set(list(s.clips), params=params) for s in found]
    sets = [unique[k % len(unique)] for k in range(args.sets)]  # (repeated beyond the corpus's count)
    settings = Settings(quality=args.quality, steps=args.steps)
    decoder, decoder_seconds = None, None
    if args.decoder_sets:
        start = time.perf_counter()
        sample = unique[:: max(1, len(unique) // args.decoder_sets)][: args.decoder_sets]
        decoder = fit_decoder(sample, settings, served=len(sets), device=args.device, progress=False)
        decoder_seconds = round(time.perf_counter() - start, 2)
        print(
            f"shared decoder: {len(decoder.blob):,} bytes,"
            f" fitted on {len(sample)} sets in {decoder_seconds} s"
        )
    coding, _, _ = settings.coding()
    default_steps = coding.fit_steps(args.quality)
    rows, alone = [], None
    print(
        f"{len(sets)} sets ({len(unique)} unique) of {args.set_size} clips, {args.steps} steps,"
        f" quality {args.quality},"
        f" {args.device} ({torch.get_num_threads()} threads)"
    )
    print(
        f"{'B':>4} {'fits':>5} {'s/set':>8} {'sets/h':>8} {'ratio':>6} {'bytes vs B=1':>13} {'dB vs B=1':>10}"
        "   (*: per-set arithmetic)"
    )
    report = {
        "corpus": args.corpus,
        "clip_filter": {"min_s": args.min_seconds, "max_s": args.max_seconds, "clips": args.clips},
        "sets": [s.name for s in found],
        "repeated_sets": len(sets) - len(unique),
        "clips": sum(len(s.clips) for s in found),
        "pixels_per_set": [sum(d.widths) * d.target.shape[1] for d in unique],
        "fits_timed": args.fits,
        "decoder": None
        if decoder is None
        else {"sets": args.decoder_sets, "bytes": len(decoder.blob), "fit_seconds": decoder_seconds},
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "steps": args.steps,
        "default_steps": default_steps,
        "quality": args.quality,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "params": params.to_dict(),
        "rows": rows,
    }
    for batch, arithmetic in [(b, "batched") for b in args.batch_sizes] + [
        (b, "per-set") for b in args.per_set
    ]:
        batched = arithmetic == "batched" and args.device != "cpu"
        seconds, reports = measure(
            sets, settings, batch, args.device, fits=args.fits, decoder=decoder, batched=batched
        )
        per_set = statistics.median(seconds) / batch
        code = statistics.median(r["code_seconds"] for r in reports)
        row = {
            "sets_per_fit": batch,
            "arithmetic": "batched" if batch > 1 and batched else "per-set",
            "fits": len(seconds),
            "wall_seconds": [round(s, 2) for s in seconds],
            "per_set_s": round(per_set, 3),
            "sets_per_hour": round(3600 / per_set, 1),
            "code_per_set_s": round(code, 3),  # (the entropy coding and decode check: on the CPU)
            "projected_per_set_s": round((per_set - code) * default_steps / args.steps + code, 1),
            "bytes": [r["bytes"] for r in reports],
            "psnr": [round(r["psnr"], 3) for r in reports],
        }
        alone = alone or row
        row["speed_ratio"] = round(alone["per_set_s"] / per_set, 3)
        common = min(len(row["bytes"]), len(alone["bytes"]))  # (with --fits: the sets B = 1 fitted)
        row["bytes_ratio"] = round(sum(row["bytes"][:common]) / sum(alone["bytes"][:common]), 4)
        psnr, psnr_alone = row["psnr"][:common], alone["psnr"][:common]
        row["psnr_difference_db"] = round(statistics.mean(psnr) - statistics.mean(psnr_alone), 3)
        diffs = [a - b for a, b in zip(psnr, psnr_alone, strict=True)]
        row["psnr_difference_range_db"] = [round(min(diffs), 3), round(max(diffs), 3)]
        rows.append(row)
        print(
            f"{batch:>4}{' ' if arithmetic == 'batched' else '*'}{len(seconds):>5}"
            f" {per_set:>8.2f} {row['sets_per_hour']:>8.0f}"
            f" {row['speed_ratio']:>6.2f} {row['bytes_ratio']:>13.4f} {row['psnr_difference_db']:>+10.2f}",
            flush=True,
        )
        with atomic_path(Path(args.output)) as tmp:  # after every row: a run cut short keeps what it measured
            tmp.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
