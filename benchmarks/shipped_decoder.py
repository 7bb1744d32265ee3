"""The decoder specnir ships against a set's own networks: bytes, PSNR and encode time, and BD-rates.

    python benchmarks/shipped_decoder.py audio --qualities 1 2 3 4 --rd docs/rd.json \\
        -o docs/shipped-decoder.json [--own] [--sets held/alsa held/ru0 ...]

Every set is compressed by ``specnir.codec.compress`` with its default decoder (the shipped one where it
serves the analysis and quality) and, with ``--own``, with ``decoder=None`` (its own networks). ``--rd`` is
a ``specnir bench rd`` report of the first input with the methods ``latent`` (the default command) and
``latent-own`` (its own networks where the default uses the shipped decoder): the BD-rates of both curves
against AVIF, JPEG-XL and WebP, where they overlap. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import machine, write_json

from specnir.bench.bdrate import bd_rate, points
from specnir.codec.encode import SHIPPED, compress


def measure(inputs: list[str], quality: int, decoder) -> dict:
    start = time.perf_counter()
    result = compress(inputs, quality=quality, decoder=decoder, progress=False)
    r = result.report
    return {
        "set": ",".join(inputs),
        "quality": quality,
        "decoder": r["decoder_id"],
        "shipped": r["decoder_shipped"],
        "bytes": r["bytes"],
        "bpp": r["bpp"],
        "coded_bpp": (r["bytes"] - r["framing_bytes"]) * 8 / r["pixels"],
        "weight_bytes": r["weight_bits"] / 8,
        "psnr": r["psnr"],
        "steps": r["steps"],
        "decoder_loss_ratio": r.get("decoder_loss_ratio"),
        "seconds": round(time.perf_counter() - start, 1),
    }


def own_curve(rd: dict) -> list[dict]:
    """rd.json's rows and the own-networks curve (``specnir-latent-own-all``): its ``latent-own`` rows
    (every quality has a shipped decoder, so the default's rows are never the own networks')."""
    own = [r for r in rd["rows"] if r["method"] == "specnir-latent-own"]
    return rd["rows"] + [{**r, "method": "specnir-latent-own-all"} for r in own]


def bd_against(rows: list[dict]) -> list[dict]:
    """BD-rates (%) of the default and the own-networks latent curves against AVIF, JPEG-XL and WebP,
    over 25–40 and 30–45 dB, files as written and payloads alone."""
    out = []
    for lo, hi in ((25.0, 40.0), (30.0, 45.0)):
        for rate in ("bpp", "coded_bpp"):
            percent = {
                f"{m} vs {a}": bd_rate(points(rows, a, rate), points(rows, m, rate), lo, hi)
                for m in ("specnir-latent", "specnir-latent-own-all")
                for a in ("avif", "jpegxl", "webp")
            }
            out.append({"range_db": [lo, hi], "rate": rate, "percent": percent})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="the headline set (files or a folder)")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--qualities", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--rd", help="a `specnir bench rd` report of the same set, for the BD-rates")
    parser.add_argument("--own", action="store_true", help="also each set with its own networks")
    parser.add_argument("--sets", nargs="*", default=[], help="other sets (folders), measured at --qualities")
    args = parser.parse_args(argv)
    rows = []
    for inputs in [args.inputs, *([s] for s in args.sets)]:
        for q in args.qualities:
            for decoder in (SHIPPED, None) if args.own else (SHIPPED,):
                rows.append(measure(inputs, q, decoder))
                r = rows[-1]
                print(
                    f"{r['set'][-24:]:>24} q{q} {'shipped' if r['shipped'] else 'own':>7}: {r['bytes']:>7,} B"
                    f" {r['bpp']:.4f} bpp {r['psnr']:6.2f} dB {r['seconds']:6.1f} s",
                    flush=True,
                )
    payload = {"machine": machine(), "command": " ".join(sys.argv), "rows": rows}
    if args.rd:
        payload["bd"] = bd_against(own_curve(json.loads(Path(args.rd).read_text())))
        for t in payload["bd"]:
            print(f"BD-rate {t['range_db']} dB ({t['rate']}): {t['percent']}")
    write_json(Path(args.output), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
