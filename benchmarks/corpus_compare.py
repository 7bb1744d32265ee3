"""A compressed corpus against FLAC of its audio and the classical image codecs of its spectrograms.

    python benchmarks/corpus_compare.py out/asterisk-1500 -o docs/corpus/asterisk-1500.json --every 4

Reads a ``specnir batch`` folder's manifest. For every finished set it codes the same 8-bit images with
AVIF, JPEG-XL and WebP at each of their settings (:func:`specnir.bench.codecs.run_classical`) and finds, by
interpolating log-bytes against PSNR between settings, what each codec needs to reach the set's PSNR;
the totals over the corpus are then at equal quality set by set. Sets whose PSNR a codec's range does not
reach are counted at its nearest setting above (or left out, and counted, where none is above). Also:
FLAC (level 8) and 16-bit PCM of the audio, the PSNR spread over sets, and sets named by ``--exclude``
(non-speech) reported apart. The image codecs at every setting are slow (JPEG-XL effort 9, AVIF speed 1):
``--every K`` runs them on about one set in K only (those whose name's CRC-32 is a multiple of K: the
same sets whatever the order), and compares specnir on those sets.
Per-set results are cached beside the output (``.sets.jsonl``), so a second run adds only new sets.
A shared decoder's bytes (``OUTDIR/decoder.snird``) are spread evenly over the sets: each set's specnir
bytes in the totals and comparisons are its file's plus that share.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from specnir.bench.bdrate import LOSSY_ANCHORS
from specnir.bench.codecs import run_classical
from specnir.codec.decoders import DECODER_FILE
from specnir.codec.encode import eight_bit
from specnir.corpus import MANIFEST, read_manifest
from specnir.data import load_image_set
from specnir.errors import atomic_path
from specnir.spectrogram import SpecParams


def bytes_at(rows: list[dict], psnr: float) -> float | None:
    """The bytes a codec's settings need for ``psnr``: log-linear between the two settings around it, the
    cheapest setting at or above it where it lies outside, ``None`` where no setting reaches it."""
    points = sorted((r["psnr"], r["bytes"]) for r in rows if "bytes" in r)
    for (p0, b0), (p1, b1) in zip(points, points[1:], strict=False):
        if p0 <= psnr <= p1 and p1 > p0:
            return math.exp(math.log(b0) + (math.log(b1) - math.log(b0)) * (psnr - p0) / (p1 - p0))
    above = [b for p, b in points if p >= psnr]
    return min(above) if above else None


def flac_bytes(path: Path) -> tuple[int, int]:
    """FLAC (level 8, the file's own rate and depth) and 16-bit PCM bytes of one audio file."""
    wave, rate = sf.read(path, dtype="int16", always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return len(buffer.getvalue()), wave.size * 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("-o", "--output", required=True, help="JSON file")
    parser.add_argument("--exclude", nargs="*", default=["silence"], help="set name parts counted apart")
    parser.add_argument("--every", type=int, default=1, help="image codecs on one set in K only (slow)")
    args = parser.parse_args(argv)
    rows = [r for r in read_manifest(Path(args.outdir) / MANIFEST).values() if r["status"] == "ok"]
    cache = Path(args.output).with_suffix(".sets.jsonl")  # sets measured already (for a batch still running)
    known = {}
    if cache.exists():
        known = {r["set"]: r for r in map(json.loads, cache.read_text().splitlines())}
    sets, start = [], time.perf_counter()
    for k, row in enumerate(rows):
        if row["set"] in known and known[row["set"]]["specnir_bytes"] == row["bytes"]:
            sets.append(known[row["set"]])
            continue
        sets.append(measure_set(row, args, classical=zlib.crc32(row["set"].encode()) % args.every == 0))
        with open(cache, "a") as f:
            f.write(json.dumps(sets[-1]) + "\n")
        print(
            f"[{k + 1}/{len(rows)}] {row['set']}: specnir {row['bytes']} B at {row['psnr']:.2f} dB;"
            + "".join(f" {c} {sets[-1][f'{c}_bytes'] or 0:.0f}" for c in LOSSY_ANCHORS),
            flush=True,
        )
    decoder = Path(args.outdir) / DECODER_FILE
    decoder_bytes = decoder.stat().st_size if any(r.get("decoder") for r in rows) else 0
    for s in sets:  # a shared decoder's bytes, spread evenly over the sets that use it
        s["decoder_share"] = decoder_bytes / len(rows)
    report = {
        "outdir": args.outdir,
        "decoder_bytes": decoder_bytes,
        "exclude": args.exclude,
        "seconds": round(time.perf_counter() - start),
        "speech": summary([s for s in sets if not s["excluded"]]),
        "excluded": summary([s for s in sets if s["excluded"]]),
        "sets": sets,
    }
    with atomic_path(Path(args.output)) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    for part in ("speech", "excluded"):
        print(part, json.dumps(report[part], indent=1))
    return 0


def measure_set(row: dict, args: argparse.Namespace, *, classical: bool = True) -> dict:
    """One finished set against the classical codecs at its PSNR (if ``classical``), its audio against
    FLAC."""
    params = SpecParams.from_dict(row["settings"]["params"])
    data = eight_bit(load_image_set(row["clips"], params=params))
    images = [np.rint(im * 255).astype(np.uint8) for im in data.images(data.target)]
    coded = [r for r in run_classical(images) if r["method"] in LOSSY_ANCHORS] if classical else []
    audio = [flac_bytes(Path(c)) for c in row["clips"]]
    return {
        "set": row["set"],
        "clips": len(row["clips"]),
        "seconds_of_audio": sum(sf.info(c).duration for c in row["clips"]),
        "pixels": row["pixels"],
        "specnir_bytes": row["bytes"],
        "weight_bytes": row["weight_bytes"],
        "psnr": row["psnr"],
        "flac_bytes": sum(a for a, _ in audio),
        "pcm_bytes": sum(b for _, b in audio),
        "classical": classical,
        **{
            f"{codec}_bytes": bytes_at([r for r in coded if r["method"] == codec], row["psnr"])
            for codec in LOSSY_ANCHORS
        },
        "excluded": any(part in row["set"].split("/") for part in args.exclude),
    }


def summary(sets: list[dict]) -> dict:
    if not sets:
        return {}
    psnr = [s["psnr"] for s in sets]
    out = {
        "sets": len(sets),
        "clips": sum(s["clips"] for s in sets),
        "seconds_of_audio": round(sum(s["seconds_of_audio"] for s in sets), 1),
        "pixels": sum(s["pixels"] for s in sets),
        "specnir_bytes": round(sum(s["specnir_bytes"] + s["decoder_share"] for s in sets)),
        "weight_bytes": round(sum(s["weight_bytes"] for s in sets)),
        "flac_bytes": sum(s["flac_bytes"] for s in sets),
        "pcm_bytes": sum(s["pcm_bytes"] for s in sets),
        "psnr_min_median_max": [round(min(psnr), 2), round(statistics.median(psnr), 2), round(max(psnr), 2)],
    }
    out["specnir_bpp"] = round(out["specnir_bytes"] * 8 / out["pixels"], 4)
    out["specnir_kbps"] = round(out["specnir_bytes"] * 8 / out["seconds_of_audio"] / 1000, 2)
    out["flac_kbps"] = round(out["flac_bytes"] * 8 / out["seconds_of_audio"] / 1000, 2)
    measured = [s for s in sets if s.get("classical", True)]
    out["sets_with_image_codecs"] = len(measured)
    for codec in LOSSY_ANCHORS:
        reached = [s for s in measured if s[f"{codec}_bytes"] is not None]
        mine = round(sum(s["specnir_bytes"] + s["decoder_share"] for s in reached))
        theirs = sum(s[f"{codec}_bytes"] for s in reached) or 1
        out[codec] = {
            "sets_reached": len(reached),
            "bytes_at_equal_psnr": round(theirs),
            "specnir_bytes_same_sets": mine,
            "specnir_saving": round(1 - mine / theirs, 4),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
