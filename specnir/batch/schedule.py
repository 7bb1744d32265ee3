"""Which sets of a batch are finished, whether a folder's manifest allows this job, and which sets are fitted
together."""

from __future__ import annotations

from pathlib import Path

from specnir.batch.job import BatchJob
from specnir.codec.decoders import SharedDecoder, shipped_with_id
from specnir.corpus import CorpusSet
from specnir.errors import SpecnirError


def clip_sizes(corpus_set: CorpusSet) -> list[int]:
    """The bytes of each of a set's clips that exists (a set's work goes by them)."""
    return [c.stat().st_size for c in corpus_set.clips if c.exists()]


def fit_chunks(todo: list[CorpusSet], sets_per_fit: int) -> list[list[CorpusSet]]:
    """The sets fitted together: similar lengths in one fit, the longest first (parallel workers then
    finish together, not with the longest sets alone at the end), at most ``sets_per_fit`` a fit, and no
    more than keep a fit's padding from doubling its work. (A fit pads every set to its widest image and
    its most images, which a GPU computes: a 70-s prompt among 2-s ones would else cost the whole fit.)"""
    sizes = {s.name: clip_sizes(s) or [0] for s in todo}  # (each clip's size read once)
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


def is_finished(
    corpus_set: CorpusSet,
    row: dict | None,
    outdir: Path,
    decoder: SharedDecoder | None,
    *,
    any_shipped: bool = False,
) -> bool:
    """Whether the manifest's line for a set says it is done, for these clips, with its file in place
    (and the shared decoder it was coded with; with ``any_shipped``, as a rate target codes, any decoder
    specnir ships)."""
    if row is None or row.get("status") != "ok":
        return False
    theirs = row.get("decoder")
    if theirs and (decoder is None or theirs != decoder.id) and not (any_shipped and shipped_with_id(theirs)):
        return False
    if [Path(c).name for c in row.get("clips", [])] != [c.name for c in corpus_set.clips]:
        return False  # (by name: the set's name holds its folder, and the corpus may be given another way)
    path = outdir / corpus_set.file
    return path.is_file() and path.stat().st_size == row.get("bytes")


def refuse_other_settings(outdir: Path, rows: dict[str, dict], job: BatchJob) -> None:
    """A folder whose finished sets were compressed with other settings is refused."""
    wanted = job.record()
    for name, row in rows.items():
        if row.get("status") == "ok" and row.get("settings") != wanted:
            theirs = row.get("settings") or {}
            differ = sorted(k for k in wanted if theirs.get(k) != wanted[k])
            raise SpecnirError(
                f"{outdir}: set {name} was compressed with other settings ({', '.join(differ)});"
                " choose another output folder"
            )
