"""Rollouts: token bookkeeping (prompt, model turns, observation tokens), rewards from the env, groups."""

from __future__ import annotations

import gymnasium as gym
import pytest

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import make_tool_env, summarise
from agents.policy import Policy
from agents.protocols import Episode, Sample, SamplingParams
from agents.rollout import RolloutConfig, dynamic_sampling, rollout
from agents.sampling import HFSampler
from toolrl_env.env import ToolEnv
from toolrl_env.prompt import added_text


class GoldSampler:
    """Answers every turn with the gold completion of the env's current step (the text an expert would write),
    tokenized with the policy's tokenizer; a Sampler, so rollout's bookkeeping is checked on real episodes."""

    def __init__(self, policy: Policy, envs: list[ToolEnv]):
        self.policy, self.envs = policy, envs

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        texts = []
        for env in self.envs:
            try:
                texts.append(env.current_gold().text or "")
            except RuntimeError:  # ended (or never started): rollout sends no prompt for it
                continue
        assert len(texts) == len(prompts)
        samples = []
        for text in texts:
            ids = self.policy.text_ids(text)
            samples.append(Sample(token_ids=ids, logprobs=[-0.5] * len(ids), text=text, finish_reason="stop"))
        return samples

    def sync(self, model: object) -> None:
        pass

    def close(self) -> None:
        pass


def test_added_text_is_what_the_env_appended_after_the_action() -> None:
    before = "<user> hi </user>"
    action = "<think> x </think>\n<tool_call>\n{}\n</tool_call>"
    after = before + "\n\n" + action + "\n<obs> [1] </obs>"
    assert added_text(before, after, action + "\n\n") == "\n<obs> [1] </obs>"
    assert added_text(before, after, "not there") == "\n\n" + action + "\n<obs> [1] </obs>"


def test_multi_turn_episodes_append_observation_tokens_without_loss(policy: Policy) -> None:
    envs = [make_tool_env("ToolEnv-Calc-v0", num_tasks=20, seed=0) for _ in range(4)]
    task_ids = [envs[0].tasks[0].id, envs[0].tasks[1].id]
    episodes = rollout(envs, task_ids, 2, policy, GoldSampler(policy, envs), SamplingParams())
    assert [e.task_id for e in episodes] == [task_ids[0]] * 2 + [task_ids[1]] * 2
    assert [e.group for e in episodes] == [0, 0, 1, 1]
    for episode in episodes:
        n = len(episode.token_ids)
        assert len(episode.action_mask) == n == len(episode.sampling_logprobs)
        assert episode.action_mask[: episode.prompt_length] == [0] * episode.prompt_length
        assert len(episode.step_rewards) >= 2  # a call, its <obs>, then the answer
        assert episode.metrics["exact_match"] is True and episode.tool_calls >= 1
        assert episode.reward == pytest.approx(sum(episode.step_rewards))
        # Tokens after the prompt alternate: model turn (1), observation (0), model turn (1).
        runs = []
        for flag in episode.action_mask[episode.prompt_length :]:
            if not runs or runs[-1][0] != flag:
                runs.append([flag, 0])
            runs[-1][1] += 1
        assert [flag for flag, _ in runs] == [1, 0] * (len(episode.step_rewards) - 1) + [1]
        observation = [t for t, m in zip(episode.token_ids, episode.action_mask, strict=True) if m == 0]
        assert "<obs>" in policy.tokenizer.decode(observation[episode.prompt_length :])
        assert all(lp == 0.0 for lp, m in zip(episode.sampling_logprobs, episode.action_mask, strict=True) if not m)


def test_a_token_budget_truncates_an_episode_before_its_next_turn(policy: Policy) -> None:
    envs = [make_tool_env("ToolEnv-Calc-v0", num_tasks=20, seed=0)]
    config = RolloutConfig(max_sequence_tokens=len(policy.prompt_ids(envs[0].reset()[0])) + 120)
    task = next(t for t in envs[0].tasks if len(t.turns[0].steps) > 1)
    (episode,) = rollout(envs, [task.id], 1, policy, GoldSampler(policy, envs), SamplingParams(), config)
    assert episode.truncated and len(episode.step_rewards) == 1 and episode.metrics == {}


def test_sampled_single_turn_episodes_carry_the_sampler_tokens_and_the_env_reward(policy: Policy) -> None:
    envs = [make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="test") for _ in range(4)]
    ids = sorted(t.id for t in envs[0].tasks)[:2]
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=3)
    episodes = rollout(envs, ids, 2, policy, HFSampler(policy), params)
    for episode in episodes:
        generated = episode.token_ids[episode.prompt_length :]
        assert 0 < len(generated) <= 12 and all(episode.action_mask[episode.prompt_length :])
        assert len(episode.step_rewards) == 1 and "ast_match" in episode.metrics
        # A random model writes no TIR: ToolRL's reward gives it format 0 and the minimum correctness.
        assert episode.reward_components[0]["total"] == episode.reward == -3.0
    summary = summarise(episodes)
    assert summary["reward"] == -3.0 and summary["env/ast_match"] == 0.0


def test_too_few_envs_is_a_clear_error(policy: Policy) -> None:
    env = gym.make("ToolEnv-Calc-v0", num_tasks=5).unwrapped
    assert isinstance(env, ToolEnv)
    with pytest.raises(ValueError, match="need 4 envs"):
        rollout([env], [env.tasks[0].id, env.tasks[1].id], 2, policy, HFSampler(policy), SamplingParams())


def scored(task: str, group: int, rewards: list[float]) -> list[Episode]:
    """A group of one-token episodes with the given rewards."""
    return [
        Episode(task_id=task, group=group, token_ids=[1, 2], prompt_length=1, action_mask=[0, 1],
                sampling_logprobs=[0.0, -1.0], step_rewards=[r], reward_components=[{"total": r}])
        for r in rewards
    ]  # fmt: skip


def test_dynamic_sampling_replaces_groups_without_signal_by_fresh_informative_ones() -> None:
    first = scored("a", 0, [1, 1]) + scored("b", 1, [0, 2]) + scored("c", 2, [3, 3])
    asked: list[tuple[int, int]] = []

    def more(round_: int, count: int) -> list[Episode]:
        asked.append((round_, count))
        return scored("d", 0, [2, 2]) + scored("e", 1, [1, 0]) if round_ == 1 else scored("f", 0, [0, 1])

    episodes, metrics = dynamic_sampling(first, more, max_rounds=3)
    assert asked == [(1, 2), (2, 1)]  # two groups missing, then one
    assert [(e.task_id, e.group) for e in episodes] == [("b", 0), ("b", 0), ("e", 1), ("e", 1), ("f", 2), ("f", 2)]
    assert metrics == {"rollout/dropped_groups_frac": 3 / 6, "rollout/resample_rounds": 2.0}


def test_dynamic_sampling_stops_at_its_budget_or_when_tasks_run_out() -> None:
    flat = scored("a", 0, [1, 1]) + scored("b", 1, [0, 0])
    episodes, metrics = dynamic_sampling(flat, lambda round_, count: scored(f"n{round_}", 0, [5, 5]), max_rounds=2)
    assert episodes == flat and metrics == {"rollout/dropped_groups_frac": 1.0, "rollout/resample_rounds": 2.0}
    _, metrics = dynamic_sampling(flat, lambda round_, count: [], max_rounds=5)
    assert metrics["rollout/resample_rounds"] == 1.0  # asked once, nothing left to draw
