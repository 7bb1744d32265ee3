"""What ``specnir train-decoder`` is asked for (:mod:`specnir.codec.decoder_train`), apart from the
training so that the command line reads it without loading a trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

from specnir.codec.modes import MODES
from specnir.errors import SpecnirError, check_bounds
from specnir.models.latent import LatentConfig
from specnir.models.loss import DISTORTIONS


@dataclass(frozen=True)
class TrainSettings:
    """What ``train-decoder`` is asked for; the networks are the latent mode's for the qualities (the
    sizes ``compress`` builds, so that its sets can be coded against the decoder)."""

    qualities: tuple[int, ...] = (1, 2, 3, 4)
    steps: int = field(default=20_000, metadata={"help": "optimiser steps in all", "min": 1})
    batch: int = field(default=16, metadata={"help": "crops per step", "min": 1})
    crop: int = field(default=64, metadata={"help": "columns of a crop", "min": 8})
    clips: int = field(default=400, metadata={"help": "most clips trained on, taken evenly", "min": 1})
    eval_every: int = field(default=5000, metadata={"help": "steps between evaluations", "min": 1})
    reference_steps: int | None = field(
        default=None,
        metadata={
            "help": "steps of the reference sets' fits (default: the encoder's)",
            "min": 1,
            "type": int,
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the initial weights and of the crops"})
    distortion: str = field(
        default="mse",
        metadata={"help": "the loss's distortion (as compress's --distortion)", "choices": DISTORTIONS},
    )

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.distortion not in DISTORTIONS:
            raise SpecnirError(f"distortion: one of {', '.join(DISTORTIONS)}, not {self.distortion!r}")

    def config(self) -> LatentConfig:
        """The networks' config: the qualities' own (they must differ in λ only)."""
        mode = MODES["latent"]
        if not self.qualities or any(q not in mode.SETTINGS for q in self.qualities):
            raise SpecnirError(f"qualities {list(self.qualities)}: the latent mode has {list(mode.SETTINGS)}")
        configs = [{**mode.quality_config(q), "lam": 0} for q in self.qualities]
        if any(c != configs[0] for c in configs):
            raise SpecnirError(
                f"qualities {list(self.qualities)} need different networks: train one decoder per range"
            )
        return LatentConfig(**{**configs[0], "lam": self.lam(self.qualities[0])})

    def lam(self, quality: int) -> float:
        return MODES["latent"].quality_config(quality)["lam"]
