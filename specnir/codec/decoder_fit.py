"""Fitting a shared decoder: one synthesis and one entropy model for a corpus's sets, stored once.

The sets of one corpus are alike, and the latent mode's networks (1.3–1.5 kB, a fifth to a third of a
small set's file) are much the same from set to set. :func:`fit_decoder` fits them once, on a sample of
sets fitted together with one synthesis and entropy model (:func:`specnir.codec.encode.fit_together`), and
puts them on the grids that rate–distortion picks with their bits spread over every set that will use them.
The result is a file of its own (``decoder.snird``: :mod:`specnir.codec.decoders`); each set's file then
holds only its latents, fitted with the decoder frozen (``networks=DecoderNetworks(decoder)``).
"""

from __future__ import annotations

import dataclasses

import constriction
import torch

from specnir.codec.container import pack_decoder
from specnir.codec.decoders import SharedDecoder
from specnir.codec.encode import Settings, build_models, eight_bit, fit_config_for, fit_together, joined
from specnir.codec.nnquant import rd_exponents
from specnir.codec.weights import encode_weights, tensor_entries
from specnir.data import ImageSet
from specnir.errors import SpecnirError
from specnir.models import SpectrogramModel
from specnir.models.loss import pixel_weights
from specnir.models.stacked import can_stack


def fit_decoder(
    sets: list[ImageSet],
    settings: Settings,
    *,
    served: int,
    start: SharedDecoder | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> SharedDecoder:
    """Fit one synthesis and entropy model to ``sets`` (8-bit, as coded) fitted together, and store it.

    ``settings`` must code in a mode that shares its networks (the latent mode); ``served`` is how many
    sets will use the decoder: its bits are weighed against the rate as if spread over them. ``start``
    (a decoder specnir ships, of the same networks) gives the networks their first weights instead of the
    mode's initial ones; the decoder's ``fit`` record names it.
    """
    coding, arch, _ = settings.coding()
    coding.check_shared_decoder()
    sets = [eight_bit(d) for d in sets]
    models = build_models(sets, settings, seed=seed)
    for model in models if start is not None else ():
        start.load_into(model, frozen=False)
    if not (coding.stacks and can_stack(models)):
        raise SpecnirError(
            f"a shared decoder is fitted on sets fitted together; mode {coding.name}'s do not stack"
        )
    fit_config = fit_config_for(settings, seed=seed, device=device)
    stacked = fit_together(models, sets, fit_config, shared_networks=True, progress=progress)
    stacked.to(device).eval()  # (the grid search below: ~100 losses of all K sets, on the fitting device)
    data = joined(sets)
    target = data.target.to(device)
    weight = pixel_weights(target, data.mask.to(device), fit_config.distortion)

    def mean_loss() -> float:  # per set, as each set's file will see it
        with torch.no_grad():
            return float(stacked.set_losses(target, weight).mean())

    pixels = int(data.mask.sum()) * data.target.shape[1] / len(sets) * max(served, len(sets))
    exponents = rd_exponents(stacked, mean_loss, lam=stacked.config.lam, pixels=pixels)
    reference = mean_loss()  # (the weights now on their grids)
    stacked.cpu()
    template = models[0]
    stacked.unstack([template])
    header = {
        "format": "snir",
        "arch": arch,
        "mode": coding.name,
        "quality": settings.quality,
        "model_config": dataclasses.asdict(template.config),
        "fit": {
            "loss": float(f"{reference:.6g}"),
            "sets": len(sets),
            **({"start": start.id} if start is not None else {}),
            **({"distortion": fit_config.distortion} if fit_config.distortion != "mse" else {}),
        },
    }
    return _stored(
        template, {name: exponents[name.replace(".", "__")] for name in template.weights()}, header
    )


def _stored(template: SpectrogramModel, exponents: dict[str, int], header: dict) -> SharedDecoder:
    """The decoder file of ``template``'s networks on their grids, read back and checked."""
    header["tensors"], ints = tensor_entries(template, exponents)
    stream = constriction.stream.queue.RangeEncoder()
    encode_weights(stream, header["tensors"], ints)
    decoder = SharedDecoder.from_bytes(
        pack_decoder(header, stream.get_compressed()), source="the new decoder"
    )
    for name, value in decoder.weights().items():
        if not torch.equal(value, template.weights()[name].detach()):
            raise RuntimeError(f"internal error: the shared decoder's {name} does not decode as coded")
    return decoder
