"""Inverting a dB spectrogram for the listener: which method sounds best per second spent.

    python benchmarks/phase.py ../shared/data/alsa-speech/*.wav -o out/bench/phase

Every clip becomes the default dB spectrogram (128 mels unless ``--linear``) and each method rebuilds a
waveform from it. ``nnls``: the previous default's magnitude, mel bands → linear power by non-negative
least squares, held fixed while the phase is found — zero-phase fast Griffin-Lim (the previous default),
PGHI alone, PGHI then fast Griffin-Lim. ``refined``: :func:`specnir.spectrogram.spectrogram_to_audio`,
which re-estimates the linear power from the signal's own STFT at every iteration so that its mel bands
match (for a linear spectrogram the two are the same, and only ``refined`` runs). Scores against the
original recording: PESQ-WB, STOI, and the spectral convergence of the waveform's STFT against the
recording's. Seconds are per second of audio, the whole inversion, medians over the clips. Prints a
table and writes ``phase.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import librosa
import numpy as np
from common import ROOT, machine, write_json

from specnir.audio import load_audio
from specnir.bench.speech import speech_scores
from specnir.metrics import spectral_convergence
from specnir.phase import griffin_lim, pghi
from specnir.spectrogram import (
    SpecParams,
    _window,
    audio_to_spectrogram,
    mel_basis,
    spectrogram_to_audio,
    spectrogram_to_power,
)

METHODS = (
    ("nnls", "zero", 32),
    ("nnls", "zero", 64),
    ("nnls", "zero", 128),
    ("nnls", "pghi", 0),
    ("nnls", "pghi", 16),
    ("nnls", "pghi", 32),
    ("nnls", "pghi", 64),
    ("refined", "zero", 32),
    ("refined", "zero", 64),
    ("refined", "pghi", 0),
    ("refined", "pghi", 16),
    ("refined", "pghi", 32),
    ("refined", "pghi", 64),
)


def invert(spec, magnitude: str, phase: str, n_iter: int) -> np.ndarray:
    if magnitude == "refined":
        return spectrogram_to_audio(spec, phase=phase, n_iter=n_iter)
    params = spec.params
    mag = np.sqrt(librosa.util.nnls(mel_basis(params), spectrogram_to_power(spec)))
    stft = dict(n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length)
    start = pghi(mag, **stft, window=params.window) if phase == "pghi" else None
    return griffin_lim(mag, **stft, window=_window(params), phase=start, n_iter=n_iter, length=spec.length)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+")
    p.add_argument("--linear", action="store_true", help="a linear-frequency STFT instead of 128 mels")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "bench" / "phase")
    args = p.parse_args(argv)
    params = SpecParams(scale="linear") if args.linear else SpecParams()
    methods = [m for m in METHODS if not (args.linear and m[0] == "nnls")]
    results = {m: [] for m in methods}
    for path in args.inputs:
        wave, sr = load_audio(path, sample_rate=params.sample_rate)
        spec = audio_to_spectrogram(wave, params=params)
        seconds = len(wave) / sr
        for method in methods:
            start = time.perf_counter()
            out = invert(spec, *method)
            elapsed = (time.perf_counter() - start) / seconds
            results[method].append(
                {
                    "clip": Path(path).stem,
                    "seconds_per_second": elapsed,
                    "sc": spectral_convergence(wave, out, params=params),
                    **speech_scores(wave, out, sr),
                }
            )
        print(f"{Path(path).stem}: done", file=sys.stderr, flush=True)
    summary = [
        {
            "magnitude": magnitude,
            "phase": phase,
            "n_iter": n_iter,
            "pesq_wb_mean": float(np.mean([r["pesq_wb"] for r in rows])),
            "stoi_mean": float(np.mean([r["stoi"] for r in rows])),
            "sc_mean": float(np.mean([r["sc"] for r in rows])),
            "seconds_per_second": statistics.median(r["seconds_per_second"] for r in rows),
            "clips": rows,
        }
        for (magnitude, phase, n_iter), rows in results.items()
    ]
    print(f"{len(args.inputs)} clips, {'linear STFT' if args.linear else f'{params.n_mels} mels'}")
    print(f"{'magnitude':<9} {'phase':<6} {'iters':>5} {'PESQ-WB':>8} {'STOI':>6} {'SC':>6} {'s/s':>7}")
    for s in summary:
        print(
            f"{s['magnitude']:<9} {s['phase']:<6} {s['n_iter']:>5} {s['pesq_wb_mean']:>8.3f} "
            f"{s['stoi_mean']:>6.3f} {s['sc_mean']:>6.3f} {s['seconds_per_second']:>7.3f}"
        )
    write_json(
        args.output / "phase.json",
        {
            "machine": machine(),
            "params": dataclasses.asdict(params),
            "methods": summary,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
