"""Phase from an STFT magnitude: Phase Gradient Heap Integration, and fast Griffin-Lim from any start.

PGHI (Průša, Balazs, Søndergaard, IEEE/ACM TASLP 2017) reads the phase's gradient off the gradient of the
log-magnitude — exact for a Gaussian window, a good approximation for Hann-like ones — and integrates it
from the loudest coefficient outwards (a max-heap), without iterations. Fast Griffin-Lim (Perraudin et al.
2013) then refines any start; from PGHI's it converges to a better signal than from a zero phase. When
the magnitude is only known through mel bands, :func:`refine_to_mel` re-estimates it inside every
iteration from the signal's own STFT (``benchmarks/phase.py`` measures all of it).

Phases follow ``torch.stft`` with ``center=True``: the FFT of frame ``n`` starts at sample
``n * hop_length - n_fft // 2``.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

# γ / win_length² of each window: the time-frequency ratio of the Gaussian that fits it best (ltfat's
# pghi_findgamma values).
GAMMA = {"hann": 0.25645, "hamming": 0.29794, "blackman": 0.17954}


def phase_gradients(
    magnitude: np.ndarray, *, n_fft: int, hop_length: int, win_length: int, window: str
) -> tuple[np.ndarray, np.ndarray]:
    """The phase's steps between neighbours, from the log-magnitude.

    Args:
        magnitude: ``(n_freqs, n_frames)`` linear STFT magnitude, ``n_freqs = n_fft // 2 + 1``.

    Returns:
        ``(along_time, along_freq)``, both ``(n_freqs, n_frames)`` in radians: the phase's change per frame
        (frame-centred phase, so a steady sinusoid at bin ``m`` turns ``2π m hop / n_fft`` per frame) and
        per bin.
    """
    gamma = GAMMA[window] * win_length**2
    logs = np.log(np.maximum(magnitude, 1e-12 * max(float(magnitude.max()), 1e-30)))
    d_time = np.gradient(logs, axis=1) if logs.shape[1] > 1 else np.zeros_like(logs)
    d_freq = np.gradient(logs, axis=0)
    d_freq[[0, -1]] = 0.0  # the spectrum is symmetric about DC and Nyquist
    bins = np.arange(magnitude.shape[0])[:, None]
    along_time = hop_length * n_fft / gamma * d_freq + 2 * math.pi * hop_length * bins / n_fft
    along_freq = -gamma / (hop_length * n_fft) * d_time
    return along_time, along_freq


def pghi(
    magnitude: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: str = "hann",
    tol: float = 1e-5,
) -> np.ndarray:
    """Phase Gradient Heap Integration: a phase ``(n_freqs, n_frames)`` for ``magnitude`` (same shape).

    Coefficients below ``tol`` × the largest get phase 0 (they barely sound); every island of larger
    ones starts at its loudest coefficient with phase 0. Deterministic.
    """
    along_time, along_freq = phase_gradients(
        magnitude, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window
    )
    n_freqs, n_frames = magnitude.shape
    # Frame-centred phase (what the gradients describe); shifted to torch.stft's frame start below.
    phase = [0.0] * (n_freqs * n_frames)
    flat = magnitude.ravel()  # index m * n_frames + n
    done = (flat < tol * flat.max()).tolist()
    dt, df = along_time.ravel().tolist(), along_freq.ravel().tolist()
    neg = (-flat).tolist()
    heap: list[tuple[float, int]] = []
    for start in np.argsort(-flat, kind="stable").tolist():
        if done[start]:
            continue
        done[start] = True
        heap.append((neg[start], start))
        while heap:
            _, i = heapq.heappop(heap)
            m, n = divmod(i, n_frames)
            p, t, f = phase[i], dt[i], df[i]
            # trapezoidal steps to the four neighbours not yet integrated
            if n + 1 < n_frames and not done[i + 1]:
                j = i + 1
                done[j], phase[j] = True, p + 0.5 * (t + dt[j])
                heapq.heappush(heap, (neg[j], j))
            if n > 0 and not done[i - 1]:
                j = i - 1
                done[j], phase[j] = True, p - 0.5 * (t + dt[j])
                heapq.heappush(heap, (neg[j], j))
            if m + 1 < n_freqs and not done[i + n_frames]:
                j = i + n_frames
                done[j], phase[j] = True, p + 0.5 * (f + df[j])
                heapq.heappush(heap, (neg[j], j))
            if m > 0 and not done[i - n_frames]:
                j = i - n_frames
                done[j], phase[j] = True, p - 0.5 * (f + df[j])
                heapq.heappush(heap, (neg[j], j))
    centred = np.asarray(phase).reshape(n_freqs, n_frames)
    # A window centred n_fft // 2 samples into the frame: bin m's phase at the frame's start is
    # π·m·(n_fft // 2)·2/n_fft lower than at its centre.
    shift = 2 * math.pi * np.arange(n_freqs)[:, None] * (n_fft // 2) / n_fft
    return centred - shift


def refine_to_mel(power: torch.Tensor, basis: torch.Tensor, mel_power: torch.Tensor) -> torch.Tensor:
    """One multiplicative update (Lee & Seung's, for ``basis @ power ≈ mel_power``) of a linear power.

    Args:
        power: ``(n_freqs, n_frames)`` non-negative linear power, e.g. ``|STFT|²`` of the current signal.
        basis: ``(n_mels, n_freqs)`` mel filterbank.
        mel_power: ``(n_mels, n_frames)`` the mel power to match.

    Returns:
        ``(n_freqs, n_frames)``: ``power`` with each bin scaled by how far its mel bands fall short; fine
        structure (harmonics) that the mel bands do not see is kept. Bins no band covers become 0.
    """
    ratio = mel_power / (basis @ power).clamp_min(1e-30)
    return power * (basis.T @ ratio) / basis.sum(0).clamp_min(1e-30)[:, None]


def griffin_lim(
    magnitude: np.ndarray,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: torch.Tensor,
    phase: np.ndarray | None = None,
    n_iter: int = 32,
    momentum: float = 0.99,
    length: int | None = None,
    mel: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Fast Griffin-Lim from ``phase`` (``None``: zero phase), as torchaudio's ``griffinlim`` runs it.

    Args:
        magnitude: ``(n_freqs, n_frames)`` linear STFT magnitude (with ``mel``: where it starts).
        window: the analysis window, ``(win_length,)`` float64.
        phase: ``(n_freqs, n_frames)`` radians to start from.
        mel: ``(basis (n_mels, n_freqs), mel_power (n_mels, n_frames))``: the magnitude is only known
            through mel bands, so every iteration also re-estimates it from the signal's own STFT
            (:func:`refine_to_mel`) instead of holding a fixed guess.

    Returns:
        The waveform ``(length,)`` float32 (``length`` ``None``: what the frames span).
    """
    spec = torch.as_tensor(np.asarray(magnitude, dtype=np.float64))
    stft = dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window)
    angles = (
        torch.ones_like(spec, dtype=torch.complex128)
        if phase is None
        else torch.polar(torch.ones_like(spec), torch.as_tensor(np.asarray(phase, dtype=np.float64)))
    )
    if mel is not None:
        basis, mel_power = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in mel)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        inverse = torch.istft(spec * angles, **stft, length=length)
        rebuilt = torch.stft(inverse, **stft, center=True, pad_mode="reflect", return_complex=True)
        if mel is not None:
            spec = refine_to_mel(rebuilt.abs() ** 2, basis, mel_power).sqrt()
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return torch.istft(spec * angles, **stft, length=length).numpy().astype(np.float32)
