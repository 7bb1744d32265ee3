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


TINY_SPEC_ARGS = ["--sample-rate", "8000", "--n-fft", "256", "--hop-length", "64", "--n-mels", "16"]


@pytest.fixture(scope="session")
def tiny_wavs(tmp_path_factory) -> list[Path]:
    """Five similar short sweeps at 8 kHz: 16-band mel images 20 to 24 columns wide."""
    where = tmp_path_factory.mktemp("tiny")
    paths = []
    for k, (f0, f1, columns) in enumerate(
        [(300, 2000, 24), (320, 2100, 23), (280, 1900, 24), (350, 2200, 22), (300, 1800, 20)]
    ):
        path = where / f"tiny{k}.wav"
        sf.write(path, make_chirp((columns - 1) * 64 / 8000, 8000, f0, f1), 8000, subtype="PCM_16")
        paths.append(path)
    return paths


SPEECH = [*CLIPS, ROOT / "tests" / "fixtures" / "speech" / "Front_Center.wav"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """18 real speech clips (0.4 s pieces of the bundled clips) in three folders: a/ (6), b/ (6), b/c/ (6)."""
    root = tmp_path_factory.mktemp("corpus") / "speech"
    pieces = []
    for clip in SPEECH:
        wave, rate = sf.read(clip, dtype="float32")
        pieces += [
            (f"{clip.stem}_{k}", wave[k * rate // 2 : k * rate // 2 + 2 * rate // 5], rate) for k in range(3)
        ]
    for k, (name, wave, rate) in enumerate(pieces):
        folder = root / ("a", "b", "b/c")[k // 6]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{name}.wav", wave, rate, subtype="PCM_16")
    return root
