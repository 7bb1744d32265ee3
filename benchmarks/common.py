"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from specnir.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
SIZE_KNOB = {"siren": "width", "gru": "hidden"}


def sized_config(arch: str, target: int, shape: tuple[int, int, int], **fixed):
    """The config of ``arch`` whose weight count is nearest ``target``, varying its size knob."""
    cls = MODELS[arch]
    n, h, w = shape
    best = None
    for size in range(2, 400):
        cfg = cls.Config(**{**fixed, SIZE_KNOB[arch]: size})
        count = cls(cfg, n_images=n, height=h, width=w).n_weights()
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (cfg, count)
        if count > target:
            break
    return best[0]


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
