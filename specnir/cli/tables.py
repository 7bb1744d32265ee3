"""Text the CLI prints: the library's results laid out as tables (the library itself prints nothing)."""

from __future__ import annotations

import math
from pathlib import Path


def _fmt(value, spec: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "lossless"
    return format(value, spec)


def fit_summary(record: dict, run_dir: Path) -> str:
    """A fit's metrics per image; bits are an *estimate* (16-bit weights), the real file is ``compress``'s."""
    wavs = [p for p in record["recon"] if p.endswith(".wav")]
    bpp = record["estimated_bpp_16_bit_weights"]  # one model for all images: an estimate for the set
    lines = [
        f"\n{record['arch']}: {record['params']:,} weights, {record['steps']} steps"
        f" in {record['seconds']:.0f} s, best at step {record['best_step']}",
        f"{'image':<20} {'PSNR dB':>8} {'GMSD':>7} {'SSIM':>6}  decoded audio",
    ]
    for k, name in enumerate(record["images"]):
        lines.append(
            f"{name:<20} {record['psnr_per_image'][k]:>8.2f} {record['gmsd_per_image'][k]:>7.4f} "
            f"{record['ssim_per_image'][k]:>6.3f}  {wavs[k]}"
        )
    lines.append(f"{'all':<20} {record['psnr']:>8.2f} {record['gmsd']:>7.4f} {record['ssim']:>6.3f}")
    if "latent_bpp" in record:
        grids = ", ".join(f"{b:,.0f}" for b in record["latent_grid_bits"])
        lines.append(
            f"latents: {record['latent_bpp']:.3f} bpp by the entropy model's estimate"
            f" (bits per grid: {grids}), network weights not counted"
        )
    else:
        lines.append(
            f"size estimate: {bpp:.3f} bpp if every weight took 16 bits; "
            "`specnir compress` writes a real file and counts its bytes"
        )
    lines += [
        f"{key.split('/')[0].replace('_', '-')} PSNR: {record[key]:.2f} dB"
        for key in record
        if key.endswith("/psnr")
    ]
    lines.append(f"\nrun written to {run_dir}/  (model.pt, metrics.json, recon/)")
    lines.append(f"watch it with:  tensorboard --logdir {run_dir / 'tb'}")
    return "\n".join(lines)


def compress_summary(output: Path, report: dict, *, header: dict, n_images: int) -> str:
    r = report
    bound = "lossless" if r["max_error"] == 0 else f"max error {r['max_error']} grey levels"
    if r.get("decoder_id"):
        whose = "specnir's own decoder" if r.get("decoder_shipped") else "the shared decoder"
        weights = f"{r['weights']:,} weights in {whose} {r['decoder_id']} (not in this file)"
    else:
        weights = (
            f"{r['weights']:,} weights in {r['weight_bits'] / 8:,.0f} bytes"
            f" ({r['weight_bits'] / max(r['weights'], 1):.2f} bits/weight)"
        )
    lines = [
        f"{output}: {r['bytes']:,} bytes, {r['bpp']:.3f} bpp"
        f" over {r['pixels']:,} pixels of {n_images} images",
        f"  {header['arch']} {header['mode']}, quality {header['quality']}: PSNR {r['psnr']:.2f} dB on the"
        f" 8-bit images ({bound}); {weights}",
    ]
    if "latent_grid_bits" in r:
        coded = ", ".join(f"{b / 8:,.0f}" for b in r["latent_grid_bits"])
        ratio = sum(r["latent_grid_bits"]) / max(sum(r["latent_estimate_bits"]), 1e-9)
        lines.append(f"  latents: {coded} bytes per grid ({ratio:.4f} × the entropy model's estimate)")
    if r.get("both_fitted"):
        kept = "the decoder's" if r.get("decoder_id") else "its own"
        ratio = r.get("decoder_loss_ratio")
        why = (
            f"with the decoder this set's loss was {ratio:.2f} × that of the sets it was fitted on"
            if ratio is not None
            else "no reference loss of the decoder's at this λ"
        )
        lines.append(f"  {why}: fitted with its own networks too, and {kept} kept (lower MSE + λ·bits)")
    if "rate_control" in r:
        rc = r["rate_control"]
        off = r["bytes"] / rc["target_bytes"] - 1
        lines.append(
            f"  {rc['kbps']:.2f} kbps for the {rc['target']} asked ({off:+.1%}):"
            f" λ {header['model_config']['lam']:.3g} after {len(rc['fits'])} fits in {rc['seconds']:.0f} s"
        )
    lines.append(f"  fit {r['fit_seconds']:.0f} s, coding and verification {r['code_seconds']:.1f} s")
    return "\n".join(lines)


def rd_row(r: dict) -> str:
    """One row of the rate–distortion table (or the reason it has no numbers)."""
    if "bpp" not in r:
        return f"{r['method']:<26} {r['setting'][:28]:<28} {r.get('error', '')}"
    seconds = f" ({r['seconds']:.0f} s)" if "seconds" in r else ""
    return (
        f"{r['method']:<26} {r['setting'][:28]:<28} {r['bpp']:>7.3f} {_fmt(r['psnr'], '9.2f'):>9} "
        f"{r['max_error']:>7}{seconds}"
    )


RD_HEADER = f"{'method':<26} {'setting':<28} {'bpp':>7} {'PSNR dB':>9} {'max err':>7}"


def rd_report(report: dict) -> str:
    """The benchmark's summaries: smallest lossless bpp, BD-rates, listening scores, files."""
    lines = [
        "\nsmallest lossless bpp: "
        + str({k: round(v, 3) for k, v in report["lossless"]["max_error_0"].items()}),
        "smallest bpp at max error ≤ 1: "
        + str({k: round(v, 3) for k, v in report["lossless"]["max_error_1"].items()}),
    ]
    if report["bd"]:
        lo, hi = report["bd"]["range_db"]
        lines.append(
            f"\nBD-rate against {report['bd']['anchor']} ({lo:.0f}–{hi:.0f} dB; negative = fewer bytes):"
        )
        for method, value in report["bd"]["bd_rate_percent"].items():
            lines.append(
                f"  {method:<26} {_fmt(value, '+.1f')}{'%' if value is not None else ' (no overlap)'}"
            )
    if "audio" in report:
        lines.append(f"\n{'method':<26} {'setting':<28} {'kbps':>6} {'PESQ-WB':>8} {'STOI':>6}")
        for r in report["audio"]:
            lines.append(
                f"{r['method']:<26} {r['setting'][:28]:<28} {_fmt(r.get('kbps'), '6.2f'):>6} "
                f"{_fmt(r.get('pesq_wb'), '8.2f'):>8} {_fmt(r.get('stoi'), '6.3f'):>6}"
            )
    lines.append("\nwritten: " + ", ".join(report["files"]))
    return "\n".join(lines)


def roundtrip_table(rows: list[dict]) -> str:
    lines = [f"{'file':<28} {'frames':>6} {'max dB err':>10} {'spec.conv.':>10} {'LSD dB':>7} {'s':>5}"]
    for r in rows:
        lines.append(
            f"{Path(r['file']).name:<28} {r['frames']:>6} {r['max_db_error']:>10.4f} "
            f"{r['spectral_convergence']:>10.4f} {r['lsd_db']:>7.2f} {r['seconds']:>5.1f}"
        )
    return "\n".join(lines)


def batch_summary(report, *, shown: int = 10) -> str:
    """A batch's totals over the corpus, and its failed sets (the first ``shown`` with their errors)."""
    finished = report.sets - len(report.failed)
    lines = [
        f"{report.outdir}: {finished} of {report.sets} sets finished ({report.skipped} before this run,"
        f" {report.written} now, {len(report.failed)} failed) in {report.seconds:.0f} s",
        f"  {report.clips} clips, {report.bytes + report.decoder_bytes:,} bytes, {report.bpp:.3f} bpp"
        + (f" (the shared decoder's {report.decoder_bytes:,} included)" if report.decoder_bytes else "")
        + f"; every set's line in {report.outdir / 'manifest.jsonl'}",
    ]
    if report.own_networks:
        lines.append(
            f"  {report.own_networks} sets hold their own networks: the shared decoder served them far worse"
            " than the sets it was fitted on, and their own did better"
        )
    for name, error in list(report.failed.items())[:shown]:
        lines.append(f"  failed: {name}: {error}")
    if len(report.failed) > shown:
        lines.append(f"  ... and {len(report.failed) - shown} more failed sets (see the manifest)")
    return "\n".join(lines)


def decoder_summary(output, decoder, *, seconds: float) -> str:
    """What ``train-decoder`` made: the file, its id, its networks and what it was trained on."""
    fit = decoder.header["fit"]
    weights = sum(math.prod(e["shape"]) for e in decoder.header["tensors"])
    qualities = fit["qualities"]
    return "\n".join(
        [
            f"{output}: decoder {decoder.id}, {len(decoder.blob):,} bytes, {weights:,} weights",
            f"  latent qualities {qualities[0]}-{qualities[-1]}; trained on {fit['clips']} clips"
            f" ({fit['images']} images) for {fit['steps']:,} steps ({seconds / 60:.1f} min this run)",
            "  loss (MSE + λ·bpp) by quality: "
            + ", ".join(f"{q}: {v:.4g}" for q, v in fit["loss_by_quality"].items()),
        ]
    )
