"""Where a batch's chunks are compressed: one after another in this process, or as Ray tasks. Either way
the results come back as they finish, one :class:`~specnir.batch.job.SetCompressed` or
:class:`~specnir.batch.job.SetFailed` per set."""

from __future__ import annotations

from collections.abc import Iterator

from specnir.batch.job import BatchJob, SetFailed, SetResult, compress_chunk
from specnir.corpus import CorpusSet
from specnir.errors import SpecnirError


def local_results(
    chunks: list[list[CorpusSet]], job: BatchJob, decoder_blob: bytes | None
) -> Iterator[SetResult]:
    """Each chunk compressed in this process, in order."""
    for chunk in chunks:
        yield from compress_chunk(chunk, job, decoder_blob)


def ray_results(
    chunks: list[list[CorpusSet]],
    job: BatchJob,
    decoder_blob: bytes | None,
    *,
    workers: int | None,
    address: str | None,
) -> Iterator[SetResult]:
    """Each chunk as a Ray task, on ``workers`` local workers or the cluster at ``address``; the results as
    they finish (a chunk whose worker died: its sets failed)."""
    try:
        import ray
    except ImportError:
        raise SpecnirError("running on Ray needs Ray: pip install 'specnir[distributed]'") from None
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
        pending = {task.remote(chunk, job, decoder_blob): chunk for chunk in chunks}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            chunk = pending.pop(ref)
            try:
                yield from ray.get(ref)
            except ray.exceptions.RayError as exc:
                yield from (SetFailed(s, f"lost its worker ({type(exc).__name__})", 0.0) for s in chunk)
    finally:
        ray.shutdown()
