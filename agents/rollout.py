"""Rollouts: groups of episodes through any registered env id, in lockstep, with batched generation.

Every live episode's next turn is generated in one sampler call. An episode is one token sequence: the
first observation rendered with the policy's chat template, then each model turn (trained: action mask 1)
followed by the tokens of what the env added to the dialogue after it (the `<obs>` tool results and any
next user message: action mask 0, so they get no loss). The env itself scores every turn and gives the
episode's metrics at its end; the agent never computes a reward. `dynamic_sampling` (DAPO's) replaces the
groups of a step that carry no learning signal with fresh ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field

from agents.policy import Policy
from agents.protocols import Episode, Sampler, SamplingParams
from toolrl_env.prompt import added_text


class RolloutConfig(BaseModel):
    """Limits of one rollout."""

    model_config = ConfigDict(extra="forbid")

    max_sequence_tokens: int = Field(
        default=4096,
        gt=0,
        description="An episode whose tokens would pass this is cut (truncated) before its next turn.",
    )


class _Live:
    """An episode in progress."""

    def __init__(self, env: gym.Env[Any, Any], task_id: str, group: int, prompt: list[int], user_text: str):
        self.env, self.task_id, self.group = env, task_id, group
        self.token_ids = list(prompt)
        self.prompt_length = len(prompt)
        self.action_mask = [0] * len(prompt)
        self.logprobs = [0.0] * len(prompt)
        self.user_text = user_text
        self.rewards: list[float] = []
        self.turn_ends: list[int] = []
        self.components: list[dict[str, float]] = []
        self.tool_calls = self.tool_failures = 0
        self.metrics: dict[str, Any] = {}
        self.truncated = False

    def episode(self) -> Episode:
        return Episode(
            task_id=self.task_id,
            group=self.group,
            token_ids=self.token_ids,
            prompt_length=self.prompt_length,
            action_mask=self.action_mask,
            sampling_logprobs=self.logprobs,
            step_rewards=self.rewards,
            turn_ends=self.turn_ends,
            reward_components=self.components,
            metrics=self.metrics,
            tool_calls=self.tool_calls,
            tool_failures=self.tool_failures,
            truncated=self.truncated,
        )


def rollout(
    envs: Sequence[gym.Env[Any, Any]],
    task_ids: Sequence[str],
    group_size: int,
    policy: Policy,
    sampler: Sampler,
    params: SamplingParams,
    config: RolloutConfig | None = None,
    seed: int = 0,
    training_step: int = 0,
) -> list[Episode]:
    """Run `group_size` episodes of each task (episode i of task g on `envs[g * group_size + i]`) to their end.

    Episodes come back in order, grouped by task. The envs must be ToolEnv ids (observation = chat messages).
    """
    config = config or RolloutConfig()
    if len(envs) < len(task_ids) * group_size:
        raise ValueError(
            f"need {len(task_ids) * group_size} envs for {len(task_ids)} tasks x {group_size}, got {len(envs)}"
        )
    episodes: list[_Live] = []
    for group, task_id in enumerate(task_ids):
        for i in range(group_size):
            env = envs[group * group_size + i]
            obs, _ = env.reset(
                seed=seed + group * group_size + i, options={"task_id": task_id, "training_step": training_step}
            )
            episodes.append(_Live(env, task_id, group, policy.prompt_ids(obs), obs[-1]["content"]))
    live = list(episodes)
    while live:
        samples = sampler.generate([e.token_ids for e in live], params)
        still_live = []
        for episode, sample in zip(live, samples, strict=True):
            episode.token_ids += sample.token_ids
            episode.action_mask += [1] * len(sample.token_ids)
            episode.logprobs += sample.logprobs
            episode.turn_ends.append(len(episode.token_ids) - 1)
            obs, reward, terminated, truncated, info = episode.env.step(sample.text)
            episode.rewards.append(float(reward))
            episode.components.append({k: float(v) for k, v in info["reward_breakdown"].items()})
            episode.tool_calls += len(info["parsed"]["tool_calls"])
            episode.tool_failures += len(info["call_errors"])
            if terminated or truncated:
                episode.metrics, episode.truncated = info["metrics"], truncated
                continue
            text = added_text(episode.user_text, obs[-1]["content"], sample.text)
            episode.user_text = obs[-1]["content"]
            added = policy.text_ids(text)
            if len(episode.token_ids) + len(added) + params.max_new_tokens > config.max_sequence_tokens:
                episode.truncated = True
                continue
            episode.token_ids += added
            episode.action_mask += [0] * len(added)
            episode.logprobs += [0.0] * len(added)
            still_live.append(episode)
        live = still_live
    return [e.episode() for e in episodes]


def dynamic_sampling(
    first: list[Episode], more: Callable[[int, int], list[Episode]], max_rounds: int
) -> tuple[list[Episode], dict[str, float]]:
    """DAPO's dynamic sampling: `first`'s groups whose rewards are all equal (no GRPO signal) are dropped and
    replaced by the informative groups of `more(round, n)`, a rollout of n fresh tasks, for up to `max_rounds`
    rounds, until there are as many groups as `first` had. Groups come back renumbered from 0; if none was
    informative, `first` comes back as it was. Also returns `rollout/dropped_groups_frac` (of all groups sampled)
    and `rollout/resample_rounds`."""
    wanted = len({e.group for e in first})
    kept = _informative(first)
    sampled, rounds = wanted, 0
    while len(kept) < wanted and rounds < max_rounds:
        rounds += 1
        fresh = more(rounds, wanted - len(kept))
        if not fresh:
            break  # no fresh tasks left
        sampled += len({e.group for e in fresh})
        kept += _informative(fresh)
    metrics = {"rollout/dropped_groups_frac": 1 - len(kept) / sampled, "rollout/resample_rounds": float(rounds)}
    if not kept:
        return first, metrics
    episodes = [e.model_copy(update={"group": index}) for index, group in enumerate(kept) for e in group]
    return episodes, metrics


def _informative(episodes: list[Episode]) -> list[list[Episode]]:
    """The groups (in order) whose episodes' rewards are not all equal."""
    groups: dict[int, list[Episode]] = {}
    for episode in episodes:
        groups.setdefault(episode.group, []).append(episode)
    return [group for group in groups.values() if len({e.reward for e in group}) > 1]
