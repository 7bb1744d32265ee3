"""The coding-mode interface is closed: a mode defined here, and nowhere else, codes a set end to end."""

from typing import ClassVar

import constriction
import numpy as np
import pytest
from conftest import TINY_SPEC_ARGS
from PIL import Image

from specnir.cli import main
from specnir.codec import MODES, decode, read
from specnir.codec.encode import compress
from specnir.codec.modes import CodingMode, Options, choose_mode, register, render
from specnir.codec.portable import laplace_frequencies, probabilities
from specnir.data import load_image_set
from specnir.errors import SpecnirError
from specnir.models import MODELS, SirenConfig
from specnir.spectrogram import SpecParams

TINY = SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)


class ExactMode(CodingMode):
    """A small SIREN, then each pixel's difference from it under one Laplace: lossless. Its two header
    fields are the largest difference and the Laplace's scale (in quarter grey levels)."""

    name, id = "exact", 100
    archs: ClassVar[dict[str, int]] = {"siren": 1}
    help = "a SIREN and its residuals (lossless)"
    quality_help = "the SIREN's width is 4·Q"
    steps = 40
    tolerances = (0.05,)

    def build(self, arch, quality, data, options):
        n, h, w = data.target.shape
        return MODELS["siren"](SirenConfig(width=4 * quality, depth=1), n_images=n, height=h, width=w)

    @staticmethod
    def _laplace(spread: int, quarters: int):
        """The portable Laplace over ``−spread..spread`` of scale ``quarters / 4``."""
        freq = laplace_frequencies(-spread, spread, np.zeros(1), np.array([quarters / 4]), precision=16)
        return constriction.stream.model.Categorical(probabilities(freq[0, 0], 16), perfect=False)

    def encode(self, model, data, stream, header):
        truth = np.rint(data.target.numpy() * 255).astype(np.int64)
        residual = truth - render(model).astype(np.int64)
        spread = max(int(np.abs(residual).max()), 1)
        quarters = max(int(round(4 * np.abs(residual).mean())), 1)
        header["exact"] = {"spread": spread, "quarters": quarters}
        stream.encode((residual.reshape(-1) + spread).astype(np.int32), self._laplace(spread, quarters))
        return truth.astype(np.uint8), {"residual_spread": spread}

    def decode(self, model, widths, stream, header):
        spread, quarters = header["exact"]["spread"], header["exact"]["quarters"]
        prediction = render(model).astype(np.int64)
        residual = (
            np.asarray(stream.decode(self._laplace(spread, quarters), prediction.size), np.int64) - spread
        )
        return (prediction + residual.reshape(prediction.shape)).astype(np.uint8)

    def header_fields(self, header):
        return [header["exact"]["spread"], header["exact"]["quarters"]]

    def read_header_fields(self, values):
        if len(values) != 2:
            raise SpecnirError("bad exact-mode fields")
        return {"exact": {"spread": values[0], "quarters": values[1]}}

    def describe(self, header):
        return {"residual_spread": header["exact"]["spread"]}


@pytest.fixture
def exact_mode():
    mode = register(ExactMode())
    yield mode
    del MODES[mode.name]


def test_a_mode_defined_here_round_trips_a_set_through_compress_and_decompress(
    exact_mode, tiny_wavs, tmp_path, capsys
):
    result = compress(tiny_wavs[:3], mode="exact", quality=2, params=TINY, progress=False)
    assert result.report["max_error"] == 0 and result.report["residual_spread"] >= 1
    path = tmp_path / "set.snir"
    path.write_bytes(result.blob)
    header, _ = read(path)
    assert header["mode"] == "exact" and header["exact"] == result.decoded.header["exact"]
    assert path.read_bytes()[4] == 2 and header["arch"] == "siren"  # (arch id 1: siren's in every mode)
    data = load_image_set(tiny_wavs[:3], params=TINY)
    truth = [np.rint(t * 255).astype(np.uint8) for t in data.images(data.target)]
    assert all(map(np.array_equal, decode(path.read_bytes()).pixels, truth))
    # the command line knows it too: compress, info and decompress of the file, nothing else changed
    cli_file = tmp_path / "cli.snir"
    args = ["compress", *map(str, tiny_wavs[:3]), "-o", str(cli_file), "--mode", "exact", "--quiet"]
    assert main([*args, "--quality", "2", *TINY_SPEC_ARGS]) == 0
    assert cli_file.read_bytes() == result.blob  # the same seed, the same bytes
    assert main(["info", str(cli_file)]) == 0 and "residual_spread" in capsys.readouterr().out
    assert main(["decompress", str(cli_file), "-o", str(tmp_path / "out"), "--no-audio"]) == 0
    for name, pixels in zip(result.decoded.names, result.decoded.pixels, strict=True):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{name}.png")), pixels)


def test_a_file_of_an_unregistered_mode_is_refused(exact_mode, tiny_wavs):
    blob = compress(tiny_wavs[:2], mode="exact", quality=1, params=TINY, progress=False).blob
    del MODES["exact"]
    with pytest.raises(SpecnirError, match="unknown mode"):
        decode(blob, source="x.snir")
    MODES["exact"] = exact_mode


def test_the_registry_refuses_ids_that_are_taken():
    class Clash(ExactMode):
        name = "clash"

    with pytest.raises(ValueError, match="id"):
        register(type("SameId", (Clash,), {"id": MODES["latent"].id})())
    with pytest.raises(ValueError, match="architecture"):
        register(type("OtherArchId", (Clash,), {"archs": {"siren": 7}})())
    assert "clash" not in MODES


def test_options_go_to_the_modes_that_take_them():
    assert choose_mode(None, 4, None, Options(max_error=2)).name == "residual"
    assert choose_mode(None, 8, None, Options(lam=1e-3)).name == "latent"
    with pytest.raises(SpecnirError, match="a max error bound needs mode residual, not model"):
        MODES["model"].check("gru", Options(max_error=1))
    with pytest.raises(SpecnirError, match="a free λ needs mode latent, not residual"):
        MODES["residual"].check("gru", Options(lam=1e-3))
