"""A GRU synthesis against the latent mode's convolutional one, at equal grids, entropy model and λ.

    python benchmarks/gru_synthesis.py .gpu/tune/alsa3 --qualities 2,4 --steps 800 -o out/bench/gru-synthesis

The GRU synthesis is the sequence model in the decoder's last stage: the up-sampled latents and the
frequency position of every pixel (``grids + 1`` channels) go through a 1×1 layer, then a GRU shared by
all rows runs along time (column x's output depends on every column before it), and a 3×3 layer makes
the pixel. It is fitted through the same loop with the same schedule; only ``synthesize`` differs. Not a
shipped option: this script says whether it earns its place. Reported per fit: the latents' rate under
the entropy model (bits per pixel, the trained estimate that coding meets within 1 %), the networks'
weights, PSNR of the rounded decode, seconds. Prints a table and writes ``gru_synthesis.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from common import ROOT, machine, write_json
from torch import nn

from specnir.codec.encode import eight_bit
from specnir.codec.modes import MODES
from specnir.data import load_image_set
from specnir.fit import FitConfig, fit
from specnir.metrics import psnr_from_mse
from specnir.models.latent import LatentCodec, synthesis_input
from specnir.spectrogram import SpecParams


class GRUSynthesisCodec(LatentCodec):
    """:class:`LatentCodec` whose synthesis runs a GRU along time (see the module)."""

    def __init__(self, config, *, n_images, height, width, hidden: int = 14) -> None:
        super().__init__(config, n_images=n_images, height=height, width=width)
        self.synthesis = nn.ModuleDict(
            {
                "inp": nn.Conv2d(config.grids + 1, hidden, 1),
                "gru": nn.GRU(hidden, hidden, batch_first=True),
                "out": nn.Conv2d(hidden, 1, 3, padding=1, padding_mode="replicate"),
            }
        )
        nn.init.constant_(self.synthesis["out"].bias, 0.5)

    def synthesize(self, latents, width=None):
        size = (self.height, width or self.width)
        h = torch.relu(self.synthesis["inp"](synthesis_input(latents, self.frequency, size)))  # (N, C, H, W)
        n, c, rows, cols = h.shape
        seq = h.permute(0, 2, 3, 1).reshape(n * rows, cols, c)  # one sequence along time per row
        out, _ = self.synthesis["gru"](seq)
        h = out.reshape(n, rows, cols, c).permute(0, 3, 1, 2)
        return self.synthesis["out"](h)[:, 0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+")
    p.add_argument("--qualities", default="2,4")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "bench" / "gru-synthesis")
    args = p.parse_args(argv)
    data = eight_bit(load_image_set(args.inputs, params=SpecParams()))
    n, h, w = data.target.shape
    pixels = int(data.mask.sum()) * h
    rows = []
    latent = MODES["latent"]
    for quality in map(int, args.qualities.split(",")):
        config = LatentCodec.Config(**latent.quality_config(quality))
        for name, cls in (("conv", LatentCodec), ("gru", GRUSynthesisCodec)):
            torch.manual_seed(args.seed)
            model = cls(config, n_images=n, height=h, width=w)
            start = time.perf_counter()
            fit(
                model,
                data,
                FitConfig(steps=args.steps, seed=args.seed, eval_every=args.steps),
                progress=False,
            )
            seconds = time.perf_counter() - start
            model.eval()
            with torch.no_grad():
                rates = model.rates(data.mask)
                levels = torch.round(model().clamp(0, 1) * 255)  # the 8-bit decode, as the codec reports
                error = (levels - torch.round(data.target * 255)) ** 2 * data.mask
                value = psnr_from_mse(float(error.sum()) / pixels, peak=255.0)
            rows.append(
                {
                    "quality": quality,
                    "synthesis": name,
                    "synthesis_weights": sum(p.numel() for p in model.synthesis.parameters()),
                    "weights": sum(p.numel() for p in model.weights().values()),
                    "latent_bpp": sum(rates["grid_bits"]) / pixels,
                    "psnr": value,
                    "seconds": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    print(f"{'Q':>2} {'synthesis':<9} {'weights':>7} {'latent bpp':>10} {'PSNR':>6} {'s':>5}")
    for r in rows:
        print(
            f"{r['quality']:>2} {r['synthesis']:<9} {r['weights']:>7} {r['latent_bpp']:>10.3f} "
            f"{r['psnr']:>6.2f} {r['seconds']:>5.0f}"
        )
    write_json(args.output / "gru_synthesis.json", {"machine": machine(), "steps": args.steps, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
