"""RLOO: leave-one-out advantages by hand, and its learner is GRPO's step with those advantages."""

from __future__ import annotations

import copy

import pytest
import torch

from agents.learners.grpo import GRPOConfig, policy_gradient_step
from agents.learners.rloo import RLOOLearner, leave_one_out_advantages
from agents.policy import Policy
from agents.protocols import Episode

PROMPT = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"


def test_leave_one_out_advantages_by_hand() -> None:
    rewards = [1.0, 3.0, 0.0, 2.0, 0.0, 5.0, 4.0, 4.0]
    groups = [0, 1, 0, 2, 0, 1, 3, 3]
    # group 0: 1 - (0 + 0)/2, 0 - (1 + 0)/2 twice; group 1: 3 - 5, 5 - 3; group 2 alone; group 3 equal.
    expected = [1.0, -2.0, -0.5, 0.0, -0.5, 2.0, 0.0, 0.0]
    torch.testing.assert_close(leave_one_out_advantages(rewards, groups), torch.tensor(expected))


def test_rloo_learner_takes_grpos_step_with_leave_one_out_advantages(policy: Policy) -> None:
    ids = policy.text_ids(PROMPT)
    episodes = []
    for group, (answer, reward) in enumerate([("5", 1.0), ("6", 0.0), ("five", 0.5)]):
        tokens = ids + policy.text_ids(f"<response>{answer}</response>")
        mask = [0] * len(ids) + [1] * (len(tokens) - len(ids))
        episodes.append(
            Episode(
                task_id="add",
                group=group // 3,
                token_ids=tokens,
                prompt_length=len(ids),
                action_mask=mask,
                sampling_logprobs=[0.0] * len(tokens),
                step_rewards=[reward],
                reward_components=[{}],
            )
        )
    config = GRPOConfig(lr=1e-3)
    twin = Policy(copy.deepcopy(policy.model), policy.tokenizer)
    metrics = RLOOLearner(policy, config).update(episodes)
    advantages = torch.tensor([0.75, -0.75, 0.0])  # 1 - 0.25, 0 - 0.75, 0.5 - 0.5
    optimizer = torch.optim.AdamW(twin.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    policy_gradient_step(twin, optimizer, episodes, advantages, config)
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, twin.model.state_dict()[name]), name
    assert metrics["rollout/advantage_mean"] == pytest.approx(0.0)


def test_rloo_refuses_gdpos_aggregation(policy: Policy) -> None:
    with pytest.raises(ValueError, match="--algo grpo"):
        RLOOLearner(policy, GRPOConfig(multi_objective_aggregation="normalize_then_sum"))
