"""Listening scores for ``specnir bench rd --audio``: PESQ-WB and STOI of Griffin-Lim decodes, and Opus.

Every specnir decode and the uncompressed spectrograms go through the same Griffin-Lim; Opus (opusenc and
opusdec from Debian's opus-tools, if installed) codes the original recordings at several bitrates.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from specnir.data import ImageSet
from specnir.spectrogram import Spectrogram, spectrogram_to_audio


def speech_scores(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> dict:
    """PESQ-WB and STOI of ``degraded`` against ``reference`` (resampled to 16 kHz for PESQ)."""
    import librosa
    from pesq import pesq
    from pystoi import stoi

    n = min(len(reference), len(degraded))
    ref, deg = reference[:n].astype(np.float64), degraded[:n].astype(np.float64)
    if sample_rate != 16000:
        ref = librosa.resample(ref, orig_sr=sample_rate, target_sr=16000)
        deg = librosa.resample(deg, orig_sr=sample_rate, target_sr=16000)
    try:
        pesq_wb = float(pesq(16000, ref, deg, "wb"))
    except Exception:  # pesq refuses silence or too-short clips
        pesq_wb = float("nan")
    return {"pesq_wb": pesq_wb, "stoi": float(stoi(ref, deg, 16000, extended=False))}


def _mean_scores(pairs) -> dict:
    scores = [speech_scores(ref, deg, sr) for ref, deg, sr in pairs]
    return {k: float(np.nanmean([s[k] for s in scores])) for k in ("pesq_wb", "stoi")}


def _opus_rows(originals: list[np.ndarray], sample_rate: int, kbps_list=(6, 8, 12, 16)) -> list[dict]:
    """Opus at several bitrates through opusenc/opusdec, if they are installed."""
    import soundfile as sf

    if not (shutil.which("opusenc") and shutil.which("opusdec")):
        return [{"method": "opus", "setting": "skipped: opusenc/opusdec not installed (Debian opus-tools)"}]
    rows = []
    seconds = sum(len(w) for w in originals) / sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        for kbps in kbps_list:
            size, pairs = 0, []
            for i, wave in enumerate(originals):
                src, enc, dec = (Path(tmp) / f"{i}.{ext}" for ext in ("wav", "opus", "out.wav"))
                sf.write(src, wave, sample_rate)
                subprocess.run(["opusenc", "--quiet", "--bitrate", str(kbps), str(src), str(enc)], check=True)
                subprocess.run(
                    ["opusdec", "--quiet", "--rate", str(sample_rate), str(enc), str(dec)], check=True
                )
                size += enc.stat().st_size
                pairs.append((wave, sf.read(dec)[0], sample_rate))
            rows.append(
                {
                    "method": "opus",
                    "setting": f"bitrate={kbps}",
                    "bytes": size,
                    "kbps": size * 8 / seconds / 1000,
                    **_mean_scores(pairs),
                }
            )
    return rows


def audio_rows(
    data: ImageSet, originals: list[np.ndarray], specnir_rows: list[dict], *, n_iter: int
) -> list[dict]:
    """PESQ-WB / STOI of Griffin-Lim on the uncompressed spectrograms, of every specnir decode, and Opus."""
    sr = data.params.sample_rate
    seconds = sum(len(w) for w in originals) / sr

    def scores(specs: list[Spectrogram]) -> dict:
        return _mean_scores(
            (orig, spectrogram_to_audio(spec, n_iter=n_iter), sr)
            for orig, spec in zip(originals, specs, strict=True)
        )

    rows = [{"method": "griffin-lim (uncompressed)", "setting": f"n_iter={n_iter}", **scores(data.specs)}]
    for row in specnir_rows:
        rows.append(
            {
                "method": row["method"],
                "setting": row["setting"],
                "bytes": row["bytes"],
                "kbps": row["bytes"] * 8 / seconds / 1000,
                **scores(row["_decoded"].specs),
            }
        )
    return rows + _opus_rows(originals, sr)
