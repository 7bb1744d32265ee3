"""A batch's shared decoder, from start to end: the one a folder already has, checked against its finished
sets; kept when it serves this job; otherwise fitted on a sample of the corpus and written beside the sets."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from specnir.batch.job import BatchJob
from specnir.codec.container import write
from specnir.codec.decoder_fit import fit_decoder
from specnir.codec.decoders import (
    DECODER_FILE,
    SharedDecoder,
    load_decoder,
    shipped_decoders,
)
from specnir.corpus import CorpusSet
from specnir.data import ImageSet, load_image_set
from specnir.errors import SpecnirError
from specnir.spectrogram import SpecParams


def existing_decoder(outdir: Path, rows: dict[str, dict]) -> SharedDecoder | None:
    """The folder's shared decoder, if it has one; refused if the finished sets name another."""
    path = outdir / DECODER_FILE
    decoder = load_decoder(path) if path.exists() else None
    named = {row["decoder"] for row in rows.values() if row.get("status") == "ok" and row.get("decoder")}
    named -= {d.id for d in shipped_decoders()}  # (specnir's own are found by id)
    if named - {decoder and decoder.id}:
        problem = "is not the decoder" if decoder else "is missing: it holds the networks"
        raise SpecnirError(
            f"{path} {problem} of the finished sets ({', '.join(sorted(named))});"
            " choose another output folder"
        )
    return decoder


def batch_decoder(
    outdir: Path,
    sets: list[CorpusSet],
    rows: dict[str, dict],
    job: BatchJob,
    existing: SharedDecoder | None,
    progress: bool,
) -> SharedDecoder | None:
    """The folder's decoder if finished sets use it (their settings are this job's) or it was fitted for
    these settings; otherwise a new one, fitted on ``job.decoder_sets_to_fit()`` sets spread over the
    corpus and written to ``OUTDIR/decoder.snird`` (atomically: a batch killed meanwhile fits it again)."""
    if existing and any(row.get("decoder") == existing.id for row in rows.values()):
        return existing
    sample, data = _sample(sets, min(job.decoder_sets_to_fit(), len(sets)), job.params)
    if not data:
        return None  # no set loads: each fails on its own, with its error
    if existing and _fitted_for(existing, job, data[0]):
        return existing
    shipped = job.shipped()  # the networks' start, where specnir has a decoder for them
    if progress:
        begun = f", from specnir's own decoder {shipped.id}" if shipped else ""
        names = ", ".join(s.name for s in sample)
        tqdm.write(f"fitting the shared decoder on {len(sample)} sets{begun}: {names}")
    start = time.perf_counter()
    decoder = fit_decoder(
        data,
        job.settings,
        served=len(sets),
        start=shipped,
        seed=job.seed,
        device=job.device,
        progress=progress,
    )
    write(outdir / DECODER_FILE, decoder.blob)
    if progress:
        seconds = time.perf_counter() - start
        tqdm.write(f"{outdir / DECODER_FILE}: {len(decoder.blob):,} bytes, id {decoder.id}, {seconds:.0f} s")
    return decoder


def _sample(sets: list[CorpusSet], count: int, params: SpecParams) -> tuple[list[CorpusSet], list[ImageSet]]:
    """``count`` sets spread evenly over the corpus, loaded; a set that does not load is replaced by the
    next one that does."""
    spread = [len(sets) * k // count for k in range(count)]
    order = spread + [k for k in range(len(sets)) if k not in spread]
    sample, data = [], []
    for k in order:
        try:
            data.append(load_image_set(list(sets[k].clips), params=params))
        except SpecnirError:
            continue
        sample.append(sets[k])
        if len(sample) == count:
            break
    return sample, data


def _fitted_for(decoder: SharedDecoder, job: BatchJob, data: ImageSet) -> bool:
    """Whether a decoder no finished set uses has this job's quality, model config (λ included) and
    distortion."""
    config = _job_config(job, data)
    return (
        decoder.header["quality"] == job.settings.quality
        and decoder.header["model_config"] == config
        and decoder.distortion == (job.settings.distortion or "mse")
    )


def _job_config(job: BatchJob, data: ImageSet) -> dict:
    """The model config the job fits for a set like ``data``."""
    coding, arch, options = job.settings.coding()
    return asdict(coding.build(arch, job.settings.quality, data, options).config)
