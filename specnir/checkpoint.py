"""Checkpoints: weights plus everything needed to rebuild the model and its images from the file alone.

``model.pt`` is a ``torch.save`` dict (loaded with ``weights_only=True``)::

    format "specnir-checkpoint", version 1, arch, model_config, fit_config, inputs,
    params (SpecParams), images [ImageLayout as a dict], state_dict, metrics

Files written before a field left :class:`~specnir.fit_config.FitConfig` (:data:`RETIRED_FIT`) or a
model's config (the model's ``upgrade``) still load.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from specnir.data import ImageLayout, to_spectrograms
from specnir.errors import SpecnirError, atomic_path
from specnir.fit_config import FitConfig
from specnir.models import MODELS, SpectrogramModel, build_model
from specnir.spectrogram import SpecParams, Spectrogram

FORMAT = "specnir-checkpoint"
VERSION = 1
# FitConfig fields that earlier versions saved and that no longer exist (the arch is saved beside it;
# the Griffin-Lim iterations of logged audio belong to the logger).
RETIRED_FIT = {"arch", "gl_iters"}


@dataclass
class Checkpoint:
    arch: str
    model: SpectrogramModel  # on the CPU, in evaluation mode
    params: SpecParams
    images: list[ImageLayout]
    fit_config: FitConfig
    inputs: list[str]
    metrics: dict

    @property
    def names(self) -> list[str]:
        return [im.name for im in self.images]

    def spectrograms(self, values: torch.Tensor) -> list[Spectrogram]:
        """The model's decode ``(N, H, W)`` as one spectrogram per image."""
        return to_spectrograms(values, self.images, self.params)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    arch: str,
    model: SpectrogramModel,
    state_dict: dict | None = None,
    fit_config: FitConfig,
    params: SpecParams,
    images: list[ImageLayout],
    inputs: list,
    metrics: dict,
) -> Path:
    """Write ``model`` (with ``state_dict`` instead of its own weights, if given) atomically."""
    state = model.state_dict() if state_dict is None else state_dict
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "model_config": dataclasses.asdict(model.config),
        "fit_config": dataclasses.asdict(fit_config),
        "inputs": [str(i) for i in inputs],
        "params": params.to_dict(),
        "images": [im.to_dict() for im in images],
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "metrics": metrics,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Rebuild model (on the CPU, evaluation mode) and image layout from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or truncated files
        raise SpecnirError(f"{path}: not a specnir checkpoint, or truncated ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SpecnirError(f"{path}: not a specnir checkpoint")
    if payload.get("version") != VERSION:
        raise SpecnirError(f"{path}: checkpoint version {payload.get('version')!r} not supported")
    try:
        params = SpecParams.from_dict(payload["params"])
        images = [ImageLayout(**im) for im in payload["images"]]
        arch = payload["arch"]
        if arch not in MODELS:
            raise SpecnirError(f"unknown architecture {arch!r}")
        fit_config = {k: v for k, v in payload["fit_config"].items() if k not in RETIRED_FIT}
        state = payload["state_dict"]
        shapes = {name: list(value.shape) for name, value in state.items()}
        model_config, dropped = MODELS[arch].upgrade(payload["model_config"], shapes)
        model = build_model(
            arch,
            model_config,
            n_images=len(images),
            height=params.n_bins,
            width=max(im.width for im in images),
        )
        model.load_state_dict({k: v for k, v in state.items() if k not in dropped})
        model.set_widths([im.width for im in images])
        fit_config = FitConfig(**fit_config)
    except SpecnirError as exc:
        raise SpecnirError(f"{path}: malformed checkpoint: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SpecnirError(
            f"{path}: malformed checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    model.eval()
    return Checkpoint(arch, model, params, images, fit_config, list(payload["inputs"]), payload["metrics"])
