"""One function per ``specnir`` command: call the library, print what it returns."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from specnir.audio import save_audio
from specnir.cli import tables
from specnir.cli.args import config_from_args, spectrogram_params
from specnir.colormap import check_colormap
from specnir.convert import expand_inputs, load_spectrogram, roundtrip
from specnir.errors import SpecnirError, atomic_path, check_writable
from specnir.fit_config import FitConfig
from specnir.image import read_metadata, read_png, write_png
from specnir.models import MODELS
from specnir.spectrogram import SpecParams, spectrogram_to_audio

BUNDLED_AUDIO = Path(__file__).resolve().parents[2] / "audio"


def inputs_or_bundled(inputs: list[str]) -> list:
    """The given inputs, or the repository's bundled clips; a clear error where there are none."""
    if inputs:
        return inputs
    if not BUNDLED_AUDIO.is_dir():
        raise SpecnirError(
            "no INPUT given, and the bundled clips are not here: they come with the specnir repository "
            "(audio/, GPL-2), not with the installed package; give audio files, spectrogram PNGs or a folder"
        )
    return [BUNDLED_AUDIO]


def cmd_fit(args: argparse.Namespace) -> int:
    from specnir.run import resume_fit, run_fit

    if args.resume:
        run_dir = Path(args.resume)
        check_writable(run_dir, directory=True)
        record, _ = resume_fit(run_dir, steps=args.steps, progress=not args.quiet)
    else:
        fit_config = config_from_args(FitConfig, args)
        model_config = config_from_args(MODELS[args.arch].Config, args)
        inputs = inputs_or_bundled(args.inputs)
        run_dir = Path(args.output or f"runs/{args.arch}-{time.strftime('%Y%m%d-%H%M%S')}")
        check_writable(run_dir, directory=True)
        record, _ = run_fit(
            inputs,
            fit_config=fit_config,
            model_config=model_config,
            params=spectrogram_params(args),
            run_dir=run_dir,
            progress=not args.quiet,
            phase=args.phase,
            n_iter=args.n_iter,
        )
    print(tables.fit_summary(record, run_dir))
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from specnir.run import reconstruct

    check_writable(args.output, directory=True)
    files, _ = reconstruct(
        args.checkpoint,
        args.output,
        phase=args.phase,
        n_iter=args.n_iter,
        time_scale=args.time_scale,
        freq_scale=args.freq_scale,
    )
    for f in files:
        print(f)
    return 0


def cmd_audio2img(args: argparse.Namespace) -> int:
    params = spectrogram_params(args)
    check_writable(args.output, directory=True)
    files = expand_inputs(args.audio)
    specs = [load_spectrogram(f, params=params) for f in files]  # all checked before anything is written
    for f, spec in zip(files, specs, strict=True):
        out = write_png(Path(args.output) / f"{f.stem}.png", spec, bit_depth=args.bit_depth)
        print(f"{f} -> {out}  ({spec.db.shape[0]}x{spec.db.shape[1]}, {args.bit_depth}-bit)")
    return 0


def cmd_img2audio(args: argparse.Namespace) -> int:
    check_colormap(args.colormap)  # before any file is read
    params = spectrogram_params(args)
    check_writable(args.output, directory=True)
    files = expand_inputs(args.image)
    specs = [
        read_png(f, colormap=args.colormap, params=params, db_range=(args.db_min, args.db_max)) for f in files
    ]
    for f, spec in zip(files, specs, strict=True):
        audio = spectrogram_to_audio(spec, phase=args.phase, n_iter=args.n_iter)
        out = save_audio(Path(args.output) / f"{f.stem}.wav", audio, sample_rate=spec.params.sample_rate)
        print(f"{f} -> {out}  ({len(audio) / spec.params.sample_rate:.2f} s)")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from specnir.codec import write
    from specnir.codec.decoders import load_decoder
    from specnir.codec.encode import SHIPPED, Settings, compress

    output = Path(args.output)
    if output.suffix != ".snir":
        raise SpecnirError(f"{output}: the output file must end in .snir")
    check_writable(output)
    decoder = (
        SHIPPED if args.decoder is None else None if args.decoder == "none" else load_decoder(args.decoder)
    )
    common = dict(
        seed=args.seed,
        device=args.device,
        params=spectrogram_params(args),
        progress=not args.quiet,
        decoder=decoder,
    )
    target = _rate_target(args)
    if target is not None:
        from specnir.codec.rate import compress_at_rate

        result = compress_at_rate(
            inputs_or_bundled(args.inputs), target, steps=args.steps, distortion=args.distortion, **common
        )
    else:
        result = compress(
            inputs_or_bundled(args.inputs), **dataclasses.asdict(config_from_args(Settings, args)), **common
        )
    write(output, result.blob)
    n_images = len(result.decoded.names)
    print(tables.compress_summary(output, result.report, header=result.decoded.header, n_images=n_images))
    return 0


def _rate_target(args: argparse.Namespace):
    """The ``--kbps`` or ``--bytes`` asked for (None: neither), refused beside what it replaces."""
    from specnir.codec.rate import RateTarget

    if args.kbps is None and args.size is None:
        return None
    taken = (("--quality", args.quality), ("--lambda", args.lam), ("--max-error", args.max_error))
    given = [flag for flag, value in taken if value is not None]
    given += [
        f"--{k} {getattr(args, k)}" for k in ("mode", "arch") if getattr(args, k) not in (None, "latent")
    ]
    if given:
        raise SpecnirError(f"--kbps and --bytes choose λ in the latent mode: not with {', '.join(given)}")
    return RateTarget(kbps=args.kbps, size=args.size)


def cmd_train_decoder(args: argparse.Namespace) -> int:
    from specnir.codec.decoder_train import train_decoder
    from specnir.codec.train_settings import TrainSettings

    settings = config_from_args(TrainSettings, args, qualities=args.qualities)
    start = time.perf_counter()
    try:
        decoder = train_decoder(
            args.inputs,
            args.output,
            settings,
            params=spectrogram_params(args),
            device=args.device,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        state = Path(f"{args.output}.state")
        hint = f"; the same command continues the training ({state})" if state.is_file() else ""
        print(f"specnir: interrupted{hint}", file=sys.stderr)
        return 130
    print(tables.decoder_summary(args.output, decoder, seconds=time.perf_counter() - start))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from specnir.batch import BatchJob, run_batch
    from specnir.codec.encode import Settings

    settings = config_from_args(Settings, args)
    rate = _rate_target(args)
    if rate is not None:
        settings = dataclasses.replace(settings, mode="latent")
    job = BatchJob(
        settings,
        spectrogram_params(args),
        seed=args.seed,
        device=args.device,
        decoder_sets=args.decoder_sets,
        rate=rate,
    )
    report = run_batch(
        args.inputs,
        args.output,
        job=job,
        group_by=args.group_by,
        set_size=args.set_size,
        sets_per_fit=args.sets_per_fit,
        workers=args.workers,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print(tables.batch_summary(report))
    return 1 if report.failed else 0


def cmd_decompress(args: argparse.Namespace) -> int:
    from specnir.codec.decoders import DecoderNotFound
    from specnir.reader import decompress_files

    check_writable(args.output, directory=True)
    failed = 0
    results = decompress_files(
        args.files,
        args.output,
        phase=args.phase,
        n_iter=args.n_iter,
        audio=not args.no_audio,
        workers=args.workers,
        decoder_path=args.decoder,
    )
    for _, written in results:
        if isinstance(written, SpecnirError):
            hint = " (give it with --decoder)" if isinstance(written, DecoderNotFound) else ""
            print(f"specnir: error: {written}{hint}", file=sys.stderr)
            failed += 1
            continue
        for f in written:
            print(f)
    return 2 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from specnir.bench.rd import bench_rd

    check_writable(args.output, directory=True)
    inputs = inputs_or_bundled(args.inputs)
    print(tables.RD_HEADER, flush=True)
    report = bench_rd(
        inputs,
        args.output,
        methods=args.methods,
        qualities=args.qualities,
        steps=args.steps,
        audio=args.audio,
        params=spectrogram_params(args),
        progress=not args.quiet,
        on_row=lambda row: print(tables.rd_row(row), flush=True),
    )
    print(tables.rd_report(report))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from specnir import codec
    from specnir.codec.container import DECODER_MAGIC
    from specnir.codec.decoders import load_decoder, shipped_with_id

    path = Path(args.file)
    magic = path.read_bytes()[:5] if path.is_file() else b""
    if magic[:4] == DECODER_MAGIC:
        decoder = load_decoder(path)
        print(f"{path}: specnir shared decoder, format version {magic[4]}, {len(decoder.blob):,} bytes")
        weights = sum(math.prod(e["shape"]) for e in decoder.header["tensors"])
        described = {
            "id": decoder.id,
            **{key: decoder.header[key] for key in ("arch", "mode", "quality", "model_config")},
            "weights": weights,
            "exponents": {e["name"]: e["exponent"] for e in decoder.header["tensors"]},
            "fitted": decoder.header["fit"],
        }
        for key, value in described.items():
            print(f"  {key:<12} {value}")
        return 0
    if magic[:4] == codec.MAGIC:
        header, words = codec.read(path)
        size = path.stat().st_size
        print(f"{path}: specnir compressed set, format version {magic[4]}, {size:,} bytes")
        print(f"  {'payload':<12} {len(words) * 4:,} bytes")
        try:
            described = codec.describe(header)
        except SpecnirError as exc:
            raise SpecnirError(f"{path}: {exc}") from None
        if header.get("decoder_id") and shipped_with_id(header["decoder_id"]):
            whose = f"in specnir's own decoder {header['decoder_id']}"
            described = {**described, "weights": whose, "exponents": whose}
        for key, value in described.items():
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
    if outdir is not None:
        check_writable(outdir, directory=True)
    rows = roundtrip(
        expand_inputs(args.audio),
        params=params,
        bit_depth=args.bit_depth,
        phase=args.phase,
        n_iter=args.n_iter,
        outdir=outdir,
    )
    scale = "linear STFT" if params.scale == "linear" else f"{params.n_mels}-band mel"
    inversion = f"{args.phase} + {args.n_iter} Griffin-Lim iterations"
    print(f"audio -> {args.bit_depth}-bit {scale} PNG -> {inversion} -> audio")
    print(tables.roundtrip_table(rows))
    if outdir is not None:
        report = {
            "params": params.to_dict(),
            "bit_depth": args.bit_depth,
            "phase": args.phase,
            "n_iter": args.n_iter,
        }
        with atomic_path(outdir / "roundtrip.json") as tmp:
            tmp.write_text(json.dumps({**report, "files": rows}, indent=2))
        print(f"images, audio and roundtrip.json written to {outdir}")
    return 0
