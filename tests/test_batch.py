"""`specnir batch`: a corpus of real speech in folders, sets, the manifest, kill -9, Ray, reading it back."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPEC_ARGS

from specnir.batch import fit_chunks
from specnir.cli import main
from specnir.codec import decode
from specnir.codec.decoders import DECODER_FILE, load_decoder
from specnir.codec.encode import Settings, compress_sets
from specnir.corpus import MANIFEST, CorpusSet, find_sets, read_manifest
from specnir.data import load_image_set
from specnir.reader import decode_file
from specnir.spectrogram import SpecParams

TINY = SpecParams(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)
FAST = [*TINY_SPEC_ARGS, "--steps", "10", "--quiet"]


def fingerprint(path: Path) -> str:
    """A hash of the images a file decodes to (with the shared decoder above it, if it needs one)."""
    decoded = decode_file(path)
    return hashlib.sha256(b"".join(p.tobytes() for p in decoded.pixels)).hexdigest()


def fingerprints_in_fresh_process(paths: list[Path]) -> list[str]:
    code = (
        "import sys, hashlib; from specnir.reader import decode_file\n"
        "for p in sys.argv[1:]:\n"
        "    d = decode_file(p)\n"
        "    print(hashlib.sha256(b''.join(x.tobytes() for x in d.pixels)).hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def check_folder(out: Path, n_sets: int) -> dict[str, dict]:
    """Every set finished, the manifest's bytes are the files' sizes, and every file decodes alike in a
    fresh process."""
    rows = read_manifest(out / MANIFEST)
    assert len(rows) == n_sets and all(r["status"] == "ok" for r in rows.values())
    files = [out / r["file"] for r in rows.values()]
    assert [f.stat().st_size for f in files] == [r["bytes"] for r in rows.values()]
    assert fingerprints_in_fresh_process(files) == [fingerprint(f) for f in files]
    assert not list(out.rglob(".*.snir*"))  # no temporary file left
    return rows


def test_fits_group_similar_sets_and_keep_the_padding_below_the_work(tmp_path):
    """Sets go into fits longest first, at most B a fit, and a fit stops taking sets before padding every
    set to its widest clip would double its work: one 70-s prompt does not join 30 short sets."""

    def corpus_set(name: str, sizes: list[int]) -> CorpusSet:
        clips = []
        for k, size in enumerate(sizes):
            (tmp_path / f"{name}-{k}.wav").write_bytes(b"x" * size)
            clips.append(tmp_path / f"{name}-{k}.wav")
        return CorpusSet(name, tuple(clips))

    sets = [corpus_set(f"short{k:02}", [20 + k % 3] * 5) for k in range(30)]
    sets += [corpus_set("long", [700]), corpus_set("mid", [60] * 3)]
    chunks = fit_chunks(sets, 16)
    assert sorted(s.name for chunk in chunks for s in chunk) == sorted(s.name for s in sets)
    # "long" with "mid" would pad to 2 sets × 3 clips × 700 = 4,200 > 2 × (700 + 180); "mid" with a short
    # set to 2 × 5 × 60 = 600 > 2 × (180 + 5 × 22); the short sets, alike, fill fits of 16
    assert [[s.name for s in chunk] for chunk in chunks[:2]] == [["long"], ["mid"]]
    assert [len(chunk) for chunk in chunks] == [1, 1, 16, 14]
    for chunk in chunks:
        widest = max(c.stat().st_size for s in chunk for c in s.clips)
        alone = sum(len(s.clips) * max(c.stat().st_size for c in s.clips) for s in chunk)
        assert len(chunk) * max(len(s.clips) for s in chunk) * widest <= 2 * alone
    assert [len(chunk) for chunk in fit_chunks(sets[:30], 16)] == [16, 14]  # alike: B a fit
    assert [len(chunk) for chunk in fit_chunks(sets[:30], 1)] == [1] * 30


@pytest.mark.slow
def test_sets_fitted_together_match_sets_fitted_alone(corpus):
    """The stacked fit starts from compress's weights and minimises the same losses: over three sets,
    equal bytes within 10 % and PSNR within 0.75 dB. (Training noise is drawn differently; on sets this
    small, 300 steps of one set vary by up to 1.4 dB from seed to seed, so single sets are not compared.)"""
    sets = [load_image_set(list(s.clips), params=TINY) for s in find_sets([corpus], set_size=3)[:3]]
    settings = Settings(quality=2, steps=300)
    together = compress_sets(sets, settings, progress=False)
    alone = [compress_sets([data], settings, progress=False)[0] for data in sets]
    assert [r.report["sets_per_fit"] for r in together + alone] == [3, 3, 3, 1, 1, 1]
    total = [sum(r.report["bytes"] for r in results) for results in (together, alone)]
    assert abs(total[0] / total[1] - 1) < 0.10, total
    psnr = [np.mean([r.report["psnr"] for r in results]) for results in (together, alone)]
    assert abs(psnr[0] - psnr[1]) < 0.75, psnr
    for result in together:  # each file decodes alone to what its encoder made
        assert all(map(np.array_equal, decode(result.blob).pixels, result.decoded.pixels))


@pytest.mark.slow
def test_batch_writes_every_set_then_skips_them(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(corpus), "-o", str(out), "--set-size", "3", "--sets-per-fit", "4", *FAST]) == 0
    summary = capsys.readouterr().out
    assert "6 of 6 sets finished" in summary
    rows = check_folder(out, 6)
    assert {r["sets_per_fit"] for r in rows.values()} == {4, 2}  # latent mode: fitted four, then two at once
    assert sorted(r["file"] for r in rows.values()) == sorted(f"{n}.snir" for n in rows)
    # one shared decoder (the latent mode's default): every file names it and holds no weights
    decoder = load_decoder(out / DECODER_FILE)
    assert {r["decoder"] for r in rows.values()} == {decoder.id} and {
        r["weight_bytes"] for r in rows.values()
    } == {0}
    assert all(r["decoder_loss_ratio"] > 0 for r in rows.values())  # (above the threshold: fitted twice)
    assert all((out / r["file"]).read_bytes()[4] == 3 for r in rows.values())
    total = sum(r["bytes"] for r in rows.values()) + len(decoder.blob)
    assert f"{total:,} bytes" in summary and f"the shared decoder's {len(decoder.blob):,} included" in summary
    stamps = {f: f.stat().st_mtime_ns for f in out.rglob("*.snir")}
    assert main(["batch", str(corpus), "-o", str(out), "--set-size", "3", "--sets-per-fit", "4", *FAST]) == 0
    assert "6 before this run, 0 now" in capsys.readouterr().out
    assert stamps == {f: f.stat().st_mtime_ns for f in out.rglob("*.snir")}
    assert main(["batch", str(corpus), "-o", str(out), "--set-size", "3", "--quality", "3", *FAST]) == 2
    assert "other settings (quality)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "shared", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["shared-decoder", "own-networks"]
)
def test_one_set_per_fit_writes_the_bytes_compress_writes(corpus, tmp_path, shared):
    """With one set per fit, each file is what `compress` writes for its clips: with the batch's shared
    decoder (`compress --decoder`), or with its own networks (`--decoder-sets 0`)."""
    out = tmp_path / "out"
    own = [] if shared else ["--decoder-sets", "0"]
    assert main(["batch", str(corpus / "a"), "-o", str(out), "--set-size", "3", *own, *FAST]) == 0
    assert (out / DECODER_FILE).exists() == shared
    decoder = ["--decoder", str(out / DECODER_FILE)] if shared else []
    for row in read_manifest(out / MANIFEST).values():
        alone = tmp_path / "alone.snir"
        assert main(["compress", *row["clips"], "-o", str(alone), *decoder, *FAST]) == 0
        assert alone.read_bytes() == (out / row["file"]).read_bytes()
        assert alone.read_bytes()[4] == (3 if shared else 2)


def test_a_failed_set_is_recorded_and_the_others_go_on(corpus, tmp_path, capsys):
    bad = tmp_path / "corpus"
    for clip in sorted((corpus / "a").glob("*.wav"))[:4]:
        (bad / "x").mkdir(parents=True, exist_ok=True)
        (bad / "x" / clip.name).write_bytes(clip.read_bytes())
    (bad / "x" / "zz_broken.wav").write_bytes(b"RIFF not really a wave file")
    out = tmp_path / "out"
    assert main(["batch", str(bad), "-o", str(out), "--set-size", "3", *FAST]) == 1
    captured = capsys.readouterr().out
    rows = read_manifest(out / MANIFEST)
    assert sorted(r["status"] for r in rows.values()) == ["failed", "ok"]
    (failed,) = (name for name, r in rows.items() if r["status"] == "failed")
    error = rows[failed]["error"]
    assert "zz_broken.wav" in error and "\n" not in error and f"failed: {failed}: {error}" in captured
    (bad / "x" / "zz_broken.wav").unlink()  # fixed: the folder now makes two sets of two
    assert main(["batch", str(bad), "-o", str(out), "--set-size", "3", *FAST]) == 0
    assert "2 of 2 sets finished" in capsys.readouterr().out


@pytest.mark.slow
def test_batch_survives_kill_9_and_a_rerun_loses_nothing(corpus, tmp_path):
    out = tmp_path / "out"
    args = [
        "batch",
        str(corpus),
        "-o",
        str(out),
        "--set-size",
        "2",
        *TINY_SPEC_ARGS,
        "--steps",
        "300",
        "--quiet",
    ]
    proc = subprocess.Popen([sys.executable, "-m", "specnir.cli", *args], stdout=subprocess.DEVNULL)
    deadline = time.time() + 300  # (the shared decoder is fitted first)
    while len(read_manifest(out / MANIFEST)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_manifest(out / MANIFEST)
    assert 2 <= len(before) < 9  # killed mid-run
    lines = (out / MANIFEST).read_text().splitlines()
    assert all(json.loads(line)["status"] == "ok" for line in lines)  # no broken line
    finished = {out / r["file"]: (out / r["file"]).stat().st_mtime_ns for r in before.values()}
    assert all(decode_file(f) for f in finished)
    assert main(args) == 0
    rows = check_folder(out, 9)
    assert {n: rows[n] for n in before} == before  # the finished sets were not done again
    assert finished == {f: f.stat().st_mtime_ns for f in finished}


def ray_workers_at_work(root: int) -> list[int]:
    """Descendants of process ``root`` whose title says they run a batch's Ray task (Ray renames its
    workers so)."""
    parents, titles = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
                titles[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # gone meanwhile

    def below_root(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == root:
                return True
        return False

    return [pid for pid, title in titles.items() if b"ray::compress_chunk" in title and below_root(pid)]


@pytest.mark.slow
def test_ray_with_two_local_workers_survives_a_killed_worker(corpus, tmp_path):
    if not os.environ.get("CI"):  # CI installs the distributed extra: there, a missing Ray fails
        pytest.importorskip("ray")
    out = tmp_path / "out"
    args = ["batch", str(corpus), "-o", str(out), "--set-size", "2", "--workers", "2", *TINY_SPEC_ARGS]
    proc = subprocess.Popen(
        [sys.executable, "-m", "specnir.cli", *args, "--steps", "300", "--quiet"], stdout=subprocess.DEVNULL
    )
    killed, deadline = None, time.time() + 120
    while killed is None and time.time() < deadline and proc.poll() is None:
        for pid in ray_workers_at_work(proc.pid):
            os.kill(pid, signal.SIGKILL)  # a worker, in the middle of its sets
            killed = pid
            break
        time.sleep(0.1)
    assert killed is not None
    proc.wait(timeout=300)
    assert (
        main([*args, "--steps", "300", "--quiet"]) == 0
    )  # redoes what the kill cost, if Ray's retry did not
    check_folder(out, 9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sets_fitted_together_on_cuda_decode_alike_in_a_fresh_cpu_process(corpus, tmp_path):
    sets = [load_image_set(list(s.clips), params=TINY) for s in find_sets([corpus], set_size=3)]
    results = compress_sets(sets, Settings(quality=2, steps=60), device="cuda", progress=False)
    assert [r.report["sets_per_fit"] for r in results] == [6] * 6
    paths = []
    for k, result in enumerate(results):
        paths.append(tmp_path / f"{k}.snir")
        paths[-1].write_bytes(result.blob)
    assert fingerprints_in_fresh_process(paths) == [fingerprint(p) for p in paths]
