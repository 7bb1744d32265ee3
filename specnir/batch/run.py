"""The batch itself: one batch at a time per folder, the sets still to do, their files and manifest lines
written as results come back, and what the folder holds at the end (see :mod:`specnir.batch`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from specnir.batch.decoder import batch_decoder, existing_decoder
from specnir.batch.executors import local_results, ray_results
from specnir.batch.job import BatchJob, SetCompressed, SetResult
from specnir.batch.schedule import clip_sizes, fit_chunks, is_finished, refuse_other_settings
from specnir.codec.container import write
from specnir.codec.decoders import DECODER_FILE, SharedDecoder, shipped_with_id
from specnir.corpus import MANIFEST, CorpusSet, append_row, find_sets, read_manifest, rewrite_manifest
from specnir.errors import SpecnirError, check_writable
from specnir.fit import check_device

LOCK = ".specnir-batch.lock"


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
    decoder_bytes: int  # of the corpus's shared decoder (0: none, or the decoder specnir ships)
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
    """Compress every unfinished set of the corpus under ``inputs`` into ``outdir`` (see
    :mod:`specnir.batch`)."""
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
        refuse_other_settings(outdir, rows, job)
        uses_decoder = job.decoder_sets_to_fit() > 0 and len(sets) > 1
        decoder = existing_decoder(outdir, rows) if uses_decoder else job.shipped()
        shipped = job.rate is not None  # (each set against the decoder specnir ships for its λ)
        todo = [s for s in sets if not is_finished(s, rows.get(s.name), outdir, decoder, any_shipped=shipped)]
        if todo and uses_decoder:
            decoder = batch_decoder(outdir, sets, rows, job, decoder, progress)
        chunks = fit_chunks(todo, sets_per_fit)
        decoder_blob = decoder.blob if decoder else None
        if workers or ray_address:
            results = ray_results(chunks, job, decoder_blob, workers=workers, address=ray_address)
        else:
            results = local_results(chunks, job, decoder_blob)
        try:
            _write_results(results, todo, outdir, rows, job, progress)
        finally:
            ordered = {s.name: rows[s.name] for s in sets if s.name in rows}
            rewrite_manifest(manifest, ordered | rows)  # the corpus's order, then sets of other corpora
    return _report(outdir, sets, len(todo), rows, decoder, time.perf_counter() - start, any_shipped=shipped)


def _write_results(
    results: Iterable[SetResult],
    todo: list[CorpusSet],
    outdir: Path,
    rows: dict,
    job: BatchJob,
    progress: bool,
) -> None:
    """Each set's file (atomically), then its manifest line, as the results come; progress by work (the
    bytes of the sets' clips: sets grow as they go), as a bar on a terminal or a line per set in a log."""
    work = {s.name: max(sum(clip_sizes(s)), 1) for s in todo}
    bar = tqdm(total=len(todo), unit="set", disable=None if progress else True, dynamic_ncols=True)
    done = failures = 0
    clock, left = time.perf_counter(), sum(work.values())
    try:
        for result in results:
            if isinstance(result, SetCompressed):
                write(outdir / result.corpus_set.file, result.blob)
            row = result.row(job)
            append_row(outdir / MANIFEST, row)
            rows[row["set"]] = row
            done, failures, left = done + 1, failures + (row["status"] != "ok"), left - work[row["set"]]
            seconds = time.perf_counter() - clock
            eta = seconds / (sum(work.values()) - left) * left / 60
            bar.update(1)
            bar.set_postfix(failed=failures, left=f"{eta:.0f} min", refresh=False)
            if progress and bar.disable:  # no terminal (a log): one line per set instead of a bar
                tqdm.write(_log_line(f"{done}/{len(todo)}", seconds, eta, row))
    finally:
        bar.close()


def _report(
    outdir: Path,
    sets: list[CorpusSet],
    todo: int,
    rows: dict,
    decoder: SharedDecoder | None,
    seconds: float,
    *,
    any_shipped: bool,
) -> BatchReport:
    done_sets = {
        s.name for s in sets if is_finished(s, rows.get(s.name), outdir, decoder, any_shipped=any_shipped)
    }
    stored = decoder is not None and shipped_with_id(decoder.id) is None  # (specnir's own: no file's bytes)
    finished = [rows[s.name] for s in sets if s.name in done_sets]
    return BatchReport(
        outdir=outdir,
        sets=len(sets),
        skipped=len(sets) - todo,
        written=len(finished) - (len(sets) - todo),
        failed={
            s.name: rows.get(s.name, {}).get("error", "not finished") for s in sets if s.name not in done_sets
        },
        clips=sum(len(r["clips"]) for r in finished),
        bytes=sum(r["bytes"] for r in finished),
        decoder_bytes=len(decoder.blob) if stored and any(r.get("decoder") for r in finished) else 0,
        own_networks=sum(not r.get("decoder") for r in finished) if decoder else 0,
        pixels=sum(r["pixels"] for r in finished),
        seconds=seconds,
    )


def _log_line(count: str, seconds: float, eta: float, row: dict) -> str:
    result = f"{row['bpp']:.3f} bpp, {row['psnr']:.2f} dB" if row["status"] == "ok" else row["error"]
    return f"[{count}, {seconds / 60:.1f} min, about {eta:.1f} min left] {row['set']}: {result}"


@contextlib.contextmanager
def _locked(outdir: Path) -> Iterator[None]:
    """One batch at a time in a folder (the lock goes with the process, however it ends)."""
    with open(outdir / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SpecnirError(f"{outdir}: another specnir batch is writing there") from None
        yield
