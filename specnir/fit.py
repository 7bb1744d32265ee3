"""The one fitting loop for every architecture.

It knows a model only as ``model() -> (N, H, W)`` (the decoder's output) and ``model.loss(target, mask)``
(by default the masked MSE of that output, plus an optional Sobel-gradient term; a predictive coder's
bits per pixel). Adam, an optional cosine schedule, evaluation every ``eval_every`` steps, the weights
with the lowest evaluation loss kept, a tqdm bar, and a clean stop on Ctrl-C. Logging lives in callbacks.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn.utils import parametrize
from tqdm import tqdm

from specnir.data import ImageSet
from specnir.metrics import column_error, gmsd, psnr, sobel_magnitude, ssim
from specnir.models import SpectrogramModel


@dataclass
class FitConfig:
    """How a model is fitted; saved inside every checkpoint."""

    arch: str = field(default="gru", metadata={"help": "model family", "choices": ("siren", "gru")})
    steps: int = field(default=2000, metadata={"help": "optimiser steps in all"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate (default: the arch's own)"})
    cosine: bool = field(default=True, metadata={"help": "cosine learning-rate decay to lr/20"})
    seed: int = field(default=0, metadata={"help": "seed of the initial weights"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda", "choices": ("cpu", "cuda")})
    eval_every: int = field(default=200, metadata={"help": "steps between evaluations"})
    grad_weight: float = field(default=0.0, metadata={"help": "weight of the Sobel-gradient loss"})
    gl_iters: int = field(default=32, metadata={"help": "Griffin-Lim iterations for logged audio"})


def masked_loss(
    recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, grad_weight: float = 0.0
) -> torch.Tensor:
    """Mean squared error over real pixels, plus ``grad_weight`` × MSE of Sobel gradient magnitudes.

    Args:
        recon, target: ``(N, H, W)``.
        mask: ``(N, 1, W)``, 1 on real columns.
    """
    full = mask.expand_as(target)
    loss = (((recon - target) ** 2) * full).sum() / full.sum()
    if grad_weight:
        g_err = (sobel_magnitude(recon) - sobel_magnitude(target)) ** 2
        inner = full.clone()
        inner[..., 1:] *= full[..., :-1]  # keep gradients that do not straddle the padding
        loss = loss + grad_weight * (g_err * inner).sum() / inner.sum()
    return loss


def evaluate(data: ImageSet, recon: torch.Tensor) -> dict:
    """Metrics of decoded values ``(N, H, W)`` against the set (clipped to [0, 1], padding cropped).

    Returns ``psnr`` (dB, over all real pixels), ``psnr_per_image``, ``gmsd`` and ``ssim`` (means and
    ``*_per_image``), and ``column_error`` (a list of ``(W_k,)`` arrays).
    """
    truth, est = data.images(data.target), data.images(recon)
    sq = sum(float(((t - e) ** 2).sum()) for t, e in zip(truth, est, strict=True))
    n = sum(t.size for t in truth)
    per = {
        "psnr_per_image": [psnr(t, e) for t, e in zip(truth, est, strict=True)],
        "gmsd_per_image": [gmsd(t, e) for t, e in zip(truth, est, strict=True)],
        "ssim_per_image": [ssim(t, e) for t, e in zip(truth, est, strict=True)],
    }
    return {
        "psnr": float(-10 * math.log10(max(sq / n, 1e-20))),
        "gmsd": float(np.mean(per["gmsd_per_image"])),
        "ssim": float(np.mean(per["ssim_per_image"])),
        **per,
        "column_error": [column_error(t, e) for t, e in zip(truth, est, strict=True)],
    }


class Callback:
    """Hooks of the loop; every method is optional."""

    def on_step(self, step: int, loss: float, lr: float) -> None: ...

    def on_eval(self, step: int, recon: torch.Tensor, extras: dict, metrics: dict) -> None: ...


@dataclass
class FitResult:
    best_step: int
    best_metrics: dict
    last_step: int
    seconds: float
    interrupted: bool
    last_state: dict
    optimizer_state: dict


def fit(
    model: SpectrogramModel,
    data: ImageSet,
    config: FitConfig,
    *,
    callbacks: list[Callback] = (),
    start_step: int = 0,
    optimizer_state: dict | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit ``model`` to ``data`` from ``start_step`` to ``config.steps``; leaves the best weights loaded."""
    device = torch.device(config.device)
    model.to(device)
    target, mask = data.target.to(device), data.mask.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)

    def lr_at(step: int) -> float:
        if not config.cosine:
            return config.lr
        floor = config.lr / 20
        return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * step / max(config.steps, 1)))

    best_loss, best_state, best_metrics, best_step = math.inf, None, {}, start_step
    step, interrupted, start = start_step, False, time.perf_counter()

    def evaluate_now() -> None:
        nonlocal best_loss, best_state, best_metrics, best_step
        model.eval()
        with torch.no_grad(), parametrize.cached():
            recon = model()
            extras = model.diagnostics(target)
            loss = float(model.loss(target, mask, grad_weight=config.grad_weight))
        metrics = {"loss": loss, **evaluate(data, recon)}
        for name, values in extras.items():
            extra = evaluate(data, values)
            metrics[f"{name}/psnr"], metrics[f"{name}/column_error"] = extra["psnr"], extra["column_error"]
        if loss < best_loss:
            best_loss, best_step, best_metrics = loss, step, metrics
            best_state = copy.deepcopy(model.state_dict())
        for cb in callbacks:
            cb.on_eval(step, recon, extras, metrics)
        best = best_metrics["psnr"]
        bar.set_postfix(psnr=f"{metrics['psnr']:.2f}", best=f"{best:.2f}")
        if progress and bar.disable:  # no terminal: one line per evaluation instead of a bar
            tqdm.write(
                f"step {step}: loss {loss:.4g}, PSNR {metrics['psnr']:.2f} dB "
                f"(best {best:.2f} at step {best_step})"
            )
        model.train()

    bar = tqdm(
        total=config.steps,
        initial=start_step,
        disable=None if progress else True,  # None: off when stderr is not a terminal
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
    )
    try:
        while step < config.steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            with parametrize.cached():  # straight-through quantised weights: rounded once per step
                loss = model.loss(target, mask, grad_weight=config.grad_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            value = float(loss.detach())
            bar.set_postfix_str(f"loss={value:.3e}")
            for cb in callbacks:
                cb.on_step(step, value, optimizer.param_groups[0]["lr"])
            if step % config.eval_every == 0 or step == config.steps:
                evaluate_now()
    except KeyboardInterrupt:
        interrupted = True
        bar.write(f"interrupted at step {step}; keeping the best weights so far")
    finally:
        bar.close()
    if best_state is None or (interrupted and step % config.eval_every):
        evaluate_now()
    last_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return FitResult(
        best_step=best_step,
        best_metrics=best_metrics,
        last_step=step,
        seconds=time.perf_counter() - start,
        interrupted=interrupted,
        last_state=last_state,
        optimizer_state=optimizer.state_dict(),
    )
