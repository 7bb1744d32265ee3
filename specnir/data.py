"""A set of spectrogram images ready to fit: one padded ``(N, H, W)`` tensor and a mask.

Images of unequal width are padded on the right to the widest and the padding is masked out of the
loss and of every metric; nothing is cropped.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specnir.convert import expand_inputs, load_spectrogram
from specnir.errors import SpecnirError
from specnir.spectrogram import SpecParams, Spectrogram


@dataclass(frozen=True)
class ImageLayout:
    """Where one image of a set sits and how its values map back to dB.

    Attributes:
        name: the stem of its input file.
        width: time columns.
        db_min, db_max: dB of value 0 and value 1.
        length: samples of the original waveform (``None`` if unknown).
    """

    name: str
    width: int
    db_min: float
    db_max: float
    length: int | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def spectrogram(self, values: np.ndarray, params: SpecParams) -> Spectrogram:
        """[0, 1] values ``(H, W)`` in image orientation (row 0 = highest frequency) → its spectrogram."""
        values = np.clip(np.flipud(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
        db = self.db_min + values * (self.db_max - self.db_min)
        return Spectrogram(db.astype(np.float32), params, self.db_min, self.db_max, self.length)


def to_spectrograms(values, layouts: list[ImageLayout], params: SpecParams) -> list[Spectrogram]:
    """Decoded ``(N, H, W)`` values (tensor or array, padded) → one :class:`Spectrogram` per image."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return [im.spectrogram(values[k, :, : im.width], params) for k, im in enumerate(layouts)]


@dataclass
class ImageSet:
    """Spectrograms that share one set of STFT parameters.

    Attributes:
        names: one stem per image.
        specs: the spectrograms (dB, their own ranges and lengths).
        target: ``(N, H, W)`` float32 values in [0, 1], zero-padded on the right.
        mask: ``(N, 1, W)`` float32, 1 on real columns and 0 on padding.
    """

    names: list[str]
    specs: list[Spectrogram]
    target: torch.Tensor
    mask: torch.Tensor

    @property
    def params(self) -> SpecParams:
        return self.specs[0].params

    @property
    def widths(self) -> list[int]:
        return [s.db.shape[1] for s in self.specs]

    @property
    def layouts(self) -> list[ImageLayout]:
        return [
            ImageLayout(n, s.db.shape[1], s.db_min, s.db_max, s.length)
            for n, s in zip(self.names, self.specs, strict=True)
        ]

    @classmethod
    def from_spectrograms(cls, names: list[str], specs: list[Spectrogram]) -> ImageSet:
        if not specs:
            raise SpecnirError("need at least one input image")
        first = specs[0].params
        for name, spec in zip(names, specs, strict=True):
            if spec.params != first:
                diff = sorted(k for k, v in spec.params.to_dict().items() if first.to_dict()[k] != v)
                raise SpecnirError(
                    f"{name}: spectrogram parameters differ from {names[0]}'s ({', '.join(diff)})"
                )
        width = max(s.db.shape[1] for s in specs)
        target = np.zeros((len(specs), first.n_bins, width), np.float32)
        mask = np.zeros((len(specs), 1, width), np.float32)
        for k, spec in enumerate(specs):
            w = spec.db.shape[1]
            target[k, :, :w] = np.flipud(spec.normalized)  # image orientation: row 0 = top
            mask[k, :, :w] = 1.0
        return cls(list(names), list(specs), torch.from_numpy(target), torch.from_numpy(mask))

    def to_spectrograms(self, values: torch.Tensor) -> list[Spectrogram]:
        """Decoded ``(N, H, W)`` values → one :class:`Spectrogram` per image, padding cropped."""
        return to_spectrograms(values, self.layouts, self.params)

    def images(self, values: torch.Tensor) -> list[np.ndarray]:
        """Per-image ``(H, W_k)`` arrays clipped to [0, 1], padding cropped."""
        values = values.detach().clamp(0, 1).cpu().numpy()
        return [values[k, :, :w] for k, w in enumerate(self.widths)]


def load_image_set(inputs: list[str | os.PathLike], *, params: SpecParams) -> ImageSet:
    """Audio files (analysed with ``params``), spectrogram PNGs, or directories of them."""
    files = expand_inputs(inputs)
    if not files:
        raise SpecnirError("need at least one input image")
    specs = [load_spectrogram(f, params=params) for f in files]
    return ImageSet.from_spectrograms([Path(f).stem for f in files], specs)
