"""PPO with a learned critic, the paper's comparison to GRPO, through the Learner protocol.

What it adds to GRPO's update (`agents.learners.grpo.policy_gradient_step`, shared): a critic, a copy of the policy's
decoder with a scalar value head, as veRL builds one; per-token rewards, each env step's reward on the last
token of the model turn it scored; advantages by GAE over the model's tokens (tool observations are part of
the state, not actions, so GAE steps over them), whitened over the batch; and a clipped value loss fitted
with the critic's own optimiser. ToolRL's PPO ran veRL with actor lr 1e-6, critic lr 1e-5, gamma = lambda = 1.
The learning-rate schedule (`GRPOConfig.lr_schedule`) moves both rates; a critic step whose loss or gradient norm
is NaN or inf is skipped like the policy's (`critic/nonfinite_skipped`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from agents.learners.batching import Batch, chunks, collate, mini_batch_ranges, span, unspan
from agents.learners.grpo import GRPOConfig, PolicyGradientLearner, policy_gradient_step
from agents.learners.optim import LRSchedule, StepMeans, finite_step
from agents.policy import Policy, recomputing_layers, without_dropout
from agents.protocols import Episode


class PPOConfig(BaseModel):
    """The critic's settings; the policy's come from `GRPOConfig` (clip, KL, epochs, mini-batches, ...)."""

    model_config = ConfigDict(extra="forbid")

    gamma: float = Field(default=1.0, ge=0, le=1, description="Discount per model token (veRL, ToolRL: 1).")
    lam: float = Field(default=1.0, ge=0, le=1, description="GAE lambda (veRL, ToolRL: 1).")
    critic_lr: float = Field(
        default=1e-4, gt=0, description="The critic's AdamW learning rate: 10x the actor's, as ToolRL's 1e-5 vs 1e-6."
    )
    value_clip: float = Field(
        default=0.5, gt=0, description="New values are clipped to old +- this in the value loss (veRL's 0.5)."
    )
    whiten_advantages: bool = Field(
        default=True, description="Shift and scale the advantages to mean 0, std 1 over the batch's model tokens."
    )


class ValueModel(torch.nn.Module):
    """The policy's decoder (a copy, trained on its own) and a linear head: one value per position."""

    def __init__(self, policy: Policy):
        super().__init__()
        model: Any = policy.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.backbone = copy.deepcopy(base.base_model)
        self.head = torch.nn.Linear(base.config.hidden_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.to(policy.device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] values; position t's value is that of the state before token t + 1."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        return self.head(hidden.float()).squeeze(-1)


def token_rewards(episode: Episode) -> torch.Tensor:
    """The episode's rewards per token: each step's reward on its model turn's last token, 0 elsewhere."""
    if len(episode.turn_ends) != len(episode.step_rewards):
        raise ValueError(
            f"episode {episode.task_id!r} has {len(episode.step_rewards)} step rewards but "
            f"{len(episode.turn_ends)} turn ends; episodes from agents.rollout record both"
        )
    rewards = torch.zeros(len(episode.token_ids))
    for end, reward in zip(episode.turn_ends, episode.step_rewards, strict=True):
        rewards[end] += reward
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of one episode ([T] each, 0 off the mask) by GAE over the masked (model) tokens
    only: a reward on an unmasked token counts for the model token before it, and the value after the last model
    token is 0 (the episode has ended)."""
    advantages = torch.zeros_like(values)
    next_value, next_advantage, pending = 0.0, 0.0, 0.0
    for t in reversed(range(len(values))):
        pending += float(rewards[t])
        if not mask[t]:
            continue
        delta = pending + gamma * next_value - float(values[t])
        next_advantage = delta + gamma * lam * next_advantage
        advantages[t], next_value, pending = next_advantage, float(values[t]), 0.0
    return advantages, torch.where(mask, advantages + values, 0.0)


class PPOLearner(PolicyGradientLearner):
    """PPO: GAE advantages from a learned critic drive GRPO's clipped policy step; the critic is fitted after."""

    def __init__(self, policy: Policy, config: GRPOConfig | None = None, ppo: PPOConfig | None = None):
        super().__init__(policy, config)
        self.ppo = ppo or PPOConfig()
        self.critic = ValueModel(policy)
        self.critic_optimizer = torch.optim.AdamW(
            self.critic.parameters(), lr=self.ppo.critic_lr, weight_decay=self.config.weight_decay
        )
        self.schedule = LRSchedule(
            [(self.optimizer, self.config.lr), (self.critic_optimizer, self.ppo.critic_lr)], self.config
        )

    def update(self, episodes: list[Episode]) -> dict[str, float]:
        """Values, GAE, the policy step, then the critic's; returns `losses/*`, `critic/*`, `rollout/*` and
        `optim/lr` (the actor's)."""
        values = self._values(episodes)
        masks = [torch.tensor(e.action_mask, dtype=torch.bool) for e in episodes]
        advantages, returns = [], []
        for episode, episode_values, mask in zip(episodes, values, masks, strict=True):
            advantage, ret = gae(token_rewards(episode), episode_values, mask, self.ppo.gamma, self.ppo.lam)
            advantages.append(advantage)
            returns.append(ret)
        chosen = torch.cat([a[m] for a, m in zip(advantages, masks, strict=True)])
        metrics = {
            "rollout/advantage_mean": float(chosen.mean()),
            "rollout/advantage_std": float(chosen.std()) if len(chosen) > 1 else 0.0,
            "optim/lr": self.schedule.lr,
        }
        if self.ppo.whiten_advantages and len(chosen) > 1:
            mean, std = chosen.mean(), chosen.std() + 1e-8
            advantages = [torch.where(m, (a - mean) / std, 0.0) for a, m in zip(advantages, masks, strict=True)]
        metrics |= policy_gradient_step(self.policy, self.optimizer, episodes, advantages, self.config, self.reference)
        metrics |= self._fit_critic(episodes, values, returns)
        self.schedule.step()
        return metrics

    def _critic_values(self, batch: Batch) -> torch.Tensor:
        """The critic's values for the batch's trained span (each model token's state is the position before)."""
        values = self.critic(batch.input_ids, batch.attention_mask)
        return values[:, batch.start - 1 : -1]

    def _values(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        """Each episode's values per token (full length, meaningful at model tokens), no gradient."""
        out: dict[int, torch.Tensor] = {}
        pad_id = int(self.policy.tokenizer.pad_token_id)
        with torch.no_grad(), without_dropout(self.critic):
            for chunk in chunks(range(len(episodes)), self.config.micro_batch_size):
                batch = collate([episodes[i] for i in chunk], pad_id, self.policy.device)
                out.update(zip(chunk, unspan(self._critic_values(batch), batch), strict=True))
        return [out[i] for i in range(len(episodes))]

    def _fit_critic(
        self, episodes: Sequence[Episode], old_values: list[torch.Tensor], returns: list[torch.Tensor]
    ) -> dict[str, float]:
        """`epochs` x `mini_batches` steps of the clipped value loss (token mean over model tokens)."""
        config, pad_id = self.config, int(self.policy.tokenizer.pad_token_id)
        params = list(self.critic.parameters())
        steps = StepMeans()
        with without_dropout(self.critic), recomputing_layers(self.critic, config.gradient_checkpointing):
            for _ in range(config.epochs):
                for lo, hi in mini_batch_ranges(len(episodes), config.mini_batches):
                    self.critic_optimizer.zero_grad(set_to_none=True)
                    tokens = sum(sum(episodes[i].action_mask) for i in range(lo, hi))
                    parts: list[tuple[str, float]] = []  # averaged by `steps`, in order, only if the step is taken
                    loss_finite = True
                    for chunk in chunks(range(lo, hi), config.micro_batch_size):
                        batch = collate([episodes[i] for i in chunk], pad_id, self.policy.device)
                        values = self._critic_values(batch)
                        old = span([old_values[i] for i in chunk], batch)
                        target = span([returns[i] for i in chunk], batch)
                        clipped = old + (values - old).clamp(-self.ppo.value_clip, self.ppo.value_clip)
                        worse = torch.maximum((values - target) ** 2, (clipped - target) ** 2)
                        loss = 0.5 * torch.where(batch.mask, worse, 0.0).sum() / max(tokens, 1)
                        loss.backward()
                        loss_finite = loss_finite and bool(torch.isfinite(loss.detach()))
                        clip = torch.where(batch.mask, (clipped - target) ** 2 > (values - target) ** 2, False)
                        parts += [
                            ("losses/value", float(loss.detach())),
                            ("critic/value_clip_frac", float(clip.sum()) / max(tokens, 1)),
                        ]
                    grad_norm = finite_step(self.critic_optimizer, params, config.max_grad_norm, loss_finite)
                    steps.add(parts, grad_norm, "critic/grad_norm")
        metrics = steps.means()
        metrics["critic/nonfinite_skipped"] = steps.skipped
        masks = [torch.tensor(e.action_mask, dtype=torch.bool) for e in episodes]
        metrics["critic/value_mean"] = float(torch.cat([v[m] for v, m in zip(old_values, masks, strict=True)]).mean())
        metrics["critic/return_mean"] = float(torch.cat([r[m] for r, m in zip(returns, masks, strict=True)]).mean())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """The policy learner's state (its schedule covers the critic's rate too) plus the critic's weights and
        optimiser."""
        return super().state_dict() | {
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        super().load_state_dict(state)  # last: the schedule then sets both optimisers' rates
