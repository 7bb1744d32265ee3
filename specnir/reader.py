"""Reading compressed sets back: one clip as an array, a whole batch folder, or many files to PNG and WAV.

A training pipeline can read compressed features directly::

    from specnir.reader import read_clip, read_corpus
    db, params = read_clip("out/asterisk-en/digits/003.snir", "eight")  # (n_bins, frames) dB, SpecParams
    for set_name, clip, db, params in read_corpus("out"):  # every clip of every finished set
        ...
    loader = torch.utils.data.DataLoader(CorpusDataset("out"), batch_size=None, num_workers=4, shuffle=True)
    for clip in loader:  # Clip(set, name, db): db a (n_bins, frames) float32 tensor of dB
        ...

A set decodes as a whole (its images share one model); the last few decoded files are kept in memory, so
reading a set's clips one after another decodes it once.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from specnir.codec.container import read
from specnir.codec.decode import Decoded, decode
from specnir.codec.decoders import SharedDecoder, decoder_for, load_decoder
from specnir.convert import write_spectrograms
from specnir.corpus import MANIFEST, read_manifest
from specnir.errors import SpecnirError
from specnir.spectrogram import DEFAULT_N_ITER, DEFAULT_PHASE, SpecParams

CACHED_SETS = 8


def decode_file(path: str | os.PathLike, *, decoder: SharedDecoder | None = None) -> Decoded:
    """A ``.snir`` file decoded (cached by path, size and modification time); a file whose networks are
    in a shared decoder is decoded with ``decoder``, or the one beside it or above it
    (:func:`~specnir.codec.decoders.find_decoder`)."""
    path = Path(path)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    stat = path.stat()
    return _decode_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns, decoder)


@lru_cache(maxsize=CACHED_SETS)
def _decode_cached(path: str, size: int, mtime: int, decoder: SharedDecoder | None) -> Decoded:
    return _decode(Path(path), decoder)


def _decode(path: Path, decoder: SharedDecoder | None) -> Decoded:
    blob = path.read_bytes()
    return decode(blob, source=str(path), decoder=decoder_for(path, blob, decoder))


def read_clip(
    path: str | os.PathLike, clip: str, *, decoder: SharedDecoder | None = None
) -> tuple[np.ndarray, SpecParams]:
    """One clip of a ``.snir`` file: its dB spectrogram ``(n_bins, frames)`` float32 (row 0 = lowest
    frequency, as librosa lays it out) and the parameters it was analysed with (``decoder``: as
    :func:`decode_file`)."""
    decoded = decode_file(path, decoder=decoder)
    if clip not in decoded.names:
        raise SpecnirError(f"{path}: no clip {clip!r} (it holds {', '.join(decoded.names)})")
    spec = decoded.specs[decoded.names.index(clip)]
    return spec.db.copy(), spec.params


def _finished_files(outdir: Path) -> list[tuple[str, Path]]:
    """``(set, file)`` of every finished set of a batch folder, in the manifest's order."""
    if not (outdir / MANIFEST).is_file():
        raise SpecnirError(f"{outdir}: no {MANIFEST}: not a specnir batch folder")
    rows = read_manifest(outdir / MANIFEST).items()
    return [(name, outdir / row["file"]) for name, row in rows if row.get("status") == "ok"]


def read_corpus(outdir: str | os.PathLike) -> Iterator[tuple[str, str, np.ndarray, SpecParams]]:
    """``(set, clip, dB spectrogram, SpecParams)`` for every clip of every finished set of a batch folder,
    in the manifest's order."""
    for name, path in _finished_files(Path(outdir)):
        decoded = decode_file(path)
        for clip, spec in zip(decoded.names, decoded.specs, strict=True):
            yield name, clip, spec.db.copy(), spec.params


class Clip(NamedTuple):
    """One clip of a compressed corpus: its set, its name and its dB spectrogram ``(n_bins, frames)``
    float32 (row 0 = lowest frequency)."""

    set: str
    name: str
    db: torch.Tensor


class CorpusDataset(torch.utils.data.Dataset):
    """Every clip of every finished set of a batch folder, by index (as :func:`read_corpus` orders them),
    each a :class:`Clip` decoded on demand. Only the headers are read to index the clips; a set decodes
    when one of its clips is first asked for, and each process (every ``DataLoader`` worker) keeps its
    last few sets. ``params``: the corpus's spectrogram parameters (a batch analyses every set alike);
    ``decoder``: as :func:`decode_file`."""

    def __init__(self, outdir: str | os.PathLike, *, decoder: SharedDecoder | None = None) -> None:
        self.decoder, self.clips, params = decoder, [], set()
        for name, path in _finished_files(Path(outdir)):
            header, _ = read(path)
            self.clips += [(name, path, im["name"]) for im in header["images"]]
            params.add(SpecParams.from_dict(header["params"]))
        if len(params) > 1:
            raise SpecnirError(f"{outdir}: its sets were analysed with different spectrogram parameters")
        self.params = params.pop() if params else None

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Clip:
        set_name, path, clip = self.clips[index]
        decoded = decode_file(path, decoder=self.decoder)
        spec = decoded.specs[decoded.names.index(clip)]
        return Clip(set_name, clip, torch.from_numpy(spec.db.copy()))


def snir_files(inputs: list[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """``(file, where its clips go)`` for ``.snir`` files and folders of them (walked): one file alone goes
    to ``.``, otherwise each file to its path without ``.snir`` (under its folder, for a folder)."""
    found: list[tuple[Path, Path]] = []
    for path in map(Path, inputs):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.snir") if not p.name.startswith("."))
            if not files:
                raise SpecnirError(f"{path}: folder holds no .snir files")
            found += [(f, f.relative_to(path).with_suffix("")) for f in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            raise SpecnirError(f"{path}: no such file or folder")
    if len(found) == 1 and Path(inputs[0]).is_file():
        return [(found[0][0], Path("."))]
    return found


def decompress_files(
    inputs: list[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    phase: str = DEFAULT_PHASE,
    n_iter: int = DEFAULT_N_ITER,
    audio: bool = True,
    workers: int = 1,
    decoder_path: str | os.PathLike | None = None,
) -> Iterator[tuple[Path, list[Path] | SpecnirError]]:
    """Decode every file to ``<name>.png`` (and ``.wav``) under ``outdir`` (see :func:`snir_files`),
    ``workers`` files at a time; yields ``(file, written paths)``, or ``(file, the SpecnirError)`` for a
    bad file. Files that refer to a shared decoder use the one at ``decoder_path``, or the one beside or
    above them."""
    if decoder_path is not None:
        load_decoder(decoder_path)  # a bad decoder is the command's mistake, not each file's
    jobs = [(f, Path(outdir) / sub, phase, n_iter, audio, decoder_path) for f, sub in snir_files(inputs)]
    if workers <= 1:
        for job in jobs:
            yield job[0], _decompress_one(*job)
        return
    context = multiprocessing.get_context("spawn")  # no forking a process whose torch holds threads
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {pool.submit(_decompress_one, *job): job[0] for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def _one_thread() -> None:
    torch.set_num_threads(1)


def _decompress_one(
    path: Path, outdir: Path, phase: str, n_iter: int, audio: bool, decoder_path: str | None
) -> list[Path] | SpecnirError:
    try:
        decoded = _decode(path, load_decoder(decoder_path) if decoder_path else None)
    except SpecnirError as exc:
        return exc
    return write_spectrograms(
        outdir, decoded.names, decoded.specs, phase=phase, n_iter=n_iter, bit_depth=8, audio=audio
    )
