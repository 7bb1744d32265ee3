"""A fitting run on disk: inputs → fitted model, checkpoint, metrics, reconstructions and TensorBoard.

``RUN_DIR/`` holds ``model.pt`` (best weights), ``resume.pt`` (the loop's :class:`~specnir.fit.FitState`),
``metrics.json``, ``recon/<stem>.png`` and ``recon/<stem>.wav``, and ``tb/`` for TensorBoard. ``model.pt``
and ``resume.pt`` are rewritten at every evaluation, so a killed fit continues with ``fit --resume``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import torch

from specnir.checkpoint import load_checkpoint, save_checkpoint
from specnir.convert import write_spectrograms
from specnir.data import ImageLayout, ImageSet, load_image_set
from specnir.errors import SpecnirError, atomic_path
from specnir.fit import Callback, FitResult, FitState, check_device, fit
from specnir.fit_config import FitConfig
from specnir.models import arch_of, build_model
from specnir.spectrogram import DEFAULT_N_ITER, DEFAULT_PHASE, SpecParams, Spectrogram
from specnir.tblog import TensorBoardLogger

SUMMARY_KEYS = ("psnr", "psnr_per_image", "gmsd", "gmsd_per_image", "ssim", "ssim_per_image")


def _metrics_record(model, arch: str, data: ImageSet, result: FitResult) -> dict:
    best = result.best_metrics
    pixels = sum(data.widths) * data.target.shape[1]
    record = {
        "arch": arch,
        "params": model.n_weights(),
        "estimated_bpp_16_bit_weights": model.n_weights() * 16 / pixels,
        "steps": result.last_step,
        "best_step": result.best_step,
        "seconds": round(result.seconds, 2),
        "interrupted": result.interrupted,
        "images": data.names,
        "shape": list(data.target.shape),
        **{k: best[k] for k in SUMMARY_KEYS},
    }
    record.update({k: v for k, v in best.items() if k.endswith("/psnr")})
    if "rates" in best:  # a model that entropy-codes latents: its own estimate of their bits
        record["latent_bpp"] = best["rates"]["bpp"]
        record["latent_grid_bits"] = best["rates"]["grid_bits"]
    return record


class RunSaver(Callback):
    """Keeps a run directory resumable: at every state the loop hands out, ``resume.pt`` (the
    :class:`~specnir.fit.FitState`) and ``model.pt`` (the best weights so far), each written atomically."""

    def __init__(self, run_dir: Path, model, **checkpoint) -> None:
        self.run_dir, self.model, self.checkpoint = run_dir, model, checkpoint

    def on_state(self, state: FitState) -> None:
        progress = {"complete": False, "step": state.step, "best_step": state.best_step}
        save_checkpoint(
            self.run_dir / "model.pt",
            model=self.model,
            state_dict=state.best_model or state.model,
            metrics=progress,
            **self.checkpoint,
        )
        self.save_resume(state)

    def save_resume(self, state: FitState) -> None:
        with atomic_path(self.run_dir / "resume.pt") as tmp:
            torch.save(state.to_dict(), tmp)


def run_fit(
    inputs: list[str | os.PathLike],
    *,
    fit_config: FitConfig,
    model_config,
    params: SpecParams,
    run_dir: str | os.PathLike,
    progress: bool = True,
    phase: str = DEFAULT_PHASE,
    n_iter: int = DEFAULT_N_ITER,
    resume: FitState | None = None,
) -> tuple[dict, torch.Tensor]:
    """Fit the model that ``model_config`` configures, then write the run directory.

    The run stays resumable while it fits (:class:`RunSaver`); ``phase`` and ``n_iter`` (see
    :func:`spectrogram_to_audio`) make the audio logged to TensorBoard. Returns ``(metrics record, best
    decode (N, H, W))``.
    """
    run_dir = Path(run_dir)
    data = load_image_set(inputs, params=params)
    check_device(fit_config.device)
    if resume is not None and resume.step >= fit_config.steps:
        raise SpecnirError(f"{run_dir}: already fitted {resume.step} steps; ask for more steps")
    torch.manual_seed(fit_config.seed)
    arch = arch_of(model_config)
    n, height, width = data.target.shape
    model = build_model(arch, model_config, n_images=n, height=height, width=width)
    checkpoint = dict(
        arch=arch, fit_config=fit_config, params=data.params, images=data.layouts, inputs=inputs
    )
    logger = TensorBoardLogger(run_dir / "tb", data, phase=phase, n_iter=n_iter)
    saver = RunSaver(run_dir, model, **checkpoint)
    result = fit(model, data, fit_config, callbacks=[logger, saver], resume=resume, progress=progress)
    model.cpu()
    record = _metrics_record(model, arch, data, result)
    logger.close(
        {"arch": arch, **dataclasses.asdict(fit_config), **dataclasses.asdict(model_config)},
        {"weights": record["params"], **{k: record[k] for k in ("psnr", "gmsd", "ssim")}},
    )
    saver.save_resume(result.state)
    save_checkpoint(run_dir / "model.pt", model=model, metrics=record, **checkpoint)
    with torch.no_grad():
        recon = model()
    record["recon"] = [str(p) for p in write_reconstruction(run_dir / "recon", data, recon)]
    _save_json(run_dir / "metrics.json", record)
    return record, recon


def _save_json(path: Path, record: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def write_reconstruction(
    outdir: Path,
    data: ImageSet,
    recon: torch.Tensor,
    *,
    phase: str = DEFAULT_PHASE,
    n_iter: int = DEFAULT_N_ITER,
) -> list[Path]:
    """The decode ``(N, H, W)`` of ``data``'s images, written by :func:`write_spectrograms`."""
    return write_spectrograms(outdir, data.names, data.to_spectrograms(recon), phase=phase, n_iter=n_iter)


def load_resume_state(path: Path) -> FitState:
    """The state in a run's ``resume.pt`` (also the ``{state_dict, optimizer, step}`` of older runs)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if "state_dict" in state:  # written before FitState: no best weights, no generator state
            return FitState(
                state["step"],
                state["state_dict"],
                state["optimizer"],
                math.inf,
                0,
                None,
                torch.get_rng_state(),
                0.0,
            )
        return FitState.from_dict(state)
    except Exception as exc:
        raise SpecnirError(f"{path}: cannot resume ({type(exc).__name__})") from None


def resume_fit(run_dir: str | os.PathLike, *, steps: int | None = None, progress: bool = True):
    """Continue the run in ``run_dir`` to ``steps`` (default: its original step count), from the last
    state it saved: after a Ctrl-C, a finished run, or a killed process alike."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / "model.pt")
    state = load_resume_state(run_dir / "resume.pt")
    fit_config = dataclasses.replace(ckpt.fit_config, steps=steps or ckpt.fit_config.steps)
    return run_fit(
        ckpt.inputs,
        fit_config=fit_config,
        model_config=ckpt.model.config,
        params=ckpt.params,
        run_dir=run_dir,
        progress=progress,
        resume=state,
    )


def reconstruct(
    checkpoint: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    phase: str = DEFAULT_PHASE,
    n_iter: int = DEFAULT_N_ITER,
    time_scale: float = 1.0,
    freq_scale: float = 1.0,
) -> tuple[list[Path], torch.Tensor]:
    """Decode a checkpoint to ``outdir/<stem>.png`` and ``.wav``; returns the files and the decode."""
    ckpt = load_checkpoint(checkpoint)
    outdir = Path(outdir)
    with torch.no_grad():
        if time_scale == 1.0 and freq_scale == 1.0:
            values = ckpt.model()
            return write_spectrograms(
                outdir, ckpt.names, ckpt.spectrograms(values), phase=phase, n_iter=n_iter
            ), values
        if not hasattr(ckpt.model, "render_scaled"):
            raise SpecnirError(f"{checkpoint}: only a siren renders at other resolutions")
        values = ckpt.model.render_scaled(time_scale=time_scale, freq_scale=freq_scale)
    specs = _scaled_spectrograms(ckpt.params, ckpt.images, values, time_scale, freq_scale)
    return write_spectrograms(outdir, ckpt.names, specs, phase=phase, n_iter=n_iter), values


def _scaled_spectrograms(
    params: SpecParams, images: list[ImageLayout], values: torch.Tensor, ts: float, fs: float
) -> list[Spectrogram]:
    """Rescaled renders as spectrograms of their own: hop_length / ts samples, n_mels × fs bands."""
    hop = params.hop_length / ts
    if abs(hop - round(hop)) > 1e-9 or hop < 1:
        raise SpecnirError(f"time scale {ts} must divide hop_length {params.hop_length} into whole samples")
    if fs != 1.0 and params.scale != "mel":
        raise SpecnirError(
            "a frequency scale needs a mel spectrogram (a linear STFT has n_fft // 2 + 1 rows)"
        )
    new_params = dataclasses.replace(params, hop_length=int(round(hop)), n_mels=values.shape[1])
    values = values.clamp(0, 1).cpu().numpy()
    specs = []
    for k, im in enumerate(images):
        # As many frames as the new hop gives the original samples (centred STFT: 1 + length // hop).
        w = 1 + im.length // new_params.hop_length if im.length else int(round(im.width * ts))
        specs.append(im.spectrogram(values[k, :, : min(w, values.shape[2])], new_params))
    return specs
