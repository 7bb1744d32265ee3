"""A run survives a kill: the fit continues with --resume and ends where an uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_SPEC_ARGS

STEPS = 400


def _fit_command(run_dir, wavs, *extra) -> list[str]:
    argv = ["fit", *map(str, wavs), "-o", str(run_dir), "--arch", "gru", "--hidden", "6", "--steps"]
    argv += [str(STEPS), "--eval-every", "20", "--n-iter", "1", "--quiet", *TINY_SPEC_ARGS, *extra]
    return [sys.executable, "-c", f"import sys; from specnir.cli import main; sys.exit(main({argv!r}))"]


def _resume_command(run_dir) -> list[str]:
    argv = ["fit", "--resume", str(run_dir), "--quiet"]
    return [sys.executable, "-c", f"import sys; from specnir.cli import main; sys.exit(main({argv!r}))"]


def _saved_step(run_dir) -> int:
    try:
        return torch.load(run_dir / "resume.pt", weights_only=True)["step"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


@pytest.mark.slow
def test_killed_fit_resumes_to_the_uninterrupted_result(tmp_path, tiny_wavs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic in every process
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_fit_command(whole, tiny_wavs), check=True, env=env, capture_output=True)

    process = subprocess.Popen(_fit_command(killed, tiny_wavs), env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _saved_step(killed) < 60 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = _saved_step(killed)
    assert 60 <= stopped_at < STEPS, "the fit was not killed mid-run"
    assert not (killed / "metrics.json").exists()  # it really died before the end
    assert (killed / "model.pt").is_file()  # ... with the best weights so far on disk

    subprocess.run(_resume_command(killed), check=True, env=env, capture_output=True)
    a = torch.load(whole / "model.pt", weights_only=True)
    b = torch.load(killed / "model.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name
    assert (
        a["metrics"]["psnr"] == b["metrics"]["psnr"]
        and a["metrics"]["best_step"] == b["metrics"]["best_step"]
    )
    assert b["metrics"]["steps"] == STEPS and _saved_step(killed) == STEPS
