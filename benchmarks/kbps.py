"""``compress --kbps`` against Opus at the same bitrates: where each lands, its fits and seconds, and what a
listener gets (PESQ-WB, STOI).

    python benchmarks/kbps.py audio held/alsa --kbps 6 8 12 --distortions mse ear -o docs/kbps.json

Each set (a folder or files of speech) is compressed by :func:`specnir.codec.rate.compress_at_rate` (the
default command with ``--kbps K``, and ``--distortion``), decoded, inverted to audio with the default
inversion and scored against the recordings; Opus (PyAV's libopus) codes the recordings at the same
bitrates, its kbps counted from the Ogg files as written. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import machine, write_json

from specnir.audio import load_audio
from specnir.bench.speech import opus_rows, speech_scores
from specnir.codec.rate import RateTarget, compress_at_rate
from specnir.convert import expand_inputs
from specnir.spectrogram import SpecParams, spectrogram_to_audio


def specnir_row(name: str, originals: list[np.ndarray], kbps: float, distortion: str) -> dict:
    params = SpecParams()
    start = time.perf_counter()
    result = compress_at_rate([name], RateTarget(kbps=kbps), distortion=distortion, progress=False)
    seconds = time.perf_counter() - start
    scores = [
        speech_scores(ref, spectrogram_to_audio(spec), params.sample_rate)
        for ref, spec in zip(originals, result.decoded.specs, strict=True)
    ]
    r, rc = result.report, result.report["rate_control"]
    return {
        "set": name,
        "method": f"specnir-{distortion}",
        "target_kbps": kbps,
        "bytes": r["bytes"],
        "kbps": rc["kbps"],
        "off": r["bytes"] / rc["target_bytes"] - 1,
        "fits": rc["fits"],
        "quality": result.decoded.header["quality"],
        "lambda": result.decoded.header["model_config"]["lam"],
        "decoder": r["decoder_id"],
        "psnr": r["psnr"],
        "pesq_wb": float(np.nanmean([s["pesq_wb"] for s in scores])),
        "stoi": float(np.mean([s["stoi"] for s in scores])),
        "seconds": round(seconds, 1),
        "audio_seconds": sum(len(w) for w in originals) / params.sample_rate,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sets", nargs="+", help="folders or files of speech, one set each")
    p.add_argument("--kbps", nargs="+", type=float, default=[6.0, 8.0, 12.0])
    p.add_argument("--distortions", nargs="+", default=["mse", "ear"])
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    rows = []
    heads = f"{'asked':>6s} {'kbps':>6s} {'off':>6s} {'fits':>4s} {'s':>5s} PESQ  STOI"
    print(f"{'set':24s} {'method':14s} {heads}")
    for name in args.sets:
        params = SpecParams()
        originals = [load_audio(f, sample_rate=params.sample_rate)[0] for f in expand_inputs([name])]
        opus = opus_rows(originals, params.sample_rate, args.kbps)
        found = [{**row, "set": name, "target_kbps": k} for k, row in zip(args.kbps, opus, strict=True)]
        for distortion in args.distortions:
            for kbps in args.kbps:
                found.append(specnir_row(name, originals, kbps, distortion))
        for row in found:
            row = {k: v for k, v in row.items() if not k.startswith("_")}
            rows.append(row)
            fits = len(row["fits"]) if "fits" in row else ""
            off = f"{row['off']:+.1%}" if "off" in row else ""
            print(
                f"{name[-24:]:24s} {row['method']:14s} {row['target_kbps']:6.1f} {row['kbps']:6.2f} {off:>6s}"
                f" {fits!s:>4s} {row.get('seconds', ''):>5} {row['pesq_wb']:.2f} {row['stoi']:.3f}",
                flush=True,
            )
        write_json(args.output, {"machine": machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
