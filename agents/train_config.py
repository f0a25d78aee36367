"""The main job's configuration: one pydantic model, read from a YAML or JSON file, with command-line flags on top."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.grpo import GRPOConfig
from agents.policy import Policy, PolicyConfig
from agents.ppo import PPOConfig
from agents.protocols import Learner
from agents.warmup import WarmupConfig
from toolrl_env.rewards import PRESETS, RewardConfig

# What the main job trains on when only the env id is given: small enough for a 2-core CPU in 20 minutes.
DEFAULT_ENV_KWARGS: dict[str, dict[str, Any]] = {
    "ToolEnv-BFCL-v0": {"category": "simple_python"},
    "ToolEnv-BFCLMultiTurn-v0": {"category": "multi_turn_base"},
}


# Learners by name; any other `module:Class` implementing agents.protocols.Learner works too.
LEARNERS = {"grpo": "agents.grpo:GRPOLearner", "rloo": "agents.rloo:RLOOLearner", "ppo": "agents.ppo:PPOLearner"}


def learner_class(algo: str) -> Any:
    """The learner class for a name in LEARNERS or a 'module:Class' path."""
    module, _, name = LEARNERS.get(algo, algo).partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load learner {algo!r}: {exc}") from None


class TrainConfig(BaseModel):
    """Everything `agents/grpo_train.py` does. Flags override the file given with --config."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(default="ToolEnv-BFCL-v0", description="A registered ToolEnv id.")
    env_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="Kwargs for the env (None: DEFAULT_ENV_KWARGS for the id). Where the env takes `split`, "
        "training uses split='train' and evaluation split='test'.",
    )
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="The model and where it runs.")
    algo: str = Field(
        default="grpo",
        description="The learner: 'grpo', 'rloo', 'ppo', or 'module:Class' for your own (built as "
        "Class(policy, grpo)).",
    )
    grpo: GRPOConfig = Field(
        default_factory=GRPOConfig, description="Policy-update settings (RLOO and PPO use them too)."
    )
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="The critic's settings, used by --algo ppo.")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig, description="The supervised warm-up stage.")
    steps: int = Field(
        default=16,
        ge=0,
        description="GRPO steps (one rollout batch and its updates each). 16, 48 warm-up demonstrations and 40 "
        "held-out tasks keep the default run within 20 minutes on a 2-core CPU without bf16 units.",
    )
    group_size: int = Field(default=4, ge=2, description="Episodes per task (G); advantages are relative within it.")
    batch_size: int = Field(default=8, ge=2, description="Episodes per step; a multiple of group_size.")
    reward_preset: str | RewardConfig = Field(
        default="default",
        description="The env's reward: a preset name (toolrl_env.rewards.PRESETS) or a RewardConfig's fields.",
    )
    max_new_tokens: int = Field(default=96, gt=0, description="Most tokens per model turn.")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature while training.")
    seed: int = Field(default=0, description="Seeds task order, sampling and the warm-up.")
    eval_limit: int | None = Field(
        default=40, ge=0, description="Held-out tasks evaluated, the first in id order (None: all; 0: none)."
    )
    eval_every: int = Field(default=0, ge=0, description="Evaluate every this many steps (0: before and after only).")
    save_every: int = Field(
        default=10,
        ge=0,
        description="Checkpoint every this many steps, and always after the last (0: after the last only). A crash "
        "then loses at most this many steps (about 5 minutes of the default run). A checkpoint of the embedded "
        "model (weights and AdamW state, 1.6 GB) took 8-17 s to write and fsync on a busy 2-core CPU machine "
        "(benchmarks/bench_checkpoint.py), so the default's one extra save costs the run about 1%.",
    )
    keep_checkpoints: int = Field(
        default=2,
        ge=1,
        description="The newest checkpoints kept (older ones are deleted after each save): a bound on disk use "
        "(3.2 GB for the embedded model), with one checkpoint to fall back on besides the newest.",
    )
    output_dir: Path | None = Field(default=None, description="The run folder (None: runs/<env>-<time>).")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if isinstance(self.reward_preset, str) and self.reward_preset not in PRESETS:
            raise ValueError(f"unknown reward preset {self.reward_preset!r}; presets: {', '.join(PRESETS)}")
        if self.algo not in LEARNERS and ":" not in self.algo:
            raise ValueError(f"unknown algo {self.algo!r}; use one of {', '.join(LEARNERS)} or 'module:Class'")
        if self.batch_size % self.group_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of group_size ({self.group_size}); "
                f"try --batch-size {self.group_size * max(1, round(self.batch_size / self.group_size))}"
            )
        return self

    def resolved_env_kwargs(self) -> dict[str, Any]:
        base = DEFAULT_ENV_KWARGS.get(self.env, {}) if self.env_kwargs is None else self.env_kwargs
        return {**base, "reward": self.reward_preset}


def build_learner(config: TrainConfig, policy: Policy) -> Learner:
    """The configured learner over `policy`; PPO also gets the critic's settings."""
    cls = learner_class(config.algo)
    learner: Learner = cls(policy, config.grpo, config.ppo) if config.algo == "ppo" else cls(policy, config.grpo)
    return learner


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML (.yaml/.yml) or JSON file's mapping."""
    text = path.read_text()
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of TrainConfig fields, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied; nested mappings merge key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
