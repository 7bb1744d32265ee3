"""The pre-fitted examples in checkpoints/ decode the bundled clips at the quality they claim."""

import pytest
import torch
from conftest import ROOT

from specnir.checkpoint import load_checkpoint
from specnir.data import load_image_set
from specnir.fit import evaluate

EXAMPLES = sorted((ROOT / "checkpoints").glob("*.pt"))


def test_examples_are_there():
    assert {p.name for p in EXAMPLES} >= {"gru-alsa5.pt", "siren-alsa5.pt"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_decodes_bundled_clips(path):
    assert path.stat().st_size < 1_000_000
    ckpt = load_checkpoint(path)
    data = load_image_set([ROOT / "audio"], params=ckpt.params)
    assert data.layouts == ckpt.images
    with torch.no_grad():
        metrics = evaluate(data, ckpt.model())
    assert metrics["psnr"] == pytest.approx(ckpt.metrics["psnr"], abs=1e-3)
    assert metrics["psnr"] > 25.0
