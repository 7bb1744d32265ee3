"""Spectrogram ⇄ PNG image. Every parameter needed to invert the image travels inside it.

Image row 0 is the highest frequency (as spectrograms are drawn); pixel value 0 is ``db_min`` and the
largest value (255 or 65535) is ``db_max``. The parameters are a JSON ``tEXt`` chunk keyed ``specnir``::

    {"version": 1, "params": {...SpecParams...}, "db_min": -73.1, "db_max": 6.9,
     "length": 22050, "bit_depth": 16}
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from specnir.colormap import rgb_to_values
from specnir.errors import SpecnirError, atomic_path
from specnir.spectrogram import SpecParams, Spectrogram

METADATA_KEY = "specnir"
METADATA_VERSION = 1
BIT_DEPTHS = (8, 16)


def quantize(values: np.ndarray, *, bit_depth: int) -> np.ndarray:
    """[0, 1] values → integer grey levels (uint8 or uint16), rounding to nearest."""
    if bit_depth not in BIT_DEPTHS:
        raise SpecnirError(f"bit depth must be 8 or 16, got {bit_depth}")
    peak = 2**bit_depth - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(values, 0.0, 1.0) * peak).astype(dtype)


def metadata(spec: Spectrogram, *, bit_depth: int) -> dict:
    """The JSON-able header that makes an image invertible on its own."""
    return {
        "version": METADATA_VERSION,
        "params": spec.params.to_dict(),
        "db_min": spec.db_min,
        "db_max": spec.db_max,
        "length": spec.length,
        "bit_depth": bit_depth,
    }


def write_png(path: str | os.PathLike, spec: Spectrogram, *, bit_depth: int = 16) -> Path:
    """Write ``spec`` as a grayscale PNG (8 or 16 bits) with its metadata, atomically."""
    pixels = np.flipud(quantize(spec.normalized, bit_depth=bit_depth))
    image = Image.fromarray(np.ascontiguousarray(pixels))
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, json.dumps(metadata(spec, bit_depth=bit_depth)))
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The specnir metadata of an image as a validated dict, or ``None`` if it has none."""
    return _open(Path(path))[1]


def read_png(
    path: str | os.PathLike,
    *,
    colormap: str = "auto",
    params: SpecParams | None = None,
    db_range: tuple[float, float] = (-80.0, 0.0),
) -> Spectrogram:
    """Read a spectrogram image back to dB values.

    Args:
        path: a specnir PNG, or any grayscale or colormapped image Pillow reads.
        colormap: for RGB images, the colormap to invert (``"auto"`` picks the nearest).
        params: STFT parameters for images without specnir metadata (ignored otherwise).
        db_range: ``(db_min, db_max)`` for images without specnir metadata.

    Returns:
        the :class:`Spectrogram`, ``db`` of shape ``(n_bins, n_frames)``.
    """
    path = Path(path)
    values, meta = _open(path, colormap=colormap)
    height = values.shape[0]
    if meta is None:
        params = params or SpecParams()
        db_min, db_max = db_range
        if not db_min < db_max:
            raise SpecnirError(f"{path}: db_min must be below db_max, got {db_min} and {db_max}")
        length = None
    else:
        params = SpecParams.from_dict(meta["params"])
        db_min, db_max, length = meta["db_min"], meta["db_max"], meta["length"]
    if height != params.n_bins:
        raise SpecnirError(
            f"{path}: image has {height} rows but the spectrogram parameters give {params.n_bins} bins"
        )
    db = db_min + np.flipud(values) * (db_max - db_min)
    return Spectrogram(np.ascontiguousarray(db, dtype=np.float32), params, db_min, db_max, length)


def _open(path: Path, *, colormap: str = "auto") -> tuple[np.ndarray, dict | None]:
    """Pixels as [0, 1] values ``(H, W)`` and validated metadata (or ``None``)."""
    if not path.is_file():
        raise SpecnirError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            image.load()
            text = dict(getattr(image, "text", {}) or {})
            mode = image.mode
            if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"):
                rgb = np.asarray(image.convert("RGB"))
                pixels = None
            else:
                pixels = np.asarray(image)
    except UnidentifiedImageError:
        raise SpecnirError(f"{path}: not a readable image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SpecnirError(f"{path}: corrupt or truncated image ({exc})") from None
    meta = _validate(path, text[METADATA_KEY]) if METADATA_KEY in text else None
    if pixels is None:
        values = rgb_to_values(rgb, colormap, source=str(path))
    elif mode in ("L", "LA", "1"):
        pixels = pixels[..., 0] if pixels.ndim == 3 else pixels
        values = pixels.astype(np.float32) / (1 if mode == "1" else 255)
    elif mode.startswith("I"):
        bits = meta["bit_depth"] if meta else 16
        values = pixels.astype(np.float64) / (2**bits - 1)
    else:
        raise SpecnirError(f"{path}: unsupported image mode {mode}")
    if values.ndim != 2 or min(values.shape) == 0:
        raise SpecnirError(f"{path}: image has no pixels")
    if meta is not None and values.max() > 1.0:
        raise SpecnirError(f"{path}: pixel values exceed the {meta['bit_depth']}-bit range")
    return values, meta


def _validate(path: Path, text: str) -> dict:
    def bad(problem: str) -> SpecnirError:
        return SpecnirError(f"{path}: malformed specnir metadata: {problem}")

    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON ({exc.msg})") from None
    if not isinstance(meta, dict):
        raise bad("not a JSON object")
    if meta.get("version") != METADATA_VERSION:
        raise bad(f"unsupported version {meta.get('version')!r}")
    missing = {"params", "db_min", "db_max", "length", "bit_depth"} - set(meta)
    if missing:
        raise bad(f"missing {sorted(missing)}")
    if not isinstance(meta["params"], dict):
        raise bad("params is not an object")
    try:
        SpecParams.from_dict(meta["params"])
    except SpecnirError as exc:
        raise bad(str(exc)) from None
    lo, hi = meta["db_min"], meta["db_max"]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi)) or not lo < hi:
        raise bad(f"db_min/db_max must be finite numbers with db_min < db_max, got {lo}, {hi}")
    length = meta["length"]
    if length is not None and (not isinstance(length, int) or length <= 0):
        raise bad(f"length must be a positive integer, got {length!r}")
    if meta["bit_depth"] not in BIT_DEPTHS:
        raise bad(f"bit_depth must be 8 or 16, got {meta['bit_depth']!r}")
    return meta
