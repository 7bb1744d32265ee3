"""The layers point one way: decoding needs no training code, and no module of specnir imports itself back."""

import ast
import json
import subprocess
import sys

import pytest
from conftest import ROOT

PACKAGE = ROOT / "specnir"
# What fits, and what only an encoder or a trainer needs; a decoder loads none of it.
TRAINING = {
    "specnir.fit",
    "specnir.run",
    "specnir.checkpoint",
    "specnir.tblog",
    "specnir.models.stacked",
    "specnir.models.crops",
    "specnir.codec.decoder_train",
    "specnir.codec.nnquant",
    "specnir.codec.networks",
    "specnir.codec.encode",
    "specnir.codec.report",
    "specnir.codec.decoder_fit",
    "specnir.batch",
    "specnir.bench.rd",
}
V3 = ROOT / "tests" / "fixtures" / "v3"


def _module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(*, on_import: bool = False) -> dict[str, set[str]]:
    """Every module of specnir → the modules of specnir it imports: anywhere in it (in functions and under
    ``TYPE_CHECKING`` too), or with ``on_import`` only those that importing it runs (not in functions);
    ``from package import name`` is an import of ``package.name`` where that is a module."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree, found = ast.parse(path.read_text()), set()
        nodes = ast.walk(tree)
        if on_import:
            functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
            inside = {id(n) for f in functions for n in ast.walk(f)}
            nodes = (n for n in ast.walk(tree) if id(n) not in inside)
        for node in nodes:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                names = {f"{base}.{a.name}" for a in node.names}
                found |= names if names <= modules.keys() else names | {base}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def closure(graph: dict[str, set[str]], start: str, *, packages: bool = False) -> set[str]:
    """``start`` and every module it imports, directly or not (with ``packages``, the packages above each
    too: importing ``a.b`` runs ``a/__init__.py``)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))] if packages else []
        todo += graph.get(name, ())
    return seen & set(graph)


def test_no_module_of_specnir_imports_itself_back():
    graph = import_graph()
    circles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in closure(graph, b)})
    assert not circles, circles


def test_the_bitstream_imports_no_training_code():
    graph = import_graph(on_import=True)
    for start in ("specnir.codec.decode", "specnir.reader", "specnir.codec.decoders", "specnir.cli.parser"):
        loaded = closure(graph, start, packages=True)
        assert not loaded & TRAINING, (start, sorted(loaded & TRAINING))


_FRESH_DECODE = """
import json, sys
from pathlib import Path
root, out = Path(sys.argv[1]), sys.argv[2]
from specnir.cli import main
from specnir.codec import decode
from specnir.reader import read_clip
blob = (root / "v2" / "latent-q3.snir").read_bytes()
decode(blob)
decode((root / "v3" / "shipped-q4.snir").read_bytes())  # (finds specnir's own decoder by id)
read_clip(root / "v3" / "latent-q3-shared.snir", "tiny0")
assert main(["decompress", str(root / "v3" / "latent-q3-shared.snir"), "-o", out, "--no-audio"]) == 0
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code: str, *args: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return set(json.loads(run.stdout.splitlines()[-1]))


@pytest.mark.slow
def test_a_decode_in_a_fresh_interpreter_loads_no_trainer(tmp_path):
    """``decode``, ``read_clip`` and ``specnir decompress`` load no module of specnir's trainer or encoder.
    ``tqdm`` and ``torch.optim`` may be loaded only because ``import torch`` loads them itself (torch 2.11
    does: ``torch.hub`` imports tqdm, and torch imports its own ``optim``)."""
    loaded = _modules_after(_FRESH_DECODE, str(ROOT / "tests" / "fixtures"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "tiny0.png").is_file()
    assert not {m for m in loaded if m in TRAINING or m.startswith("specnir.batch.")}
    torch_alone = _modules_after("import json, sys, torch; print(json.dumps(sorted(sys.modules)))")
    for outside in ("tqdm", "torch.optim"):
        assert outside not in loaded or outside in torch_alone, outside
