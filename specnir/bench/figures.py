"""The benchmarks' figures: the rate–distortion plot, and the one way every figure is written."""

from __future__ import annotations

import io
import math
from pathlib import Path

from specnir.bench.bdrate import points
from specnir.errors import atomic_path


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, atomically."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def plot_rd(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted(p for p in points(rows, method) if math.isfinite(p[1]))
        if pts:
            style = "o-" if method.startswith("specnir") else ".--"
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                label=method,
                lw=2 if "specnir" in method else 1,
            )
    ax.set_xlabel("bits per pixel (all images)")
    ax.set_ylabel("PSNR on the 8-bit images (dB)")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("rate–distortion (lossless points are in rd.csv)")
    save_figure(fig, path)
