"""A decoder shared by a corpus against independent sets: bytes per set, PSNR and encode time (a measurement).

    python benchmarks/shared_decoder.py ../shared/data/asterisk-en/digits --train 4 --sets 8 --steps 600 \\
        --sample-rate 8000 --n-fft 512 --hop-length 64 --n-mels 80 -o docs/corpus/shared-decoder.json

1. The first ``--train`` sets are fitted together with one synthesis and one entropy model for all of them
   (:class:`~specnir.models.stacked.StackedLatents` with ``shared``); the decoder's weights are then put on
   the grids that rate–distortion picks for the first of them.
2. Each of the next ``--sets`` sets is fitted with that decoder frozen (only its latents learn, from
   zero as in ``compress``) and coded with the decoder's grids; a file that refers to a stored decoder would
   hold everything but the weights, so its bytes are the file's minus its weight bytes.
3. The same sets are compressed independently (``compress_sets`` of one set), with the same steps and seed.

Nothing here is a format: it measures whether the shared decoder is worth one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from specnir.cli.args import add_spectrogram_args, spectrogram_params
from specnir.codec.modes import LatentMode
from specnir.codec.pipeline import Settings, _code, compress_sets, eight_bit, joined
from specnir.codec.weights import Quantized, loss_on
from specnir.corpus import find_sets
from specnir.data import load_image_set
from specnir.errors import atomic_path
from specnir.fit import FitConfig, fit
from specnir.models.stacked import StackedLatents


class FrozenDecoder(LatentMode):
    """The latent mode with the decoder's weights kept on the grids chosen for the shared decoder."""

    def __init__(self, exponents: dict[str, int]) -> None:
        self.exponents = exponents

    def quantize(self, model, data, fit_config):
        loss = loss_on(model, data)()
        return Quantized(self.exponents, loss, loss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--train", type=int, default=4, help="sets the shared decoder is fitted on")
    parser.add_argument("--sets", type=int, default=8, help="sets coded with it (the ones after those)")
    parser.add_argument("--set-size", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--quality", type=int, default=4)
    add_spectrogram_args(parser)
    args = parser.parse_args(argv)
    params = spectrogram_params(args)
    found = find_sets(args.corpus, set_size=args.set_size)[: args.train + args.sets]
    data = [eight_bit(load_image_set(list(s.clips), params=params)) for s in found]
    train, test = data[: args.train], data[args.train :]
    settings = Settings(quality=args.quality, steps=args.steps)
    coding, arch, options = settings.coding()
    fit_config = FitConfig(steps=args.steps, eval_every=max(args.steps // 5, 1))

    start = time.perf_counter()
    models = []
    for d in train:
        torch.manual_seed(0)
        models.append(coding.build(arch, args.quality, d, options))
    stacked = StackedLatents(models, [d.widths for d in train], shared=True)
    fit(stacked, joined(train), fit_config, progress=False)
    stacked.unstack(models)
    decoder = coding.quantize(models[0].cpu().eval(), train[0], fit_config)  # the decoder on its grids
    weights = {n: p.detach().clone() for n, p in models[0].weights().items()}
    train_seconds = time.perf_counter() - start
    frozen = FrozenDecoder(decoder.exponents)

    rows = []
    print(f"{'set':<28} {'alone B':>8} {'dB':>6} {'s':>5}   {'shared B':>8} {'dB':>6} {'s':>5}")
    for corpus_set, d in zip(found[args.train :], test, strict=True):
        start = time.perf_counter()
        alone = compress_sets([d], settings, progress=False)[0].report
        alone_seconds = time.perf_counter() - start
        start = time.perf_counter()
        torch.manual_seed(0)
        model = coding.build(arch, args.quality, d, options)
        with torch.no_grad():
            for name, p in model.weights().items():
                p.copy_(weights[name])
                p.requires_grad_(False)
        fit(model, d, fit_config, progress=False)
        shared = _code(frozen, arch, args.quality, model, d, fit_config, {"fit_seconds": 0.0}).report
        shared_seconds = time.perf_counter() - start
        row = {
            "set": corpus_set.name,
            "alone_bytes": alone["bytes"],
            "alone_weight_bytes": round(alone["weight_bits"] / 8),
            "alone_psnr": round(alone["psnr"], 3),
            "alone_seconds": round(alone_seconds, 1),
            "shared_bytes": without_weights(shared),
            "shared_psnr": round(shared["psnr"], 3),
            "shared_seconds": round(shared_seconds, 1),
        }
        rows.append(row)
        print(
            f"{row['set']:<28} {row['alone_bytes']:>8} {row['alone_psnr']:>6.2f} {row['alone_seconds']:>5.0f}"
            f"   {row['shared_bytes']:>8} {row['shared_psnr']:>6.2f} {row['shared_seconds']:>5.0f}",
            flush=True,
        )
    decoder_bytes = round(sum(_weight_bits(models[0], decoder.exponents)) / 8)
    summary = {
        "bytes_ratio": round(sum(r["shared_bytes"] for r in rows) / sum(r["alone_bytes"] for r in rows), 4),
        "psnr_difference_db": round(
            statistics.mean(r["shared_psnr"] for r in rows) - statistics.mean(r["alone_psnr"] for r in rows),
            3,
        ),
        "seconds_ratio": round(
            sum(r["shared_seconds"] for r in rows) / sum(r["alone_seconds"] for r in rows), 3
        ),
        "decoder_bytes": decoder_bytes,
        "decoder_train_seconds": round(train_seconds, 1),
    }
    print(json.dumps(summary, indent=1))
    report = {
        "corpus": args.corpus,
        "train_sets": [s.name for s in found[: args.train]],
        "steps": args.steps,
        "quality": args.quality,
        "params": params.to_dict(),
        "summary": summary,
        "rows": rows,
    }
    with atomic_path(Path(args.output)) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return 0


def without_weights(report: dict) -> int:
    """A file's bytes less its weights' (what a file that refers to a stored decoder would hold)."""
    return report["bytes"] - round(report["weight_bits"] / 8)


def _weight_bits(model, exponents) -> list[int]:
    import constriction

    from specnir.codec.weights import encode_weights, tensor_entries

    entries, ints = tensor_entries(model, exponents)
    encoder = constriction.stream.queue.RangeEncoder()
    encode_weights(encoder, entries, ints)
    return [encoder.num_bits()]


if __name__ == "__main__":
    sys.exit(main())
