"""How a model is fitted: the fitting loop's settings (:mod:`specnir.fit`), saved inside every checkpoint.

Apart from the loop so that what only reads a setting (the command line, a checkpoint's reader) loads no
trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specnir.errors import check_bounds
from specnir.models.loss import DISTORTIONS


@dataclass
class FitConfig:
    """How a model is fitted; saved inside every checkpoint."""

    steps: int = field(default=2000, metadata={"help": "optimiser steps in all", "min": 1})
    lr: float | None = field(
        default=None,
        metadata={"help": "Adam learning rate (default: the arch's own)", "type": float, "above": 0},
    )
    cosine: bool = field(default=True, metadata={"help": "cosine learning-rate decay to lr/20"})
    seed: int = field(default=0, metadata={"help": "seed of the initial weights"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda", "choices": ("cpu", "cuda")})
    eval_every: int = field(default=200, metadata={"help": "steps between evaluations", "min": 1})
    grad_weight: float = field(default=0.0, metadata={"help": "weight of the Sobel-gradient loss", "min": 0})
    distortion: str = field(
        default="mse",
        metadata={
            "help": "mse: every pixel alike; ear: pixels weighed by their level above the noise floor",
            "choices": DISTORTIONS,
        },
    )

    def __post_init__(self) -> None:
        check_bounds(self)
