"""A corpus as sets (folders, order, clips of similar length together) and the manifest of a batch."""

import json

import pytest

from specnir.cli import main
from specnir.corpus import (
    MANIFEST,
    CorpusSet,
    append_row,
    find_sets,
    read_manifest,
    rewrite_manifest,
    split_evenly,
)
from specnir.errors import SpecnirError


def test_sets_by_folder_and_by_order(corpus, tmp_path):
    sets = find_sets([corpus], set_size=4)
    assert [s.name for s in sets] == [
        "speech/a/000",
        "speech/a/001",
        "speech/b/000",
        "speech/b/001",
        "speech/b/c/000",
        "speech/b/c/001",
    ]
    assert [len(s.clips) for s in sets] == [3] * 6  # 6 clips in at most 4: two sets of 3
    assert all(len({c.parent for c in s.clips}) == 1 for s in sets)
    ordered = find_sets([corpus], group_by="order", set_size=5)
    assert sorted(len(s.clips) for s in ordered) == [4, 4, 5, 5] and [s.name for s in ordered][0] == "000"
    assert sorted(c for s in ordered for c in s.clips) == sorted(c for s in sets for c in s.clips)
    assert all(list(s.clips) == sorted(s.clips) for s in sets + ordered)  # name order within a set
    assert split_evenly(list(range(13)), 5) == [[0, 1, 2, 3], [4, 5, 6, 7, 8], [9, 10, 11, 12]]
    (tmp_path / ".hidden.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a clip")
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "out"), "--quiet"]) == 2  # nothing to do


def test_a_folders_sets_hold_clips_of_similar_length(tmp_path):
    """Clips are grouped by length within a folder (a set pads every image to its widest): one long clip
    among short ones joins the other long ones, not the short ones that come before it by name."""
    folder = tmp_path / "f"
    folder.mkdir()
    for name, size in {"a": 100, "b": 900, "c": 110, "d": 950, "e": 120, "f": 105}.items():
        (folder / f"{name}.wav").write_bytes(b"x" * size)
    sets = find_sets([folder], set_size=3)
    assert [[c.stem for c in s.clips] for s in sets] == [["a", "c", "f"], ["b", "d", "e"]]
    assert [s.name for s in sets] == ["f/000", "f/001"]


def test_a_manifest_line_cut_short_is_skipped(tmp_path):
    path = tmp_path / MANIFEST
    append_row(path, {"set": "a/000", "status": "ok"})
    append_row(path, {"set": "a/001", "status": "failed"})
    with open(path, "a") as f:
        f.write('{"set": "a/002", "stat')  # what a kill during a write could leave
    assert list(read_manifest(path)) == ["a/000", "a/001"]


def test_a_later_line_for_a_set_replaces_an_earlier_one_and_a_rewrite_keeps_one_per_set(tmp_path):
    path = tmp_path / MANIFEST
    for row in ({"set": "a", "status": "failed"}, {"set": "b", "status": "ok"}, {"set": "a", "status": "ok"}):
        append_row(path, row)
    rows = read_manifest(path)
    assert rows == {"a": {"set": "a", "status": "ok"}, "b": {"set": "b", "status": "ok"}}
    rewrite_manifest(path, rows)
    assert [json.loads(line)["set"] for line in path.read_text().splitlines()] == ["a", "b"]
    assert not [p for p in tmp_path.iterdir() if p.name != MANIFEST]  # (no temporary file left)
    assert read_manifest(tmp_path / "missing.jsonl") == {}
    path.write_text('["not an object"]\n{"no": "set"}\n')
    assert read_manifest(path) == {}


def test_sets_of_a_file_given_alone_and_what_is_refused(corpus, tmp_path):
    clip = sorted((corpus / "a").iterdir())[0]
    (only,) = find_sets([clip])
    assert only.clips == (clip,) and only.name == "a/000" and only.file == "a/000.snir"
    assert CorpusSet("x/001", ()).file == "x/001.snir"
    with pytest.raises(SpecnirError, match="sets are grouped by folder or order, not 'size'"):
        find_sets([corpus], group_by="size")
    with pytest.raises(SpecnirError, match="set size must be at least 1"):
        find_sets([corpus], set_size=0)
    with pytest.raises(SpecnirError, match="no such file or folder"):
        find_sets([tmp_path / "nowhere"])
    with pytest.raises(SpecnirError, match="no audio files or spectrogram images"):
        find_sets([tmp_path])
