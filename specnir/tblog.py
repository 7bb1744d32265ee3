"""TensorBoard logging for a fit, as a callback of the loop.

Tags: ``train/loss``, ``train/lr``; ``eval/psnr``, ``eval/psnr/<image>``, ``eval/gmsd/<image>``,
``eval/ssim/<image>``, ``eval/<diagnostic>/psnr``; ``eval/column_error`` (figure) and
``eval/column_error_heatmap`` (image); ``target/<image>`` image and audio, once; ``recon/<image>`` image and
audio (Griffin-Lim at the real sample rate) at every evaluation; for a model that entropy-codes latents,
``eval/rate/bpp``, ``eval/rate/grid<g>_bits`` and the figure ``eval/bits_per_column``; hparams with the
final metrics.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure  # not pyplot: leaves the user's backend alone (notebooks)
from torch.utils.tensorboard import SummaryWriter

from specnir.data import ImageSet
from specnir.fit import Callback
from specnir.spectrogram import DEFAULT_N_ITER, DEFAULT_PHASE, spectrogram_to_audio


def column_error_figure(data: ImageSet, curves: dict[str, list[np.ndarray]], *, title: str = "") -> Figure:
    """Error against column index, one line per image; one panel per decode (free-running, ...)."""
    fig = Figure(figsize=(8, 2.6 * len(curves)))
    axes = fig.subplots(len(curves), 1, squeeze=False, sharex=True)
    for ax, (label, errors) in zip(axes[:, 0], curves.items(), strict=True):
        for name, err in zip(data.names, errors, strict=True):
            ax.semilogy(np.maximum(err, 1e-8), label=name, lw=1)
        ax.set_ylabel("column MSE")
        ax.set_title(label, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=min(len(data.names), 5))
    axes[-1, 0].set_xlabel("time column")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def heatmap(data: ImageSet, recon: torch.Tensor) -> np.ndarray:
    """Squared error of every pixel, images stacked vertically, as an ``(H', W, 3)`` magma image."""
    err = ((recon.detach().cpu().clamp(0, 1) - data.target) ** 2 * data.mask).numpy()
    rows = np.concatenate([np.pad(e, ((0, 2), (0, 0))) for e in err], 0)
    scale = max(float(rows.max()), 1e-8)
    return matplotlib.colormaps["magma"](np.sqrt(rows / scale))[..., :3].astype(np.float32)


class TensorBoardLogger(Callback):
    """Writes a fit's progress to ``log_dir`` for TensorBoard."""

    def __init__(
        self, log_dir: str | Path, data: ImageSet, *, phase: str = DEFAULT_PHASE, n_iter: int = DEFAULT_N_ITER
    ) -> None:
        self.writer = SummaryWriter(str(log_dir))
        self.data, self.inversion = data, {"phase": phase, "n_iter": n_iter}
        rate = data.params.sample_rate
        for name, image, spec in zip(data.names, data.images(data.target), data.specs, strict=True):
            self.writer.add_image(f"target/{name}", image, 0, dataformats="HW")
            wave = spectrogram_to_audio(spec, **self.inversion)
            self.writer.add_audio(f"target/{name}", torch.from_numpy(wave)[None], 0, sample_rate=rate)
        self.writer.flush()

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def on_eval(self, step: int, recon: torch.Tensor, extras: dict, metrics: dict) -> None:
        w = self.writer
        w.add_scalar("eval/psnr", metrics["psnr"], step)
        w.add_scalar("eval/gmsd", metrics["gmsd"], step)
        for key in metrics:
            if key.endswith("/psnr"):
                w.add_scalar(f"eval/{key}", metrics[key], step)
        for k, name in enumerate(self.data.names):
            w.add_scalar(f"eval/psnr/{name}", metrics["psnr_per_image"][k], step)
            w.add_scalar(f"eval/gmsd/{name}", metrics["gmsd_per_image"][k], step)
            w.add_scalar(f"eval/ssim/{name}", metrics["ssim_per_image"][k], step)
        curves = {"free-running decode" if extras else "decode": metrics["column_error"]}
        for label in extras:
            curves[label.replace("_", "-")] = metrics[f"{label}/column_error"]
        fig = column_error_figure(self.data, curves, title=f"step {step}, {metrics['psnr']:.2f} dB")
        w.add_figure("eval/column_error", fig, step, close=True)
        w.add_image("eval/column_error_heatmap", heatmap(self.data, recon), step, dataformats="HWC")
        if "rates" in metrics:
            self._log_rates(metrics["rates"], step)
        rate = self.data.params.sample_rate
        specs = self.data.to_spectrograms(recon)
        for name, image, spec in zip(self.data.names, self.data.images(recon), specs, strict=True):
            w.add_image(f"recon/{name}", image, step, dataformats="HW")
            wave = spectrogram_to_audio(spec, **self.inversion)
            w.add_audio(f"recon/{name}", torch.from_numpy(wave)[None], step, sample_rate=rate)
        w.flush()

    def _log_rates(self, rates: dict, step: int) -> None:
        """Bits per time column of every image (figure), the rate (bpp) and each grid's bits (scalars)."""
        self.writer.add_scalar("eval/rate/bpp", rates["bpp"], step)
        for g, bits in enumerate(rates["grid_bits"]):
            self.writer.add_scalar(f"eval/rate/grid{g}_bits", bits, step)
        per_column = rates["bits_per_column"].detach().cpu().numpy()
        fig = Figure(figsize=(8, 2.6))
        ax = fig.subplots()
        for k, (name, width) in enumerate(zip(self.data.names, self.data.widths, strict=True)):
            ax.plot(per_column[k, :width], label=name, lw=1)
        ax.set_xlabel("time column")
        ax.set_ylabel("latent bits")
        ax.set_title(f"step {step}: {rates['bpp']:.3f} bpp", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=min(len(self.data.names), 5))
        fig.tight_layout()
        self.writer.add_figure("eval/bits_per_column", fig, step, close=True)

    def close(self, hparams: dict, metrics: dict) -> None:
        """Record the run's settings with its final metrics, then close the file."""
        clean = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in hparams.items()}
        self.writer.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")
        self.writer.close()
