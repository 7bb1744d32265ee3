"""A corpus as sets: the clips under some folders, grouped into sets, and the manifest of a batch.

``find_sets`` walks the inputs (audio files and spectrogram images, hidden files skipped) and groups the
clips either by folder (each folder's clips split evenly into sets of at most ``set_size``, clips of
similar length together — by file size, the length for audio of one format — since a set pads every
image to its widest: five clips in name order computed 2.04× asterisk-en's real pixels, by length 1.12×;
a set lists its clips in name order) or by order (all clips in the order found, split the same way). A
set's name is its folder's path from the input's parent plus a three-digit index
(``asterisk-en/digits/003``), or only the index with ``order``; the batch writes it to
``OUTDIR/<name>.snir``.

The manifest (``OUTDIR/manifest.jsonl``) holds one JSON object per line and set; a later line for a set
replaces an earlier one. Lines are appended with one ``write`` and flushed to disk, and a reader skips a
line that does not parse, so a crash at any moment leaves every finished set readable; the next batch
rewrites the file with one line per set (atomically).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from specnir.audio import AUDIO_SUFFIXES
from specnir.convert import IMAGE_SUFFIXES
from specnir.errors import SpecnirError, atomic_path

MANIFEST = "manifest.jsonl"
GROUPINGS = ("folder", "order")
CLIP_SUFFIXES = AUDIO_SUFFIXES + IMAGE_SUFFIXES


@dataclass(frozen=True)
class CorpusSet:
    """One set of a corpus: its name (and file path under the output folder, without ``.snir``) and its
    clips."""

    name: str
    clips: tuple[Path, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.snir"


def clips_under(path: Path) -> list[Path]:
    """Audio and image files under ``path`` (a file or a folder, walked), sorted; hidden ones skipped."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SpecnirError(f"{path}: no such file or folder")
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(folder) / f
            for f in sorted(files)
            if not f.startswith(".") and Path(f).suffix.lower() in CLIP_SUFFIXES
        ]
    return found


def split_evenly(items: list, size: int) -> list[list]:
    """``items`` in order, in the fewest runs of at most ``size``, of lengths within one of each other."""
    count = -(-len(items) // size)
    bounds = [round(i * len(items) / count) for i in range(count + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def find_sets(
    inputs: list[str | os.PathLike], *, group_by: str = "folder", set_size: int = 5
) -> list[CorpusSet]:
    """The sets of a corpus (see the module); a :class:`SpecnirError` if there is no clip."""
    if group_by not in GROUPINGS:
        raise SpecnirError(f"sets are grouped by {' or '.join(GROUPINGS)}, not {group_by!r}")
    if set_size < 1:
        raise SpecnirError(f"set size must be at least 1, not {set_size}")
    if group_by == "order":
        clips = [clip for path in map(Path, inputs) for clip in clips_under(path)]
        runs = split_evenly(clips, set_size) if clips else []
        sets = [CorpusSet(f"{k:03d}", tuple(run)) for k, run in enumerate(runs)]
    else:
        folders: dict[str, list[Path]] = {}
        for path in map(Path, inputs):
            root = path.resolve().parent.parent if path.is_file() else path.resolve().parent
            for clip in clips_under(path):
                folders.setdefault(clip.resolve().parent.relative_to(root).as_posix(), []).append(clip)
        sets = [
            CorpusSet(f"{folder}/{k:03d}", tuple(sorted(run)))
            for folder, clips in folders.items()
            for k, run in enumerate(split_evenly(sorted(clips, key=lambda c: c.stat().st_size), set_size))
        ]
    if not sets:
        raise SpecnirError(f"{', '.join(map(str, inputs))}: no audio files or spectrogram images found")
    return sets


def read_manifest(path: Path) -> dict[str, dict]:
    """The last line of every set in a manifest (none if the file is missing); unreadable lines skipped."""
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: the set was in flight
        if isinstance(row, dict) and isinstance(row.get("set"), str):
            rows[row["set"]] = row
    return rows


def append_row(path: Path, row: dict) -> None:
    """Add one line to the manifest in one ``write``, on disk before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def rewrite_manifest(path: Path, rows: dict[str, dict]) -> None:
    """The manifest as one line per set (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows.values()))
