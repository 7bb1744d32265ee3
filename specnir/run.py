"""A fitting run on disk: inputs → fitted model, checkpoint, metrics, reconstructions and TensorBoard.

``RUN_DIR/`` holds ``model.pt`` (best weights), ``resume.pt`` (last weights and optimiser state),
``metrics.json``, ``recon/<stem>.png`` and ``recon/<stem>.wav``, and ``tb/`` for TensorBoard.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from specnir.audio import save_audio
from specnir.checkpoint import build_model, load_checkpoint, save_checkpoint
from specnir.data import ImageSet, load_image_set
from specnir.errors import SpecnirError, atomic_path
from specnir.fit import FitConfig, FitResult, fit
from specnir.image import write_png
from specnir.spectrogram import SpecParams, Spectrogram, spectrogram_to_audio
from specnir.tblog import TensorBoardLogger

SUMMARY_KEYS = ("psnr", "psnr_per_image", "gmsd", "gmsd_per_image", "ssim", "ssim_per_image")


def write_spectrograms(
    outdir: Path, names: list[str], specs: list, *, n_iter: int = 64, bit_depth: int = 16, audio: bool = True
) -> list[Path]:
    """``outdir/<name>.png`` (with metadata) and ``outdir/<name>.wav`` for every spectrogram."""
    written = []
    for name, spec in zip(names, specs, strict=True):
        written.append(write_png(outdir / f"{name}.png", spec, bit_depth=bit_depth))
        if not audio:
            continue
        wave = spectrogram_to_audio(spec, n_iter=n_iter)
        written.append(save_audio(outdir / f"{name}.wav", wave, sample_rate=spec.params.sample_rate))
    return written


def write_reconstruction(
    outdir: Path, data: ImageSet, recon: torch.Tensor, *, n_iter: int = 64
) -> list[Path]:
    """The decode ``(N, H, W)`` of ``data``'s images, written by :func:`write_spectrograms`."""
    return write_spectrograms(outdir, data.names, data.to_spectrograms(recon), n_iter=n_iter)


def _metrics_record(model, data: ImageSet, config: FitConfig, result: FitResult) -> dict:
    best = result.best_metrics
    pixels = sum(data.widths) * data.target.shape[1]
    record = {
        "arch": config.arch,
        "params": model.n_weights(),
        "bpp_at_16_bits": model.n_weights() * 16 / pixels,
        "steps": result.last_step,
        "best_step": result.best_step,
        "seconds": round(result.seconds, 2),
        "interrupted": result.interrupted,
        "images": data.names,
        "shape": list(data.target.shape),
        **{k: best[k] for k in SUMMARY_KEYS},
    }
    record.update({k: v for k, v in best.items() if k.endswith("/psnr")})
    return record


def _save_json(path: Path, record: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def run_fit(
    inputs: list[str | os.PathLike],
    *,
    fit_config: FitConfig,
    model_config,
    params: SpecParams,
    run_dir: str | os.PathLike,
    progress: bool = True,
    resume_state: dict | None = None,
) -> tuple[dict, torch.Tensor]:
    """Fit, then write the run directory. Returns ``(metrics record, best decode (N, H, W))``."""
    run_dir = Path(run_dir)
    data = load_image_set(inputs, params=params)
    if fit_config.device == "cuda" and not torch.cuda.is_available():
        raise SpecnirError("--device cuda: no CUDA device is available")
    torch.manual_seed(fit_config.seed)
    _, height, width = data.target.shape
    model = build_model(
        fit_config.arch,
        dataclasses.asdict(model_config),
        n_images=len(data.names),
        height=height,
        width=width,
    )
    start_step, optimizer_state = 0, None
    if resume_state is not None:
        model.load_state_dict(resume_state["state_dict"])
        start_step, optimizer_state = resume_state["step"], resume_state["optimizer"]
        if start_step >= fit_config.steps:
            raise SpecnirError(f"{run_dir}: already fitted {start_step} steps; ask for more with --steps")
    logger = TensorBoardLogger(run_dir / "tb", data, gl_iters=fit_config.gl_iters)
    result = fit(
        model,
        data,
        fit_config,
        callbacks=[logger],
        start_step=start_step,
        optimizer_state=optimizer_state,
        progress=progress,
    )
    model.cpu()
    record = _metrics_record(model, data, fit_config, result)
    previous = run_dir / "metrics.json"
    if resume_state is not None and previous.exists():  # keep the earlier best if it stays better
        old = json.loads(previous.read_text())
        if old["psnr"] > record["psnr"]:
            best = load_checkpoint(run_dir / "model.pt").model
            model.load_state_dict(best.state_dict())
            record.update({k: old[k] for k in (*SUMMARY_KEYS, "best_step")})
        record["seconds"] = round(old["seconds"] + record["seconds"], 2)
    logger.close(
        {**dataclasses.asdict(fit_config), **dataclasses.asdict(model_config), "weights": record["params"]},
        {k: record[k] for k in ("psnr", "gmsd", "ssim")},
    )
    save_checkpoint(
        run_dir / "model.pt", model=model, fit_config=fit_config, data=data, inputs=inputs, metrics=record
    )
    with atomic_path(run_dir / "resume.pt") as tmp:
        torch.save(
            {"state_dict": result.last_state, "optimizer": result.optimizer_state, "step": result.last_step},
            tmp,
        )
    with torch.no_grad():
        recon = model()
    record["recon"] = [str(p) for p in write_reconstruction(run_dir / "recon", data, recon)]
    _save_json(run_dir / "metrics.json", record)
    return record, recon


def resume_fit(run_dir: str | os.PathLike, *, steps: int | None = None, progress: bool = True):
    """Continue the run in ``run_dir`` to ``steps`` (default: its original step count)."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir / "model.pt")
    resume_path = run_dir / "resume.pt"
    try:
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SpecnirError(f"{resume_path}: cannot resume ({type(exc).__name__})") from None
    fit_config = dataclasses.replace(ckpt.fit_config, steps=steps or ckpt.fit_config.steps)
    return run_fit(
        ckpt.inputs,
        fit_config=fit_config,
        model_config=ckpt.model.config,
        params=ckpt.data.params,
        run_dir=run_dir,
        progress=progress,
        resume_state=state,
    )


def reconstruct(
    checkpoint: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    n_iter: int = 64,
    time_scale: float = 1.0,
    freq_scale: float = 1.0,
) -> tuple[list[Path], torch.Tensor]:
    """Decode a checkpoint to ``outdir/<stem>.png`` and ``.wav``; returns the files and the decode."""
    ckpt = load_checkpoint(checkpoint)
    outdir = Path(outdir)
    with torch.no_grad():
        if time_scale == 1.0 and freq_scale == 1.0:
            values = ckpt.model()
            return write_reconstruction(outdir, ckpt.data, values, n_iter=n_iter), values
        if not hasattr(ckpt.model, "render_scaled"):
            raise SpecnirError(f"{checkpoint}: only a siren renders at other resolutions")
        values = ckpt.model.render_scaled(time_scale=time_scale, freq_scale=freq_scale)
    specs = _scaled_spectrograms(ckpt.data, values, time_scale, freq_scale)
    return write_spectrograms(outdir, ckpt.data.names, specs, n_iter=n_iter), values


def _scaled_spectrograms(data: ImageSet, values: torch.Tensor, ts: float, fs: float) -> list[Spectrogram]:
    """Rescaled renders as spectrograms of their own: hop_length / ts samples, n_mels × fs bands."""
    params = data.params
    hop = params.hop_length / ts
    if abs(hop - round(hop)) > 1e-9 or hop < 1:
        raise SpecnirError(f"--time-scale {ts} must divide hop_length {params.hop_length} into whole samples")
    if fs != 1.0 and params.scale != "mel":
        raise SpecnirError("--freq-scale needs a mel spectrogram (a linear STFT has n_fft // 2 + 1 rows)")
    new_params = dataclasses.replace(params, hop_length=int(round(hop)), n_mels=values.shape[1])
    values = values.clamp(0, 1).cpu().numpy()
    specs = []
    for k, spec in enumerate(data.specs):
        # As many frames as the new hop gives the original samples (centred STFT: 1 + length // hop).
        w = 1 + spec.length // new_params.hop_length if spec.length else int(round(data.widths[k] * ts))
        w = min(w, values.shape[2])
        db = spec.db_min + np.flipud(values[k, :, :w]) * (spec.db_max - spec.db_min)
        specs.append(
            dataclasses.replace(spec, db=np.ascontiguousarray(db, dtype=np.float32), params=new_params)
        )
    return specs
