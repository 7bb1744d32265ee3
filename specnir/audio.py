"""Audio file I/O through soundfile: read any format libsndfile knows, mix down, resample."""

from __future__ import annotations

import os
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from specnir.errors import SpecnirError, atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")


class SilentAudio(SpecnirError):
    """An audio file with no sound in it (empty, or silent): a corpus may skip it."""


def load_audio(path: str | os.PathLike, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 waveform.

    Args:
        path: any file soundfile reads (WAV, FLAC, OGG, ...). Stereo is averaged to mono.
        sample_rate: resample to this rate (Hz); ``None`` keeps the file's rate.

    Returns:
        ``(waveform, sample_rate)``: waveform of shape ``(n_samples,)`` in [-1, 1], rate in Hz.

    Raises:
        SpecnirError: the file is missing, is not audio, is empty, silent, or holds NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise SpecnirError(f"{path}: not a readable audio file ({_first_line(exc)})") from None
    if data.shape[0] == 0:
        raise SilentAudio(f"{path}: audio is empty (0 samples)")
    if not np.all(np.isfinite(data)):
        raise SpecnirError(f"{path}: audio holds NaN or infinite samples")
    waveform = data.mean(axis=1)
    if np.max(np.abs(waveform)) < 1e-6:
        raise SilentAudio(f"{path}: audio is silent (peak below -120 dBFS)")
    if sample_rate is not None and sample_rate != file_rate:
        waveform = librosa.resample(waveform, orig_sr=file_rate, target_sr=sample_rate)
        file_rate = sample_rate
    return np.ascontiguousarray(waveform, dtype=np.float32), int(file_rate)


def save_audio(path: str | os.PathLike, waveform: np.ndarray, *, sample_rate: int) -> Path:
    """Write ``waveform`` (n_samples,) as 16-bit PCM WAV, atomically; peaks above 1 are clipped."""
    path = Path(path)
    pcm = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
