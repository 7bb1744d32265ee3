"""The one fitting loop for every architecture.

It knows a model only as ``model() -> (N, H, W)`` (the decoder's output) and ``model.loss(target, mask)``
(the image models' masked MSE, optionally with a Sobel-gradient term; a predictive coder's bits per pixel).
Adam, an optional cosine schedule, evaluation every ``eval_every`` steps, the weights with the lowest
evaluation loss kept, a tqdm bar, and a clean stop on Ctrl-C. Logging and saving live in callbacks; the
loop hands them a :class:`FitState` from which the fit continues exactly as if it had not stopped.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn.utils import parametrize
from tqdm import tqdm

from specnir.data import ImageSet
from specnir.errors import SpecnirError
from specnir.fit_config import FitConfig
from specnir.metrics import column_error, gmsd, psnr, psnr_from_mse, ssim
from specnir.models import SpectrogramModel
from specnir.models.loss import pixel_weights

STATE_EVERY_S = 120.0  # the loop hands out its state at every evaluation and at least this often


def check_device(device: str) -> None:
    """Refuse a fit on a device this machine does not have."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecnirError("device cuda: no CUDA device is available")


def learning_rate(config: FitConfig, model: SpectrogramModel) -> float:
    """``config.lr``, or the model's own default when it is ``None``."""
    return type(model).default_lr if config.lr is None else config.lr


@dataclass
class FitState:
    """Everything a fit needs to continue from ``step`` exactly as if it had not stopped."""

    step: int
    model: dict  # the weights after ``step`` steps
    optimizer: dict
    best_loss: float
    best_step: int
    best_model: dict | None  # the weights with the lowest evaluation loss so far
    rng: torch.Tensor  # torch's CPU generator (training noise of the predictor and the latent codec)
    seconds: float  # fitting time so far, all sessions together
    cuda_rng: torch.Tensor | None = None  # the CUDA generator, for a fit on the GPU

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> FitState:
        return cls(**state)


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
        "psnr": psnr_from_mse(sq / n),
        "gmsd": float(np.mean(per["gmsd_per_image"])),
        "ssim": float(np.mean(per["ssim_per_image"])),
        **per,
        "column_error": [column_error(t, e) for t, e in zip(truth, est, strict=True)],
    }


class Callback:
    """Hooks of the loop; every method is optional."""

    def on_step(self, step: int, loss: float, lr: float) -> None: ...

    def on_eval(self, step: int, recon: torch.Tensor, extras: dict, metrics: dict) -> None: ...

    def on_state(self, state: FitState) -> None:
        """After every evaluation and at least every :data:`STATE_EVERY_S` seconds: save it to resume."""


@dataclass
class FitResult:
    best_step: int
    best_metrics: dict
    last_step: int
    seconds: float  # all sessions together
    interrupted: bool
    state: FitState  # where the fit stopped


def loss_args(config: FitConfig, target: torch.Tensor, mask: torch.Tensor) -> dict:
    """The keyword arguments of ``model.loss`` under ``config``: the gradient term's weight and the
    distortion's per-pixel weights (:func:`specnir.models.loss.pixel_weights`), where not the defaults."""
    weight = pixel_weights(target, mask, config.distortion)
    return {
        **({"grad_weight": config.grad_weight} if config.grad_weight else {}),
        **({} if weight is None else {"weight": weight}),
    }


def cosine_lr(step: int, *, lr: float, steps: int, cosine: bool) -> float:
    """The learning rate at ``step``: ``lr``, or a cosine decay from ``lr`` to ``lr / 20`` over ``steps``."""
    if not cosine:
        return lr
    floor = lr / 20
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))


def fit(
    model: SpectrogramModel,
    data: ImageSet,
    config: FitConfig,
    *,
    callbacks: list[Callback] = (),
    resume: FitState | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit ``model`` to ``data`` up to ``config.steps`` (from ``resume`` if given); leaves the best
    weights loaded."""
    if (config.grad_weight or config.distortion != "mse") and model.predictive:
        raise ValueError("grad_weight and distortion are image models'; a predictive model minimises bits")
    return _Loop(model, data, config, list(callbacks), progress).run(resume)


class _Loop:
    """One fit's moving parts: model, optimiser, the best weights so far, the progress bar."""

    def __init__(self, model, data: ImageSet, config: FitConfig, callbacks: list, progress: bool) -> None:
        self.model, self.data, self.config, self.callbacks, self.progress = (
            model,
            data,
            config,
            callbacks,
            progress,
        )
        device = torch.device(config.device)
        model.to(device)
        model.set_widths(data.widths)
        self.target, self.mask = data.target.to(device), data.mask.to(device)
        self.loss_args = loss_args(config, self.target, self.mask)
        self.lr = learning_rate(config, model)
        self.optimizer = torch.optim.Adam(model.param_groups(), lr=self.lr)
        self.best_loss, self.best_state, self.best_metrics, self.best_step = math.inf, None, None, 0
        self.step, self.before = 0, 0.0

    def resume_from(self, state: FitState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.rng)
        if state.cuda_rng is not None and self.target.is_cuda:
            torch.cuda.set_rng_state(state.cuda_rng, self.target.device)
        self.best_loss, self.best_state, self.best_step = state.best_loss, state.best_model, state.best_step
        self.step, self.before = state.step, state.seconds

    def state(self) -> FitState:
        return FitState(
            step=self.step,
            model=copy.deepcopy(self.model.state_dict()),
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            best_loss=self.best_loss,
            best_step=self.best_step,
            best_model=self.best_state,
            rng=torch.get_rng_state(),
            seconds=self.before + time.perf_counter() - self.start,
            cuda_rng=torch.cuda.get_rng_state(self.target.device) if self.target.is_cuda else None,
        )

    def hand_out_state(self) -> None:
        self.last_state = time.perf_counter()
        if self.callbacks:
            state = self.state()
            for cb in self.callbacks:
                cb.on_state(state)

    def evaluate(self) -> None:
        model = self.model
        model.eval()
        with torch.no_grad(), parametrize.cached():
            recon = model()
            extras = model.diagnostics(self.target)
            loss = float(model.loss(self.target, self.mask, **self.loss_args))
            rates = model.rates(self.mask)
        metrics = {"loss": loss, **evaluate(self.data, recon), **({"rates": rates} if rates else {})}
        for name, values in extras.items():
            extra = evaluate(self.data, values)
            metrics[f"{name}/psnr"], metrics[f"{name}/column_error"] = extra["psnr"], extra["column_error"]
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.best_metrics = loss, self.step, metrics
            self.best_state = copy.deepcopy(model.state_dict())
        for cb in self.callbacks:
            cb.on_eval(self.step, recon, extras, metrics)
        self.bar.set_postfix(psnr=f"{metrics['psnr']:.2f}")
        if self.progress and self.bar.disable:  # no terminal: one line per evaluation instead of a bar
            tqdm.write(f"step {self.step}: loss {loss:.4g}, PSNR {metrics['psnr']:.2f} dB")
        model.train()

    def train_step(self) -> float:
        config, optimizer = self.config, self.optimizer
        for group in optimizer.param_groups:
            lr = cosine_lr(self.step, lr=self.lr, steps=config.steps, cosine=config.cosine)
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.model.set_progress(self.step / max(config.steps, 1))
        with parametrize.cached():  # straight-through quantised weights: rounded once per step
            loss = self.model.loss(self.target, self.mask, **self.loss_args)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.step += 1
        return float(loss.detach())

    def run(self, resume: FitState | None) -> FitResult:
        config, interrupted = self.config, False
        if resume is not None:
            self.resume_from(resume)
        self.start = self.last_state = time.perf_counter()
        self.bar = tqdm(
            total=config.steps,
            initial=self.step,
            disable=None if self.progress else True,  # None: off when stderr is not a terminal
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5,
        )
        try:
            while self.step < config.steps:
                value = self.train_step()
                self.bar.update(1)
                self.bar.set_postfix_str(f"loss={value:.3e}")
                for cb in self.callbacks:
                    cb.on_step(self.step, value, self.optimizer.param_groups[0]["lr"])
                if self.step % config.eval_every == 0 or self.step == config.steps:
                    self.evaluate()
                    self.hand_out_state()
                elif time.perf_counter() - self.last_state > STATE_EVERY_S:
                    self.hand_out_state()
        except KeyboardInterrupt:
            interrupted = True
            self.bar.write(f"interrupted at step {self.step}; keeping the best weights so far")
        finally:
            self.bar.close()
        return self.finish(interrupted)

    def finish(self, interrupted: bool) -> FitResult:
        # An interrupted fit's state is taken before the evaluation its best weights get here, so that a
        # fit resumed from it goes on exactly as if it had never stopped.
        final = self.state() if interrupted else None
        if self.best_state is None or (interrupted and self.step % self.config.eval_every):
            self.evaluate()
        final = final or self.state()
        self.model.load_state_dict(self.best_state)
        if self.best_metrics is None:  # the best weights date from before a resume: measure them again
            self.model.eval()
            with torch.no_grad():
                self.best_metrics = {"loss": self.best_loss, **evaluate(self.data, self.model())}
            self.model.train()
        return FitResult(self.best_step, self.best_metrics, self.step, final.seconds, interrupted, final)
