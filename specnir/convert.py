"""File-level conversions: audio or image files → spectrograms, and the audio round-trip report."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from specnir.audio import AUDIO_SUFFIXES, load_audio, save_audio
from specnir.errors import SpecnirError
from specnir.image import read_png, write_png
from specnir.metrics import log_spectral_distance, spectral_convergence
from specnir.spectrogram import (
    DEFAULT_N_ITER,
    DEFAULT_PHASE,
    SpecParams,
    Spectrogram,
    audio_to_spectrogram,
    spectrogram_to_audio,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def expand_inputs(paths: list[str | os.PathLike]) -> list[Path]:
    """Files as given, directories expanded to their audio and image files (sorted).

    Raises ``SpecnirError`` for a missing path, an empty directory, or two inputs with one stem
    (their outputs would overwrite each other).
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES + IMAGE_SUFFIXES)
            if not found:
                raise SpecnirError(f"{p}: directory holds no audio or image files")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise SpecnirError(f"{p}: no such file")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise SpecnirError(f"{f}: same name as {stems[f.stem]}; outputs would collide")
        stems[f.stem] = f
    return files


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def load_spectrogram(path: str | os.PathLike, *, params: SpecParams, **image_options) -> Spectrogram:
    """An audio file (analysed with ``params``) or a spectrogram image (its own parameters)."""
    path = Path(path)
    if is_image(path):
        return read_png(path, params=params, **image_options)
    waveform, _ = load_audio(path, sample_rate=params.sample_rate)
    return analyse(path, waveform, params=params)


def analyse(path: Path, waveform: np.ndarray, *, params: SpecParams) -> Spectrogram:
    """:func:`audio_to_spectrogram` of a file's waveform; its errors name the file."""
    try:
        return audio_to_spectrogram(waveform, params=params)
    except SpecnirError as exc:
        raise SpecnirError(f"{path}: {exc}") from None


def roundtrip(
    paths: list[Path],
    *,
    params: SpecParams,
    bit_depth: int = 16,
    phase: str = DEFAULT_PHASE,
    n_iter: int = DEFAULT_N_ITER,
    outdir: Path | None = None,
) -> list[dict]:
    """Audio → PNG → audio for each file; quality of the result against the input.

    Returns one dict per file: ``file``, ``frames``, ``max_db_error`` (PNG quantization, dB),
    ``spectral_convergence``, ``lsd_db`` and ``seconds``. With ``outdir`` the PNGs and WAVs stay there.
    """
    waves = [load_audio(p, sample_rate=params.sample_rate)[0] for p in paths]
    specs = [analyse(p, wave, params=params) for p, wave in zip(paths, waves, strict=True)]  # fail first
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        where = outdir or Path(tmp)
        for path, wave, spec in zip(paths, waves, specs, strict=True):
            start = time.perf_counter()
            png = write_png(where / f"{path.stem}.png", spec, bit_depth=bit_depth)
            back = read_png(png)
            audio = spectrogram_to_audio(back, phase=phase, n_iter=n_iter)
            if outdir is not None:
                save_audio(where / f"{path.stem}.wav", audio, sample_rate=params.sample_rate)
            rows.append(
                {
                    "file": str(path),
                    "frames": int(spec.db.shape[1]),
                    "max_db_error": float(np.abs(back.db - spec.db).max()),
                    "spectral_convergence": spectral_convergence(wave, audio, params=params),
                    "lsd_db": log_spectral_distance(wave, audio, params=params),
                    "seconds": time.perf_counter() - start,
                }
            )
    return rows


def write_spectrograms(
    outdir: Path,
    names: list[str],
    specs: list,
    *,
    phase: str = DEFAULT_PHASE,
    n_iter: int = DEFAULT_N_ITER,
    bit_depth: int = 16,
    audio: bool = True,
) -> list[Path]:
    """``outdir/<name>.png`` (with metadata) and ``outdir/<name>.wav`` for every spectrogram."""
    written = []
    for name, spec in zip(names, specs, strict=True):
        written.append(write_png(outdir / f"{name}.png", spec, bit_depth=bit_depth))
        if not audio:
            continue
        wave = spectrogram_to_audio(spec, phase=phase, n_iter=n_iter)
        written.append(save_audio(outdir / f"{name}.wav", wave, sample_rate=spec.params.sample_rate))
    return written
