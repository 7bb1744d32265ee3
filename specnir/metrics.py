"""Quality measures: image metrics on [0, 1] spectrogram images and audio metrics on waveforms.

Image metrics take ``(H, W)`` tensors or arrays with values in [0, 1] (peak 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from specnir.spectrogram import SpecParams, stft_power

# ---------------------------------------------------------------- image metrics


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()


def mse(reference, estimate) -> float:
    """Mean squared error over all pixels."""
    return float(((_t(reference) - _t(estimate)) ** 2).mean())


def psnr_from_mse(mse: float, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error: ``10 log10(peak² / mse)``; ``inf`` at 0.

    The one PSNR formula of specnir: the fit's metrics (peak 1), the codec's report and the benchmark
    (8-bit grey levels, peak 255) all call it.
    """
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def psnr(reference, estimate) -> float:
    """PSNR in dB of one image against another, values in [0, 1] (peak 1); ``inf`` if identical."""
    return psnr_from_mse(mse(reference, estimate))


def column_error(reference, estimate) -> np.ndarray:
    """Mean squared error of each time column: ``(H, W)`` images → ``(W,)``."""
    return ((_t(reference) - _t(estimate)) ** 2).mean(0).numpy()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(reference, estimate) -> float:
    """Structural similarity (Wang et al. 2004): 11×11 Gaussian window, σ 1.5, data range 1.

    The window shrinks to the image's smaller side for tiny images.
    """
    x, y = _t(reference)[None, None], _t(estimate)[None, None]
    size = min(11, *x.shape[-2:])
    w = _gaussian_window(size, 1.5 * size / 11)
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mu_x**2
    syy = F.conv2d(y * y, w) - mu_y**2
    sxy = F.conv2d(x * y, w) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=torch.float64) / 4


def sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of ``(..., H, W)`` images (replicate padding), same shape.

    Differentiable; also the loss term of ``fit --grad-weight``.
    """
    kx = SOBEL_X.to(image)
    kernel = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3)
    flat = image.reshape(-1, 1, *image.shape[-2:])
    grad = F.conv2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), kernel)
    return torch.sqrt((grad**2).sum(1) + 1e-12).reshape(image.shape)


def gmsd(reference, estimate, *, c: float = 0.0026) -> float:
    """Gradient magnitude similarity deviation (Xue et al. 2014) with Sobel gradients.

    0 for identical images, larger is worse; it rises with local detail errors that MSE averages away.
    ``c`` is the paper's constant for images in [0, 1] (170 / 255²).
    """
    gr, ge = sobel_magnitude(_t(reference)), sobel_magnitude(_t(estimate))
    gms = (2 * gr * ge + c) / (gr**2 + ge**2 + c)
    return float(gms.std(unbiased=False))


# ---------------------------------------------------------------- audio metrics


def _aligned_power(reference: np.ndarray, estimate: np.ndarray, params: SpecParams):
    """Linear power STFTs ``(n_freqs, n_frames)`` of both waveforms, cut to the shorter one."""
    n = min(len(reference), len(estimate))
    return stft_power(reference[:n], params=params), stft_power(estimate[:n], params=params)


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray, *, params: SpecParams) -> float:
    """``‖|S_ref| − |S_est|‖_F / ‖|S_ref|‖_F`` of linear STFT magnitudes (0 is perfect).

    Waveforms ``(n_samples,)`` are cut to the shorter length; the STFT uses ``params``' n_fft,
    hop_length, win_length and window.
    """
    p_ref, p_est = _aligned_power(reference, estimate, params)
    a_ref, a_est = np.sqrt(p_ref), np.sqrt(p_est)
    return float(np.linalg.norm(a_ref - a_est) / np.linalg.norm(a_ref))


def log_spectral_distance(
    reference: np.ndarray, estimate: np.ndarray, *, params: SpecParams, top_db: float = 80.0
) -> float:
    """Log-spectral distance in dB: mean over frames of the RMS dB difference over frequencies.

    Both power spectra are floored ``top_db`` below the reference's peak, so inaudible noise far
    under the loudest bin does not dominate.
    """
    p_ref, p_est = _aligned_power(reference, estimate, params)
    floor = p_ref.max() * 10 ** (-top_db / 10)
    diff = 10 * np.log10(np.maximum(p_ref, floor)) - 10 * np.log10(np.maximum(p_est, floor))
    return float(np.sqrt((diff**2).mean(0)).mean())
