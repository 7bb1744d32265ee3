"""The ``specnir`` command line. ``main(argv)`` runs in-process, so tests call it directly.

User mistakes print one line, ``specnir: error: FILE: problem``, and return exit status 2. The commands
are in :mod:`~specnir.cli.commands`, the parser in :mod:`~specnir.cli.parser`, shared flags in
:mod:`~specnir.cli.args` and the printed tables in :mod:`~specnir.cli.tables`.
"""

from __future__ import annotations

import sys
import warnings

from specnir.colormap import SpecnirWarning
from specnir.errors import SpecnirError

_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, SpecnirWarning):
        print(f"specnir: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    from specnir.cli.parser import build_parser

    with warnings.catch_warnings():
        warnings.simplefilter("always", SpecnirWarning)
        warnings.showwarning = _show_warning
        try:
            args = build_parser().parse_args(argv)
            return args.func(args)
        except SpecnirError as exc:
            print(f"specnir: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("specnir: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
