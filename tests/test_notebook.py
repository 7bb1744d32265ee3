"""The tour notebook runs top to bottom (small step budget) and shows what it promises."""

import pytest
from conftest import ROOT

nbformat = pytest.importorskip("nbformat")  # the dev extras; not on the GPU machine
nbclient = pytest.importorskip("nbclient")


@pytest.mark.slow
def test_tour_runs_top_to_bottom(tmp_path, monkeypatch):
    path = ROOT / "notebooks" / "tour.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    monkeypatch.setenv("SPECNIR_TOUR_STEPS", "15")
    # One thread in the kernel: the GRU's many small ops slow down tenfold when torch's thread pool
    # competes with another busy process on a small CI machine.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures as outputs
    client = nbclient.NotebookClient(
        notebook, timeout=170, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    for expected in ("gru:", "siren:", "specnir gru residual", "jpegxl-lossless", "shipped decoder", "avif"):
        assert expected in text
    audio = [o for o in outputs if "text/html" in o.get("data", {}) and "<audio" in o["data"]["text/html"]]
    assert len(audio) == 5  # original, Griffin-Lim of the original, two decodes, the latent file's decode
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the images, the column-error curves, the side-by-side
