"""Reading compressed sets back: a clip, a corpus, a torch Dataset (in DataLoader workers), files to PNG."""

import os

import numpy as np
import pytest
import torch
from conftest import TINY_SPEC_ARGS

from specnir.cli import main
from specnir.corpus import MANIFEST, read_manifest
from specnir.errors import SpecnirError
from specnir.reader import CorpusDataset, decode_file, read_clip, read_corpus, snir_files
from specnir.spectrogram import SpecParams

TINY = SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)


@pytest.fixture(scope="module")
def batch_folder(corpus, tmp_path_factory):
    """Two sets of three real speech clips, compressed against a shared decoder."""
    out = tmp_path_factory.mktemp("reader") / "out"
    args = ["batch", str(corpus / "b" / "c"), "-o", str(out), "--set-size", "3", *TINY_SPEC_ARGS]
    assert main([*args, "--steps", "10", "--quiet"]) == 0
    return out


def test_a_clip_and_a_corpus_read_from_python(batch_folder):
    rows = read_manifest(batch_folder / MANIFEST)
    assert list(rows) == ["c/000", "c/001"]
    decoded = decode_file(batch_folder / "c" / "000.snir")
    db, params = read_clip(batch_folder / "c" / "000.snir", decoded.names[1])
    assert db.dtype == np.float32 and db.shape == decoded.specs[1].db.shape and db.shape[0] == 16
    assert np.array_equal(db, decoded.specs[1].db) and params == TINY
    with pytest.raises(SpecnirError, match=f"no clip 'nope' \\(it holds {', '.join(decoded.names)}\\)"):
        read_clip(batch_folder / "c" / "000.snir", "nope")
    clips = list(read_corpus(batch_folder))
    assert [(s, c) for s, c, _, _ in clips] == [
        (n, c) for n in rows for c in decode_file(batch_folder / rows[n]["file"]).names
    ]
    with pytest.raises(SpecnirError, match="not a specnir batch folder"):
        list(read_corpus(batch_folder / "c"))


def test_a_file_is_decoded_once_until_it_changes(batch_folder, tmp_path):
    path = tmp_path / "set.snir"
    path.write_bytes((batch_folder / "c" / "000.snir").read_bytes())
    (tmp_path / "decoder.snird").write_bytes((batch_folder / "decoder.snird").read_bytes())
    first = decode_file(path)
    assert decode_file(path) is first  # (cached: a set's clips read one after another decode it once)
    path.write_bytes((batch_folder / "c" / "001.snir").read_bytes())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # (a coarse clock)
    assert decode_file(path).names != first.names


def test_the_corpus_as_a_dataset_in_two_dataloader_workers(batch_folder):
    dataset = CorpusDataset(batch_folder)
    expected = [(s, c, db) for s, c, db, _ in read_corpus(batch_folder)]
    assert len(dataset) == len(expected) == 6 and dataset.params == TINY
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    got = list(loader)
    assert [(clip.set, clip.name) for clip in got] == [(s, c) for s, c, _ in expected]
    for clip, (_, _, db) in zip(got, expected, strict=True):
        assert clip.db.dtype == torch.float32 and np.array_equal(clip.db.numpy(), db)
    assert dataset[3].name == expected[3][1]


@pytest.mark.slow
def test_snir_files_and_decompress_of_a_folder_with_workers(batch_folder, tmp_path, capsys):
    one = snir_files([batch_folder / "c" / "000.snir"])
    assert [(f.name, str(sub)) for f, sub in one] == [("000.snir", ".")]
    many = snir_files([batch_folder])
    assert [(f.relative_to(batch_folder).as_posix(), sub.as_posix()) for f, sub in many] == [
        ("c/000.snir", "c/000"),
        ("c/001.snir", "c/001"),
    ]
    with pytest.raises(SpecnirError, match="folder holds no .snir files"):
        snir_files([tmp_path])
    damaged = tmp_path / "in"
    damaged.mkdir()
    for name in ("000.snir", "001.snir"):
        (damaged / name).write_bytes((batch_folder / "c" / name).read_bytes())
    (damaged / "decoder.snird").write_bytes((batch_folder / "decoder.snird").read_bytes())
    (damaged / "zz.snir").write_bytes(b"SNIR" + bytes(40))  # a damaged file among good ones
    target = tmp_path / "decoded"
    assert main(["decompress", str(damaged), "-o", str(target), "--workers", "2", "--no-audio"]) == 2
    assert "zz.snir" in capsys.readouterr().err
    names = {n: decode_file(damaged / f"{n}.snir").names for n in ("000", "001")}
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.png")) == sorted(
        f"{n}/{c}.png" for n in names for c in names[n]
    )
