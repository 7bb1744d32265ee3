"""What every chunk of a batch is compressed with, and what comes back for each set: a typed result that
becomes its manifest line."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from specnir.codec.decoders import SharedDecoder
from specnir.codec.encode import Settings, compress_sets, shipped_for
from specnir.codec.networks import networks_for
from specnir.codec.rate import RateTarget, compress_data_at_rate
from specnir.corpus import CorpusSet
from specnir.data import load_image_set
from specnir.errors import SpecnirError, check_bounds
from specnir.spectrogram import SpecParams

DECODER_SETS = 4  # a mode that shares its networks: by default a decoder fitted on 4 sets of the corpus


@dataclass(frozen=True)
class BatchJob:
    """What every chunk of a batch is compressed with (sent to each Ray task)."""

    settings: Settings
    params: SpecParams
    seed: int = 0
    device: str = "cpu"
    # sets a shared decoder is fitted on; None: the mode's default, 0: none
    decoder_sets: int | None = field(default=None, metadata={"min": 0})
    rate: RateTarget | None = None  # each set's file of this size (specnir.codec.rate), at its own λ

    def __post_init__(self) -> None:
        check_bounds(self)

    def decoder_sets_to_fit(self) -> int:
        """How many sets the shared decoder is fitted on (0: every file holds its own networks)."""
        coding, _, _ = self.settings.coding()
        if self.rate is not None:
            if self.decoder_sets:
                raise SpecnirError(
                    "a rate target codes each set at its own λ, which a corpus decoder (fitted at one λ)"
                    " does not serve: no decoder sets with it"
                )
            return 0
        if self.decoder_sets is None:
            return DECODER_SETS if coding.shares_decoder else 0
        if self.decoder_sets:
            coding.check_shared_decoder()
        return self.decoder_sets

    def shipped(self) -> SharedDecoder | None:
        """The decoder specnir ships for the job's analysis and quality, where the mode shares networks:
        what sets are coded against when the batch fits no decoder of its own (as ``compress`` does)."""
        if self.rate is not None:
            return None  # (a rate target finds each set's at its λ)
        return shipped_for(self.settings, self.params)

    def record(self) -> dict:
        """The settings a manifest line records; a re-run with others is refused."""
        settings = asdict(self.settings)
        if settings["distortion"] is None:
            del settings["distortion"]  # (as manifests recorded it before there was a choice)
        return {
            **settings,
            "seed": self.seed,
            "params": self.params.to_dict(),
            "decoder_sets": self.decoder_sets_to_fit(),
            **({"rate": self.rate.describe()} if self.rate is not None else {}),
        }


@dataclass(frozen=True)
class SetFailed:
    """A set that could not be compressed, with its one-line error."""

    corpus_set: CorpusSet
    error: str
    seconds: float

    def row(self, job: BatchJob) -> dict:
        """Its manifest line."""
        return {
            **_identity(self.corpus_set),
            "status": "failed",
            "error": self.error,
            "seconds": round(self.seconds, 2),
            "settings": job.record(),
        }


@dataclass(frozen=True)
class SetCompressed:
    """A compressed set: its file's bytes and the encoder's report."""

    corpus_set: CorpusSet
    blob: bytes
    report: dict

    def row(self, job: BatchJob) -> dict:
        """Its manifest line (``decoder``: the id of the shared decoder that holds its networks, or null)."""
        report = self.report
        ratio = report.get("decoder_loss_ratio")  # (none without a shared decoder)
        return {
            **_identity(self.corpus_set),
            "status": "ok",
            "bytes": report["bytes"],
            "weight_bytes": round(report["weight_bits"] / 8),  # of the networks (0: in the shared decoder)
            "decoder": report["decoder_id"],
            "decoder_loss_ratio": None if ratio is None else round(ratio, 3),
            "pixels": report["pixels"],
            "bpp": round(report["bpp"], 5),
            "psnr": round(report["psnr"], 3),
            "psnr_min": round(min(report["psnr_per_image"]), 3),
            "max_error": report["max_error"],
            "sets_per_fit": report["sets_per_fit"],
            "seconds": round(report["fit_seconds"] + report["code_seconds"], 2),
            "settings": job.record(),
        }


SetResult = SetCompressed | SetFailed


def _identity(corpus_set: CorpusSet) -> dict:
    return {"set": corpus_set.name, "file": corpus_set.file, "clips": [str(c) for c in corpus_set.clips]}


def compress_chunk(
    chunk: list[CorpusSet], job: BatchJob, decoder_blob: bytes | None = None
) -> list[SetResult]:
    """Load and compress some sets (against the shared decoder whose bytes are ``decoder_blob``, if any):
    one result per set, in order. A set that does not load fails alone; a fit that fails fails its sets
    (with a rate target each set is searched alone, and fails alone)."""
    decoder = None if decoder_blob is None else SharedDecoder.from_bytes(decoder_blob)
    loaded, results = [], {}
    for corpus_set in chunk:
        start = time.perf_counter()
        try:
            loaded.append((corpus_set, load_image_set(list(corpus_set.clips), params=job.params), start))
        except SpecnirError as exc:
            results[corpus_set.name] = SetFailed(corpus_set, str(exc), time.perf_counter() - start)
    groups = [[one] for one in loaded] if job.rate is not None else [loaded] if loaded else []
    for group in groups:
        try:
            done = _compressed([data for _, data, _ in group], job, decoder)
        except Exception as exc:  # noqa: BLE001 (recorded, the batch goes on; the exit status says so)
            error = str(exc) if isinstance(exc, SpecnirError) else f"{type(exc).__name__}: {exc}"
            for corpus_set, _, start in group:
                results[corpus_set.name] = SetFailed(corpus_set, error, time.perf_counter() - start)
        else:
            for (corpus_set, _, _), result in zip(group, done, strict=True):
                results[corpus_set.name] = SetCompressed(corpus_set, result.blob, result.report)
    return [results[s.name] for s in chunk]


def _compressed(sets: list, job: BatchJob, decoder: SharedDecoder | None) -> list:
    """The sets' files: fitted together (against ``decoder``, if any), or a set at a rate target (against
    the decoder specnir ships for the λ it lands at)."""
    if job.rate is None:
        networks = networks_for(decoder)
        return compress_sets(
            sets, job.settings, networks=networks, seed=job.seed, device=job.device, progress=False
        )
    s = job.settings
    options = dict(steps=s.steps, distortion=s.distortion, seed=job.seed, device=job.device, progress=False)
    return [compress_data_at_rate(data, job.rate, **options) for data in sets]
