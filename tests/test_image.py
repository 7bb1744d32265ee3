import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from specnir.colormap import COLORMAPS, SpecnirWarning, distinct_colours, rgb_to_values
from specnir.errors import SpecnirError
from specnir.image import metadata, read_metadata, read_png, write_png
from specnir.spectrogram import SpecParams, audio_to_spectrogram


@pytest.fixture
def spec(chirp):
    return audio_to_spectrogram(chirp, params=SpecParams(n_mels=64, f_min=50.0, top_db=70.0))


def test_metadata_survives_exactly(tmp_path, spec):
    path = write_png(tmp_path / "s.png", spec)
    meta = read_metadata(path)
    assert meta == metadata(spec, bit_depth=16)
    back = read_png(path)
    assert back.params == spec.params
    assert (back.db_min, back.db_max, back.length) == (spec.db_min, spec.db_max, spec.length)


def test_16_bit_quantization_within_001_db(tmp_path, spec):
    back = read_png(write_png(tmp_path / "s.png", spec, bit_depth=16))
    assert np.abs(back.db - spec.db).max() < 0.01
    with Image.open(tmp_path / "s.png") as image:
        assert image.mode.startswith("I") and image.size == (spec.db.shape[1], 64)


def test_8_bit_quantization_within_half_a_level(tmp_path, spec):
    back = read_png(write_png(tmp_path / "s.png", spec, bit_depth=8))
    step = (spec.db_max - spec.db_min) / 255
    assert np.abs(back.db - spec.db).max() <= step / 2 + 1e-4


def test_low_frequencies_at_the_bottom(tmp_path, chirp):
    spec = audio_to_spectrogram(chirp[:2000], params=SpecParams())  # 200 Hz region: low bins
    pixels = np.asarray(Image.open(write_png(tmp_path / "s.png", spec)))
    assert pixels[-20:].mean() > pixels[:20].mean()


def _figure(tmp_path, levels, cmap):
    path = tmp_path / f"{cmap}.png"
    plt.imsave(path, levels, cmap=cmap, vmin=0, vmax=255)
    return path


def test_magma_figure_maps_back_exactly(tmp_path):
    levels = np.random.default_rng(0).integers(0, 256, size=(40, 300)).astype(np.uint8)
    levels[0, :256] = np.arange(256)
    path = _figure(tmp_path, levels, "magma")
    spec = read_png(path, colormap="magma", params=SpecParams(n_mels=40), db_range=(-80, 0))
    np.testing.assert_array_equal(np.round((spec.db + 80) / 80 * 255), np.flipud(levels))
    auto = read_png(path, params=SpecParams(n_mels=40))
    np.testing.assert_array_equal(auto.db, spec.db)


@pytest.mark.parametrize("cmap", ["inferno", "plasma", "gray"])
def test_auto_detects_the_colormap(tmp_path, cmap):
    levels = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    rgb = np.asarray(Image.open(_figure(tmp_path, levels, cmap)).convert("RGB"))
    values = rgb_to_values(rgb, "auto")
    assert np.abs(values * 255 - levels).max() <= 1


def test_viridis_warns_it_is_not_invertible(tmp_path):
    assert distinct_colours("viridis") < 256 and distinct_colours("magma") == 256
    levels = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    rgb = np.asarray(Image.open(_figure(tmp_path, levels, "viridis")).convert("RGB"))
    with pytest.warns(SpecnirWarning, match="not exactly invertible"):
        values = rgb_to_values(rgb, "viridis")
    assert np.abs(values * 255 - levels).max() <= 1


def test_unknown_colormap(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    with pytest.raises(SpecnirError, match="unknown colormap 'jet'"):
        rgb_to_values(rgb, "jet")
    assert "jet" not in COLORMAPS


def test_plain_grayscale_image_uses_given_parameters(tmp_path):
    Image.fromarray(np.full((32, 10), 255, np.uint8)).save(tmp_path / "plain.png")
    params = SpecParams(n_mels=32, sample_rate=8000)
    spec = read_png(tmp_path / "plain.png", params=params, db_range=(-60.0, -10.0))
    assert spec.params == params and spec.length is None
    np.testing.assert_allclose(spec.db, -10.0)
    with pytest.raises(SpecnirError, match="32 rows"):
        read_png(tmp_path / "plain.png", params=SpecParams())


def test_corrupt_and_truncated_images(tmp_path, spec):
    good = write_png(tmp_path / "good.png", spec).read_bytes()
    (tmp_path / "trunc.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 50)
    (tmp_path / "text.png").write_text("hello")
    for name in ["trunc.png", "junk.png", "text.png"]:
        with pytest.raises(SpecnirError, match=name):
            read_png(tmp_path / name)


def _with_text(tmp_path, text):
    info = PngImagePlugin.PngInfo()
    info.add_text("specnir", text)
    path = tmp_path / "meta.png"
    Image.fromarray(np.zeros((128, 5), np.uint8)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: "{not json", "not JSON"),
        (lambda m: json.dumps([1, 2]), "not a JSON object"),
        (lambda m: json.dumps({**m, "version": 99}), "unsupported version"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "db_max"}), "missing"),
        (lambda m: json.dumps({**m, "db_min": 5.0, "db_max": 1.0}), "db_min"),
        (lambda m: json.dumps({**m, "length": -3}), "length"),
        (lambda m: json.dumps({**m, "params": {**m["params"], "n_fft": "big"}}), "n_fft"),
        (lambda m: json.dumps({**m, "params": {**m["params"], "n_mels": 64}}), "128 rows"),
    ],
)
def test_malformed_metadata(tmp_path, chirp, mutate, message):
    meta = metadata(audio_to_spectrogram(chirp, params=SpecParams()), bit_depth=8)
    path = _with_text(tmp_path, mutate(meta))
    with pytest.raises(SpecnirError, match=message) as info:
        read_png(path)
    assert "meta.png" in str(info.value)
