"""Stable-Baselines3 on a ToolEnv seen through `DiscreteToolChoice`: train, evaluate on held-out tasks, plot.

The agent picks one of K candidate completions per step (the gold and K - 1 distractors) from a hashed
featurisation of the request and the candidates; the reward is ToolRL's, from the wrapped env. Success is
choosing the gold: a uniform random policy succeeds 1/K of the time.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

import toolrl_env  # noqa: F401  (registers the env ids)
from toolrl_env.cli import described
from toolrl_env.env import ToolEnv
from toolrl_env.registry import takes_split
from toolrl_env.wrappers import DiscreteToolChoice

Algo = Literal["PPO", "A2C", "DQN"]
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"PPO": PPO, "A2C": A2C, "DQN": DQN}
# Settings chosen on ToolEnv-Calc-v0 (K=4) for runs of a few minutes. Each step is scored on its own against
# its gold, so a choice's reward arrives at once; a short horizon (gamma 0.5) keeps the returns' variance low.
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "PPO": {"n_steps": 256, "batch_size": 64, "learning_rate": 1e-3, "gamma": 0.5},
    "A2C": {"n_steps": 32, "learning_rate": 1e-3, "gamma": 0.5, "ent_coef": 0.01},
    "DQN": {
        "buffer_size": 50_000,  # SB3's 1M would reserve about 1.2 GB of observations for a run of minutes
        "learning_starts": 500,
        "exploration_fraction": 0.2,
        "target_update_interval": 250,
        "learning_rate": 1e-3,
        "gamma": 0.5,
    },
}


class SB3TrainConfig(BaseModel):
    """One SB3 run on the discrete tool-choice view of a ToolEnv id."""

    model_config = ConfigDict(extra="forbid")

    algo: Algo = Field(default="PPO", description=described("algo", "A Stable-Baselines3 algorithm."))
    env: str = Field(default="ToolEnv-Calc-v0", description=described("env"))
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=described(
            "env_kwargs",
            "Both envs get them; `split` is set to train / test when the id takes one (otherwise evaluation uses "
            "the training tasks).",
        ),
    )
    total_timesteps: int = Field(
        default=20_000, gt=0, description="Environment steps (decisions) to train for (SB3's total_timesteps)."
    )
    num_candidates: int = Field(default=4, ge=2, description="K: candidates per decision; chance is 1/K.")
    seed: int = Field(default=0, description=described("seed", "Here: the algorithm, the envs and evaluation."))
    eval_freq: int = Field(
        default=2_000, gt=0, description="Environment steps between held-out evaluations (SB3's eval_freq)."
    )
    n_eval_episodes: int = Field(
        default=100, gt=0, description="Held-out tasks per evaluation, one episode each (SB3's n_eval_episodes)."
    )
    algo_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Constructor arguments of the algorithm, over ALGO_DEFAULTS."
    )
    torch_threads: int = Field(default=1, gt=0, description="Torch CPU threads: small MLPs run fastest on one.")
    output_dir: Path | None = Field(
        default=None, description=described("output_dir", "None: runs/sb3-<algo>-<env>-<time>.")
    )


class Predictor(Protocol):
    """What evaluation needs of a model: SB3's `predict`."""

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[Any, Any]: ...


def make_choice_env(
    env_id: str, split: str | None, num_candidates: int, env_kwargs: dict[str, Any] | None = None
) -> DiscreteToolChoice:
    """`DiscreteToolChoice` over `gymnasium.make(env_id)`, on `split` when the id takes one."""
    kwargs = dict(env_kwargs or {})
    if split is not None and takes_split(env_id):
        kwargs["split"] = split
    return DiscreteToolChoice(gym.make(env_id, **kwargs), num_candidates=num_candidates)


def evaluate_choices(
    model: Predictor, env: DiscreteToolChoice, task_ids: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """One greedy episode per task: the share of decisions (and of whole episodes) that chose the gold."""
    decisions = hits = perfect = 0
    returns = []
    for i, task_id in enumerate(task_ids):
        observation, _ = env.reset(seed=seed + i, options={"task_id": task_id})
        done, all_gold, episode_return = False, True, 0.0
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, info = env.step(int(action))
            decisions += 1
            hits += info["chose_gold"]
            all_gold &= info["chose_gold"]
            episode_return += reward
            done = terminated or truncated
        perfect += all_gold
        returns.append(episode_return)
    return {
        "eval/success_rate": hits / max(decisions, 1),
        "eval/episode_success_rate": perfect / max(len(task_ids), 1),
        "eval/return_mean": float(np.mean(returns)) if returns else 0.0,
        "eval/decisions": float(decisions),
    }


class HeldOutEvaluation(BaseCallback):
    """Evaluates on held-out tasks at the start and every `every` steps, collecting one record each time."""

    def __init__(self, env: DiscreteToolChoice, task_ids: Sequence[str], every: int, seed: int) -> None:
        super().__init__()
        self.env, self.task_ids, self.every, self.seed = env, list(task_ids), every, seed
        self.records: list[dict[str, float]] = []
        self.started = time.perf_counter()
        self.eval_s = 0.0

    def evaluate(self) -> None:
        start = time.perf_counter()
        record: dict[str, float] = {"step": float(self.num_timesteps)}
        record.update(evaluate_choices(self.model, self.env, self.task_ids, self.seed))
        self.eval_s += time.perf_counter() - start
        record["perf/train_s"] = time.perf_counter() - self.started - self.eval_s
        self.records.append(record)

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()
        self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.records[-1]["step"] != self.num_timesteps:
            self.evaluate()


class SB3Result(BaseModel):
    """What a run produced."""

    output_dir: Path = Field(description="The run folder.")
    chance: float = Field(description="Success rate of a uniform random choice, 1/K.")
    curve: list[dict[str, float]] = Field(description="One record per evaluation: step, eval/*, perf/train_s.")
    wall_s: float = Field(description="Wall time of the whole run, evaluations included.")


def train(config: SB3TrainConfig) -> SB3Result:
    """Train, evaluating on held-out tasks along the way; write config.json, curve.csv, curve.json, curve.png."""
    started = time.perf_counter()
    torch.set_num_threads(config.torch_threads)
    out = config.output_dir or Path("runs") / f"sb3-{config.algo}-{config.env}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
    env = make_choice_env(config.env, "train", config.num_candidates, config.env_kwargs)
    eval_env = make_choice_env(config.env, "test", config.num_candidates, config.env_kwargs)
    tool_env = eval_env.unwrapped
    assert isinstance(tool_env, ToolEnv)
    task_ids = [t.id for t in tool_env.tasks[: config.n_eval_episodes]]
    kwargs = {**ALGO_DEFAULTS[config.algo], **config.algo_kwargs}
    model = ALGORITHMS[config.algo]("MlpPolicy", env, seed=config.seed, device="cpu", verbose=0, **kwargs)
    callback = HeldOutEvaluation(eval_env, task_ids, config.eval_freq, config.seed)
    model.learn(config.total_timesteps, callback=callback)
    chance = 1 / config.num_candidates
    write_curve(callback.records, out, chance, f"{config.algo} on {config.env}, K={config.num_candidates}")
    return SB3Result(output_dir=out, chance=chance, curve=callback.records, wall_s=time.perf_counter() - started)


def write_curve(records: Sequence[dict[str, float]], out: Path, chance: float, title: str) -> None:
    """curve.json, curve.csv and curve.png (held-out success rate per training step, chance drawn as a line)."""
    (out / "curve.json").write_text(json.dumps({"chance": chance, "records": list(records)}, indent=2) + "\n")
    with (out / "curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in records]
    axis.plot(steps, [r["eval/success_rate"] for r in records], marker="o", ms=3, label="chose the gold (per step)")
    axis.plot(steps, [r["eval/episode_success_rate"] for r in records], marker="s", ms=3, label="whole episode gold")
    axis.axhline(chance, color="grey", linestyle="--", label=f"chance (1/{round(1 / chance)})")
    axis.set_ylim(0, 1)
    axis.set_xlabel("training steps")
    axis.set_ylabel("held-out success rate")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "curve.png", dpi=120)
    plt.close(figure)


def curve_table(result: SB3Result) -> str:
    """The curve as a Markdown table."""
    lines = [
        "| step | success rate | episode success | mean return | train s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result.curve:
        lines.append(
            f"| {int(r['step'])} | {r['eval/success_rate']:.3f} | {r['eval/episode_success_rate']:.3f} "
            f"| {r['eval/return_mean']:.2f} | {r['perf/train_s']:.1f} |"
        )
    return "\n".join(lines)
