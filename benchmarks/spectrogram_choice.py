"""Which spectrogram to compress, for the ear: PESQ-WB against kbps through the latent mode.

    python benchmarks/spectrogram_choice.py audio --qualities 3,5,6 -o out/bench/spectrogram-choice

For each kind of spectrogram (128 mels, today's default; 256 mels; the linear STFT, 513 bins) every
quality is one ``.snir`` file of the whole set (``compress(mode="latent")``), decoded and inverted with the
default inversion, and scored against the original recordings. kbps = file bytes × 8 / seconds of audio.
Prints a table and writes ``spectrogram_choice.json`` (one line per file is also appended to
``spectrogram_choice.jsonl`` as it finishes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, machine, write_json

from specnir.audio import load_audio
from specnir.bench.speech import speech_scores
from specnir.codec.encode import compress
from specnir.codec.modes import MODES
from specnir.convert import expand_inputs
from specnir.spectrogram import SpecParams, spectrogram_to_audio

KINDS = {
    "mel128": SpecParams(),
    "mel256": SpecParams(n_mels=256),
    "linear": SpecParams(scale="linear"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--qualities", default="3,5,6", help="Q or Q@λ (that quality's grids with another λ), ...")
    p.add_argument("--steps", type=int, help="default: the latent mode's own for each quality")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "bench" / "spectrogram-choice")
    args = p.parse_args(argv)
    files = expand_inputs(args.inputs)
    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.kinds.split(","):
        params = KINDS[kind]
        originals = [load_audio(f, sample_rate=params.sample_rate)[0] for f in files]
        seconds = sum(len(w) for w in originals) / params.sample_rate
        for point in args.qualities.split(","):
            quality, _, lam = point.partition("@")
            quality, lam = int(quality), float(lam) if lam else None
            start = time.perf_counter()
            result = compress(
                files,
                mode="latent",
                quality=quality,
                lam=lam,
                steps=args.steps,
                params=params,
                progress=False,
            )
            fit_seconds = time.perf_counter() - start
            scores = [
                speech_scores(o, spectrogram_to_audio(s), params.sample_rate)
                for o, s in zip(originals, result.decoded.specs, strict=True)
            ]
            row = {
                "kind": kind,
                "quality": quality,
                "lambda": lam or MODES["latent"].quality_config(quality)["lam"],
                "bins": params.n_bins,
                "bytes": len(result.blob),
                "kbps": len(result.blob) * 8 / seconds / 1000,
                "bpp": result.report["bpp"],
                "psnr": result.report["psnr"],
                "pesq_wb": float(np.nanmean([s["pesq_wb"] for s in scores])),
                "stoi": float(np.mean([s["stoi"] for s in scores])),
                "steps": result.report["steps"],
                "seconds": round(fit_seconds, 1),
            }
            rows.append(row)
            with open(args.output / "spectrogram_choice.jsonl", "a") as log:
                log.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print(f"{'kind':<8} {'Q':>2} {'kbps':>6} {'bpp':>6} {'PSNR':>6} {'PESQ-WB':>8} {'STOI':>6} {'s':>6}")
    for r in rows:
        print(
            f"{r['kind']:<8} {r['quality']:>2} {r['kbps']:>6.2f} {r['bpp']:>6.3f} {r['psnr']:>6.2f} "
            f"{r['pesq_wb']:>8.3f} {r['stoi']:>6.3f} {r['seconds']:>6.0f}"
        )
    write_json(args.output / "spectrogram_choice.json", {"machine": machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
