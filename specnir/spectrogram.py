"""Audio ⇄ dB spectrogram: STFT, mel filterbank, dB scaling, and the inversion back to audio.

A :class:`Spectrogram` holds dB values of shape ``(n_bins, n_frames)``, bin 0 the lowest frequency,
clipped to ``[db_min, db_max]``, together with every parameter needed to turn it back into audio.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF

from specnir.errors import SpecnirError
from specnir.phase import griffin_lim, pghi, refine_to_mel

WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}
AMIN = 1e-10  # power floor before the logarithm
_NUMBER = (int, float)
_FIELD_TYPES = {
    **dict.fromkeys(["sample_rate", "n_fft", "hop_length", "win_length", "n_mels"], int),
    **dict.fromkeys(["f_min", "f_max", "top_db", "ref"], _NUMBER),
    **dict.fromkeys(["window", "scale"], str),
}


@dataclass(frozen=True)
class SpecParams:
    """Everything that defines how a waveform becomes a dB spectrogram.

    Attributes:
        sample_rate: Hz.
        n_fft: FFT size in samples.
        hop_length: samples between frames.
        win_length: window size in samples (``<= n_fft``).
        window: ``"hann"``, ``"hamming"`` or ``"blackman"``.
        scale: ``"mel"`` or ``"linear"``.
        n_mels: mel bands (used when ``scale == "mel"``).
        f_min: lowest mel frequency, Hz.
        f_max: highest mel frequency, Hz (``None``: ``sample_rate / 2``).
        top_db: dynamic range kept below the loudest bin, dB.
        ref: power that maps to 0 dB.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 128
    win_length: int | None = None
    window: str = "hann"
    scale: str = "mel"
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    top_db: float = 80.0
    ref: float = 1.0

    def __post_init__(self) -> None:
        # Resolve defaults so that what is stored is explicit, never "whatever the default was".
        if self.win_length is None:
            object.__setattr__(self, "win_length", self.n_fft)
        if self.f_max is None:
            object.__setattr__(self, "f_max", self.sample_rate / 2)
        problems = []
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise SpecnirError(f"bad spectrogram parameters: {name}={value!r} has the wrong type")
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft < 2 or self.hop_length < 1:
            problems.append("n_fft must be >= 2 and hop_length >= 1")
        if not 1 <= self.win_length <= self.n_fft:
            problems.append(f"win_length must be in [1, n_fft], got {self.win_length}")
        if self.window not in WINDOWS:
            problems.append(f"window must be one of {sorted(WINDOWS)}, got {self.window!r}")
        if self.scale not in ("mel", "linear"):
            problems.append(f"scale must be 'mel' or 'linear', got {self.scale!r}")
        if self.scale == "mel" and not (self.n_mels >= 1 and 0 <= self.f_min < self.f_max):
            problems.append("mel needs n_mels >= 1 and 0 <= f_min < f_max")
        if self.f_max > self.sample_rate / 2 + 1e-6:
            problems.append(f"f_max {self.f_max} Hz is above Nyquist ({self.sample_rate / 2} Hz)")
        if not self.top_db > 0 or not self.ref > 0:
            problems.append("top_db and ref must be positive")
        if problems:
            raise SpecnirError("bad spectrogram parameters: " + "; ".join(problems))

    @property
    def n_freqs(self) -> int:
        """Linear-frequency STFT bins: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def n_bins(self) -> int:
        """Rows of the spectrogram image: ``n_mels`` or ``n_freqs``."""
        return self.n_mels if self.scale == "mel" else self.n_freqs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SpecParams:
        """Rebuild from :meth:`to_dict`; unknown keys or wrong types raise ``SpecnirError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise SpecnirError(f"unknown spectrogram parameters {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpecnirError(f"bad spectrogram parameters: {exc}") from None


@dataclass
class Spectrogram:
    """A dB spectrogram and what it takes to invert it.

    Attributes:
        db: ``(n_bins, n_frames)`` float32, dB re ``params.ref``, clipped to ``[db_min, db_max]``.
        params: the STFT/mel parameters.
        db_min: dB value of image value 0.
        db_max: dB value of image value 1.
        length: samples of the original waveform (``None`` if unknown).
    """

    db: np.ndarray
    params: SpecParams
    db_min: float
    db_max: float
    length: int | None = None

    @property
    def normalized(self) -> np.ndarray:
        """Values in [0, 1]: ``(db - db_min) / (db_max - db_min)``, shape ``(n_bins, n_frames)``."""
        return ((self.db - self.db_min) / (self.db_max - self.db_min)).astype(np.float32)


def _window(params: SpecParams) -> torch.Tensor:
    return WINDOWS[params.window](params.win_length, dtype=torch.float64)


def stft_power(waveform: np.ndarray, *, params: SpecParams) -> np.ndarray:
    """Power STFT ``|X|^2`` of a waveform ``(n_samples,)``; returns ``(n_freqs, n_frames)``.

    Frames are centred (reflect padding), so ``n_frames = 1 + n_samples // hop_length``.
    """
    x = torch.as_tensor(np.asarray(waveform, dtype=np.float64))
    spec = torch.stft(
        x,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=_window(params),
        center=True,  # frame t is centred on sample t * hop_length, as Griffin-Lim assumes
        pad_mode="reflect",
        return_complex=True,
    )
    return (spec.abs() ** 2).numpy()


def mel_basis(params: SpecParams) -> np.ndarray:
    """Slaney mel filterbank ``(n_mels, n_freqs)``, the same one for analysis and inversion."""
    fb = AF.melscale_fbanks(
        n_freqs=params.n_freqs,
        f_min=params.f_min,
        f_max=params.f_max,
        n_mels=params.n_mels,
        sample_rate=params.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return fb.T.numpy().astype(np.float64)


def audio_to_spectrogram(waveform: np.ndarray, *, params: SpecParams) -> Spectrogram:
    """Waveform ``(n_samples,)`` at ``params.sample_rate`` → dB spectrogram ``(n_bins, n_frames)``.

    The top of the range (``db_max``) is the loudest bin of this clip; ``db_min = db_max - top_db``.
    """
    waveform = np.asarray(waveform)
    if waveform.ndim != 1 or waveform.size == 0:
        raise SpecnirError("waveform must be a non-empty 1-D array")
    if waveform.size <= params.n_fft // 2:  # the centred STFT pads n_fft // 2 samples by reflection
        raise SpecnirError(
            f"audio too short: {waveform.size} samples at {params.sample_rate} Hz, and n_fft {params.n_fft} "
            f"needs more than {params.n_fft // 2}"
        )
    power = stft_power(waveform, params=params)
    if params.scale == "mel":
        power = mel_basis(params) @ power
    db = 10.0 * np.log10(np.maximum(power, AMIN) / params.ref)
    db_max = float(math.ceil(db.max() * 100) / 100)  # round up to 0.01 dB: a tidy, exact header
    db_min = db_max - params.top_db
    db = np.clip(db, db_min, db_max).astype(np.float32)
    return Spectrogram(db, params, db_min, db_max, int(waveform.size))


def spectrogram_to_power(spec: Spectrogram) -> np.ndarray:
    """The power of the stored bins, ``(n_bins, n_frames)``: mel bands or linear STFT bins."""
    return spec.params.ref * 10.0 ** (spec.db.astype(np.float64) / 10.0)


PHASES = ("pghi", "zero")  # where Griffin-Lim starts: Phase Gradient Heap Integration, or a zero phase
DEFAULT_PHASE, DEFAULT_N_ITER = "pghi", 32


def spectrogram_to_audio(
    spec: Spectrogram, *, phase: str = DEFAULT_PHASE, n_iter: int = DEFAULT_N_ITER, momentum: float = 0.99
) -> np.ndarray:
    """Invert a dB spectrogram to a waveform ``(n_samples,)``, deterministically.

    A linear spectrogram is the magnitude. Mel bands give a first linear power by one multiplicative
    update from a flat spectrum, and every Griffin-Lim iteration re-estimates it from the signal's own
    STFT (fine structure included) so that its mel bands match (:func:`specnir.phase.refine_to_mel`).
    ``phase`` is where fast Griffin-Lim starts (:data:`PHASES`): ``"pghi"`` (phase from the magnitude's
    gradients, :func:`specnir.phase.pghi`) or ``"zero"``; ``n_iter`` iterations follow (0: the start alone).
    """
    if phase not in PHASES:
        raise SpecnirError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
    if n_iter < 0:
        raise SpecnirError(f"Griffin-Lim iterations must be 0 or more, not {n_iter}")
    params = spec.params
    power = spectrogram_to_power(spec)
    mel = None
    if params.scale == "mel":
        mel = (mel_basis(params), power)
        flat = torch.ones(params.n_freqs, power.shape[1], dtype=torch.float64)
        power = refine_to_mel(flat, *(torch.as_tensor(a) for a in mel)).numpy()
    magnitude = np.sqrt(power)
    stft = dict(n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length)
    start = pghi(magnitude, **stft, window=params.window) if phase == "pghi" else None
    return griffin_lim(
        magnitude,
        **stft,
        window=_window(params),
        phase=start,
        n_iter=n_iter,
        momentum=momentum,
        length=spec.length,
        mel=mel,
    )
