"""Shared decoders: networks that many ``.snir`` files use and none of them holds, read and found.

A shared decoder (``decoder.snird``, format SNRD: :mod:`specnir.codec.container`) is one synthesis and one
entropy model of a mode that can share them (the latent mode), on their grids. A set's file coded against
it holds only its latents and names it by id (format version 3). This module reads and checks such files
(:class:`SharedDecoder`), gives a model their weights, and finds the one a file needs
(:func:`find_decoder`: beside the file or in a folder above, where ``specnir batch`` puts it). Fitting
one is the encoder's job (:mod:`specnir.codec.decoder_fit`).

specnir ships its own decoders, trained on many voices (``specnir/decoders/*.snird``, with the command and
the corpus that made them in that folder's README): :func:`shipped_decoder` is the one for an analysis and
a quality, and a file that names one of them by id decodes with nothing else (:func:`shipped_with_id`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import constriction
import numpy as np
import torch

from specnir.codec.container import MAGIC, decoder_id, unpack, unpack_decoder
from specnir.codec.header import read_decoder_header
from specnir.codec.weights import decode_weights
from specnir.errors import SpecnirError
from specnir.models import SpectrogramModel

DECODER_FILE = "decoder.snird"
SHIPPED_FOLDER = Path(__file__).resolve().parents[1] / "decoders"


class DecoderNotFound(SpecnirError):
    """A file's networks are in a shared decoder that is neither given nor beside it."""


@dataclass(frozen=True, eq=False)
class SharedDecoder:
    """A shared decoder's bytes, read and checked: its header (with the tensors' names and shapes) and
    the words that code its weights."""

    blob: bytes
    header: dict
    words: np.ndarray
    source: str = "<bytes>"

    @classmethod
    def from_bytes(cls, blob: bytes, *, source: str = "<bytes>") -> SharedDecoder:
        header, words = unpack_decoder(blob, source=source)
        try:
            entries = read_decoder_header(header)
        except SpecnirError as exc:
            raise SpecnirError(f"{source}: malformed specnir decoder header: {exc}") from None
        return cls(blob, {**header, "tensors": entries}, words, source)

    @property
    def id(self) -> str:
        return decoder_id(self.blob)

    def reference_loss(self, quality: int) -> float | None:
        """The mean fitting loss (MSE + λ·bpp) of the sets the decoder was fitted on, at ``quality`` where
        it serves several (a shipped decoder), if recorded."""
        fit = self.header.get("fit", {})
        by_quality = fit.get("loss_by_quality")
        loss = by_quality.get(str(quality)) if isinstance(by_quality, dict) else fit.get("loss")
        return float(loss) if isinstance(loss, int | float) and loss > 0 else None

    @property
    def distortion(self) -> str:
        """The distortion its networks and reference losses were fitted to (:mod:`specnir.models.loss`)."""
        return self.header.get("fit", {}).get("distortion", "mse")

    def serves(self, analysis: dict, quality: int) -> bool:
        """Whether this is a shipped decoder for spectrograms of ``analysis`` (a ``SpecParams`` dict) coded
        at ``quality``."""
        fit = self.header.get("fit", {})
        return fit.get("analysis") == analysis and quality in fit.get("qualities", ())

    def weights(self) -> dict[str, torch.Tensor]:
        """The networks' weights by name, exactly on their grids (decoded once; callers copy them)."""
        return self._weights

    @functools.cached_property
    def _weights(self) -> dict[str, torch.Tensor]:
        try:
            return decode_weights(constriction.stream.queue.RangeDecoder(self.words), self.header["tensors"])
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise SpecnirError(f"{self.source}: malformed specnir decoder ({type(exc).__name__})") from None

    def check_config(self, config: dict, *, source: str) -> None:
        """Refuse a set whose network differs from the decoder's (λ aside: it only weighs the rate)."""
        mine, theirs = _networks_fields(self.header["model_config"]), _networks_fields(config)
        if mine != theirs:
            differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise SpecnirError(
                f"{source}: the shared decoder {self.id} ({self.source}) has other networks"
                f" ({', '.join(differ)})"
            )

    def load_into(self, model: SpectrogramModel, *, frozen: bool = True) -> None:
        """Give ``model`` the decoder's weights, ``frozen`` (only its latents will learn) or as a start."""
        self.check_config(dataclasses.asdict(model.config), source="the set")
        params = model.weights()
        with torch.no_grad():
            for name, value in self.weights().items():
                param = params[name]
                param.copy_(value)
                param.requires_grad_(not frozen)


def _networks_fields(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "lam"}


def load_decoder(path: str | os.PathLike) -> SharedDecoder:
    path = Path(path)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    return SharedDecoder.from_bytes(path.read_bytes(), source=str(path))


@functools.cache
def shipped_decoders() -> tuple[SharedDecoder, ...]:
    """The decoders that come with specnir (:data:`SHIPPED_FOLDER`), in file-name order."""
    return tuple(load_decoder(path) for path in sorted(SHIPPED_FOLDER.glob("*.snird")))


def shipped_with_id(wanted: str) -> SharedDecoder | None:
    """The shipped decoder with id ``wanted``, if specnir has it."""
    return next((d for d in shipped_decoders() if d.id == wanted), None)


def shipped_decoder(analysis: dict, quality: int) -> SharedDecoder | None:
    """The shipped decoder for spectrograms of ``analysis`` (a ``SpecParams`` dict) at ``quality``, if any:
    the last in file-name order (a newer decoder is a new file, ``speech2-…``; the older ones stay, for
    the files that name them)."""
    return next((d for d in reversed(shipped_decoders()) if d.serves(analysis, quality)), None)


def find_decoder(path: str | os.PathLike, wanted: str) -> SharedDecoder:
    """The shared decoder with id ``wanted`` for the file at ``path``: the first :data:`DECODER_FILE` with
    that id in the file's folder or a folder above it, else specnir's own with that id."""
    path = Path(path).resolve()
    for folder in path.parents:
        candidate = folder / DECODER_FILE
        if candidate.is_file():
            decoder = load_decoder(candidate)
            if decoder.id == wanted:
                return decoder
    shipped = shipped_with_id(wanted)
    if shipped is not None:
        return shipped
    raise DecoderNotFound(
        f"{path}: its networks are in the shared decoder {wanted}, which is not one of specnir's own, and no"
        f" {DECODER_FILE} with that id is in its folder or above it"
    )


def decoder_for(
    path: str | os.PathLike, blob: bytes, given: SharedDecoder | None = None
) -> SharedDecoder | None:
    """The shared decoder that a ``.snir`` file's bytes need: none if the file holds its own networks,
    else ``given`` (checked when decoding) or the one :func:`find_decoder` finds for ``path``."""
    if blob[:4] != MAGIC or len(blob) < 5 or blob[4] < 3:  # (damage: decode says what is wrong)
        return None
    header, _ = unpack(blob, source=str(path))
    wanted = header.get("decoder_id")
    if not wanted:
        return None
    return given if given is not None else find_decoder(path, wanted)
