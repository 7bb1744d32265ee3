"""The ``specnir`` command line. ``main(argv)`` runs in-process, so tests call it directly.

User mistakes print one line, ``specnir: error: FILE: problem``, and return exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

from specnir.audio import load_audio, save_audio
from specnir.colormap import COLORMAPS, SpecnirWarning, check_colormap
from specnir.convert import expand_inputs, roundtrip
from specnir.errors import SpecnirError, atomic_path
from specnir.fit import FitConfig
from specnir.image import read_metadata, read_png, write_png
from specnir.models import MODELS
from specnir.spectrogram import WINDOWS, SpecParams, audio_to_spectrogram, spectrogram_to_audio


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


BUNDLED_AUDIO = Path(__file__).resolve().parents[1] / "audio"


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
            kind = type(f.default)
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


def print_fit_summary(record: dict, run_dir: Path) -> None:
    wavs = [p for p in record["recon"] if p.endswith(".wav")]
    print(
        f"\n{record['arch']}: {record['params']:,} weights "
        f"({record['bpp_at_16_bits']:.3f} bpp at 16 bits/weight), "
        f"{record['steps']} steps in {record['seconds']:.0f} s, best at step {record['best_step']}"
    )
    bpp = record["bpp_at_16_bits"]  # one model for all images: every image costs the set's rate
    print(f"{'image':<20} {'PSNR dB':>8} {'GMSD':>7} {'SSIM':>6} {'bpp':>6}  decoded audio")
    for k, name in enumerate(record["images"]):
        print(
            f"{name:<20} {record['psnr_per_image'][k]:>8.2f} {record['gmsd_per_image'][k]:>7.4f} "
            f"{record['ssim_per_image'][k]:>6.3f} {bpp:>6.3f}  {wavs[k]}"
        )
    print(f"{'all':<20} {record['psnr']:>8.2f} {record['gmsd']:>7.4f} {record['ssim']:>6.3f} {bpp:>6.3f}")
    print("bpp: the model's weights at 16 bits over all pixels; `specnir compress` writes the real file")
    for key in record:
        if key.endswith("/psnr"):
            print(f"{key.split('/')[0].replace('_', '-')} PSNR: {record[key]:.2f} dB")
    print(f"\nrun written to {run_dir}/  (model.pt, metrics.json, recon/)")
    print(f"watch it with:  tensorboard --logdir {run_dir / 'tb'}")


def cmd_fit(args: argparse.Namespace) -> int:
    from specnir.run import resume_fit, run_fit

    if args.resume:
        run_dir = Path(args.resume)
        record, _ = resume_fit(run_dir, steps=args.steps, progress=not args.quiet)
    else:
        arch = args.arch or "gru"
        model_cls = MODELS[arch]
        fit_config = config_from_args(
            FitConfig, args, arch=arch, lr=args.lr if args.lr is not None else model_cls.default_lr
        )
        model_config = config_from_args(model_cls.Config, args)
        inputs = args.inputs or [BUNDLED_AUDIO]
        if not args.inputs and not BUNDLED_AUDIO.is_dir():
            raise SpecnirError("no INPUT given and the bundled audio/ folder is not there")
        run_dir = Path(args.output or f"runs/{arch}-{time.strftime('%Y%m%d-%H%M%S')}")
        record, _ = run_fit(
            inputs,
            fit_config=fit_config,
            model_config=model_config,
            params=spectrogram_params(args),
            run_dir=run_dir,
            progress=not args.quiet,
        )
    print_fit_summary(record, run_dir)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from specnir.run import reconstruct

    files, _ = reconstruct(
        args.checkpoint,
        args.output,
        n_iter=args.n_iter,
        time_scale=args.time_scale,
        freq_scale=args.freq_scale,
    )
    for f in files:
        print(f)
    return 0


def cmd_audio2img(args: argparse.Namespace) -> int:
    params = spectrogram_params(args)
    files = expand_inputs(args.audio)
    waves = [load_audio(f, sample_rate=params.sample_rate)[0] for f in files]  # all checked first
    for f, wave in zip(files, waves, strict=True):
        spec = audio_to_spectrogram(wave, params=params)
        out = write_png(Path(args.output) / f"{f.stem}.png", spec, bit_depth=args.bit_depth)
        print(f"{f} -> {out}  ({spec.db.shape[0]}x{spec.db.shape[1]}, {args.bit_depth}-bit)")
    return 0


def cmd_img2audio(args: argparse.Namespace) -> int:
    check_colormap(args.colormap)  # before any file is read
    params = spectrogram_params(args)
    files = expand_inputs(args.image)
    specs = [
        read_png(f, colormap=args.colormap, params=params, db_range=(args.db_min, args.db_max)) for f in files
    ]
    for f, spec in zip(files, specs, strict=True):
        audio = spectrogram_to_audio(spec, n_iter=args.n_iter)
        out = save_audio(Path(args.output) / f"{f.stem}.wav", audio, sample_rate=spec.params.sample_rate)
        print(f"{f} -> {out}  ({len(audio) / spec.params.sample_rate:.2f} s)")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from specnir import snir
    from specnir.codec import compress

    output = Path(args.output)
    if output.suffix != ".snir":
        raise SpecnirError(f"{output}: the output file must end in .snir")
    inputs = args.inputs or [BUNDLED_AUDIO]
    result = compress(
        inputs,
        arch=args.arch,
        mode=args.mode,
        quality=args.quality,
        max_error=args.max_error,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        params=spectrogram_params(args),
        progress=not args.quiet,
    )
    snir.write(output, result.blob)
    r = result.report
    bound = "lossless" if r["max_error"] == 0 else f"max error {r['max_error']} grey levels"
    n_images = len(result.decoded.names)
    print(
        f"{output}: {r['bytes']:,} bytes, {r['bpp']:.3f} bpp over {r['pixels']:,} pixels of {n_images} images"
    )
    print(
        f"  {args.arch} {args.mode}, quality {args.quality}: PSNR {r['psnr']:.2f} dB"
        f" on the 8-bit images ({bound});"
        f" {r['weights']:,} weights in {r['weight_bits'] / 8:,.0f} bytes"
        f" ({r['weight_bits'] / max(r['weights'], 1):.2f} bits/weight)"
    )
    print(f"  fit {r['fit_seconds']:.0f} s, coding and verification {r['code_seconds']:.1f} s")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    from specnir.codec import decode
    from specnir.run import write_spectrograms

    path = Path(args.file)
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    decoded = decode(path.read_bytes(), source=str(path))
    written = write_spectrograms(
        Path(args.output),
        decoded.names,
        decoded.specs,
        n_iter=args.n_iter,
        bit_depth=8,
        audio=not args.no_audio,
    )
    for f in written:
        print(f)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from specnir.bench import bench_rd

    bench_rd(
        args.inputs or [BUNDLED_AUDIO],
        args.output,
        methods=args.methods,
        qualities=args.qualities,
        steps=args.steps,
        audio=args.audio,
        params=spectrogram_params(args),
        progress=not args.quiet,
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from specnir import snir
    from specnir.codec import describe

    path = Path(args.file)
    if path.is_file() and path.read_bytes()[:4] == snir.MAGIC:
        header, words = snir.read(path)
        size = path.stat().st_size
        print(f"{path}: specnir compressed set, format version {snir.VERSION}, {size:,} bytes")
        print(f"  {'payload':<12} {len(words) * 4:,} bytes")
        for key, value in describe(header).items():
            print(f"  {key:<12} {value}")
        return 0
    meta = read_metadata(args.file)
    if meta is None:
        raise SpecnirError(f"{args.file}: image carries no specnir metadata")
    params = SpecParams.from_dict(meta["params"])
    print(f"{args.file}: specnir spectrogram image, metadata version {meta['version']}")
    for key, value in {**params.to_dict(), **{k: v for k, v in meta.items() if k != "params"}}.items():
        print(f"  {key:<12} {value}")
    return 0


def cmd_roundtrip(args: argparse.Namespace) -> int:
    params = spectrogram_params(args)
    outdir = Path(args.output) if args.output else None
    rows = roundtrip(
        expand_inputs(args.audio),
        params=params,
        bit_depth=args.bit_depth,
        n_iter=args.n_iter,
        outdir=outdir,
    )
    scale = "linear STFT" if params.scale == "linear" else f"{params.n_mels}-band mel"
    print(f"audio -> {args.bit_depth}-bit {scale} PNG -> Griffin-Lim ({args.n_iter} iterations) -> audio")
    print(f"{'file':<28} {'frames':>6} {'max dB err':>10} {'spec.conv.':>10} {'LSD dB':>7} {'s':>5}")
    for r in rows:
        print(
            f"{Path(r['file']).name:<28} {r['frames']:>6} {r['max_db_error']:>10.4f} "
            f"{r['spectral_convergence']:>10.4f} {r['lsd_db']:>7.2f} {r['seconds']:>5.1f}"
        )
    if outdir is not None:
        report = {"params": params.to_dict(), "bit_depth": args.bit_depth, "n_iter": args.n_iter}
        with atomic_path(outdir / "roundtrip.json") as tmp:
            tmp.write_text(json.dumps({**report, "files": rows}, indent=2))
        print(f"images, audio and roundtrip.json written to {outdir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specnir", description="Compress sets of similar speech spectrograms with small networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("audio2img", help="audio files -> spectrogram PNGs with their parameters inside")
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=16)
    add_spectrogram_args(p)
    p.set_defaults(func=cmd_audio2img)

    p = sub.add_parser("img2audio", help="spectrogram images -> audio (Griffin-Lim)")
    p.add_argument("image", nargs="+", metavar="IMAGE", help="images or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (default 64)")
    p.add_argument(
        "--colormap",
        default="auto",
        help=f"for RGB figures: auto, {', '.join(COLORMAPS)} (default auto)",
    )
    p.add_argument("--db-min", type=float, default=-80.0, help="images without metadata: dB of black")
    p.add_argument("--db-max", type=float, default=0.0, help="images without metadata: dB of white")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd_img2audio)

    p = sub.add_parser("fit", help="fit one model to a set of spectrograms (default: the bundled clips)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, spectrogram PNGs or directories")
    p.add_argument("-o", "--output", metavar="RUN_DIR", help="default runs/<arch>-<time>")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue that run (to --steps, if given)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p, FitConfig, "fitting")
    for name, model_cls in MODELS.items():
        add_config_args(p, model_cls.Config, f"{name} architecture")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("reconstruct", help="decode a checkpoint to images and audio")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (default 64)")
    p.add_argument("--time-scale", type=float, default=1.0, help="siren: render S times more columns")
    p.add_argument("--freq-scale", type=float, default=1.0, help="siren: render S times more mel bands")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("compress", help="fit and write one .snir file for a set of spectrograms")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, spectrogram PNGs or directories")
    p.add_argument("-o", "--output", required=True, metavar="SET.snir")
    p.add_argument("--arch", choices=sorted(MODELS), default="gru", help="default gru")
    p.add_argument(
        "--mode",
        choices=("model", "residual"),
        default="model",
        help="model: the network is the code; residual: the GRU predicts, residuals are stored (gru only)",
    )
    p.add_argument(
        "--quality",
        type=int,
        default=4,
        help="1-8 (default 4); model: about 500*2^Q weights; residual: max error 16,10,6,4,3,2,1,0",
    )
    p.add_argument("--max-error", type=int, help="residual: largest error in grey levels (0: lossless)")
    p.add_argument("--steps", type=int, default=800, help="optimiser steps (default 800)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode a .snir file to <stem>.png and <stem>.wav")
    p.add_argument("file", metavar="SET.snir")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (default 64)")
    p.add_argument("--no-audio", action="store_true", help="images only")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("bench", help="benchmarks: `bench rd` = rate-distortion against classical codecs")
    p.add_argument("benchmark", choices=("rd",), metavar="rd")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, spectrogram PNGs or directories")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument(
        "--methods",
        nargs="+",
        default=["gru-residual", "siren-model", "gru-model"],
        metavar="METHOD[:Q,...]",
        help="gru-residual, siren-model, gru-model, each with its own qualities if given (default: all)",
    )
    p.add_argument("--qualities", nargs="+", type=int, default=[2, 4, 6, 8], help="default 2 4 6 8")
    p.add_argument("--steps", type=int, default=800, help="optimiser steps per specnir point (default 800)")
    p.add_argument("--audio", action="store_true", help="also PESQ-WB and STOI of the decoded audio")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="print the header of a .snir file or the parameters of a spectrogram PNG")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("roundtrip", help="audio -> image -> audio, with a quality report")
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files or directories")
    p.add_argument("-o", "--output", metavar="OUTDIR", help="keep images, audio and roundtrip.json")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=16)
    p.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (default 64)")
    add_spectrogram_args(p)
    p.set_defaults(func=cmd_roundtrip)
    return parser


def help_reference(width: int = 100) -> str:
    """Markdown of every command's ``--help`` at ``width`` columns: the README's CLI reference."""
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"COLUMNS": str(width)}):
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = ["```text\n" + parser.format_help().rstrip() + "\n```"]
        for name, command in sub.choices.items():
            parts.append(f"#### `specnir {name}`\n\n```text\n" + command.format_help().rstrip() + "\n```")
    return "\n\n".join(parts) + "\n"


_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, SpecnirWarning):
        print(f"specnir: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", SpecnirWarning)
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except SpecnirError as exc:
            print(f"specnir: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("specnir: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
