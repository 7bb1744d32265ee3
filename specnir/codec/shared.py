"""A decoder shared by a corpus: one synthesis and one entropy model for many sets, stored once.

The sets of one corpus are alike, and the latent mode's networks (about 1.4 kB of a small set's 3–4 kB)
are much the same from set to set. :func:`fit_decoder` fits them once, on a sample of sets fitted together
(:class:`~specnir.models.stacked.StackedLatents` with ``shared``), and puts them on the grids that
rate–distortion picks with their bits spread over every set that will use them. The result is a file of
its own (``decoder.snird``: :func:`~specnir.codec.container.pack_decoder`); each set's file then holds only
its latents, fitted with the decoder frozen (``compress_sets(..., decoder=...)``), and names the decoder by
its id (format version 3). Decoding such a file needs the decoder: :func:`find_decoder` looks for it
beside the file and in the folders above (where ``specnir batch`` puts it).
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

from specnir.codec.container import MAGIC, decoder_id, pack_decoder, unpack, unpack_decoder
from specnir.codec.header import read_decoder_header
from specnir.codec.pipeline import Settings, build_models, eight_bit, fit_config_for, fit_whole, joined
from specnir.codec.weights import decode_weights, encode_weights, rd_exponents, tensor_entries
from specnir.data import ImageSet
from specnir.errors import SpecnirError
from specnir.models import SpectrogramModel
from specnir.models.stacked import StackedLatents

DECODER_FILE = "decoder.snird"


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

    @property
    def reference_loss(self) -> float | None:
        """The mean fitting loss (MSE + λ·bpp) of the sets the decoder was fitted on, if recorded."""
        loss = self.header.get("fit", {}).get("loss")
        return float(loss) if isinstance(loss, int | float) and loss > 0 else None

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

    def load_into(self, model: SpectrogramModel) -> None:
        """Give ``model`` the decoder's weights, frozen (only its latents will learn)."""
        self.check_config(dataclasses.asdict(model.config), source="the set")
        params = model.weights()
        with torch.no_grad():
            for name, value in self.weights().items():
                param = params[name]
                param.copy_(value)
                param.requires_grad_(False)


def _networks_fields(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "lam"}


def load_decoder(path: str | os.PathLike) -> SharedDecoder:
    path = Path(path)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    return SharedDecoder.from_bytes(path.read_bytes(), source=str(path))


def find_decoder(path: str | os.PathLike, wanted: str) -> SharedDecoder:
    """The shared decoder with id ``wanted`` for the file at ``path``: the first :data:`DECODER_FILE` with
    that id in the file's folder or a folder above it."""
    path = Path(path).resolve()
    for folder in path.parents:
        candidate = folder / DECODER_FILE
        if candidate.is_file():
            decoder = load_decoder(candidate)
            if decoder.id == wanted:
                return decoder
    raise SpecnirError(
        f"{path}: its networks are in the shared decoder {wanted}, and no {DECODER_FILE} with that id"
        " is in its folder or above it (give the decoder with --decoder)"
    )


def decoder_for(
    path: str | os.PathLike, blob: bytes, given: SharedDecoder | None = None
) -> SharedDecoder | None:
    """The shared decoder that a ``.snir`` file's bytes need: none if the file holds its own networks,
    else ``given`` (checked when decoding) or the one :func:`find_decoder` finds for ``path``."""
    if blob[:4] != MAGIC or len(blob) < 5 or blob[4] < 3:  # (damage: decode says what is wrong)
        return None
    header, _ = unpack(blob, source=str(path))
    wanted = header.get("decoder")
    if not wanted:
        return None
    return given if given is not None else find_decoder(path, wanted)


def fit_decoder(
    sets: list[ImageSet],
    settings: Settings,
    *,
    served: int,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> SharedDecoder:
    """Fit one synthesis and entropy model to ``sets`` (8-bit, as coded) fitted together, and store it.

    ``settings`` must code in mode latent; ``served`` is how
    many sets will use the decoder: its bits are weighed against the rate as if spread over them.
    """
    coding, arch, _ = settings.coding()
    if coding.name != "latent":
        raise SpecnirError(f"a shared decoder holds the latent mode's networks; mode {coding.name} has none")
    sets = [eight_bit(d) for d in sets]
    models = build_models(sets, settings, seed=seed)
    stacked = StackedLatents(models, [d.widths for d in sets], shared=True)
    fit_whole(stacked, joined(sets), fit_config_for(settings, seed=seed, device=device), progress)
    stacked.to(device).eval()  # (the grid search below: ~100 losses of all K sets, on the fitting device)
    data = joined(sets)
    target = data.target.to(device)

    def mean_loss() -> float:  # per set, as each set's file will see it
        with torch.no_grad():
            return float(stacked.set_losses(target).mean())

    pixels = int(data.mask.sum()) * data.target.shape[1] / len(sets) * max(served, len(sets))
    exponents = rd_exponents(stacked, mean_loss, lam=stacked.config.lam, pixels=pixels)
    reference = mean_loss()  # (the weights now on their grids)
    stacked.cpu()
    template = models[0]
    stacked.unstack([template])
    exponents = {name: exponents[name.replace(".", "__")] for name in template.weights()}
    header = {
        "format": "snir",
        "arch": arch,
        "mode": coding.name,
        "quality": settings.quality,
        "model_config": dataclasses.asdict(template.config),
        "fit": {"loss": float(f"{reference:.6g}"), "sets": len(sets)},
    }
    header["tensors"], ints = tensor_entries(template, exponents)
    encoder = constriction.stream.queue.RangeEncoder()
    encode_weights(encoder, header["tensors"], ints)
    decoder = SharedDecoder.from_bytes(
        pack_decoder(header, encoder.get_compressed()), source="the new decoder"
    )
    for name, value in decoder.weights().items():
        if not torch.equal(value, template.weights()[name].detach()):
            raise RuntimeError(f"internal error: the shared decoder's {name} does not decode as coded")
    return decoder
