"""Crash-safe training: the main job, SIGKILLed in the middle of an update or of writing a checkpoint, resumes with
--resume to exactly the run that was never interrupted (every step's metrics but wall-clock ones, the final weights
and optimiser state). The kill points are deterministic: tests/fixtures/blocking_learner.py stops the first run
there and signals through a file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerBase

from agents.grpo_train import main
from agents.runtime.run_folder import STATE_FILE, checkpoints, latest_checkpoint, load_trainer_state
from tests.agents.conftest import tiny_policy
from tests.agents.test_grpo_train import records, without_timings

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3
WAIT_S = 1800  # generous: a run takes about 30 s alone, but many minutes on a busy 2-core machine
# Two mini-batches, so optimiser step 3 is the middle of step 2's update; an entropy bonus and a large lr make every
# step move the weights of the random-weight model (whose rewards are all equal).
GRPO = {"entropy_coef": 0.05, "lr": 1e-3, "mini_batches": 2, "gradient_checkpointing": False}
CONFIG = {"grpo": GRPO, "save_every": 1, "keep_checkpoints": 2}

pytestmark = pytest.mark.slow  # five short runs of the main job in subprocesses


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerBase) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    tiny_policy(tokenizer).model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def job(model: Path, out: Path) -> list[str]:
    config = out.parent / f"{out.name}.json"
    config.write_text(json.dumps(CONFIG))
    return [
        "--env", "ToolEnv-Calc-v0", "--env-kwargs", '{"num_tasks": 40}', "--model", str(model), "--steps", str(STEPS),
        "--group-size", "2", "--batch-size", "4", "--max-new-tokens", "8", "--eval-limit", "0", "--no-warmup.enabled",
        "--algo", "blocking_learner:BlockingGRPO", "--config", str(config), "--output-dir", str(out),
    ]  # fmt: skip


def start(args: list[str], log: Path, block: str | None = None, signal_file: Path | None = None) -> subprocess.Popen:
    """agents/grpo_train.py in a subprocess, its output in `log`; `block` as blocking_learner.py reads it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRL_BLOCK")}
    # The fixtures folder itself, not the `tests` package: verl's wheel installs a `tests` package of its own.
    paths = [str(ROOT), str(ROOT / "tests" / "fixtures"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if block is not None:
        env |= {"TOOLRL_BLOCK": block, "TOOLRL_BLOCK_SIGNAL": str(signal_file)}
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "agents" / "grpo_train.py"), *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def finish(args: list[str], log: Path, **block: Any) -> str:
    process = start(args, log, **block)
    assert process.wait(timeout=WAIT_S) == 0, log.read_text()[-5000:]
    return log.read_text()


def kill_when_blocked(args: list[str], log: Path, block: str, signal_file: Path) -> None:
    """Start the job, wait until the learner signals that it stopped at `block`, and SIGKILL it there."""
    process = start(args, log, block, signal_file)
    deadline = time.monotonic() + WAIT_S
    while not signal_file.exists():
        assert process.poll() is None, f"the job ended before blocking at {block}:\n{log.read_text()[-5000:]}"
        assert time.monotonic() < deadline, f"the job never blocked at {block}"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL


def assert_same_run(run: Path, reference: Path) -> None:
    """The same records (wall-clock fields aside), final weights and final learner state."""
    got, expected = records(run, "train"), records(reference, "train")
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert [without_timings(r) for r in got] == [without_timings(r) for r in expected]
    final = f"step-{STEPS}"
    weights = load_file(run / "checkpoints" / final / "model.safetensors")
    reference_weights = load_file(reference / "checkpoints" / final / "model.safetensors")
    assert weights.keys() == reference_weights.keys()
    for name, value in weights.items():
        assert torch.equal(value, reference_weights[name]), name
    state = load_trainer_state(run / "checkpoints" / final)
    reference_state = load_trainer_state(reference / "checkpoints" / final)
    assert state.learner["schedule"] == reference_state.learner["schedule"] == {"updates": STEPS}
    moments, reference_moments = state.learner["optimizer"]["state"], reference_state.learner["optimizer"]["state"]
    assert moments.keys() == reference_moments.keys()
    for index, values in moments.items():
        for key, value in values.items():
            assert torch.equal(value, reference_moments[index][key]), (index, key)


@pytest.fixture(scope="module")
def straight(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run never interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    finish(job(model_dir, out), out.parent / "log.txt")
    assert [p.name for p in checkpoints(out)] == ["step-2", "step-3"]  # keep_checkpoints=2
    start_weights = load_file(model_dir / "model.safetensors")
    final = load_file(out / "checkpoints" / f"step-{STEPS}" / "model.safetensors")
    assert any(not torch.equal(final[name], value) for name, value in start_weights.items())
    return out


def test_a_run_killed_in_the_middle_of_an_update_resumes_to_the_uninterrupted_run(
    model_dir: Path, straight: Path, tmp_path: Path
) -> None:
    out, log, blocked = tmp_path / "run", tmp_path / "log.txt", tmp_path / "blocked"
    kill_when_blocked(job(model_dir, out), log, "optimizer_step:3", blocked)  # step 2, between its mini-batches
    assert latest_checkpoint(out) == out / "checkpoints" / "step-1"
    assert [r["step"] for r in records(out, "train")] == [1]

    # The same blocking setting: the signal file is there, so the resumed run goes through.
    printed = finish(["--resume", str(out)], log, block="optimizer_step:3", signal_file=blocked)
    assert f"resumed from {out / 'checkpoints' / 'step-1'} at step 1; records logged after it, dropped: 0" in printed
    assert_same_run(out, straight)


def test_a_run_killed_while_writing_a_checkpoint_keeps_the_previous_one_and_resumes(
    model_dir: Path, straight: Path, tmp_path: Path
) -> None:
    out, log, blocked = tmp_path / "run", tmp_path / "log.txt", tmp_path / "blocked"
    kill_when_blocked(job(model_dir, out), log, "state_dict:2", blocked)  # step-2's model written, not its state
    staging = out / "checkpoints" / ".step-2.tmp"
    assert (staging / "model.safetensors").is_file() and not (staging / STATE_FILE).exists()
    assert latest_checkpoint(out) == out / "checkpoints" / "step-1"
    assert [r["step"] for r in records(out, "train")] == [1, 2]
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 3, "rollout/rew')  # and a record torn by the kill

    printed = finish(["--resume", str(out)], log)
    assert "at step 1; records logged after it, dropped: 1" in printed  # step 2's (the torn line is no record)
    assert_same_run(out, straight)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-3"]  # the staging is gone


def test_resuming_with_settings_that_change_the_data_is_refused_and_changes_nothing(
    straight: Path, tmp_path: Path
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(straight, run)
    config = (run / "config.json").read_text()
    with pytest.raises(ValueError, match=r"tasks_per_step=2 there, 1 here"):
        main(["--resume", str(run), "--batch-size", "2"])
    assert (run / "config.json").read_text() == config
    with pytest.raises(ValueError, match="already holds checkpoints of a run"):
        main(["--output-dir", str(run), "--steps", "1"])
