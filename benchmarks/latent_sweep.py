"""The latent mode over sets × qualities × seeds × settings, many files at once: how its defaults were tuned.

    python benchmarks/latent_sweep.py --set alsa3=DIR --set digits=DIR --qualities 1-8 --seeds 0 \\
        --try "synthesis=8,entropy_hidden=8" --jobs 8 --device cuda -o out/sweep

Every (set, quality, seed, settings) is one ``compress(..., mode="latent")`` in its own process (torch on
one thread; ``--jobs`` of them at once, which keeps a GPU busy with these small models); ``--try`` adds
LatentConfig fields on top of the quality's own (repeatable; none: the defaults). Each finished file is
one JSON line in ``sweep.jsonl`` (bytes and their split, bpp, PSNR, seconds) as it finishes, and a table
is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from common import ROOT


def _settings(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        out[key] = json.loads(value) if value not in ("mlp", "gru") else value
    return out


def run_one(job: dict) -> dict:
    import torch

    from specnir.codec.encode import compress
    from specnir.codec.modes import MODES

    torch.set_num_threads(1)
    latent = MODES["latent"]
    latent.SETTINGS = {q: {**s, **job["settings"]} for q, s in latent.SETTINGS.items()}
    start = time.perf_counter()
    result = compress(
        [job["path"]],
        mode="latent",
        quality=job["quality"],
        seed=job["seed"],
        steps=job["steps"],
        device=job["device"],
        progress=False,
    )
    r = result.report
    keys = (
        "bytes",
        "bpp",
        "psnr",
        "header_bytes",
        "weight_bits",
        "latent_grid_bits",
        "latent_estimate_bits",
        "fit_seconds",
        "code_seconds",
        "pixels",
    )
    return {
        **{k: v for k, v in job.items() if k != "path"},
        **{k: r[k] for k in keys},
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--qualities", default="1-8")
    p.add_argument("--seeds", default="0")
    p.add_argument("--try", dest="tries", action="append", default=None, metavar="FIELD=VALUE,...")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "sweep")
    args = p.parse_args(argv)
    lo, _, hi = args.qualities.partition("-")
    qualities = range(int(lo), int(hi or lo) + 1)
    jobs = [
        {
            "set": name,
            "path": path,
            "quality": q,
            "seed": int(seed),
            "settings": _settings(t),
            "steps": args.steps,
            "device": args.device,
        }
        for t in args.tries or [""]
        for name, _, path in (s.partition("=") for s in args.set)
        for q in qualities
        for seed in args.seeds.split(",")
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    with (
        ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool,
        open(args.output / "sweep.jsonl", "a") as log,
    ):
        for future in as_completed([pool.submit(run_one, job) for job in jobs]):
            try:
                row = future.result()
            except Exception as exc:  # one failed file must not lose the others
                row = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
    for r in sorted(
        (r for r in rows if "bpp" in r), key=lambda r: (r["set"], str(r["settings"]), r["quality"])
    ):
        print(
            f"{r['set']:<10} {json.dumps(r['settings']):<40} Q{r['quality']} seed {r['seed']}: "
            f"{r['bpp']:.3f} bpp {r['psnr']:.2f} dB ({r['fit_seconds']:.0f} s fit)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
