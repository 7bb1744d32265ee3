"""The listening page: files beside it, every recording and image loading in a real headless browser."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import make_chirp

from specnir.bench.listen import write_listening_page
from specnir.spectrogram import SpecParams

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page(tmp_path):
    a, b = make_chirp(0.8), make_chirp(0.6, 16000, 300, 3000)
    rows = [
        {
            "method": "opus",
            "setting": "bitrate=8",
            "kbps": 8.1,
            "_waves": [0.5 * a, 0.5 * b],
            "_clips": [{"pesq_wb": 3.1, "stoi": 0.9}, {"pesq_wb": 2.0, "stoi": 0.8}],
        },
        {"method": "opus", "setting": "skipped: PyAV is not installed"},  # no sound: left out
        {
            "method": "specnir-latent",
            "setting": "quality=1",
            "kbps": 3.6,
            "_waves": [0.9 * a, 0.9 * b],
            "_clips": [{"pesq_wb": 2.5, "stoi": 0.95}, {"pesq_wb": float("nan"), "stoi": 0.7}],
        },
        {"method": "uncompressed", "setting": "pghi+32", "_waves": [a, b], "_clips": [{}, {}]},
    ]
    return write_listening_page(tmp_path, ["first clip", "second"], [a, b], rows, params=SpecParams())


def test_page_lists_every_clip_by_bitrate_with_its_files(page):
    text = page.read_text()
    sections = text.split("<h2>")[1:]
    assert [s.split("<")[0] for s in sections] == ["first clip", "second"]
    for section in sections:
        methods = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td class=num>([^<]+)</td>", section)
        assert [m[:2] for m in methods] == [
            ("original", "16-bit PCM"),
            ("uncompressed", "pghi+32"),
            ("specnir-latent", "quality=1"),  # 3.6 kbps before Opus's 8.1
            ("opus", "bitrate=8"),
        ]
    sources = re.findall(r'src="([^"]+)"', text)
    assert len(sources) == 2 * 2 * 4  # a sound and an image per entry and clip
    for src in sources:
        assert not src.startswith("/") and (page.parent / src).stat().st_size > 0
    second_latent = re.search(r"<td>quality=1</td><td class=num>3.6</td><td class=num>([^<]+)<", sections[1])
    assert second_latent.group(1) == "–"  # PESQ refused the clip: a dash, not "nan"


@pytest.mark.slow  # a browser start: 17 s
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_every_recording_and_image_loads_in_headless_chromium(page, tmp_path):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    check = re.search(r'<p id="check" ([^>]*)>', dom)
    assert check, dom[:500]
    found = dict(re.findall(r'data-(\w+)="([^"]*)"', check.group(1)))
    assert found == {"audio": "8/8", "failed": "0", "images": "8/8"}
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120
    )
    assert shot.read_bytes()[:4] == b"\x89PNG"
    assert np.frombuffer(shot.read_bytes(), np.uint8).size > 10_000  # a page was drawn, not a blank
