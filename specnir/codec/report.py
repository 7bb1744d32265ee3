"""What a compression cost: the file's bytes, bits per pixel and PSNR, measured on what it decodes to."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specnir.codec.decode import Decoded
from specnir.metrics import psnr_from_mse


@dataclass
class Compressed:
    """A set's file: its bytes, what they decode to, and the report (:func:`file_report`)."""

    blob: bytes
    decoded: Decoded
    report: dict


def file_report(blob: bytes, truth: list[np.ndarray], decoded: Decoded, extra: dict) -> dict:
    """Bytes, bits per pixel, PSNR on the 8-bit images ``truth`` (``(H, W_k)`` int64 each; peak 255),
    largest error and weights of a file, with ``extra`` (which holds ``weight_bits``) added."""
    pixels = sum(t.size for t in truth)
    errors = [p.astype(np.int64) - t for p, t in zip(decoded.pixels, truth, strict=True)]
    squared = sum(float((e**2).sum()) for e in errors)
    return {
        "bytes": len(blob),
        "pixels": pixels,
        "bpp": len(blob) * 8 / pixels,
        "psnr": psnr_from_mse(squared / pixels, peak=255),
        "psnr_per_image": [psnr_from_mse(float((e**2).mean()), peak=255) for e in errors],
        "max_error": int(max(np.abs(e).max() for e in errors)),
        "weights": sum(math.prod(e["shape"]) for e in decoded.header["tensors"]),
        "weight_bpp": extra["weight_bits"] / pixels,
        **extra,
    }


def rd_cost(result: Compressed) -> float:
    """MSE + λ · bits per pixel of a file: the fitting loss plus what its weights cost (none with a shared
    decoder)."""
    lam = result.decoded.header["model_config"]["lam"]
    return result.report["quantized_loss"] + lam * result.report["weight_bits"] / result.report["pixels"]
