"""Shared, seeded fixtures: synthetic chirps and the bundled clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted((ROOT / "audio").glob("*.wav"))


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)


def make_chirp(
    seconds: float = 0.5, sample_rate: int = 16000, f0: float = 200.0, f1: float = 4000.0
) -> np.ndarray:
    """A logarithmic sine sweep with soft edges, peak 0.5, shape (n_samples,)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    k = np.log(f1 / f0) / t[-1]
    phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (0.5 * np.sin(phase) * fade).astype(np.float32)


@pytest.fixture
def chirp() -> np.ndarray:
    return make_chirp()


@pytest.fixture
def chirp_wav(tmp_path) -> Path:
    path = tmp_path / "chirp.wav"
    sf.write(path, make_chirp(), 16000, subtype="PCM_16")
    return path


@pytest.fixture
def chirp_wavs(tmp_path) -> list[Path]:
    """Three similar sweeps of slightly different lengths and ranges."""
    paths = []
    for i, (sec, f1) in enumerate([(0.30, 3000.0), (0.34, 3500.0), (0.28, 2800.0)]):
        path = tmp_path / f"sweep{i}.wav"
        sf.write(path, make_chirp(sec, f1=f1), 16000, subtype="PCM_16")
        paths.append(path)
    return paths
