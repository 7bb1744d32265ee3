"""Checkpoints: weights plus everything needed to rebuild the model and its images from the file alone.

``model.pt`` is a ``torch.save`` dict (loaded with ``weights_only=True``)::

    format "specnir-checkpoint", version 1, arch, model_config, fit_config, inputs,
    params (SpecParams), images [{name, width, db_min, db_max, length}], state_dict, metrics
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specnir.data import ImageSet
from specnir.errors import SpecnirError, atomic_path
from specnir.fit import FitConfig
from specnir.models import MODELS, SpectrogramModel
from specnir.spectrogram import SpecParams, Spectrogram

FORMAT = "specnir-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: SpectrogramModel
    data: ImageSet  # names, parameters and shapes; the target is zeros (the file holds no pixels)
    fit_config: FitConfig
    inputs: list[str]
    metrics: dict


def build_model(arch: str, model_config: dict, *, n_images: int, height: int, width: int) -> SpectrogramModel:
    cls = MODELS[arch]
    return cls(cls.Config(**model_config), n_images=n_images, height=height, width=width)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: SpectrogramModel,
    fit_config: FitConfig,
    data: ImageSet,
    inputs: list[str],
    metrics: dict,
) -> Path:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": fit_config.arch,
        "model_config": dataclasses.asdict(model.config),
        "fit_config": dataclasses.asdict(fit_config),
        "inputs": [str(i) for i in inputs],
        "params": data.params.to_dict(),
        "images": [
            {"name": n, "width": w, "db_min": s.db_min, "db_max": s.db_max, "length": s.length}
            for n, w, s in zip(data.names, data.widths, data.specs, strict=True)
        ],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
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
        images = payload["images"]
        specs = [
            Spectrogram(
                np.zeros((params.n_bins, int(im["width"])), np.float32),
                params,
                float(im["db_min"]),
                float(im["db_max"]),
                im["length"],
            )
            for im in images
        ]
        data = ImageSet.from_spectrograms([im["name"] for im in images], specs)
        data.target.fill_(0.0)
        _, height, width = data.target.shape
        if payload["arch"] not in MODELS:
            raise SpecnirError(f"unknown architecture {payload['arch']!r}")
        model = build_model(
            payload["arch"], payload["model_config"], n_images=len(specs), height=height, width=width
        )
        model.load_state_dict(payload["state_dict"])
        fit_config = FitConfig(**payload["fit_config"])
    except SpecnirError as exc:
        raise SpecnirError(f"{path}: malformed checkpoint: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SpecnirError(
            f"{path}: malformed checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    model.eval()
    return Checkpoint(model, data, fit_config, list(payload["inputs"]), payload["metrics"])
