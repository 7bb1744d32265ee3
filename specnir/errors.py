"""User-facing errors and atomic file writes.

A :class:`SpecnirError` is a user mistake (a missing file, a corrupt image, a bad flag value). The CLI
prints its message on one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class SpecnirError(Exception):
    """A problem with the user's input; the message names the file and the problem."""


def out_of_bounds(value: float, *, minimum: float | None = None, above: float | None = None) -> str | None:
    """What is wrong with a number that must be at least ``minimum`` or above ``above``; ``None``: nothing."""
    if minimum is not None and value < minimum:
        return f"must be at least {minimum}, not {value}"
    if above is not None and not value > above:
        return f"must be above {above}, not {value}"
    return None


def check_bounds(config) -> None:
    """Refuse a config dataclass whose numbers lie outside the bounds its fields' metadata gives
    (``"min"``: the least value; ``"above"``: a bound the value must exceed); ``None`` passes."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        problem = out_of_bounds(value, minimum=f.metadata.get("min"), above=f.metadata.get("above"))
        if problem:
            raise SpecnirError(f"{f.name.replace('_', ' ')} {problem}")


def check_writable(path: str | os.PathLike, *, directory: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: ``path`` (a file, or a folder if
    ``directory``) must be creatable under its nearest existing folder. Leaves nothing behind."""
    path = Path(path)
    if path.exists() and path.is_dir() != directory:
        kind = "a folder" if path.is_dir() else "a file"
        raise SpecnirError(f"{path}: cannot write there: it is {kind}")
    parent = path.parent if not directory or not path.exists() else path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SpecnirError(f"{path}: cannot write there: {parent} is not a folder")
    try:  # a file that is gone again at once: the one sure test (root passes os.access, /proc does not)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        raise SpecnirError(f"{path}: cannot write there: {parent}: {problem}") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Nothing half-written is ever left at ``path``: on any exception the temporary file is removed. A
    folder that cannot be created or written is a :class:`SpecnirError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise SpecnirError(f"{path}: cannot write there ({exc.strerror or type(exc).__name__})") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
