import numpy as np
import pytest
import soundfile as sf

from specnir.audio import load_audio, save_audio
from specnir.errors import SpecnirError


def test_stereo_is_mixed_down_and_resampled(tmp_path, chirp):
    stereo = np.stack([chirp, 0.5 * chirp], axis=1)
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, 16000)
    wave, rate = load_audio(path)
    assert rate == 16000 and wave.ndim == 1
    np.testing.assert_allclose(wave, 0.75 * chirp, atol=1e-4)
    wave22, rate22 = load_audio(path, sample_rate=22050)
    assert rate22 == 22050 and abs(len(wave22) - round(len(chirp) * 22050 / 16000)) <= 1


def test_ogg_is_read(tmp_path, chirp):
    path = tmp_path / "clip.ogg"
    sf.write(path, chirp, 16000, format="OGG", subtype="VORBIS")
    wave, rate = load_audio(path)
    assert rate == 16000 and abs(len(wave) - len(chirp)) < 1024


def test_save_round_trip(tmp_path, chirp):
    path = save_audio(tmp_path / "a" / "out.wav", chirp, sample_rate=16000)
    wave, _ = load_audio(path)
    np.testing.assert_allclose(wave, chirp, atol=1 / 32767)
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]  # no temporary left behind


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"this is not audio at all", "not a readable audio file"),
        ("empty", "empty"),
        ("silent", "silent"),
    ],
)
def test_bad_audio(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "empty":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif content == "silent":
        sf.write(path, np.zeros(1600, np.float32), 16000)
    with pytest.raises(SpecnirError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value)
