"""The codecs a benchmark compares: specnir's methods (:data:`METHODS`) and the classical image codecs users
already have (through imagecodecs), each image coded alone as they must.

Every method codes the same 8-bit images (``round(255 · normalised)``, row 0 = highest frequency).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from specnir.codec.modes import MODES
from specnir.errors import SpecnirError
from specnir.metrics import psnr_from_mse

# ARCH-MODE for every mode and the architectures it codes with (gru-model, siren-model, gru-residual),
# or the mode alone where it has one architecture of its own name (latent); a mode that can code against
# a shared decoder also as METHOD-own: the set's own networks (compress's ``decoder=None``), where METHOD
# alone is compress's default (the decoder specnir ships, where one serves the quality).
OWN = "-own"  # the set's own networks where the plain method uses a decoder specnir ships
EAR = "-ear"  # fitted to the ear's distortion (specnir.models.loss) instead of the MSE
METHODS = tuple(
    method
    for name, mode in MODES.items()
    for arch in mode.archs
    for plain in [name if tuple(mode.archs) == (name,) else f"{arch}-{name}"]
    for method in (
        [plain]
        + ([plain + OWN] if mode.shares_decoder else [])
        + ([plain + EAR] if "distortion" in mode.options else [])
    )
)


def parse_method(text: str, qualities: list[int]) -> tuple[str, list[int]]:
    """``"gru-residual"`` or ``"gru-residual:2,4,8"`` → (method, its qualities)."""
    name, _, qs = text.partition(":")
    if name not in METHODS:
        raise SpecnirError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    try:
        return name, [int(q) for q in qs.split(",")] if qs else list(qualities)
    except ValueError:
        raise SpecnirError(f"{text!r}: qualities must be integers, e.g. {name}:2,4,8") from None


def _gray3(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))


def _first_channel(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.ndim == 3 else img


# name → (setting label → (encode, decode)); lossy settings sweep from low to high quality.
def classical_codecs() -> dict[str, list[tuple[str, Callable, Callable]]]:
    import imagecodecs as ic

    def settings(encode, decode, key, values, **fixed):
        return [(f"{key}={v}", (lambda im, v=v: encode(im, **{key: v}, **fixed)), decode) for v in values]

    webp_enc = lambda im, **kw: ic.webp_encode(_gray3(im), **kw)  # noqa: E731  WebP has no grey mode
    webp_dec = lambda b: _first_channel(ic.webp_decode(b))  # noqa: E731
    # imagecodecs codes a 2-D array as lossless AVIF; a grey RGB image in YUV 4:0:0 is lossy monochrome.
    avif_enc = lambda im, **kw: ic.avif_encode(_gray3(im), pixelformat=ic.AVIF.PIXEL_FORMAT.YUV400, **kw)  # noqa: E731
    avif_dec = lambda b: _first_channel(ic.avif_decode(b))  # noqa: E731
    return {
        "png": [("level=9", lambda im: ic.png_encode(im, level=9), ic.png_decode)],
        "webp-lossless": [("lossless", lambda im: webp_enc(im, lossless=True, method=6), webp_dec)],
        "jpegls": [("lossless", lambda im: ic.jpegls_encode(im, level=0), ic.jpegls_decode)],
        "jpegls-near": settings(ic.jpegls_encode, ic.jpegls_decode, "level", (8, 6, 4, 3, 2, 1)),
        "jpegxl-lossless": [
            ("lossless", lambda im: ic.jpegxl_encode(im, lossless=True, effort=9), ic.jpegxl_decode)
        ],
        "jpegxl": settings(
            ic.jpegxl_encode,
            ic.jpegxl_decode,
            "distance",
            (12.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.15),
            effort=9,
        ),
        "avif": settings(avif_enc, avif_dec, "level", (15, 22, 30, 45, 60, 70, 80, 88, 94), speed=1),
        "webp": settings(
            webp_enc, webp_dec, "level", (0, 2, 5, 10, 20, 40, 60, 75, 85, 92, 97), lossless=False, method=6
        ),
        "jpeg": settings(ic.jpeg8_encode, ic.jpeg8_decode, "level", (30, 50, 70, 85, 92, 97)),
    }


def _boxes(blob: bytes):
    """Top-level ISO-BMFF boxes ``(type, payload start, payload end)`` of an AVIF file."""
    pos = 0
    while pos + 8 <= len(blob):
        size, kind, head = int.from_bytes(blob[pos : pos + 4], "big"), blob[pos + 4 : pos + 8], 8
        if size == 1:  # a 64-bit size follows
            size, head = int.from_bytes(blob[pos + 8 : pos + 16], "big"), 16
        elif size == 0:  # to the end of the file
            size = len(blob) - pos
        yield kind, pos + head, pos + size
        pos += max(size, 8)


def coded_bytes(codec: str, blob: bytes) -> int:
    """The bytes of the coded image without its container: AVIF's ``mdat`` payload (the AV1 data), WebP's
    ``VP8``/``VP8L`` chunk payloads; JPEG-XL (a bare codestream here) and the others as written."""
    if codec == "avif":
        return sum(b - a for kind, a, b in _boxes(blob) if kind == b"mdat")
    if codec.startswith("webp") and blob[:4] == b"RIFF":
        pos, total = 12, 0
        while pos + 8 <= len(blob):
            kind, size = blob[pos : pos + 4], int.from_bytes(blob[pos + 4 : pos + 8], "little")
            total += size if kind in (b"VP8 ", b"VP8L") else 0
            pos += 8 + size + (size & 1)
        return total
    return len(blob)


def distortion(truth: list[np.ndarray], decoded: list[np.ndarray]) -> tuple[float, int]:
    """PSNR (dB, over all pixels of all images, peak 255) and the largest absolute error."""
    sq, n, worst = 0.0, 0, 0
    for t, d in zip(truth, decoded, strict=True):
        err = d.astype(np.int64) - t.astype(np.int64)
        sq, n, worst = sq + float((err**2).sum()), n + err.size, max(worst, int(np.abs(err).max()))
    return psnr_from_mse(sq / n, peak=255), worst


def run_classical(images: list[np.ndarray]) -> list[dict]:
    """Every classical codec and setting: bytes, bpp, PSNR, max error (each image decoded and checked)."""
    pixels = sum(im.size for im in images)
    rows = []
    for codec, table in classical_codecs().items():
        for setting, encode, decode in table:
            try:
                blobs = [encode(np.ascontiguousarray(im)) for im in images]
                decoded = [np.asarray(decode(b)) for b in blobs]
            except Exception as exc:  # a codec missing from this imagecodecs build
                rows.append({"method": codec, "setting": setting, "error": f"{type(exc).__name__}: {exc}"})
                continue
            size = sum(len(b) for b in blobs)
            psnr, worst = distortion(images, decoded)
            rows.append(
                {
                    "method": codec,
                    "setting": setting,
                    "bytes": size,
                    "bpp": size * 8 / pixels,
                    "coded_bpp": sum(coded_bytes(codec, b) for b in blobs) * 8 / pixels,
                    "psnr": psnr,
                    "max_error": worst,
                }
            )
    return rows
