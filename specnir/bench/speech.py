"""Listening scores for ``specnir bench rd --audio``: PESQ-WB and STOI of every decode, and of Opus.

Every specnir decode and the uncompressed spectrograms become audio through the default inversion
(:func:`specnir.spectrogram.spectrogram_to_audio`; ``benchmarks/phase.py`` compares inversions). Opus
(PyAV's libopus, the ``bench`` extra) codes the original recordings at several bitrates. Each row keeps
its waveforms under ``_waves`` for the listening page; the report drops keys that start with ``_``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specnir.bench.figures import save_figure
from specnir.data import ImageSet
from specnir.spectrogram import DEFAULT_N_ITER, DEFAULT_PHASE, spectrogram_to_audio

OPUS_KBPS = (6, 8, 12, 16, 24)


def speech_scores(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> dict:
    """PESQ-WB and STOI of ``degraded`` against ``reference`` (resampled to 16 kHz for both)."""
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


def _scored(originals: list[np.ndarray], waves: list[np.ndarray], sample_rate: int) -> dict:
    """Mean PESQ-WB and STOI over the clips, and per clip (``_clips``) with the waveforms (``_waves``)."""
    scores = [speech_scores(ref, deg, sample_rate) for ref, deg in zip(originals, waves, strict=True)]
    means = {k: float(np.nanmean([s[k] for s in scores])) for k in ("pesq_wb", "stoi")}
    return {**means, "_clips": scores, "_waves": waves}


def opus_rows(originals: list[np.ndarray], sample_rate: int, kbps_list=OPUS_KBPS) -> list[dict]:
    """Opus at each bitrate: kbps of the Ogg files as written and of their packets alone, and scores."""
    try:
        from specnir.bench.opus import opus_round_trip
    except ImportError:
        return [
            {"method": "opus", "setting": "skipped: PyAV is not installed (pip install 'specnir[bench]')"}
        ]
    seconds = sum(len(w) for w in originals) / sample_rate
    rows = []
    for kbps in kbps_list:
        coded = [opus_round_trip(w, sample_rate=sample_rate, kbps=kbps) for w in originals]
        size = sum(c.ogg_bytes for c in coded)
        packets = sum(c.packet_bytes for c in coded)
        rows.append(
            {
                "method": "opus",
                "setting": f"bitrate={kbps}",
                "bytes": size,
                "kbps": size * 8 / seconds / 1000,
                "packet_kbps": packets * 8 / seconds / 1000,
                "max_lag": max(abs(c.lag) for c in coded),
                **_scored(originals, [c.decoded for c in coded], sample_rate),
            }
        )
    return rows


def audio_rows(data: ImageSet, originals: list[np.ndarray], specnir_rows: list[dict]) -> list[dict]:
    """The uncompressed spectrograms, every specnir decode, and Opus (originals ``(n_samples,)`` each)."""
    sr = data.params.sample_rate
    seconds = sum(len(w) for w in originals) / sr

    def scored(specs) -> dict:
        return _scored(originals, [spectrogram_to_audio(s) for s in specs], sr)

    rows = [
        {"method": "uncompressed", "setting": f"{DEFAULT_PHASE}+{DEFAULT_N_ITER}", **scored(data.specs)},
    ]
    for row in specnir_rows:
        rows.append(
            {
                "method": row["method"],
                "setting": row["setting"],
                "bytes": row["bytes"],
                "kbps": row["bytes"] * 8 / seconds / 1000,
                **scored(row["_decoded"].specs),
            }
        )
    return rows + opus_rows(originals, sr)


def plot_listening(rows: list[dict], path: Path) -> Path:
    """PESQ-WB against kbps: one line per method (specnir modes, Opus), the uncompressed inversion as a
    horizontal line; written atomically to ``path`` (PNG)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    scored = [r for r in rows if np.isfinite(r.get("pesq_wb", np.nan))]  # PESQ refuses very short clips
    for method in dict.fromkeys(r["method"] for r in scored if r.get("kbps")):
        pts = sorted((r["kbps"], r["pesq_wb"]) for r in scored if r["method"] == method and r.get("kbps"))
        style = "o-" if method.startswith("specnir") else "s--"
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], style, label=method, lw=2 if method == "opus" else 1.5
        )
    for r in scored:
        if r["method"] == "uncompressed":
            ax.axhline(r["pesq_wb"], color="grey", ls=":", label=f"uncompressed spectrogram ({r['setting']})")
    if any(r.get("kbps") for r in scored):
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.legend(fontsize=8)
    ax.set_xlabel("kbps (file bytes × 8 / seconds of audio)")
    ax.set_ylabel("PESQ-WB (mean over the clips)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("what a listener gets: PESQ-WB against bitrate")
    return save_figure(fig, path)
