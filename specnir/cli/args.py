"""Flags shared by several commands: the spectrogram parameters and one flag per config dataclass field."""

from __future__ import annotations

import argparse
import dataclasses

from specnir.errors import SpecnirError, out_of_bounds
from specnir.spectrogram import DEFAULT_N_ITER, DEFAULT_PHASE, PHASES, WINDOWS, SpecParams


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are :class:`SpecnirError` s: one line and exit status 2 from
    :func:`specnir.cli.main`, as every specnir error is."""

    def error(self, message: str):
        raise SpecnirError(f"{message} (see {self.prog} --help)")


def number(kind: type = int, *, minimum: float | None = None, above: float | None = None):
    """An argparse ``type`` for a number of ``kind`` that is at least ``minimum`` or above ``above``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        problem = out_of_bounds(value, minimum=minimum, above=above)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


COUNT = number(int, minimum=1)  # steps, sets, workers: one or more
SCALE = number(float, above=0)  # a factor: above zero


def add_spectrogram_args(parser: argparse.ArgumentParser) -> None:
    """Flags that build a :class:`SpecParams` (defaults: 128-mel, 16 kHz, n_fft 1024, hop 128)."""
    d = SpecParams()
    g = parser.add_argument_group("spectrogram parameters")
    g.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz (default %(default)s)")
    g.add_argument("--n-fft", type=int, default=d.n_fft, help="default %(default)s")
    g.add_argument("--hop-length", type=int, default=d.hop_length, help="default %(default)s")
    g.add_argument("--win-length", type=int, default=None, help="default: n_fft")
    g.add_argument("--window", choices=sorted(WINDOWS), default=d.window)
    g.add_argument("--linear", action="store_true", help="linear-frequency STFT instead of mel")
    g.add_argument("--n-mels", type=int, default=d.n_mels, help="default %(default)s")
    g.add_argument("--f-min", type=float, default=d.f_min, help="Hz (default %(default)s)")
    g.add_argument("--f-max", type=float, default=None, help="Hz (default: sample_rate / 2)")
    g.add_argument("--top-db", type=float, default=d.top_db, help="dB range (default %(default)s)")


def add_inversion_args(parser: argparse.ArgumentParser) -> None:
    """``--phase`` and ``--n-iter``: how spectrograms become audio (:func:`spectrogram_to_audio`)."""
    g = parser.add_argument_group("spectrogram to audio")
    g.add_argument(
        "--phase",
        choices=PHASES,
        default=DEFAULT_PHASE,
        help="where Griffin-Lim starts: pghi (phase gradient heap integration) or zero (default %(default)s)",
    )
    g.add_argument(
        "--n-iter",
        type=number(int, minimum=0),
        default=DEFAULT_N_ITER,
        help="fast Griffin-Lim iterations (default %(default)s)",
    )


def spectrogram_params(args: argparse.Namespace) -> SpecParams:
    return SpecParams(
        sample_rate=args.sample_rate,
        n_fft=args.n_fft,
        hop_length=args.hop_length,
        win_length=args.win_length,
        window=args.window,
        scale="linear" if args.linear else "mel",
        n_mels=args.n_mels,
        f_min=args.f_min,
        f_max=args.f_max,
        top_db=args.top_db,
    )


# The five clips that `fit`, `compress` and `bench` use when no INPUT is given. They live in the repository
# (GPL-2; specnir is MIT), not in the installed package.


def add_config_args(parser: argparse.ArgumentParser, cls, title: str) -> None:
    """One flag per dataclass field (``--field-name``); unset flags stay ``None``.

    A field that an earlier config already has (``w0`` of siren and gru) shares that flag.
    """
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if "--" + f.name.replace("_", "-") in parser._option_string_actions:
            continue
        help_text = f"{f.metadata.get('help', '')} (default {f.default})"
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = f.metadata.get("type", type(f.default))
            if kind in (int, float):
                kind = number(kind, minimum=f.metadata.get("min"), above=f.metadata.get("above"))
            group.add_argument(
                flag, type=kind, default=None, choices=f.metadata.get("choices"), help=help_text
            )


def config_from_args(cls, args: argparse.Namespace, **overrides):
    """A ``cls`` from the flags that were given (defaults for the rest)."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }
    try:
        return cls(**{**given, **overrides})
    except (TypeError, ValueError) as exc:
        raise SpecnirError(str(exc)) from None
