"""Map colormapped RGB spectrogram figures back to values through matplotlib's lookup tables."""

from __future__ import annotations

import functools
import warnings

import matplotlib
import numpy as np

from specnir.errors import SpecnirError

COLORMAPS = ("magma", "inferno", "plasma", "viridis", "gray")
LEVELS = 256


class SpecnirWarning(UserWarning):
    """Something the user should know that does not stop the command."""


def check_colormap(name: str) -> None:
    """Raise ``SpecnirError`` unless ``name`` is ``auto`` or one of :data:`COLORMAPS`."""
    if name != "auto" and name not in COLORMAPS:
        raise SpecnirError(f"unknown colormap {name!r} (choose from auto, {', '.join(COLORMAPS)})")


@functools.cache
def lookup_table(name: str) -> np.ndarray:
    """The ``(256, 3)`` uint8 colours that matplotlib writes for levels 0..255 of colormap ``name``."""
    check_colormap(name)
    cmap = matplotlib.colormaps[name].resampled(LEVELS)
    return cmap(np.arange(LEVELS), bytes=True)[:, :3].copy()


def distinct_colours(name: str) -> int:
    """How many of the colormap's 256 levels have a colour of their own."""
    return len(np.unique(lookup_table(name), axis=0))


def _nearest_levels(rgb: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Nearest LUT level and its squared RGB distance for every pixel of ``rgb (H, W, 3)``."""
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    lut = lookup_table(name).astype(np.int32)
    d2 = ((colours[:, None, :].astype(np.int32) - lut[None, :, :]) ** 2).sum(-1)  # (n_colours, 256)
    level = d2.argmin(1)
    dist = d2[np.arange(len(colours)), level]
    shape = rgb.shape[:2]
    return level[inverse.ravel()].reshape(shape), dist[inverse.ravel()].reshape(shape)


def detect_colormap(rgb: np.ndarray) -> str:
    """The colormap whose colours lie nearest the pixels of ``rgb (H, W, 3)`` uint8."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return "gray"
    scores = {name: float(_nearest_levels(rgb, name)[1].mean()) for name in COLORMAPS}
    return min(scores, key=scores.get)


def rgb_to_values(rgb: np.ndarray, colormap: str = "auto", *, source: str = "image") -> np.ndarray:
    """Invert a colormapped figure: ``rgb (H, W, 3)`` uint8 → values ``(H, W)`` in [0, 1].

    Each pixel takes the level of the nearest lookup-table colour, divided by 255. Warns (once, with
    :class:`SpecnirWarning`) when the colormap has repeated colours, so that some levels cannot be told
    apart, or when pixels lie far from every colour of the colormap.
    """
    name = detect_colormap(rgb) if colormap == "auto" else colormap
    if name == "gray":  # the grey level is the value (matplotlib's own gray LUT repeats levels)
        lookup_table(name)
        return (rgb.astype(np.float32).mean(-1) / (LEVELS - 1)).astype(np.float32)
    level, dist = _nearest_levels(rgb, name)
    n_distinct = distinct_colours(name)
    if n_distinct < LEVELS:
        warnings.warn(
            f"{source}: colormap {name} is not exactly invertible "
            f"({n_distinct} distinct colours for {LEVELS} levels)",
            SpecnirWarning,
            stacklevel=2,
        )
    off = float((dist > 3 * 4**2).mean())  # more than ~4 grey levels per channel away
    if off > 0.01:
        warnings.warn(
            f"{source}: {off:.0%} of pixels are not colours of colormap {name}; values are approximate",
            SpecnirWarning,
            stacklevel=2,
        )
    return (level / (LEVELS - 1)).astype(np.float32)
