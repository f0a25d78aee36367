"""PPO: per-token rewards and GAE by hand, per-token advantages through GRPO's step, and the learner with its
critic on a tiny real Llama."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from agents.learners.grpo import GRPOConfig, policy_gradient_step
from agents.learners.ppo import PPOConfig, PPOLearner, gae, token_rewards
from agents.policy import Policy
from agents.protocols import Episode
from tests.agents.learners.test_grpo import PROMPT, assert_resumes_identically, batch, episode, sequence_logprob


def with_turns(ep: Episode, rewards: list[float] | None = None) -> Episode:
    """The episode with a turn end after each run of action tokens; the reward lands on the last turn unless
    `rewards` gives one per turn."""
    mask = ep.action_mask
    ends = [t for t in range(len(mask)) if mask[t] and (t + 1 == len(mask) or not mask[t + 1])]
    step_rewards = rewards if rewards is not None else [0.0] * (len(ends) - 1) + [ep.reward]
    return ep.model_copy(update={"turn_ends": ends, "step_rewards": step_rewards})


def ppo_batch(policy: Policy) -> list[Episode]:
    return [with_turns(e) for e in batch(policy)]


def test_step_rewards_land_on_each_turns_last_token() -> None:
    ep = Episode(
        task_id="t", group=0, token_ids=[1, 2, 3, 4, 5, 6], prompt_length=2, action_mask=[0, 0, 1, 1, 0, 1],
        sampling_logprobs=[0.0] * 6, step_rewards=[1.0, 2.0], reward_components=[{}, {}], turn_ends=[3, 5],
    )  # fmt: skip
    torch.testing.assert_close(token_rewards(ep), torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="2 step rewards but 1 turn ends"):
        token_rewards(ep.model_copy(update={"turn_ends": [5]}))


def test_gae_by_hand_steps_over_observation_tokens() -> None:
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 2.0])
    values = torch.tensor([9.0, 9.0, 0.5, 0.2, 9.0, 0.4])  # off-mask values must not matter
    mask = torch.tensor([0, 0, 1, 1, 0, 1], dtype=torch.bool)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # gamma = lambda = 1: advantage = reward-to-go - value
    torch.testing.assert_close(advantages, torch.tensor([0.0, 0.0, 2.5, 2.8, 0.0, 1.6]))
    torch.testing.assert_close(returns, torch.tensor([0.0, 0.0, 3.0, 3.0, 0.0, 2.0]))
    # gamma = lambda = 0.5: deltas 1.6, 1 + 0.5 * 0.4 - 0.2 = 1.0, 0.5 * 0.2 - 0.5 = -0.4
    advantages, _ = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    torch.testing.assert_close(advantages, torch.tensor([0.0, 0.0, -0.4 + 0.25 * 1.4, 1.0 + 0.25 * 1.6, 0.0, 1.6]))


def test_per_token_advantages_equal_to_per_episode_ones_give_the_same_step(policy: Policy) -> None:
    twin = Policy(copy.deepcopy(policy.model), policy.tokenizer)
    episodes = batch(policy)
    config = GRPOConfig(lr=1e-3, micro_batch_size=2)
    per_episode = torch.tensor([0.5, -1.0, 2.0, 0.25, -0.75])
    per_token = [torch.full((len(e.token_ids),), float(a)) for e, a in zip(episodes, per_episode, strict=True)]
    optimizers = [torch.optim.AdamW(p.model.parameters(), lr=config.lr) for p in (policy, twin)]
    first = policy_gradient_step(policy, optimizers[0], episodes, per_episode, config)
    second = policy_gradient_step(twin, optimizers[1], episodes, per_token, config)
    assert first == second
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, twin.model.state_dict()[name]), name


def test_ppo_raises_the_better_completion(policy: Policy) -> None:
    good = with_turns(episode(policy, [(PROMPT, False), ("<response>5</response>", True)], 1.0))
    bad = with_turns(episode(policy, [(PROMPT, False), ("<response>6</response>", True)], -1.0))
    before = [sequence_logprob(policy, e) for e in (good, bad)]
    metrics = PPOLearner(policy, GRPOConfig(lr=1e-3)).update([good, bad])
    after = [sequence_logprob(policy, e) for e in (good, bad)]
    assert after[0] > before[0] and after[1] < before[1]
    assert metrics["critic/value_mean"] == 0.0  # the value head starts at zero
    assert metrics["critic/return_mean"] == pytest.approx(0.0)  # as many +1 as -1 tokens


def test_the_critic_learns_the_returns(policy: Policy) -> None:
    other = "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    episodes = [
        with_turns(episode(policy, [(PROMPT, False), ("<response>5</response>", True)], 1.0, 0)),
        with_turns(episode(policy, [(other, False), ("<response>red</response>", True)], -1.0, 1)),
    ]
    learner = PPOLearner(policy, GRPOConfig(lr=1e-6), PPOConfig(critic_lr=1e-3, value_clip=10.0))
    first = learner.update(episodes)
    for _ in range(10):
        last = learner.update(episodes)
    assert first["losses/value"] == pytest.approx(0.5)  # 0.5 x (0 - (+-1))^2 on every model token
    assert last["losses/value"] < 0.25 * first["losses/value"]
    assert "critic/value_clip_frac" in last and last["critic/grad_norm"] > 0


def test_ppo_state_dict_round_trip_continues_identically(policy: Policy) -> None:
    config = GRPOConfig(lr=1e-3, epochs=2)
    learner, resumed = assert_resumes_identically(lambda p: PPOLearner(p, config), policy, ppo_batch(policy))
    assert isinstance(learner, PPOLearner) and isinstance(resumed, PPOLearner)
    for name, value in learner.critic.state_dict().items():
        assert torch.equal(value, resumed.critic.state_dict()[name]), name


def test_a_nan_reward_skips_the_policy_and_the_critic_step_leaving_both_untouched(policy: Policy) -> None:
    episodes = ppo_batch(policy)
    episodes[1] = episodes[1].model_copy(update={"step_rewards": [math.nan]})
    learner = PPOLearner(policy, GRPOConfig(lr=1e-3))
    weights = copy.deepcopy(policy.model.state_dict())
    critic = copy.deepcopy(learner.critic.state_dict())
    with pytest.warns(RuntimeWarning, match="skipped an optimiser step"):
        metrics = learner.update(episodes)
    assert metrics["losses/nonfinite_skipped"] == 1 and metrics["critic/nonfinite_skipped"] == 1
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    for name, value in learner.critic.state_dict().items():
        assert torch.equal(value, critic[name]), name
    assert learner.optimizer.state_dict()["state"] == learner.critic_optimizer.state_dict()["state"] == {}
    assert learner.update(ppo_batch(policy))["critic/nonfinite_skipped"] == 0
