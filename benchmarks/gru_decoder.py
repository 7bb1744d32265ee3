"""The GRU synthesis against the convolutional one as a decoder trained on many voices, at equal decode time.

    python benchmarks/gru_decoder.py CORPUS... --held audio HELD... --quality 4 --clips 120 \\
        --steps 4000 --conv 12 24 --hidden 8 14 -o docs/gru-decoder.json

A decoder's bytes are in no file, so its synthesis may be as large as the decode time allows. For each
synthesis — the latent mode's convolutional one (``--conv``: its channels; 12 is the latent mode's) and the
GRU of ``gru_synthesis.py`` (a GRU shared by all rows running along time, column x from column x−1, for all
images together) at each ``--hidden`` — this trains a decoder as ``specnir train-decoder`` does
(:class:`~specnir.models.crops.CropLatents`: the corpus's latents and the networks on random crops, one
quality's λ, the same seed, steps and crops), then codes every ``--held`` set against it as ``compress``
codes a set against the shipped decoder (fresh latents, the networks frozen, ``--code-steps``: by default
the share of the mode's steps that ``compress`` takes, :data:`~specnir.codec.networks.SHIPPED_STEPS`)
and reports the latents' rate (the entropy model's estimate, bits per pixel), the PSNR of the rounded 8-bit
decode, and the synthesis's decode time on the first held set's shape (all syntheses measured first, in
turns, median of 15 after 3 warm-up rounds, this machine's threads; ``--time-only``: that alone) with its
multiply-adds per pixel. The networks are not rounded to grids (the shipped
decoder's rounding moves its loss by at most 0.1 %). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
from common import ROOT, machine, write_json
from gru_synthesis import GRUSynthesisCodec

from specnir.codec.decoder_train import training_images
from specnir.codec.encode import eight_bit
from specnir.codec.modes import MODES
from specnir.codec.networks import SHIPPED_STEPS
from specnir.corpus import clips_under
from specnir.data import load_image_set
from specnir.fit import fit
from specnir.fit_config import FitConfig
from specnir.metrics import psnr_from_mse
from specnir.models.crops import CropLatents
from specnir.models.latent import LatentCodec, LatentConfig
from specnir.spectrogram import SpecParams


def macs_per_pixel(codec: LatentCodec) -> int:
    """Multiply-adds of the synthesis per pixel (its layers' weights; a GRU's are used once per pixel)."""
    return sum(p.numel() for n, p in codec.synthesis.named_parameters() if "bias" not in n)


def make_codec(name: str, hidden: int, config: LatentConfig, **shape) -> LatentCodec:
    if name == "conv":
        return LatentCodec(dataclasses.replace(config, synthesis=hidden), **shape)
    return GRUSynthesisCodec(config, hidden=hidden, **shape)


def train(name, hidden, config, data, args) -> tuple[dict, float]:
    """The decoder's networks trained on the corpus's crops, and seconds per step."""
    torch.manual_seed(args.seed)
    height = data.target.shape[1]
    model = CropLatents(
        config, height=height, widths=data.widths, lams=[config.lam] * len(data.names), crop=64, batch=16
    )
    model.codec = make_codec(name, hidden, config, n_images=1, height=height, width=1)
    start = time.perf_counter()
    fit(model, data, FitConfig(steps=args.steps, seed=args.seed, eval_every=args.steps), progress=False)
    return model.codec.state_dict(), (time.perf_counter() - start) / args.steps


def code_held(name, hidden, config, networks, held, steps, seed) -> tuple[dict, LatentCodec]:
    """``held`` coded against the frozen networks: latent bpp and PSNR of the 8-bit decode."""
    n, h, w = held.target.shape
    codec = make_codec(name, hidden, config, n_images=n, height=h, width=w)
    codec.load_state_dict({k: v for k, v in networks.items() if not k.startswith("latents.")}, strict=False)
    for p in codec.weights().values():
        p.requires_grad_(False)
    fit(codec, held, FitConfig(steps=steps, seed=seed, eval_every=max(steps // 5, 1)), progress=False)
    codec.eval()
    pixels = float(held.mask.sum()) * h
    with torch.no_grad():
        bpp = sum(codec.rates(held.mask)["grid_bits"]) / pixels
        levels = torch.round(codec().clamp(0, 1) * 255)
        error = ((levels - torch.round(held.target * 255)) ** 2 * held.mask).sum()
    mse = float(error) / pixels
    loss = mse / 255**2 + config.lam * bpp  # what the fit minimises, on the rounded decode
    return {"latent_bpp": bpp, "psnr": psnr_from_mse(mse, peak=255.0), "rd_loss": loss}, codec


def synthesis_ms(codecs: dict[str, LatentCodec], rounds: int = 15) -> dict[str, float]:
    """Median milliseconds of each codec's synthesis of its rounded latents, the codecs taking turns (so
    that a noisy machine weighs on all alike), after three warm-up rounds."""
    times = {name: [] for name in codecs}
    with torch.no_grad():
        for _ in range(rounds + 3):
            for name, codec in codecs.items():
                latents = codec.coded_latents()
                start = time.perf_counter()
                codec.synthesize(latents)
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t[3:]) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="+", help="folders of training speech")
    p.add_argument("--held", nargs="+", required=True, help="folders of sets to code (not trained on)")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--clips", type=int, default=120, help="clips trained on, taken evenly")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", type=int, nargs="+", default=[8, 14], help="the GRU's hidden sizes")
    p.add_argument("--conv", type=int, nargs="+", default=[12, 24], help="the convolutions' channels")
    p.add_argument("--code-steps", type=int, help="steps of each held set's latents (default: compress's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-only", action="store_true", help="only the syntheses' decode times")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "bench" / "gru-decoder.json")
    args = p.parse_args(argv)
    params = SpecParams()
    data, clips = training_images(args.corpus, params=params, limit=1 if args.time_only else args.clips)
    config = LatentConfig(**MODES["latent"].quality_config(args.quality))
    share = SHIPPED_STEPS["full" if config.first == 0 else "coarse"]
    steps = args.code_steps or max(round(MODES["latent"].fit_steps(args.quality) * share), 1)
    held = {path: eight_bit(load_image_set(clips_under(Path(path)), params=params)) for path in args.held}
    variants = [("conv", c) for c in args.conv] + [("gru", h) for h in args.hidden]
    first = next(iter(held.values()))
    timed = {}
    for name, hidden in variants:  # the decode time, on the first held set's shape
        codec = make_codec(
            name,
            hidden,
            config,
            n_images=len(first.names),
            height=first.target.shape[1],
            width=first.target.shape[2],
        ).eval()
        with torch.no_grad():
            for y in codec.latents:
                y.normal_(0, 2)
        timed[f"{name}-{hidden}"] = codec
    times = synthesis_ms(timed)
    print({k: round(v, 1) for k, v in times.items()}, flush=True)
    rows = []
    for name, hidden in [] if args.time_only else variants:
        networks, step_s = train(name, hidden, config, data, args)
        for path, images in held.items():
            result, codec = code_held(name, hidden, config, networks, images, steps, args.seed)
            row = {"synthesis": name, "hidden": hidden, "set": path, **result, "train_s_per_step": step_s}
            row["macs_per_pixel"] = macs_per_pixel(codec)
            row["synthesis_ms"] = times[f"{name}-{hidden}"]
            rows.append(row)
            print(row, flush=True)
    print(f"{'synthesis':<9} {'hidden':>6} {'set':<24} {'bpp':>6} {'PSNR':>6} {'MAC/px':>6} {'ms':>6}")
    for r in rows:
        ms = f"{r['synthesis_ms']:6.1f}"
        print(
            f"{r['synthesis']:<9} {r['hidden']:>6} {r['set'][-24:]:<24} {r['latent_bpp']:6.3f} "
            f"{r['psnr']:6.2f} {r['macs_per_pixel']:>6} {ms}"
        )
    write_json(
        args.output,
        {
            "machine": machine(),
            "corpus": args.corpus,
            "clips": clips,
            "images": len(data.names),
            "quality": args.quality,
            "steps": args.steps,
            "held_steps": steps,
            "held": {path: images.names for path, images in held.items()},
            "synthesis_ms": times,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
