"""Training a decoder for everyone: ``specnir train-decoder CORPUS... -o DECODER.snird``.

A shared decoder fitted on a corpus's few sets (:mod:`specnir.codec.decoder_fit`) serves that corpus. One
trained once on many voices serves every set of its analysis: its bytes are in no ``.snir`` file, and a
set's fit starts from networks that already know speech. :func:`train_decoder` reads the clips under the
corpus folders (at most ``images`` of them, taken evenly from the sorted list, so every folder's voice is
in), drops those with no usable speech (shorter than :data:`MIN_COLUMNS` columns, or whose loudest bin is
less than :data:`MIN_CONTRAST_DB` above their median: silence, hum), cuts long ones into pieces of at most
:data:`MAX_COLUMNS` columns, gives the images the λs of the decoder's qualities in turn, and fits their
latents and one synthesis and entropy model together on random crops (an auto-decoder trained on
minibatches: :class:`~specnir.models.crops.CropLatents`), with the one fitting loop. The loop's state is
saved beside the output (``DECODER.snird.state``) at every evaluation and every two minutes, so a killed
training continues where it stopped when the same command is run again.

The networks are then put on fine grids (each tensor's rounding raises the training loss by at most
:data:`TOLERANCE`, relative: a shipped decoder's bytes are in no file, so only its accuracy counts) and
stored as a decoder file whose ``fit`` record names the analysis, the qualities it serves and each
quality's reference loss (:func:`with_references`: what a set of speech coded against it reaches, the
reference of the own-networks fallback, :class:`~specnir.codec.networks.DecoderNetworks`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from specnir.audio import SilentAudio
from specnir.codec.decoder_fit import _stored
from specnir.codec.decoders import SharedDecoder
from specnir.codec.encode import Settings, compress_sets, eight_bit
from specnir.codec.modes import MODES
from specnir.codec.networks import DecoderNetworks
from specnir.codec.nnquant import choose_exponents
from specnir.codec.train_settings import TrainSettings
from specnir.codec.weights import round_to_step
from specnir.convert import load_spectrogram
from specnir.corpus import clips_under, split_evenly
from specnir.data import ImageSet
from specnir.errors import SpecnirError, atomic_path, check_writable
from specnir.fit import Callback, FitState, fit
from specnir.fit_config import FitConfig
from specnir.models.crops import CropLatents
from specnir.models.latent import LatentCodec, LatentConfig
from specnir.models.loss import pixel_weights
from specnir.spectrogram import SpecParams, Spectrogram

MIN_COLUMNS = 16
MIN_CONTRAST_DB = 20.0
MAX_COLUMNS = 512
TOLERANCE = 1e-3
REFERENCE_IMAGES = 5


def training_images(
    inputs: list[str | os.PathLike], *, params: SpecParams, limit: int
) -> tuple[ImageSet, int]:
    """The corpus's usable clips as 8-bit images (long ones in pieces) and how many clips they are."""
    clips = [clip for path in map(Path, inputs) for clip in clips_under(path)]
    if not clips:
        raise SpecnirError(f"{', '.join(map(str, inputs))}: no audio files or spectrogram images found")
    if len(clips) > limit:
        clips = [clips[round(i * len(clips) / limit)] for i in range(limit)]
    names, specs, used, first = [], [], 0, None
    for clip in clips:
        try:
            spec = load_spectrogram(clip, params=params)
        except SilentAudio:
            continue
        if first is None:
            first = (clip, spec.params)
        elif spec.params != first[1]:
            diff = sorted(k for k, v in spec.params.to_dict().items() if first[1].to_dict()[k] != v)
            raise SpecnirError(f"{clip}: another analysis than {first[0]}'s ({', '.join(diff)})")
        if not usable(spec):
            continue
        used += 1
        for k, piece in enumerate(split_evenly(list(range(spec.db.shape[1])), MAX_COLUMNS)):
            names.append(f"{clip.stem}.{k}")
            specs.append(dataclasses.replace(spec, db=spec.db[:, piece[0] : piece[-1] + 1], length=None))
    if not used:
        raise SpecnirError(
            f"{', '.join(map(str, inputs))}: no usable speech in {len(clips)} clips (each is shorter than"
            f" {MIN_COLUMNS} columns or under {MIN_CONTRAST_DB:g} dB of contrast)"
        )
    return eight_bit(ImageSet.from_spectrograms(names, specs)), used


def usable(spec: Spectrogram) -> bool:
    """Whether a clip has speech to train on: long enough, and its loudest bin well above its median."""
    db = spec.db
    return db.shape[1] >= MIN_COLUMNS and float(db.max() - np.median(db)) >= MIN_CONTRAST_DB


class _StateSaver(Callback):
    def __init__(self, path: Path, signature: dict) -> None:
        self.path, self.signature = path, signature

    def on_state(self, state: FitState) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"signature": self.signature, "state": state.to_dict()}, tmp)


def _resume_state(path: Path, signature: dict) -> FitState | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
        state = FitState.from_dict(saved["state"])
    except Exception as exc:  # (a damaged state file: any unpickling error)
        raise SpecnirError(
            f"{path}: cannot resume ({type(exc).__name__}); remove it to start again"
        ) from None
    if saved.get("signature") != signature:
        raise SpecnirError(
            f"{path}: the state of another training (corpus or settings); remove it to start again"
        )
    return state


def train_decoder(
    inputs: list[str | os.PathLike],
    output: str | os.PathLike,
    settings: TrainSettings,
    *,
    params: SpecParams | None = None,
    device: str = "cpu",
    progress: bool = True,
    callbacks: list[Callback] = (),
) -> SharedDecoder:
    """Train a decoder on the corpus under ``inputs`` and write it to ``output`` (see the module); a
    training interrupted (Ctrl-C) raises ``KeyboardInterrupt`` with its state saved to resume. The same
    corpus and settings give the same bytes, resumed or not."""
    output = check_writable(output)
    settings.config()  # (refuse qualities of different networks before reading the corpus)
    data, clips = training_images(inputs, params=params or SpecParams(), limit=settings.clips)
    lams = [settings.lam(settings.qualities[k % len(settings.qualities)]) for k in range(len(data.names))]
    state_path = output.with_name(output.name + ".state")
    model, steps = _fit_crops(data, lams, settings, state_path, device, progress, callbacks)
    header = {
        "format": "snir",
        "arch": "latent",
        "mode": "latent",
        "quality": settings.qualities[0],
        "model_config": dataclasses.asdict(settings.config()),
        "fit": {
            "analysis": data.params.to_dict(),
            "qualities": list(settings.qualities),
            "clips": clips,
            "images": len(data.names),
            "steps": steps,
            **({"distortion": settings.distortion} if settings.distortion != "mse" else {}),
        },
    }
    decoder = with_references(
        _networks_stored(model, data, header, settings.distortion), data, lams, steps=settings.reference_steps
    )
    with atomic_path(output) as tmp:
        tmp.write_bytes(decoder.blob)
    state_path.unlink(missing_ok=True)
    return decoder


def _fit_crops(data, lams, settings, state_path, device, progress, callbacks) -> tuple[CropLatents, int]:
    """The corpus's latents and the networks fitted on crops (resumed from ``state_path`` if it holds
    this training's state); returns the model and the steps done."""
    torch.manual_seed(settings.seed)
    model = CropLatents(
        settings.config(),
        height=data.target.shape[1],
        widths=data.widths,
        lams=lams,
        crop=settings.crop,
        batch=settings.batch,
    )
    fit_config = FitConfig(
        steps=settings.steps,
        seed=settings.seed,
        device=device,
        eval_every=settings.eval_every,
        distortion=settings.distortion,
    )
    signature = {
        "settings": dataclasses.asdict(settings),
        "images": data.names,
        "widths": data.widths,
        "params": data.params.to_dict(),
    }
    saver = _StateSaver(state_path, signature)
    resume = _resume_state(state_path, signature)
    result = fit(model, data, fit_config, callbacks=[saver, *callbacks], resume=resume, progress=progress)
    saver.on_state(result.state)
    if result.interrupted:
        raise KeyboardInterrupt
    return model.cpu().eval(), result.last_step


def _networks_stored(model: CropLatents, data: ImageSet, header: dict, distortion: str) -> SharedDecoder:
    """The trained networks, each tensor on the coarsest grid whose rounding raises the loss (of
    ``distortion``) of fixed crops (two batches per λ, from column 0) by at most :data:`TOLERANCE`, stored
    with ``header``."""
    target, mask = data.target, data.mask
    weight = pixel_weights(target, mask, distortion)
    fixed = [(group[: 2 * model.batch], [0] * len(group[: 2 * model.batch])) for group in model.groups]

    def fixed_loss() -> float:
        with torch.no_grad():
            return sum(float(model.crop_loss(target, mask, *crops, weight)) for crops in fixed)

    exponents = choose_exponents(model, fixed_loss, tolerance=TOLERANCE)
    template = LatentCodec(model.codec.config, n_images=1, height=8, width=8)
    with torch.no_grad():
        for name, p in template.weights().items():
            p.copy_(round_to_step(model.weights()[name].detach(), exponents[name]))
    return _stored(template, exponents, header)


def with_references(
    decoder: SharedDecoder, data: ImageSet, lams: list[float], *, steps: int | None = None
) -> SharedDecoder:
    """The decoder with, in its ``fit`` record, each quality's reference loss: that of a set of the first
    :data:`REFERENCE_IMAGES` training images of the quality's λ, coded against it as ``compress`` codes a
    set (fresh latents, the networks frozen; ``steps``: the encoder's by default) — what a set of speech
    reaches, for the own-networks fallback (:meth:`~specnir.codec.networks.DecoderNetworks.keep`)."""
    fit = {k: v for k, v in decoder.header["fit"].items() if k != "loss_by_quality"}
    bare = _stored_again(decoder, fit)
    losses = {}
    for q in fit["qualities"]:
        chosen = [k for k, lam in enumerate(lams) if lam == MODES["latent"].quality_config(q)["lam"]]
        subset = _subset(data, (chosen or list(range(len(lams))))[:REFERENCE_IMAGES])  # (few images)
        settings = Settings(mode="latent", quality=q, steps=steps, distortion=decoder.distortion)
        coded = compress_sets([subset], settings, networks=DecoderNetworks(bare), progress=False)
        losses[str(q)] = float(f"{coded[0].report['quantized_loss']:.6g}")
    return _stored_again(decoder, {**fit, "loss_by_quality": losses})


def _stored_again(decoder: SharedDecoder, fit: dict) -> SharedDecoder:
    """``decoder``'s networks stored with another ``fit`` record."""
    header = {k: v for k, v in decoder.header.items() if k not in ("tensors", "weight_count")}
    template = LatentCodec(LatentConfig(**header["model_config"]), n_images=1, height=8, width=8)
    template.load_state_dict(decoder.weights(), strict=False)
    exponents = {e["name"]: e["exponent"] for e in decoder.header["tensors"]}
    return _stored(template, exponents, {**header, "fit": fit})


def _subset(data: ImageSet, chosen: list[int]) -> ImageSet:
    width = max(data.widths[k] for k in chosen)
    index = torch.tensor(chosen)
    return ImageSet(
        [data.names[k] for k in chosen],
        [data.specs[k] for k in chosen],
        data.target[index, :, :width],
        data.mask[index, :, :width],
    )
