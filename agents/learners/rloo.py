"""RLOO (REINFORCE leave-one-out; Ahmadian et al. 2024): GRPO's update with a different baseline.

Each episode's baseline is the mean reward of the other episodes of its group, so an episode's own reward never
lowers its advantage, and no std is divided by. Everything else (clipped ratio, KL, loss aggregation, optimiser,
learning-rate schedule, skipping non-finite steps) is `agents.learners.grpo`'s, configured with the same `GRPOConfig`
(`normalize_std` and `std_eps` are unused; GDPO's `multi_objective_aggregation` is refused).

This file is the template for a new learner: subclass `PolicyGradientLearner` and define `advantages`; then
`python agents/grpo_train.py --algo your_module:YourLearner` uses it (or add a short name to
`agents.train_config.LEARNERS`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agents.learners.grpo import GRPOConfig, PolicyGradientLearner
from agents.policy import Policy
from agents.protocols import Episode


def leave_one_out_advantages(rewards: Sequence[float] | torch.Tensor, groups: Sequence[int]) -> torch.Tensor:
    """A_i = R_i - mean of R_j over the other episodes j of i's group; 0 for a group of one."""
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    groups_t = torch.as_tensor(list(groups))
    advantages = torch.zeros_like(rewards)
    for group in groups_t.unique():
        index = torch.nonzero(groups_t == group).flatten()
        if len(index) > 1:
            others = (rewards[index].sum() - rewards[index]) / (len(index) - 1)
            advantages[index] = rewards[index] - others
    return advantages.float()


class RLOOLearner(PolicyGradientLearner):
    """RLOO through the Learner protocol: leave-one-out advantages, GRPO's clipped policy-gradient step."""

    def __init__(self, policy: Policy, config: GRPOConfig | None = None):
        super().__init__(policy, config)
        if self.config.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "rloo's leave-one-out baseline works on the total reward; multi_objective_aggregation="
                f"{self.config.multi_objective_aggregation!r} is GRPO's option (--algo grpo)"
            )

    def advantages(self, episodes: Sequence[Episode]) -> torch.Tensor:
        return leave_one_out_advantages([e.reward for e in episodes], [e.group for e in episodes])
