"""``listen.html``: every clip of ``specnir bench rd --audio`` as the listener gets it, side by side.

For each clip: the original recording, the uncompressed spectrogram's inversion, then Opus at each bitrate
and every specnir point ordered by bitrate, each with its kbps, PESQ-WB and STOI on that clip, a player and
the spectrogram of what it plays. The WAVs and PNGs sit in ``listen/`` next to the page, so it works
opened from disk. A script on the page reports whether every sound and image loaded (``#check``), which is
what the browser test reads.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
from PIL import Image

from specnir.audio import save_audio
from specnir.colormap import lookup_table
from specnir.errors import atomic_path
from specnir.spectrogram import SpecParams, audio_to_spectrogram

CHECK_SCRIPT = """
window.addEventListener("load", () => {
  const audios = [...document.querySelectorAll("audio")];
  const images = [...document.querySelectorAll("img")];
  const check = document.getElementById("check");
  let loaded = 0, failed = 0;
  const report = () => {
    const imgs = images.filter((i) => i.complete && i.naturalWidth > 0).length;
    check.dataset.audio = `${loaded}/${audios.length}`;
    check.dataset.failed = `${failed}`;
    check.dataset.images = `${imgs}/${images.length}`;
    check.textContent = `${loaded} of ${audios.length} recordings loaded` +
      (failed ? ` (${failed} failed)` : "") + `, ${imgs} of ${images.length} spectrograms`;
  };
  audios.forEach((a) => {
    const done = () => { if (isFinite(a.duration) && a.duration > 0) loaded++; else failed++; report(); };
    if (a.readyState >= 1) done(); else {
      a.addEventListener("loadedmetadata", done, { once: true });
      a.addEventListener("error", () => { failed++; report(); }, { once: true });
    }
  });
  report();
});
"""

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: middle; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { display: block; }
audio { height: 32px; width: 260px; }
#check { color: #555; }
"""


def write_listening_page(
    outdir: str | Path,
    names: list[str],
    originals: list[np.ndarray],
    rows: list[dict],
    *,
    params: SpecParams,
) -> Path:
    """Write ``outdir/listen.html`` and ``outdir/listen/<clip>/*.wav|png``; returns the page's path.

    Args:
        names: one per clip.
        originals: the recordings, ``(n_samples,)`` each at ``params.sample_rate``.
        rows: audio rows of the benchmark, each with ``method``, ``setting``, ``kbps`` (absent: not coded),
            ``_waves`` (one waveform per clip) and ``_clips`` (per-clip ``pesq_wb``/``stoi``); rows
            without ``_waves`` (skipped methods) are left out.
    """
    outdir = Path(outdir)
    sr = params.sample_rate
    pcm_kbps = sr * 16 / 1000
    entries = [{"method": "original", "setting": "16-bit PCM", "kbps": pcm_kbps, "_waves": originals}]
    coded = sorted((r for r in rows if "_waves" in r), key=lambda r: r.get("kbps", -1.0))
    sections = [_clip_section(outdir, k, name, entries + coded, params) for k, name in enumerate(names)]
    page = (
        "<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>specnir: listen</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>specnir: listen side by side</h1>\n"
        f"<p>{len(names)} clips at {sr} Hz. kbps of the files as written (specnir: the whole .snir set; "
        "Opus: the Ogg files); PESQ-WB and STOI against the original recording, per clip. The original "
        "and the uncompressed spectrogram first, then by bitrate.</p>\n"
        '<p id="check">checking that every recording and image loads…</p>\n'
        + "\n".join(sections)
        + f"\n<script>{CHECK_SCRIPT}</script>\n</body>\n</html>\n"
    )
    path = outdir / "listen.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _clip_section(outdir: Path, k: int, name: str, rows: list[dict], params: SpecParams) -> str:
    """Clip ``k``'s table: a row per method with its recording and spectrogram (written beside the page)."""
    folder = outdir / "listen" / _slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        slug = _slug(f"{row['method']}-{row['setting']}")
        wav = save_audio(folder / f"{slug}.wav", row["_waves"][k], sample_rate=params.sample_rate)
        png = _spectrogram_png(folder / f"{slug}.png", row["_waves"][k], params)
        scores = row["_clips"][k] if "_clips" in row else {}
        lines.append(
            "<tr>"
            f"<td>{html.escape(row['method'])}</td><td>{html.escape(row['setting'])}</td>"
            f"<td class=num>{_number(row.get('kbps'), 1)}</td>"
            f"<td class=num>{_number(scores.get('pesq_wb'), 2)}</td>"
            f"<td class=num>{_number(scores.get('stoi'), 3)}</td>"
            f'<td><audio controls preload="metadata" src="{_relative(wav, outdir)}"></audio></td>'
            f'<td><img alt="spectrogram" src="{_relative(png, outdir)}"></td>'
            "</tr>"
        )
    return (
        f"<h2>{html.escape(name)}</h2>\n<table>\n<tr><th>method</th><th>setting</th><th>kbps</th>"
        "<th>PESQ-WB</th><th>STOI</th><th>listen</th><th>spectrogram of what plays</th></tr>\n"
        + "\n".join(lines)
        + "\n</table>"
    )


def _spectrogram_png(path: Path, wave: np.ndarray, params: SpecParams) -> Path:
    """The mel dB spectrogram of ``wave`` as a magma image, low frequencies at the bottom."""
    spec = audio_to_spectrogram(np.asarray(wave, dtype=np.float32), params=params)
    levels = np.rint(spec.normalized[::-1] * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(lookup_table("magma")[levels]).save(tmp, format="PNG")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _number(value, digits: int) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"
