"""Two `specnir batch` folders of one corpus, set by set: bytes, PSNR and seconds on the sets both finished.

    python benchmarks/compare_batches.py out/corpus-a out/corpus-b -o out/compare.json

Each folder's total counts its shared decoder (``decoder.snird``) if its sets use one; sets whose name
contains an ``--exclude`` part (default ``silence``) are listed apart. Prints a summary and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from specnir.codec.decoders import DECODER_FILE
from specnir.corpus import MANIFEST, read_manifest
from specnir.errors import atomic_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--exclude", nargs="*", default=["silence"])
    args = parser.parse_args(argv)
    folders = [Path(args.first), Path(args.second)]
    rows = [{k: r for k, r in read_manifest(f / MANIFEST).items() if r["status"] == "ok"} for f in folders]
    common = [k for k in rows[0] if k in rows[1]]
    apart = [k for k in common if any(p in k.split("/") for p in args.exclude)]
    main_sets = [k for k in common if k not in apart]
    report = {"folders": [str(f) for f in folders], "sets_in_common": len(common), "sides": []}
    for folder, side in zip(folders, rows, strict=True):
        decoder = folder / DECODER_FILE
        uses = any(side[k].get("decoder") for k in side)
        report["sides"].append(
            {
                "folder": str(folder),
                "finished": len(side),
                "decoder_bytes": decoder.stat().st_size if uses else 0,
                "bytes": sum(side[k]["bytes"] for k in main_sets),
                "psnr_mean": round(statistics.mean(side[k]["psnr"] for k in main_sets), 3),
                "psnr_min_median_max": [
                    f(side[k]["psnr"] for k in main_sets) for f in (min, statistics.median, max)
                ],
                "seconds": round(sum(side[k]["seconds"] for k in main_sets), 1),
                "settings": side[main_sets[0]]["settings"],
            }
        )
    a, b = report["sides"]
    report["bytes_ratio"] = round(b["bytes"] / a["bytes"], 4)
    report["psnr_difference_db"] = round(b["psnr_mean"] - a["psnr_mean"], 3)
    report["seconds_ratio"] = round(b["seconds"] / a["seconds"], 3)
    report["apart"] = {
        k: [{f: side[k].get(f) for f in ("bytes", "psnr", "decoder", "seconds")} for side in rows]
        for k in apart
    }
    report["sets"] = {
        k: [{f: side[k][f] for f in ("bytes", "psnr", "seconds")} for side in rows] for k in main_sets
    }
    print(
        f"{len(main_sets)} sets in common (+{len(apart)} apart): bytes {a['bytes']:,} -> {b['bytes']:,}"
        f" ({report['bytes_ratio']:.3f}x), mean PSNR {a['psnr_mean']:.2f} -> {b['psnr_mean']:.2f} dB,"
        f" set seconds {a['seconds']:.0f} -> {b['seconds']:.0f}"
    )
    for k, (x, y) in report["apart"].items():
        print(f"  {k}: {x['bytes']:,} B at {x['psnr']:.2f} dB -> {y['bytes']:,} B at {y['psnr']:.2f} dB")
    with atomic_path(Path(args.output)) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
