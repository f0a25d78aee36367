"""The main job's configuration: one pydantic model, read from a YAML or JSON file, with command-line flags on top
(every field is a flag: `agents/grpo_train.py --help`)."""

from __future__ import annotations

import importlib
import inspect
import itertools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.learners.grpo import GRPOConfig
from agents.learners.ppo import PPOConfig
from agents.learners.warmup import WarmupConfig
from agents.policy import Policy, PolicyConfig
from agents.protocols import MAX_NEW_TOKENS, Learner
from agents.sampling import SamplerName
from agents.vllm_sampler import VLLMConfig
from toolrl_env.cli import described
from toolrl_env.rewards import PRESETS, RewardConfig

# What the main job trains on when only the env id is given (README and benchmarks/RESULTS.md: its time and memory):
# on BFCL, the single-turn call shapes (one call, one of several tools, several calls, both) and the no-call case.
BFCL_TRAIN_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]
DEFAULT_ENV_KWARGS: dict[str, dict[str, Any]] = {
    "ToolEnv-BFCL-v0": {"category": BFCL_TRAIN_CATEGORIES},
    "ToolEnv-BFCLMultiTurn-v0": {"category": "multi_turn_base"},
}
# What it evaluates on then: the held-out tasks of the training categories, plus live_simple (user-contributed
# single calls), which it never trains on.
DEFAULT_EVAL_ENV_KWARGS: dict[str, dict[str, Any]] = {
    "ToolEnv-BFCL-v0": {"category": [*BFCL_TRAIN_CATEGORIES, "live_simple"]},
}


# Learners by name; any other `module:Class` implementing agents.protocols.Learner works too.
LEARNERS = {
    "grpo": "agents.learners.grpo:GRPOLearner",
    "rloo": "agents.learners.rloo:RLOOLearner",
    "ppo": "agents.learners.ppo:PPOLearner",
}


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

    env: str = Field(default="ToolEnv-BFCL-v0", description=described("env"))
    env_kwargs: dict[str, Any] | None = Field(
        default=None,
        description=described(
            "env_kwargs",
            "None: DEFAULT_ENV_KWARGS for the id. Where the env takes `split`, training uses split='train' and "
            "evaluation split='test' (so `split` is not given here), and the reward is reward_preset / reward.",
        ),
    )
    eval_env_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="The held-out evaluation env's kwargs (its split is 'test' and its reward the training one's); "
        "None: DEFAULT_EVAL_ENV_KWARGS for the id when env_kwargs is None too, else env_kwargs.",
    )
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="The model and where it runs.")
    algo: str = Field(
        default="grpo",
        description=described(
            "algo",
            "'grpo', 'rloo', 'ppo', or 'module:Class' for your own (built as Class(policy, grpo), plus "
            "ppo=... when its constructor takes a `ppo` argument).",
        ),
    )
    grpo: GRPOConfig = Field(
        default_factory=GRPOConfig, description="Policy-update settings (RLOO and PPO use them too)."
    )
    ppo: PPOConfig = Field(
        default_factory=PPOConfig, description="The critic's settings, for learners that take them (--algo ppo)."
    )
    warmup: WarmupConfig = Field(default_factory=WarmupConfig, description="The supervised warm-up stage.")
    steps: int = Field(default=4, ge=0, description=described("steps"))
    group_size: int = Field(default=4, ge=2, description=described("group_size"))
    batch_size: int = Field(default=8, ge=2, description=described("batch_size"))
    reward_preset: str = Field(
        default="default", description="The env's reward: a preset name (toolrl_env.rewards.PRESETS)."
    )
    reward: RewardConfig | None = Field(
        default=None,
        description="A reward of your own: reward_preset's fields with these changed (e.g. "
        "--reward.two-stage-step 8); None: the preset as it is.",
    )
    max_new_tokens: int = Field(default=MAX_NEW_TOKENS, gt=0, description=described("max_new_tokens"))
    temperature: float = Field(
        default=1.0, gt=0, description=described("temperature", "This is training's, so above 0.")
    )
    seed: int = Field(default=0, description=described("seed", "Here: task order, sampling and the warm-up."))
    eval_limit: int | None = Field(
        default=48,
        ge=0,
        description=described("eval_limit", "0: no evaluation; 48: 8 per category of the default job."),
    )
    eval_after_warmup: bool = Field(
        default=False,
        description="Evaluate between the warm-up and the first learner step too (one more evaluation's time; "
        "benchmarks/learning.py measures what each stage adds).",
    )
    eval_batch_size: int = Field(default=24, ge=1, description=described("eval_batch_size"))
    sampler: SamplerName = Field(default="auto", description=described("sampler"))
    vllm: VLLMConfig = Field(
        default_factory=VLLMConfig, description="The vLLM engine's settings, when the sampler is vllm."
    )
    resample_rounds: int = Field(
        default=0,
        ge=0,
        description="DAPO's dynamic sampling: a step's groups whose rewards are all equal (no signal for GRPO) are "
        "dropped and replaced by groups of fresh training tasks, in up to this many extra rollout rounds; the share "
        "dropped is logged as rollout/dropped_groups_frac. 0: off.",
    )
    eval_every: int = Field(default=0, ge=0, description="Evaluate every this many steps (0: before and after only).")
    save_every: int = Field(
        default=10,
        ge=0,
        description="Checkpoint every this many steps, and always after the last (0: after the last only); a crash "
        "loses at most this many steps.",
    )
    keep_checkpoints: int = Field(
        default=2,
        ge=1,
        description="The newest checkpoints kept (older ones are deleted after each save): a bound on disk use, "
        "with one checkpoint to fall back on besides the newest.",
    )
    output_dir: Path | None = Field(default=None, description=described("output_dir", "None: runs/<env>-<time>."))

    @model_validator(mode="before")
    @classmethod
    def _reward_fields(cls, data: Any) -> Any:
        """`reward` given as fields changes the preset's; an older config's `reward_preset: {fields}` is a reward."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("reward_preset"), dict | RewardConfig):
            data["reward"], data["reward_preset"] = data["reward_preset"], "default"
        preset = data.get("reward_preset", "default")
        if isinstance(data.get("reward"), dict) and preset in PRESETS:
            data["reward"] = {**PRESETS[preset].model_dump(), **data["reward"]}
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.reward_preset not in PRESETS:
            raise ValueError(f"unknown reward preset {self.reward_preset!r}; presets: {', '.join(PRESETS)}")
        if self.algo not in LEARNERS and ":" not in self.algo:
            raise ValueError(f"unknown algo {self.algo!r}; use one of {', '.join(LEARNERS)} or 'module:Class'")
        if self.batch_size % self.group_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of group_size ({self.group_size}); "
                f"try --batch-size {self.group_size * max(1, round(self.batch_size / self.group_size))}"
            )
        for (field, kwargs), (key, instead) in itertools.product(
            (("env_kwargs", self.env_kwargs), ("eval_env_kwargs", self.eval_env_kwargs)),
            (("reward", "--reward-preset NAME or --reward.<field> VALUE"), ("split", None)),
        ):
            if key in (kwargs or {}):
                raise ValueError(
                    f"{field} may not set {key!r}: "
                    + (
                        f"give the reward with {instead}"
                        if instead
                        else "the main job trains on split='train' and evaluates on split='test' wherever the env "
                        "takes a split"
                    )
                )
        return self

    def resolved_env_kwargs(self) -> dict[str, Any]:
        """The env's kwargs: env_kwargs (or the id's defaults) with the configured reward."""
        base = DEFAULT_ENV_KWARGS.get(self.env, {}) if self.env_kwargs is None else self.env_kwargs
        return {**base, "reward": self.reward if self.reward is not None else self.reward_preset}

    def resolved_eval_env_kwargs(self) -> dict[str, Any]:
        """The evaluation env's kwargs: eval_env_kwargs, or the id's evaluation defaults, or the training env's."""
        if self.eval_env_kwargs is not None:
            base = self.eval_env_kwargs
        elif self.env_kwargs is None and self.env in DEFAULT_EVAL_ENV_KWARGS:
            base = DEFAULT_EVAL_ENV_KWARGS[self.env]
        else:
            base = self.resolved_env_kwargs()
        return {**base, "reward": self.resolved_env_kwargs()["reward"]}


def build_learner(config: TrainConfig, policy: Policy) -> Learner:
    """The configured learner over `policy`, given the critic's settings too when its constructor takes `ppo`."""
    cls = learner_class(config.algo)
    takes_ppo = "ppo" in inspect.signature(cls).parameters
    learner: Learner = cls(policy, config.grpo, ppo=config.ppo) if takes_ppo else cls(policy, config.grpo)
    return learner
