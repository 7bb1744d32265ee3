"""Distortions for the ear: PESQ-WB and STOI at equal kbps for the latent mode fitted to each distortion.

    python benchmarks/ear_distortion.py held/alsa held/ru --qualities 3 4 5 6 \\
        --variants mse ear ear:floor=0.3 loud:power=0.6 -o docs/ear-distortion.json

Each set (a folder or files of speech) is compressed at each quality against the decoder specnir ships for
it (kept as it is: no own-networks fallback, so every variant is coded the same way) with the fit's
distortion replaced by each variant, decoded, inverted to audio (the default inversion) and scored against
the recording. Variants: ``mse``; ``ear[:floor=F,quantile=Q]`` (specnir's ear weights,
:func:`specnir.models.loss.ear_weights`, with other parameters); ``loud[:power=P,floor=F]``, weights
``max(10^(P · dB / 20), F)`` scaled to mean 1 (to first order, the error on linear magnitudes compressed by
the power P/2). Prints a table and writes JSON with every point and, per set and variant, the PESQ-WB
interpolated at 6, 8 and 12 kbps (log kbps) and its mean gain over ``mse`` on the kbps both cover.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, write_json

import specnir.models.loss as loss_module
from specnir.audio import load_audio
from specnir.bench.speech import speech_scores
from specnir.codec.decoders import load_decoder, shipped_decoder
from specnir.codec.encode import Settings, compress_sets
from specnir.codec.networks import DecoderNetworks
from specnir.convert import expand_inputs
from specnir.data import load_image_set
from specnir.spectrogram import SpecParams, spectrogram_to_audio

EAR_WEIGHTS = loss_module.ear_weights
KBPS = (6, 8, 12)


class AsIs(DecoderNetworks):
    """The decoder's networks, kept whatever the set's loss (the benchmark compares distortions alone)."""

    def keep(self, result, refit):
        return result


def _params(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    return name, {k: float(v) for k, v in (kv.split("=") for kv in rest.split(",") if kv)}


def loud_weights(target, mask, *, power=0.6, floor=0.02, top_db=80.0):
    """``max(10^(power · dB / 20), floor)`` of each pixel (dB relative to its image's loudest), mean 1."""
    full = mask.expand_as(target) > 0
    weights = torch.zeros_like(target)
    for k in range(target.shape[0]):
        db = (target[k] - target[k][full[k]].max()) * top_db
        w = torch.clamp(10 ** (power * db / 20), min=floor) * full[k]
        weights[k] = w * (int(full[k].sum()) / w.sum())
    return weights


def use_variant(text: str) -> str:
    """Make ``specnir.models.loss`` compute the variant's weights; returns the distortion to fit."""
    name, kwargs = _params(text)
    if name == "mse":
        return "mse"
    makers = {
        "ear": functools.partial(EAR_WEIGHTS, **kwargs),
        "loud": functools.partial(loud_weights, **kwargs),
    }
    loss_module.ear_weights = makers[name]
    return "ear"


def decoder_for(analysis: dict, quality: int, extra: list) -> object:
    found = [d for d in extra if d.serves(analysis, quality)]
    return found[0] if found else shipped_decoder(analysis, quality)


def measure(inputs: list[str], variant: str, quality: int, extra: list) -> dict:
    params = SpecParams()
    data = load_image_set(inputs, params=params)
    originals = [load_audio(f, sample_rate=params.sample_rate)[0] for f in expand_inputs(inputs)]
    seconds = sum(len(w) for w in originals) / params.sample_rate
    decoder = decoder_for(params.to_dict(), quality, extra)
    start = time.perf_counter()
    try:
        settings = Settings(mode="latent", quality=quality, distortion=use_variant(variant))
        result = compress_sets([data], settings, networks=AsIs(decoder), progress=False)[0]
    finally:
        loss_module.ear_weights = EAR_WEIGHTS
    elapsed = time.perf_counter() - start
    scores = [
        speech_scores(ref, spectrogram_to_audio(spec), params.sample_rate)
        for ref, spec in zip(originals, result.decoded.specs, strict=True)
    ]
    r = result.report
    return {
        "set": ",".join(inputs),
        "variant": variant,
        "quality": quality,
        "decoder": decoder.id,
        "bytes": r["bytes"],
        "kbps": r["bytes"] * 8 / seconds / 1000,
        "psnr": r["psnr"],
        "pesq_wb": float(np.nanmean([s["pesq_wb"] for s in scores])),
        "stoi": float(np.mean([s["stoi"] for s in scores])),
        "seconds": round(elapsed, 1),
    }


def at_kbps(rows: list[dict], key: str, kbps: float) -> float | None:
    """``key`` interpolated at ``kbps`` on log kbps (None outside the measured range)."""
    pts = sorted((np.log(r["kbps"]), r[key]) for r in rows)
    x = np.log(kbps)
    if not pts or x < pts[0][0] or x > pts[-1][0]:
        return None
    return float(np.interp(x, [p[0] for p in pts], [p[1] for p in pts]))


def mean_gain(rows: list[dict], base: list[dict], key: str) -> float | None:
    """The mean of ``key``'s gain over ``base`` on the log-kbps range both cover (None if none)."""
    lo = max(min(r["kbps"] for r in rows), min(r["kbps"] for r in base))
    hi = min(max(r["kbps"] for r in rows), max(r["kbps"] for r in base))
    if lo >= hi:
        return None
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 50))
    return float(np.mean([at_kbps(rows, key, k) - at_kbps(base, key, k) for k in grid]))


def summary(points: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(p["set"] for p in points):
        rows = [p for p in points if p["set"] == name]
        base = [p for p in rows if p["variant"] == "mse"]
        for variant in dict.fromkeys(p["variant"] for p in rows):
            mine = [p for p in rows if p["variant"] == variant]
            entry = {"set": name, "variant": variant}
            for k in KBPS:
                entry[f"pesq_at_{k}"] = at_kbps(mine, "pesq_wb", k)
                entry[f"stoi_at_{k}"] = at_kbps(mine, "stoi", k)
            if base and len(mine) > 1 and len(base) > 1:
                entry["pesq_gain"] = mean_gain(mine, base, "pesq_wb")
                entry["stoi_gain"] = mean_gain(mine, base, "stoi")
                entry["psnr_gain"] = mean_gain(mine, base, "psnr")
            out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sets", nargs="+", help="folders or files of speech, one set each")
    p.add_argument("--qualities", nargs="+", type=int, default=[3, 4, 5, 6])
    p.add_argument("--variants", nargs="+", default=["mse", "ear"])
    p.add_argument("--decoder", nargs="*", default=[], help="decoder files to use before the shipped ones")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    extra = [load_decoder(path) for path in args.decoder]
    points = []
    heads = ("q", "bytes", "kbps", "PSNR", "PESQ", "STOI")
    print(f"{'set':28s} {'variant':22s} " + " ".join(f"{h:>6s}" for h in heads))
    for name in args.sets:
        for variant in args.variants:
            for q in args.qualities:
                row = measure([name], variant, q, extra)
                points.append(row)
                print(
                    f"{name[-28:]:28s} {variant:22s} {q:2d} {row['bytes']:7,d} {row['kbps']:6.2f}"
                    f" {row['psnr']:6.2f} {row['pesq_wb']:5.2f} {row['stoi']:5.3f}",
                    flush=True,
                )
                write_json(args.output, {"machine": machine(), "points": points, "summary": summary(points)})
    for entry in summary(points):
        keys = ("pesq_gain", "stoi_gain", "psnr_gain")
        gains = ", ".join(f"{k} {entry[k]:+.3f}" for k in keys if entry.get(k) is not None)
        print(f"{entry['set'][-28:]:28s} {entry['variant']:22s} {gains}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
