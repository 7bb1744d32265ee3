"""specnir: compress sets of similar speech spectrograms into one small neural model."""

__version__ = "0.1.0"
