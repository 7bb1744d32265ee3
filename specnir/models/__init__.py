"""The model registry: ``--arch`` picks a class; the fitting loop needs nothing else."""

from specnir.models.base import SpectrogramModel
from specnir.models.gru import ColumnGRU, GRUConfig
from specnir.models.siren import Siren, SirenConfig

MODELS: dict[str, type[SpectrogramModel]] = {"siren": Siren, "gru": ColumnGRU}

__all__ = ["MODELS", "ColumnGRU", "GRUConfig", "Siren", "SirenConfig", "SpectrogramModel"]
