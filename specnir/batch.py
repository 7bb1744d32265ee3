"""``specnir batch``: a corpus compressed set by set into one folder, resumable, here or on a Ray cluster.

:func:`run_batch` finds the sets (:mod:`specnir.corpus`), skips those the manifest already holds (with a
file of the recorded size and the same settings and clips), and compresses the rest in chunks of
``sets_per_fit`` sets (fitted as one model where the mode can: :func:`specnir.codec.pipeline.compress_sets`).
Chunks run one after another in this process, or as Ray tasks (``workers`` local workers, or the cluster
at ``ray_address``); either way the tasks only return bytes and manifest rows, and this process writes
every file (atomically) and then its manifest line, so a ``kill -9`` at any moment loses only the sets in
flight. A set that fails is recorded with its one-line error and the others go on.

In the latent mode the sets share one decoder by default (:mod:`specnir.codec.shared`): before any set,
this process fits it on ``decoder_sets`` sets spread over the corpus and writes ``OUTDIR/decoder.snird``;
every set's file then holds only its latents. A re-run uses the decoder already there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from specnir.codec.container import write
from specnir.codec.pipeline import Settings, check_device, compress_sets
from specnir.codec.shared import DECODER_FILE, SharedDecoder, fit_decoder, load_decoder
from specnir.corpus import MANIFEST, CorpusSet, append_row, find_sets, read_manifest, rewrite_manifest
from specnir.data import load_image_set
from specnir.errors import SpecnirError, check_writable
from specnir.spectrogram import SpecParams

LOCK = ".specnir-batch.lock"
DECODER_SETS = 4  # the latent mode's default: a shared decoder fitted on 4 sets of the corpus


@dataclass(frozen=True)
class BatchJob:
    """What every chunk of a batch is compressed with (sent to each Ray task)."""

    settings: Settings
    params: SpecParams
    seed: int = 0
    device: str = "cpu"
    decoder_sets: int | None = None  # sets a shared decoder is fitted on; None: the mode's default, 0: none

    def shared_sets(self) -> int:
        """How many sets the shared decoder is fitted on (0: every file holds its own networks)."""
        coding, _, _ = self.settings.coding()
        if self.decoder_sets is None:
            return DECODER_SETS if coding.name == "latent" else 0
        if self.decoder_sets < 0:
            raise SpecnirError(f"decoder sets must be 0 or more, not {self.decoder_sets}")
        if self.decoder_sets and coding.name != "latent":
            raise SpecnirError(
                f"a shared decoder holds the latent mode's networks; mode {coding.name} has none"
            )
        return self.decoder_sets

    def record(self) -> dict:
        """The settings a manifest line records; a re-run with others is refused."""
        return {
            **asdict(self.settings),
            "seed": self.seed,
            "params": self.params.to_dict(),
            "decoder_sets": self.shared_sets(),
        }


def compress_chunk(
    chunk: list[CorpusSet], job: BatchJob, decoder: bytes | None = None
) -> list[tuple[CorpusSet, bytes | None, dict]]:
    """Load and compress some sets (with the shared ``decoder``'s bytes, if any): ``(set, file bytes or
    None, manifest row)`` for each, in order."""
    shared = None if decoder is None else SharedDecoder.from_bytes(decoder)
    loaded, results = [], {}
    for corpus_set in chunk:
        start = time.perf_counter()
        try:
            loaded.append((corpus_set, load_image_set(list(corpus_set.clips), params=job.params), start))
        except SpecnirError as exc:
            results[corpus_set.name] = (corpus_set, None, _row(corpus_set, job, error=str(exc), start=start))
    if loaded:
        try:
            done = compress_sets(
                [d for _, d, _ in loaded],
                job.settings,
                seed=job.seed,
                device=job.device,
                progress=False,
                decoder=shared,
            )
        except Exception as exc:  # noqa: BLE001 (recorded, the batch goes on; the exit status says so)
            error = str(exc) if isinstance(exc, SpecnirError) else f"{type(exc).__name__}: {exc}"
            done = [error] * len(loaded)
        for (corpus_set, _, start), result in zip(loaded, done, strict=True):
            if isinstance(result, str):
                results[corpus_set.name] = (
                    corpus_set,
                    None,
                    _row(corpus_set, job, error=result, start=start),
                )
            else:
                row = _row(corpus_set, job, report=result.report, start=start)
                results[corpus_set.name] = (corpus_set, result.blob, row)
    return [results[s.name] for s in chunk]


def _row(corpus_set: CorpusSet, job: BatchJob, *, start: float, report=None, error=None) -> dict:
    row = {"set": corpus_set.name, "file": corpus_set.file, "clips": [str(c) for c in corpus_set.clips]}
    if error is not None:
        return {
            **row,
            "status": "failed",
            "error": error,
            "seconds": round(time.perf_counter() - start, 2),
            "settings": job.record(),
        }
    ratio = report.get("decoder_loss_ratio")  # (none without a shared decoder)
    return {
        **row,
        "status": "ok",
        "bytes": report["bytes"],
        "weight_bytes": round(report["weight_bits"] / 8),  # of the networks (0: in the shared decoder)
        "decoder": report["decoder"],
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


@dataclass
class BatchReport:
    """What a batch left in its folder, for the corpus it was given."""

    outdir: Path
    sets: int  # sets in the corpus
    skipped: int  # already finished before this run
    written: int  # finished by this run
    failed: dict[str, str]  # set → its error, for the sets not finished
    clips: int  # in the finished sets
    bytes: int  # of the finished sets' files
    decoder_bytes: int  # of the shared decoder (0: none)
    own_networks: int  # finished sets that hold their own networks although the others share a decoder
    pixels: int
    seconds: float  # this run's wall time

    @property
    def bpp(self) -> float:
        """Bits per pixel of everything the corpus needs: the sets' files and the shared decoder."""
        return (self.bytes + self.decoder_bytes) * 8 / max(self.pixels, 1)


def run_batch(
    inputs: list[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    job: BatchJob,
    group_by: str = "folder",
    set_size: int = 5,
    sets_per_fit: int = 1,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> BatchReport:
    """Compress every unfinished set of the corpus under ``inputs`` into ``outdir`` (see the module)."""
    start = time.perf_counter()
    job.settings.coding()
    check_device(job.device)
    if sets_per_fit < 1 or (workers is not None and workers < 1):
        raise SpecnirError("sets per fit and workers must be at least 1")
    sets = find_sets(inputs, group_by=group_by, set_size=set_size)
    outdir = check_writable(outdir, directory=True)
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = outdir / MANIFEST
    with _locked(outdir):
        for stale in [*outdir.rglob(".*.snir"), *outdir.glob(f".{DECODER_FILE}.*")]:  # a killed batch's
            stale.unlink()
        rows = read_manifest(manifest)
        if manifest.exists():
            rewrite_manifest(manifest, rows)  # drops a line a crash cut short
        _refuse_other_settings(outdir, rows, job)
        decoder = _existing_decoder(outdir, rows)
        todo = [s for s in sets if not _finished(s, rows.get(s.name), outdir, decoder)]
        sharing = job.shared_sets() > 0 and len(sets) > 1
        if todo and sharing:
            decoder = _shared_decoder(outdir, sets, rows, job, decoder, progress)
        work = {s.name: max(sum(_sizes(s)), 1) for s in todo}  # a set's work: the bytes of its clips
        chunks = fit_chunks(todo, sets_per_fit)
        shared = decoder.blob if sharing and decoder else None
        if workers or ray_address:
            results = _ray_results(chunks, job, shared, workers=workers, address=ray_address)
        else:
            results = (result for chunk in chunks for result in compress_chunk(chunk, job, shared))
        bar = tqdm(total=len(todo), unit="set", disable=None if progress else True, dynamic_ncols=True)
        done = failures = 0
        clock, left = time.perf_counter(), sum(work.values())
        try:
            for corpus_set, blob, row in results:
                if blob is not None:
                    write(outdir / corpus_set.file, blob)
                append_row(manifest, row)
                rows[corpus_set.name] = row
                done, failures, left = done + 1, failures + (row["status"] != "ok"), left - work[row["set"]]
                seconds = time.perf_counter() - clock
                eta = seconds / (sum(work.values()) - left) * left / 60  # by work: sets grow as they go
                bar.update(1)
                bar.set_postfix(failed=failures, left=f"{eta:.0f} min", refresh=False)
                if progress and bar.disable:  # no terminal (a log): one line per set instead of a bar
                    tqdm.write(_log_line(f"{done}/{len(todo)}", seconds, eta, row))
        finally:
            bar.close()
            ordered = {s.name: rows[s.name] for s in sets if s.name in rows}
            rewrite_manifest(manifest, ordered | rows)  # the corpus's order, then sets of other corpora
    done_sets = {s.name for s in sets if _finished(s, rows.get(s.name), outdir, decoder)}
    finished = [rows[s.name] for s in sets if s.name in done_sets]
    return BatchReport(
        outdir=outdir,
        sets=len(sets),
        skipped=len(sets) - len(todo),
        written=len(finished) - (len(sets) - len(todo)),
        failed={
            s.name: rows.get(s.name, {}).get("error", "not finished") for s in sets if s.name not in done_sets
        },
        clips=sum(len(r["clips"]) for r in finished),
        bytes=sum(r["bytes"] for r in finished),
        decoder_bytes=len(decoder.blob) if decoder and any(r.get("decoder") for r in finished) else 0,
        own_networks=sum(not r.get("decoder") for r in finished) if decoder else 0,
        pixels=sum(r["pixels"] for r in finished),
        seconds=time.perf_counter() - start,
    )


def _log_line(count: str, seconds: float, eta: float, row: dict) -> str:
    result = f"{row['bpp']:.3f} bpp, {row['psnr']:.2f} dB" if row["status"] == "ok" else row["error"]
    return f"[{count}, {seconds / 60:.1f} min, about {eta:.1f} min left] {row['set']}: {result}"


def fit_chunks(todo: list[CorpusSet], sets_per_fit: int) -> list[list[CorpusSet]]:
    """The sets fitted together: similar lengths in one fit, the longest first (parallel workers then
    finish together, not with the longest sets alone at the end), at most ``sets_per_fit`` a fit, and no
    more than keep a fit's padding from doubling its work. (A fit pads every set to its widest image and
    its most images, which a GPU computes: a 70-s prompt among 2-s ones would else cost the whole fit.)"""
    sizes = {s.name: _sizes(s) or [0] for s in todo}  # (each clip's size read once)
    todo = sorted(todo, key=lambda s: max(sizes[s.name]), reverse=True)
    chunks: list[list[CorpusSet]] = []
    alone = 0  # the last fit's work with every set alone: its images, each as wide as its widest
    for corpus_set in todo:
        own = len(corpus_set.clips) * max(sizes[corpus_set.name])
        if chunks and len(chunks[-1]) < sets_per_fit:
            joined = chunks[-1] + [corpus_set]
            padded = len(joined) * max(len(s.clips) for s in joined) * max(sizes[joined[0].name])
            if padded <= 2 * (alone + own):
                chunks[-1], alone = joined, alone + own
                continue
        chunks.append([corpus_set])
        alone = own
    return chunks


def _sizes(corpus_set: CorpusSet) -> list[int]:
    return [c.stat().st_size for c in corpus_set.clips if c.exists()]


def _finished(corpus_set: CorpusSet, row: dict | None, outdir: Path, decoder: SharedDecoder | None) -> bool:
    """Whether the manifest's line for a set says it is done, for these clips, with its file in place
    (and the shared decoder it was coded with)."""
    if row is None or row.get("status") != "ok":
        return False
    if row.get("decoder") and (decoder is None or row["decoder"] != decoder.id):
        return False
    if [Path(c).name for c in row.get("clips", [])] != [c.name for c in corpus_set.clips]:
        return False  # (by name: the set's name holds its folder, and the corpus may be given another way)
    path = outdir / corpus_set.file
    return path.is_file() and path.stat().st_size == row.get("bytes")


def _refuse_other_settings(outdir: Path, rows: dict[str, dict], job: BatchJob) -> None:
    wanted = job.record()
    for name, row in rows.items():
        if row.get("status") == "ok" and row.get("settings") != wanted:
            theirs = row.get("settings") or {}
            differ = sorted(k for k in wanted if theirs.get(k) != wanted[k])
            raise SpecnirError(
                f"{outdir}: set {name} was compressed with other settings ({', '.join(differ)});"
                " choose another output folder"
            )


def _existing_decoder(outdir: Path, rows: dict[str, dict]) -> SharedDecoder | None:
    """The folder's shared decoder, if it has one; refused if the finished sets name another."""
    path = outdir / DECODER_FILE
    decoder = load_decoder(path) if path.exists() else None
    named = {row["decoder"] for row in rows.values() if row.get("status") == "ok" and row.get("decoder")}
    if named - {decoder and decoder.id}:
        problem = "is not the decoder" if decoder else "is missing: it holds the networks"
        raise SpecnirError(
            f"{path} {problem} of the finished sets ({', '.join(sorted(named))});"
            " choose another output folder"
        )
    return decoder


def _shared_decoder(
    outdir: Path,
    sets: list[CorpusSet],
    rows: dict[str, dict],
    job: BatchJob,
    existing: SharedDecoder | None,
    progress: bool,
) -> SharedDecoder | None:
    """The folder's decoder if finished sets use it (their settings are this job's) or it was fitted for
    these settings; otherwise a new one, fitted on ``job.shared_sets()`` sets spread over the corpus and
    written to ``OUTDIR/decoder.snird`` (atomically: a batch killed meanwhile fits it again)."""
    if existing and any(row.get("decoder") == existing.id for row in rows.values()):
        return existing
    sample, data = _sample(sets, min(job.shared_sets(), len(sets)), job.params)
    if not data:
        return None  # no set loads: each fails on its own, with its error
    if existing and _fitted_for(existing, job, data[0]):
        return existing
    count = len(sample)
    if progress:
        tqdm.write(f"fitting the shared decoder on {count} sets: {', '.join(s.name for s in sample)}")
    start = time.perf_counter()
    decoder = fit_decoder(
        data, job.settings, served=len(sets), seed=job.seed, device=job.device, progress=progress
    )
    write(outdir / DECODER_FILE, decoder.blob)
    if progress:
        seconds = time.perf_counter() - start
        tqdm.write(f"{outdir / DECODER_FILE}: {len(decoder.blob):,} bytes, id {decoder.id}, {seconds:.0f} s")
    return decoder


def _sample(sets: list[CorpusSet], count: int, params: SpecParams) -> tuple[list[CorpusSet], list]:
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


def _fitted_for(decoder: SharedDecoder, job: BatchJob, data) -> bool:
    """Whether a decoder no finished set uses has this job's quality and model config (λ included)."""
    coding, arch, options = job.settings.coding()
    config = asdict(coding.build(arch, job.settings.quality, data, options).config)
    return decoder.header["quality"] == job.settings.quality and decoder.header["model_config"] == config


@contextlib.contextmanager
def _locked(outdir: Path) -> Iterator[None]:
    """One batch at a time in a folder (the lock goes with the process, however it ends)."""
    with open(outdir / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SpecnirError(f"{outdir}: another specnir batch is writing there") from None
        yield


def _ray_results(
    chunks: list[list[CorpusSet]],
    job: BatchJob,
    decoder: bytes | None,
    *,
    workers: int | None,
    address: str | None,
):
    """Each chunk as a Ray task; the results as they finish (a chunk whose worker died: failed rows)."""
    try:
        import ray
    except ImportError:
        raise SpecnirError(
            "--workers and --ray-address need Ray: pip install 'specnir[distributed]'"
        ) from None
    if address:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    else:
        ray.init(
            num_cpus=workers,
            num_gpus=None if job.device == "cuda" else 0,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
        )
    try:
        task = ray.remote(num_cpus=1, num_gpus=1 if job.device == "cuda" else 0, max_retries=2)(
            compress_chunk
        )
        pending = {task.remote(chunk, job, decoder): chunk for chunk in chunks}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            chunk = pending.pop(ref)
            try:
                yield from ray.get(ref)
            except ray.exceptions.RayError as exc:
                error = f"lost its worker ({type(exc).__name__})"
                yield from ((s, None, _row(s, job, error=error, start=time.perf_counter())) for s in chunk)
    finally:
        ray.shutdown()
