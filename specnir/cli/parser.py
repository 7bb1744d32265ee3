"""The ``specnir`` argument parser, and the CLI reference (docs/cli.md) made from it."""

from __future__ import annotations

import argparse

from specnir.bench.codecs import EAR, METHODS, OWN
from specnir.cli import commands as cmd
from specnir.cli.args import (
    COUNT,
    SCALE,
    Parser,
    add_config_args,
    add_inversion_args,
    add_spectrogram_args,
    number,
)
from specnir.codec import MODES
from specnir.codec.modes import DEFAULT_MODE, QUALITIES
from specnir.codec.train_settings import TrainSettings
from specnir.colormap import COLORMAPS
from specnir.corpus import GROUPINGS
from specnir.fit_config import FitConfig
from specnir.models import IMAGE_MODELS, MODELS
from specnir.models.loss import DISTORTIONS


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="specnir", description="Compress sets of similar speech spectrograms with small networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_conversion, _fitting, _coding, _corpus, _training, _decoding):
        add(sub)
    return parser


def _conversion(sub) -> None:
    """audio2img, img2audio, info, roundtrip."""
    p = sub.add_parser("audio2img", help="audio files -> spectrogram PNGs with their parameters inside")
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=16)
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_audio2img)

    p = sub.add_parser("img2audio", help="spectrogram images -> audio (phase retrieval)")
    p.add_argument("image", nargs="+", metavar="IMAGE", help="images or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    add_inversion_args(p)
    p.add_argument(
        "--colormap",
        default="auto",
        help=f"for RGB figures: auto, {', '.join(COLORMAPS)} (default auto)",
    )
    p.add_argument("--db-min", type=float, default=-80.0, help="images without metadata: dB of black")
    p.add_argument("--db-max", type=float, default=0.0, help="images without metadata: dB of white")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_img2audio)

    p = sub.add_parser(
        "info", help="print the header of a .snir file or shared decoder, or a spectrogram PNG's parameters"
    )
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd.cmd_info)

    p = sub.add_parser("roundtrip", help="audio -> image -> audio, with a quality report")
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files or directories")
    p.add_argument("-o", "--output", metavar="OUTDIR", help="keep images, audio and roundtrip.json")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=16)
    add_inversion_args(p)
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_roundtrip)


def _fitting(sub) -> None:
    """fit, reconstruct."""
    p = sub.add_parser("fit", help="fit one model to a set of spectrograms (default: the bundled clips)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, spectrogram PNGs or directories")
    p.add_argument("-o", "--output", metavar="RUN_DIR", help="default runs/<arch>-<time>")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue that run (to --steps, if given)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--arch", choices=IMAGE_MODELS, default="gru", help="model family (default gru)")
    add_inversion_args(p)
    add_config_args(p, FitConfig, "fitting")
    for name in IMAGE_MODELS:
        add_config_args(p, MODELS[name].Config, f"{name} architecture")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_fit)

    p = sub.add_parser("reconstruct", help="decode a checkpoint to images and audio")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    add_inversion_args(p)
    p.add_argument("--time-scale", type=SCALE, default=1.0, help="siren: render S times more columns")
    p.add_argument("--freq-scale", type=SCALE, default=1.0, help="siren: render S times more mel bands")
    p.set_defaults(func=cmd.cmd_reconstruct)


def _corpus(sub) -> None:
    """batch."""
    p = sub.add_parser(
        "batch", help="compress a corpus: its clips grouped into sets, one .snir per set and a manifest"
    )
    p.add_argument("inputs", nargs="+", metavar="CORPUS", help="folders (walked) or files")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="<set>.snir files, manifest.jsonl")
    p.add_argument(
        "--group-by",
        choices=GROUPINGS,
        default="folder",
        help="folder: each folder's clips make sets; order: all clips in order (default folder)",
    )
    p.add_argument("--set-size", type=COUNT, default=5, help="most clips in a set (default 5)")
    p.add_argument(
        "--sets-per-fit",
        type=COUNT,
        default=1,
        metavar="B",
        help=f"fit B sets at once as one model (mode {_modes_that('stacks')}; other modes fit one set at a"
        " time)",
    )
    p.add_argument(
        "--decoder-sets",
        type=number(int, minimum=0),
        metavar="K",
        help=f"{_modes_that('shares_decoder')}: fit one decoder on K sets (starting from the decoder specnir"
        " ships for the analysis and quality, if it has one), store it once (OUTDIR/decoder.snird) and code"
        " every set's latents with it (default 4; 0: none, every set coded as compress codes it)",
    )
    p.add_argument("--workers", type=COUNT, help="run on a local Ray with N workers (specnir[distributed])")
    p.add_argument(
        "--ray-address", metavar="ADDR", help="run on the Ray cluster at ADDR (every node sees CORPUS)"
    )
    _add_coding_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_batch)


def _training(sub) -> None:
    """train-decoder."""
    p = sub.add_parser(
        "train-decoder",
        help="train a decoder on a speech corpus: one synthesis and entropy model that files then name",
    )
    p.add_argument("inputs", nargs="+", metavar="CORPUS", help="folders (walked) or files of speech")
    p.add_argument("-o", "--output", required=True, metavar="DECODER.snird")
    p.add_argument(
        "--qualities",
        type=quality_range,
        default=(1, 2, 3, 4),
        metavar="LO-HI",
        help="the latent qualities it serves, of one network shape (default 1-4; 5-8: the other)",
    )
    add_config_args(p, TrainSettings, "training")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_train_decoder)


def quality_range(text: str) -> tuple[int, ...]:
    """``4`` or ``1-4`` → the qualities in it."""
    lo, dash, hi = text.partition("-")
    try:
        lo, hi = int(lo), int(hi if dash else lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a quality or a range LO-HI") from None
    if not (min(QUALITIES) <= lo <= hi <= max(QUALITIES)):
        raise argparse.ArgumentTypeError(f"{text!r}: qualities are {min(QUALITIES)}-{max(QUALITIES)}")
    return tuple(range(lo, hi + 1))


def _coding(sub) -> None:
    """compress."""
    p = sub.add_parser("compress", help="fit and write one .snir file for a set of spectrograms")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, spectrogram PNGs or directories")
    p.add_argument("-o", "--output", required=True, metavar="SET.snir")
    p.add_argument(
        "--decoder",
        metavar="DECODER.snird|none",
        help=f"{_modes_that('shares_decoder')}: fit only the latents, against this shared decoder (a"
        " corpus's; the file names it), or none: the set's own networks, stored in the file (default: the"
        " decoder specnir ships for the analysis and quality, if it has one)",
    )
    _add_coding_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_compress)


def _decoding(sub) -> None:
    """decompress, bench."""
    p = sub.add_parser(
        "decompress",
        help="decode .snir files to <clip>.png and <clip>.wav (one file: in OUTDIR; more, or folders:"
        " OUTDIR/<file path without .snir>/)",
    )
    p.add_argument("files", nargs="+", metavar="SET.snir", help=".snir files or folders of them (walked)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    add_inversion_args(p)
    p.add_argument("--no-audio", action="store_true", help="images only")
    p.add_argument("--workers", type=COUNT, default=1, help="files decoded at once, in processes (default 1)")
    p.add_argument(
        "--decoder",
        metavar="DECODER.snird",
        help="the shared decoder of files that need one (default: decoder.snird in their folder or above)",
    )
    p.set_defaults(func=cmd.cmd_decompress)

    p = sub.add_parser("bench", help="benchmarks: `bench rd` = rate-distortion against classical codecs")
    p.add_argument("benchmark", choices=("rd",), metavar="rd")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, spectrogram PNGs or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument(
        "--methods",
        nargs="+",
        default=[m for m in METHODS if not m.endswith((OWN, EAR))],
        metavar="METHOD[:Q,...]",
        help=f"{', '.join(METHODS)}, each with its own qualities if given (default: all but the"
        f" *{OWN} ones, which code with the set's own networks where the others use the shipped decoder,"
        f" and the *{EAR} ones, fitted to --distortion ear)",
    )
    p.add_argument("--qualities", nargs="+", type=int, default=[2, 4, 6, 8], help="default 2 4 6 8")
    p.add_argument("--steps", type=COUNT, help="optimiser steps per specnir point (default: each mode's)")
    p.add_argument("--audio", action="store_true", help="also PESQ-WB and STOI of the decoded audio")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd.cmd_bench)


def _add_coding_args(p: argparse.ArgumentParser) -> None:
    """What ``compress`` and ``batch`` share: mode, quality and the fit (the modes' own words, from the
    registry)."""
    coded = sorted({arch for mode in MODES.values() for arch in mode.archs})  # what some mode codes with
    defaults = _by_quality(lambda q: DEFAULT_MODE[q])
    firsts = ", ".join(f"{name}: {next(iter(mode.archs))}" for name, mode in MODES.items())
    p.add_argument("--arch", choices=coded, help="default: the mode's first (" + firsts + ")")
    p.add_argument(
        "--mode",
        choices=tuple(MODES),
        help="; ".join(f"{name}: {mode.help}" for name, mode in MODES.items()) + f" (default: {defaults})",
    )
    p.add_argument(
        "--quality",
        type=int,
        metavar="Q",
        help="1-8, higher is better (default 4); "
        + "; ".join(f"{name}: {mode.quality_help}" for name, mode in MODES.items()),
    )
    p.add_argument(
        "--max-error",
        type=number(int, minimum=0),
        help=f"{_taking('max_error')}: largest error in grey levels (0: lossless)",
    )
    p.add_argument("--lambda", type=float, dest="lam", help=f"{_taking('lam')}: λ instead of the quality's")
    p.add_argument(
        "--distortion",
        choices=DISTORTIONS,
        help=f"{_taking('distortion')}: what the fit minimises besides λ · rate; mse: every pixel alike (what"
        " PSNR measures, the default); ear: each pixel weighed by its level above its clip's noise floor",
    )
    p.add_argument(
        "--steps",
        type=COUNT,
        help="optimiser steps (default: the mode's, "
        + "; ".join(f"{name} {_by_quality(mode.fit_steps)}" for name, mode in MODES.items())
        + ")",
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "--kbps",
        type=number(float, above=0),
        metavar="K",
        help="latent: a file of K kbps (its bytes over the clips' duration; batch: each set's) within ±5 %%,"
        " by a search over λ (instead of --quality and --lambda)",
    )
    rate.add_argument(
        "--bytes",
        type=COUNT,
        dest="size",
        metavar="N",
        help="latent: a file of N bytes within ±5 %% (as --kbps)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")


def _modes_that(flag: str) -> str:
    """The modes whose ``flag`` (``stacks``, ``shares_decoder``) is set, for a help text."""
    return " or ".join(name for name, mode in MODES.items() if getattr(mode, flag))


def _taking(option: str) -> str:
    """The modes that take an option, for its help."""
    return " or ".join(name for name, mode in MODES.items() if option in mode.options)


def help_reference(width: int = 100) -> str:
    """Markdown of every command's ``--help`` at ``width`` columns: docs/cli.md."""
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"COLUMNS": str(width)}):
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = ["```text\n" + parser.format_help().rstrip() + "\n```"]
        for name, command in sub.choices.items():
            parts.append(f"#### `specnir {name}`\n\n```text\n" + command.format_help().rstrip() + "\n```")
    return "\n\n".join(parts) + "\n"


def _by_quality(value) -> str:
    """``800``, or ``latent for quality 1-6, residual for 7-8``: what ``value(quality)`` is, in runs."""
    runs: list[list] = []  # [value, first quality, last quality]
    for q in QUALITIES:
        if runs and runs[-1][0] == value(q):
            runs[-1][2] = q
        else:
            runs.append([value(q), q, q])
    if len(runs) == 1:
        return str(runs[0][0])
    return ", ".join(
        f"{v} for quality {lo}-{hi}" if k == 0 else f"{v} for {lo}-{hi}" for k, (v, lo, hi) in enumerate(runs)
    )
