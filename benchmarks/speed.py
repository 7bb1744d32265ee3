"""Fitting speed: steps per second and time to reach 25, 30 and 35 dB on the bundled clips.

    python benchmarks/speed.py --arch siren --steps 2000 -o out/bench/speed

Runs on the CPU and, where CUDA is present, on the GPU. Step times are medians over the run with the
evaluation steps left out; times to a PSNR are the step at which evaluation first reached it × the median
step time. Prints a table and writes ``speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from common import ROOT, machine, write_json

from specnir.data import load_image_set
from specnir.fit import Callback, FitConfig, fit
from specnir.models import IMAGE_MODELS, MODELS
from specnir.spectrogram import SpecParams

THRESHOLDS = (25.0, 30.0, 35.0)


class Timer(Callback):
    def __init__(self) -> None:
        self.times, self.evals, self.last, self.after_eval = [], [], None, False

    def on_step(self, step, loss, lr) -> None:
        now = time.perf_counter()
        if self.last is not None and not self.after_eval:
            self.times.append(now - self.last)
        self.last, self.after_eval = now, False
        if step == 1 and torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_eval(self, step, recon, extras, metrics) -> None:
        self.evals.append((step, metrics["psnr"]))
        self.after_eval = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=IMAGE_MODELS, default="siren")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), help="default: cpu, and cuda if present")
    p.add_argument("-o", "--output", default="out/bench/speed")
    args = p.parse_args(argv)
    data = load_image_set([ROOT / "audio"], params=SpecParams())
    n, h, w = data.target.shape
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        torch.manual_seed(0)
        cls = MODELS[args.arch]
        model = cls(cls.Config(), n_images=n, height=h, width=w)
        cfg = FitConfig(steps=args.steps, device=device, eval_every=args.eval_every)
        timer = Timer()
        fit(model, data, cfg, callbacks=[timer], progress=False)
        step_s = statistics.median(timer.times)
        reach = {}
        for threshold in THRESHOLDS:
            first = next((s for s, v in timer.evals if v >= threshold), None)
            reach[f"seconds_to_{int(threshold)}dB"] = None if first is None else round(first * step_s, 1)
        best = max(v for _, v in timer.evals)
        rows.append(
            {
                "device": device,
                "arch": args.arch,
                "weights": model.n_weights(),
                "steps": args.steps,
                "steps_per_second": 1 / step_s,
                "best_psnr": best,
                **reach,
            }
        )
    print(
        f"{'device':<6} {'arch':<6} {'weights':>7} {'steps/s':>8} "
        f"{'to 25 dB':>9} {'to 30 dB':>9} {'to 35 dB':>9} {'best dB':>8}"
    )
    for r in rows:
        cells = [
            f"{r[f'seconds_to_{t}dB']:.1f} s" if r[f"seconds_to_{t}dB"] is not None else "-"
            for t in (25, 30, 35)
        ]
        print(
            f"{r['device']:<6} {r['arch']:<6} {r['weights']:>7,} {r['steps_per_second']:>8.1f} "
            + " ".join(f"{c:>9}" for c in cells)
            + f" {r['best_psnr']:>8.2f}"
        )
    write_json(Path(args.output) / "speed.json", {"machine": machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
