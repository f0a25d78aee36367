"""The main job's configuration: defaults, validation, files and flags."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from agents.grpo_train import build_parser, parse_args
from agents.learners.ppo import PPOConfig, PPOLearner
from agents.policy import Policy
from agents.train_config import TrainConfig, build_learner, learner_class
from toolrl_env.cli import meaning, merge
from toolrl_env.rewards import RewardConfig


def test_batch_must_be_whole_groups() -> None:
    with pytest.raises(ValidationError, match="multiple of group_size"):
        TrainConfig(batch_size=6, group_size=4)


def test_defaults_for_bfcl_train_across_call_shapes_and_evaluate_on_an_untrained_category_too() -> None:
    config = TrainConfig(reward_preset="coarse")
    trained = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]
    assert config.resolved_env_kwargs() == {"category": trained, "reward": "coarse"}
    assert config.resolved_eval_env_kwargs() == {"category": [*trained, "live_simple"], "reward": "coarse"}
    assert TrainConfig(env_kwargs={}).resolved_env_kwargs() == {"reward": "default"}
    # Given training kwargs, evaluation takes them unless told otherwise; the reward is always training's.
    own = TrainConfig(env_kwargs={"category": "multiple"}, reward_preset="coarse")
    assert own.resolved_eval_env_kwargs() == {"category": "multiple", "reward": "coarse"}
    other = TrainConfig(
        env_kwargs={"category": "multiple"}, eval_env_kwargs={"category": ["multiple", "live_multiple"]}
    )
    assert other.resolved_eval_env_kwargs() == {"category": ["multiple", "live_multiple"], "reward": "default"}
    calc = TrainConfig(env="ToolEnv-Calc-v0")
    assert calc.resolved_eval_env_kwargs() == calc.resolved_env_kwargs() == {"reward": "default"}
    for bad in ({"split": "test"}, {"reward": "coarse"}):
        with pytest.raises(ValidationError, match="eval_env_kwargs may not set"):
            TrainConfig(eval_env_kwargs=bad)


def test_the_reward_is_a_preset_with_the_fields_given_changed() -> None:
    with pytest.raises(ValidationError, match="unknown reward preset 'fine'"):
        TrainConfig(reward_preset="fine")
    config = TrainConfig.model_validate({"reward_preset": "coarse", "reward": {"two_stage_step": 8}})
    reward = config.resolved_env_kwargs()["reward"]
    assert isinstance(reward, RewardConfig) and reward == RewardConfig(coarse=True, two_stage_step=8)
    saved = json.loads(json.dumps(config.model_dump(mode="json")))  # as config.json holds it, for --resume
    assert TrainConfig.model_validate(saved) == config
    # An older run's config.json gave a whole reward as reward_preset's fields: it still loads as that reward.
    older = TrainConfig.model_validate({"reward_preset": {"two_stage_step": 8}})
    assert older.resolved_env_kwargs()["reward"] == RewardConfig(two_stage_step=8)
    flags, _ = parse_args(["--reward-preset", "coarse", "--reward.format-max", "2"])
    assert flags.resolved_env_kwargs()["reward"] == RewardConfig(coarse=True, format_max=2.0)


@pytest.mark.parametrize(
    ("env_kwargs", "message"),
    [
        ({"reward": "coarse"}, "env_kwargs may not set 'reward': give the reward with --reward-preset"),
        ({"split": "test"}, "env_kwargs may not set 'split': the main job trains on split='train'"),
    ],
)
def test_env_kwargs_that_the_main_job_sets_itself_are_usage_errors(
    env_kwargs: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainConfig(env_kwargs=env_kwargs)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--env-kwargs", json.dumps(env_kwargs)])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="stepz"):
        TrainConfig.model_validate({"stepz": 3})


def test_merge_is_deep() -> None:
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


def test_every_field_is_a_flag_and_bad_values_name_it(capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = parse_args(
        ["--grpo.kl-coef", "0.05", "--ppo.gamma", "0.9", "--policy.lora.rank", "4", "--warmup.examples", "3",
         "--no-grpo.shared-prompt", "--eval-limit", "null", "--save-every", "2", "--model", "x"]
    )  # fmt: skip
    assert (config.grpo.kl_coef, config.ppo.gamma, config.warmup.examples, config.save_every) == (0.05, 0.9, 3, 2)
    assert config.policy.lora is not None and config.policy.lora.rank == 4 and config.policy.model == "x"
    assert not config.grpo.shared_prompt and config.eval_limit is None
    with pytest.raises(SystemExit):
        parse_args(["--grpo.kl-coef", "-1"])
    assert "--grpo.kl-coef: Input should be greater than or equal to 0" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_flags_override_the_config_file(tmp_path: Path, suffix: str) -> None:
    data = {"steps": 7, "group_size": 2, "batch_size": 4, "grpo": {"lr": 0.5}, "warmup": {"examples": 3}}
    path = tmp_path / f"run{suffix}"
    path.write_text(json.dumps(data))  # JSON is YAML too
    config, resume = parse_args(["--config", str(path), "--steps", "9", "--grpo.lr", "0.25", "--no-warmup.enabled"])
    assert (config.steps, config.group_size, config.batch_size) == (9, 2, 4)
    assert config.grpo.lr == 0.25 and config.warmup.examples == 3 and not config.warmup.enabled
    assert resume is None


class ShortHorizonPPO(PPOLearner):
    """A user's PPO subclass, named by module:Class."""


def test_any_learner_that_takes_ppo_settings_gets_them(policy: Policy) -> None:
    config = TrainConfig(algo=f"{__name__}:ShortHorizonPPO", ppo=PPOConfig(gamma=0.5, lam=0.9))
    learner = build_learner(config, policy)
    assert isinstance(learner, ShortHorizonPPO) and (learner.ppo.gamma, learner.ppo.lam) == (0.5, 0.9)
    assert not hasattr(build_learner(TrainConfig(algo="rloo"), policy), "ppo")  # RLOO takes none


def test_learners_by_name_or_import_path() -> None:
    from agents.learners.grpo import GRPOLearner
    from agents.learners.rloo import RLOOLearner

    assert learner_class("grpo") is GRPOLearner and learner_class("agents.learners.rloo:RLOOLearner") is RLOOLearner
    with pytest.raises(ValidationError, match="unknown algo 'ppo2'"):
        TrainConfig(algo="ppo2")
    with pytest.raises(ValueError, match="cannot load learner"):
        learner_class("agents.learners.rloo:Missing")


def field_flags(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The flag every field of `model` should have, nested models' fields dotted."""
    names = []
    for name, field in model.model_fields.items():
        flag = prefix + name.replace("_", "-")
        nested = [t for t in (field.annotation, *typing.get_args(field.annotation)) if isinstance(t, type)]
        models = [t for t in nested if issubclass(t, BaseModel)]
        names += field_flags(models[0], flag + ".") if models else [flag]
    return names


def test_every_train_config_field_has_a_flag_with_its_description() -> None:
    actions = {option: action for action in build_parser()._actions for option in action.option_strings}
    expected = field_flags(TrainConfig)
    assert len(expected) > 60 and "grpo.kl-coef" in expected and "policy.lora.rank" in expected
    for flag in expected:
        assert f"--{flag}" in actions, f"TrainConfig's {flag} has no flag"
        assert meaning(actions[f"--{flag}"].help or ""), f"--{flag} has no description"
