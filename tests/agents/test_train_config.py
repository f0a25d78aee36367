"""The main job's configuration: defaults, validation, files and flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.grpo_train import parse_args
from agents.train_config import TrainConfig, learner_class, merge
from toolrl_env.rewards import RewardConfig


def test_batch_must_be_whole_groups() -> None:
    with pytest.raises(ValidationError, match="multiple of group_size"):
        TrainConfig(batch_size=6, group_size=4)


def test_defaults_for_bfcl_train_on_one_category_with_the_chosen_preset() -> None:
    config = TrainConfig(reward_preset="coarse")
    assert config.resolved_env_kwargs() == {"category": "simple_python", "reward": "coarse"}
    assert TrainConfig(env_kwargs={}).resolved_env_kwargs() == {"reward": "default"}


def test_the_reward_is_a_preset_name_or_a_reward_config() -> None:
    with pytest.raises(ValidationError, match="unknown reward preset 'fine'"):
        TrainConfig(reward_preset="fine")
    config = TrainConfig.model_validate({"reward_preset": {"two_stage_step": 8}})
    reward = config.resolved_env_kwargs()["reward"]
    assert isinstance(reward, RewardConfig) and reward == RewardConfig(two_stage_step=8)
    saved = json.loads(json.dumps(config.model_dump(mode="json")))  # as config.json holds it, for --resume
    assert TrainConfig.model_validate(saved) == config


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="stepz"):
        TrainConfig.model_validate({"stepz": 3})


def test_merge_is_deep() -> None:
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_flags_override_the_config_file(tmp_path: Path, suffix: str) -> None:
    data = {"steps": 7, "group_size": 2, "batch_size": 4, "grpo": {"lr": 0.5}, "warmup": {"examples": 3}}
    path = tmp_path / f"run{suffix}"
    path.write_text(json.dumps(data))  # JSON is YAML too
    config, resume = parse_args(["--config", str(path), "--steps", "9", "--lr", "0.25", "--no-warmup"])
    assert (config.steps, config.group_size, config.batch_size) == (9, 2, 4)
    assert config.grpo.lr == 0.25 and config.warmup.examples == 3 and not config.warmup.enabled
    assert resume is None


def test_learners_by_name_or_import_path() -> None:
    from agents.grpo import GRPOLearner
    from agents.rloo import RLOOLearner

    assert learner_class("grpo") is GRPOLearner and learner_class("agents.rloo:RLOOLearner") is RLOOLearner
    with pytest.raises(ValidationError, match="unknown algo 'ppo2'"):
        TrainConfig(algo="ppo2")
    with pytest.raises(ValueError, match="cannot load learner"):
        learner_class("agents.rloo:Missing")
