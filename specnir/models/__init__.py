"""The model registry: ``--arch`` picks a class; the fitting loop and the codec need nothing else."""

from __future__ import annotations

from specnir.models.base import SpectrogramModel
from specnir.models.gru import ColumnGRU, GRUConfig
from specnir.models.latent import LatentCodec, LatentConfig
from specnir.models.predictor import PredictiveGRU, PredictorConfig
from specnir.models.siren import Siren, SirenConfig

MODELS: dict[str, type[SpectrogramModel]] = {
    "siren": Siren,
    "gru": ColumnGRU,
    "latent": LatentCodec,
    "predictor": PredictiveGRU,
}
# The models that decode from their weights alone (what `specnir fit` and the model mode fit).
IMAGE_MODELS = tuple(name for name, cls in MODELS.items() if not cls.predictive)


def arch_of(config) -> str:
    """The registry name of the model whose ``Config`` ``config`` is."""
    return next(name for name, cls in MODELS.items() if isinstance(config, cls.Config))


def build_model(arch: str, config, *, n_images: int, height: int, width: int) -> SpectrogramModel:
    """``MODELS[arch]`` from its config (a dataclass or a dict of its fields)."""
    cls = MODELS[arch]
    if isinstance(config, dict):
        config = cls.Config(**config)
    return cls(config, n_images=n_images, height=height, width=width)


def sized_config(arch: str, target: int, shape: tuple[int, int, int], **fixed):
    """The config of ``arch`` whose weight count is nearest ``target``, varying its size knob.

    ``shape`` is the set's ``(N, H, W)``; ``fixed`` sets other fields.
    """
    cls = MODELS[arch]
    n, h, w = shape
    best = None
    for size in range(2, 1000):
        cfg = cls.Config(**{**fixed, cls.size_knob: size})
        count = cls(cfg, n_images=n, height=h, width=w).n_weights()
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (cfg, count)
        if count > target:
            break
    return best[0]


__all__ = [
    "IMAGE_MODELS",
    "MODELS",
    "ColumnGRU",
    "GRUConfig",
    "LatentCodec",
    "LatentConfig",
    "PredictiveGRU",
    "PredictorConfig",
    "Siren",
    "SirenConfig",
    "SpectrogramModel",
    "arch_of",
    "build_model",
    "sized_config",
]
