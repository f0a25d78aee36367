"""Score a policy on an env's tasks: one greedy episode per task, the env's own metrics, averaged; and what
`agents/evaluate.py` scores (`EvalConfig`)."""

from __future__ import annotations

import itertools
import math
import pickle
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliSuppress

from agents.evaluation.tables import TaskResult
from agents.policy import Policy, PolicyConfig
from agents.protocols import MAX_NEW_TOKENS, Episode, Sampler, SamplingParams
from agents.rollout import RolloutConfig, rollout
from agents.sampling import SamplerName
from agents.vllm_sampler import VLLMConfig
from toolrl_env.cli import described
from toolrl_env.env import ToolEnv
from toolrl_env.registry import make_tool_env as make_tool_env  # re-exported: scripts import both from here
from toolrl_env.registry import takes_split as takes_split


class EnvSpec(BaseModel):
    """One env to evaluate on."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description=described("env"))
    kwargs: dict[str, Any] = Field(default_factory=dict, description=described("env_kwargs"))


class EvalConfig(BaseModel):
    """What `agents/evaluate.py` scores, and how."""

    model_config = ConfigDict(extra="forbid")

    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="The model and where it runs.")
    envs: CliSuppress[list[EnvSpec]] = Field(min_length=1, description="The envs, from --env / --env-kwargs.")
    tasks_per_category: int | None = Field(
        default=None, ge=1, description=described("tasks_per_category", "None: all tasks.")
    )
    eval_batch_size: int = Field(default=16, ge=1, description=described("eval_batch_size"))
    sampler: SamplerName = Field(default="auto", description=described("sampler"))
    vllm: VLLMConfig = Field(
        default_factory=VLLMConfig, description="The vLLM engine's settings, when the sampler is vllm."
    )
    max_new_tokens: int = Field(default=MAX_NEW_TOKENS, ge=1, description=described("max_new_tokens"))
    temperature: float = Field(default=0.0, ge=0, description=described("temperature"))
    seed: int = Field(default=0, description=described("seed", "Here: sampling, when temperature > 0."))
    output_dir: Path | None = Field(default=None, description=described("output_dir", "None: evals/<model>-<time>."))


def summarise(episodes: Sequence[Episode]) -> dict[str, float]:
    """Mean return, mean of each numeric episode metric (`env/<name>`), tool calls per episode, and the share of
    calls that failed (`tools/failure_frequency`, TRL's metric: failed calls over calls, 0 without calls)."""
    summary: dict[str, float] = {"reward": sum(e.reward for e in episodes) / max(len(episodes), 1)}
    names = sorted({k for e in episodes for k, v in e.metrics.items() if isinstance(v, (bool, int, float))})
    for name in names:
        values = [float(e.metrics[name]) for e in episodes if isinstance(e.metrics.get(name), (bool, int, float))]
        if values and all(math.isfinite(v) for v in values):
            summary[f"env/{name}"] = sum(values) / len(values)
    calls = sum(e.tool_calls for e in episodes)
    summary["tools/calls_per_episode"] = calls / max(len(episodes), 1)
    summary["tools/failure_frequency"] = sum(e.tool_failures for e in episodes) / calls if calls else 0.0  # TRL's
    return summary


def evaluate(
    policy: Policy,
    sampler: Sampler,
    env: ToolEnv,
    task_ids: Sequence[str],
    max_new_tokens: int,
    batch_tasks: int = 16,
    temperature: float = 0.0,
    seed: int = 0,
    on_batch: Callable[[list[Episode]], None] | None = None,
) -> tuple[dict[str, float], list[Episode]]:
    """One episode of each task (greedy by default), `batch_tasks` at a time; the summary and every episode.
    `on_batch` gets each batch's episodes as soon as they finish (to save or show progress)."""
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    envs = [env] + [make_tool_env_like(env) for _ in range(min(batch_tasks, len(task_ids)) - 1)]
    episodes: list[Episode] = []
    for start in range(0, len(task_ids), batch_tasks):
        chunk = list(task_ids[start : start + batch_tasks])
        done = rollout(envs, chunk, 1, policy, sampler, params, RolloutConfig(), seed=seed + start)
        episodes += done
        if on_batch is not None:
            on_batch(done)
    return summarise(episodes), episodes


def make_tool_env_like(env: ToolEnv) -> ToolEnv:
    """Another env over the same tasks and settings (tool suites deep-copied by pickling)."""
    return pickle.loads(pickle.dumps(env))


def task_group(env: ToolEnv, task_id: str) -> str | None:
    """The task's category (BFCL) or level (API-Bank) from its metadata, if it has one."""
    metadata = env.task(task_id).metadata
    group = metadata.get("category", metadata.get("level"))
    return None if group is None else str(group)


def select_tasks(env: ToolEnv, limit: int | None) -> list[str]:
    """All task ids (sorted), or the first `limit` of each category or level (`task_group`)."""
    ids = sorted(t.id for t in env.tasks)
    if limit is None:
        return ids
    taken: dict[str | None, int] = defaultdict(int)
    chosen = []
    for task_id in ids:
        group = task_group(env, task_id)
        if taken[group] < limit:
            taken[group] += 1
            chosen.append(task_id)
    return chosen


def task_result(episode: Episode, env_id: str, env_kwargs: dict[str, Any], env: ToolEnv, policy: Policy) -> TaskResult:
    """An episode as a `TaskResult`: its metrics, return, and each model turn decoded."""
    turns = [
        [token for token, _ in run]
        for trained, run in itertools.groupby(zip(episode.token_ids, episode.action_mask, strict=True), lambda p: p[1])
        if trained
    ]
    return TaskResult(
        env=env_id,
        env_kwargs=env_kwargs,
        task_id=episode.task_id,
        group=task_group(env, episode.task_id),
        reward=episode.reward,
        tool_calls=episode.tool_calls,
        truncated=episode.truncated,
        metrics={k: v for k, v in episode.metrics.items() if isinstance(v, (bool, int, float, str))},
        completions=[str(policy.tokenizer.decode(turn)) for turn in turns],
    )


def evaluation_ids(env: ToolEnv, limit: int | None) -> list[str]:
    """A fixed evaluation set: `limit` task ids spread evenly over the env's categories or levels (`task_group`),
    the first of each category in id order, then the second of each, and so on; sorted. All ids when None. For an
    env without categories, the first `limit` ids."""
    by_group: dict[str | None, list[str]] = defaultdict(list)
    for task_id in sorted(t.id for t in env.tasks):
        by_group[task_group(env, task_id)].append(task_id)
    spread = [task for rank in itertools.zip_longest(*by_group.values()) for task in rank if task is not None]
    return sorted(spread if limit is None else spread[:limit])


def table(rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one column per row name (e.g. before / after), one line per metric."""
    names = list(rows)
    metrics = sorted({m for r in rows.values() for m in r})
    lines = ["| metric | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for metric in metrics:
        cells = [f"{rows[n][metric]:.3f}" if metric in rows[n] else "—" for n in names]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
