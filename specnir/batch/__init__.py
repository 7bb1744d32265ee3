"""``specnir batch``: a corpus compressed set by set into one folder, resumable, here or on a Ray cluster.

:func:`run_batch` finds the sets (:mod:`specnir.corpus`), skips those the manifest already holds (with a
file of the recorded size and the same settings and clips), and compresses the rest in chunks of
``sets_per_fit`` sets (fitted as one model where the mode stacks: :func:`specnir.codec.encode.compress_sets`).
Chunks run one after another in this process, or as Ray tasks (``workers`` local workers, or the cluster
at ``ray_address``); either way the tasks only return bytes and manifest rows, and this process writes
every file (atomically) and then its manifest line, so a ``kill -9`` at any moment loses only the sets in
flight. A set that fails is recorded with its one-line error and the others go on.

Where the mode can share its networks (the latent mode), the sets share one decoder by default
(:mod:`specnir.codec.decoders`): before any set, this process fits it on ``decoder_sets`` sets spread over
the corpus (starting from the decoder specnir ships for the analysis and quality, if any) and writes
``OUTDIR/decoder.snird``; every set's file then holds only its latents. A re-run uses the decoder already
there. Without one (``decoder_sets=0``, or a single set) every set is coded as ``compress`` codes it.

One job per module: :mod:`~specnir.batch.job` (what a chunk is compressed with, and what comes back),
:mod:`~specnir.batch.schedule` (which sets are done, which fit together), :mod:`~specnir.batch.decoder`
(the shared decoder's lifecycle), :mod:`~specnir.batch.executors` (this process, or Ray) and
:mod:`~specnir.batch.run` (the loop that writes files and the manifest).
"""

from specnir.batch.job import BatchJob, SetCompressed, SetFailed
from specnir.batch.run import BatchReport, run_batch
from specnir.batch.schedule import fit_chunks

__all__ = ["BatchJob", "BatchReport", "SetCompressed", "SetFailed", "fit_chunks", "run_batch"]
