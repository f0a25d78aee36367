"""The run folder's crash guarantees: complete checkpoints with everything a resume needs, published by an atomic
rename (a half-written or failed save is never the latest and is cleaned up), bounded in number, never holding a NaN;
metrics.jsonl that survives a torn line and rewinds to a checkpoint."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from agents.learners.grpo import GRPOConfig, GRPOLearner
from agents.policy import Policy
from agents.runtime.run_folder import (
    STATE_FILE,
    DataPosition,
    RunFolder,
    checkpoints,
    latest_checkpoint,
    load_trainer_state,
    restore_rng,
)
from tests.agents.learners.test_grpo import batch


def position(step: int, **changes: object) -> DataPosition:
    fields: dict[str, object] = {"next_step": step, "seed": 0, "tasks_per_step": 2, "world_size": 1} | changes
    return DataPosition.of(["calc-1", "calc-2", "calc-3"], **fields)


def trained(policy: Policy) -> GRPOLearner:
    learner = GRPOLearner(policy, GRPOConfig(lr=1e-3, lr_warmup_steps=3))
    learner.update(batch(policy))
    return learner


def names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_a_checkpoint_holds_everything_a_resume_needs(policy: Policy, tmp_path: Path) -> None:
    learner = trained(policy)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = RunFolder(tmp_path).save_checkpoint(1, policy, learner, position(1))
    assert path == tmp_path / "checkpoints" / "step-1" and names(tmp_path) == ["step-1"]
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    state = load_trainer_state(path)  # torch.load(weights_only=True): loading cannot run code
    restore_rng(state.rng)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws
    assert state.step == 1 and state.data == position(1)
    assert state.learner["schedule"] == {"updates": 1}
    saved, live = state.learner["optimizer"]["state"], learner.optimizer.state_dict()["state"]
    assert saved.keys() == live.keys() and len(saved) > 0
    for index, moments in live.items():
        for key, value in moments.items():
            assert torch.equal(saved[index][key], value), (index, key)
    model = AutoModelForCausalLM.from_pretrained(path)
    for name, value in policy.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_half_written_saves_are_never_the_latest_and_the_next_save_removes_them(policy: Policy, tmp_path: Path) -> None:
    run, learner = RunFolder(tmp_path, keep=2), trained(policy)
    run.save_checkpoint(1, policy, learner, position(1))
    run.save_checkpoint(2, policy, learner, position(2))
    folder = tmp_path / "checkpoints"
    (folder / ".step-3.tmp").mkdir()  # a crash while writing step 3
    (folder / ".step-3.tmp" / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "step-4").mkdir()  # a model folder without its trainer state is no checkpoint
    (folder / "step-x").mkdir()
    assert latest_checkpoint(tmp_path) == folder / "step-2"
    assert checkpoints(tmp_path) == [folder / "step-1", folder / "step-2"]

    run.save_checkpoint(3, policy, learner, position(3))
    assert names(tmp_path) == ["step-2", "step-3", "step-4", "step-x"]  # leftovers gone, the newest 2 kept
    assert latest_checkpoint(tmp_path) == folder / "step-3"


def test_a_save_that_fails_before_its_rename_leaves_the_previous_checkpoint_latest(
    policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, learner = RunFolder(tmp_path), trained(policy)
    run.save_checkpoint(1, policy, learner, position(1))
    replace = os.replace

    def failing(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src).name == ".step-2.tmp":
            raise OSError(28, "No space left on device")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space left"):
        run.save_checkpoint(2, policy, learner, position(2))
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-1"
    assert load_trainer_state(tmp_path / "checkpoints" / "step-1").step == 1
    run.save_checkpoint(2, policy, learner, position(2))
    assert names(tmp_path) == ["step-1", "step-2"]


def test_weights_or_learner_state_with_nan_or_inf_are_never_saved(policy: Policy, tmp_path: Path) -> None:
    run, learner = RunFolder(tmp_path), trained(policy)
    run.save_checkpoint(1, policy, learner, position(1))
    weight = policy.model.get_input_embeddings().weight
    with torch.no_grad():
        kept = weight[5, 3].item()
        weight[5, 3] = float("nan")
    with pytest.raises(ValueError, match=r"refusing to save checkpoint step-2: the weights .*embed_tokens.*step-1"):
        run.save_checkpoint(2, policy, learner, position(2))
    with torch.no_grad():
        weight[5, 3] = kept
    moments = next(iter(learner.optimizer.state.values()))
    moments["exp_avg_sq"][0] = float("inf")
    with pytest.raises(ValueError, match=r"the learner state holds NaN or inf \(optimizer\.state\.\d+\.exp_avg_sq\)"):
        run.save_checkpoint(2, policy, learner, position(2))
    assert names(tmp_path) == ["step-1"]  # nothing written, nothing left behind


def test_the_log_drops_a_torn_last_line_and_rewinds_to_a_checkpoint(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.log({"kind": "eval", "name": "before", "step": 0, "summary": {}})
    for step in (1, 2, 3):
        run.log({"kind": "train", "step": step, "rollout/reward_mean": step / 10})
    log = tmp_path / "metrics.jsonl"
    with log.open("a") as f:
        f.write('{"kind": "train", "step": 4, "rollout/rew')  # killed mid-write
    assert [r["step"] for r in run.records()] == [0, 1, 2, 3]

    assert run.rewind(2) == 1
    assert log.read_text().endswith("}\n") and [r["step"] for r in run.records()] == [0, 1, 2]
    run.log({"kind": "train", "step": 3, "rollout/reward_mean": 0.5})
    assert [r["step"] for r in run.records()] == [0, 1, 2, 3] and run.records()[-1]["rollout/reward_mean"] == 0.5
    assert run.rewind(None) == 4 and run.records() == [] and log.read_text() == ""

    log.write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"line 2, is not a JSON record"):
        run.records()


def test_a_resume_must_continue_on_the_same_data(tmp_path: Path) -> None:
    position(3).check_continues(position(3), tmp_path)
    with pytest.raises(ValueError, match=r"tasks_per_step=2 there, 1 here.*--model"):
        position(3, tasks_per_step=1).check_continues(position(3), tmp_path)
    with pytest.raises(ValueError, match=r"resample_rounds=0 there, 2 here"):
        position(3, resample_rounds=2).check_continues(position(3), tmp_path)
    other_tasks = DataPosition.of(["calc-1"], next_step=3, seed=0, tasks_per_step=2, world_size=1)
    with pytest.raises(ValueError, match="task_set_sha256"):
        other_tasks.check_continues(position(3), tmp_path)


def test_a_checkpoint_of_the_old_format_is_refused_with_the_way_out(tmp_path: Path) -> None:
    (tmp_path / "step-1").mkdir()
    torch.save({"step": 1, "learner": {}, "torch_rng": torch.get_rng_state()}, tmp_path / "step-1" / STATE_FILE)
    with pytest.raises(ValueError, match=r"format 1, this toolrl reads 2.*--model"):
        load_trainer_state(tmp_path / "step-1")


def test_config_json_is_replaced_whole(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.write_config({"steps": 3})
    run.write_config({"steps": 4})
    assert json.loads((tmp_path / "config.json").read_text()) == {"steps": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no staging file left
