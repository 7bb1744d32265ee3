"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from specnir.models import sized_config  # noqa: F401  (re-exported for the scripts)

ROOT = Path(__file__).resolve().parents[1]


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
