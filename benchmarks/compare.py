"""Fit designs on the same clips with the same step budget at matched weight counts.

    python benchmarks/compare.py --steps 600 --sizes 3000 10000 30000 \
        --designs gru siren siren:multi=tile siren:multi=heads -o out/bench/compare

Prints a table (PSNR, GMSD, SSIM, bits per pixel at 16 bits per weight, seconds) and writes
``compare.json`` and ``compare.png`` (PSNR against weights) to the output folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from common import ROOT, machine, sized_config, write_json

from specnir.data import load_image_set
from specnir.fit import FitConfig, fit
from specnir.models import MODELS
from specnir.spectrogram import SpecParams


def parse_design(text: str) -> tuple[str, dict]:
    """``"siren:multi=tile,w0=20"`` → ``("siren", {"multi": "tile", "w0": 20.0})``."""
    arch, _, rest = text.partition(":")
    fields = {f.name: f.type for f in dataclasses.fields(MODELS[arch].Config)}
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        kind = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true")}.get(
            fields[key], str
        )
        kwargs[key] = kind(value)
    return arch, kwargs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="*", default=[str(ROOT / "audio")])
    p.add_argument("--designs", nargs="+", default=["gru", "siren"])
    p.add_argument("--sizes", nargs="+", type=int, default=[3000, 10000, 30000])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--grad-weight", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="out/bench/compare")
    args = p.parse_args(argv)

    data = load_image_set(args.inputs, params=SpecParams())
    shape = tuple(data.target.shape)
    pixels = sum(data.widths) * shape[1]
    rows = []
    for design in args.designs:
        arch, fixed = parse_design(design)
        for size in args.sizes:
            cfg = sized_config(arch, size, shape, **fixed)
            torch.manual_seed(args.seed)
            model = MODELS[arch](cfg, n_images=shape[0], height=shape[1], width=shape[2])
            fit_cfg = FitConfig(
                steps=args.steps,
                eval_every=max(args.steps // 4, 1),
                grad_weight=args.grad_weight,
            )
            start = time.perf_counter()
            result = fit(model, data, fit_cfg, progress=False)
            m = result.best_metrics
            row = {
                "design": design,
                "config": dataclasses.asdict(cfg),
                "weights": model.n_weights(),
                "estimated_bpp_16_bit_weights": model.n_weights() * 16 / pixels,
                "steps": args.steps,
                "seconds": round(time.perf_counter() - start, 1),
                "psnr": m["psnr"],
                "gmsd": m["gmsd"],
                "ssim": m["ssim"],
                **{k: v for k, v in m.items() if k.endswith("/psnr")},
            }
            rows.append(row)
            print(
                f"{design:<22} {row['weights']:>7,} {row['estimated_bpp_16_bit_weights']:>6.3f} bpp  "
                f"PSNR {row['psnr']:6.2f}  GMSD {row['gmsd']:.4f}  SSIM {row['ssim']:.3f}  "
                f"{row['seconds']:>6.1f} s",
                flush=True,
            )
    out = Path(args.output)
    write_json(
        out / "compare.json", {"machine": machine(), "shape": shape, "steps": args.steps, "rows": rows}
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for design in args.designs:
        pts = [(r["weights"], r["psnr"]) for r in rows if r["design"] == design]
        ax.plot(*zip(*pts, strict=True), marker="o", label=design)
    ax.set_xscale("log")
    ax.set_xlabel("weights")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{shape[0]}×{shape[1]}×{shape[2]} spectrograms, {args.steps} steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=120)
    print(f"wrote {out / 'compare.json'} and {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
