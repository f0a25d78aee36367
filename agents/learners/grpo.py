"""GRPO: group-normalised advantages and a clipped policy-gradient step over token-level episodes.

What we keep (DeepSeekMath's GRPO as ToolRL ran it in veRL): G episodes per task; advantage (R - mean) / (std + eps)
given to every model token; PPO's clipped ratio, with separate low and high clips (DAPO's clip-higher); an optional
KL penalty to a frozen copy of the initial policy (k3 estimator); an entropy bonus; veRL's loss aggregation modes.
What we drop: a value model, and the separate old-policy pass when a batch gets a single update (the ratio is then 1
and its gradient is the plain policy gradient, so the current log-probs, detached, serve as the old ones).

A step whose loss or gradient norm is NaN or inf is skipped (`finite_step`): the weights and the optimiser state stay
as they were, and the skip is counted in `losses/nonfinite_skipped`.

Other learners plug in by subclassing `PolicyGradientLearner` with their own `advantages` (see
`agents/learners/rloo.py`). The batching, the shared prompt pass and the optimiser plumbing live beside this
file (`batching.py`, `prompt_cache.py`, `optim.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.learners.batching import logprob_chunks, logprobs_no_grad, mini_batch_ranges, span, unspan
from agents.learners.optim import LRSchedule, LRScheduleName, StepMeans, finite_step
from agents.policy import Policy, without_dropout
from agents.protocols import Episode

__all__ = [
    "GRPOConfig",
    "GRPOLearner",
    "LossAggregation",
    "PolicyGradientLearner",
    "aggregate",
    "decomposed_advantages",
    "episode_components",
    "frac_zero_std_groups",
    "frozen_reference",
    "group_advantages",
    "policy_gradient_step",
    "policy_loss",
]

LossAggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
MultiObjectiveAggregation = Literal["sum_then_normalize", "normalize_then_sum"]


class GRPOConfig(BaseModel):
    """How a batch of episodes becomes optimiser updates (GRPO's; RLOO uses the same settings)."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(
        default=1e-5,
        gt=0,
        description="AdamW learning rate (the peak of lr_schedule; constant by default). ToolRL used 1e-6 for 1.5B-7B "
        "models with 2048-episode batches; a 135M model tolerates larger steps, our batches are ~100x smaller and "
        "runs ~100x shorter, and the clipped ratio bounds each update anyway, so 1e-5 moves the embedded model within "
        "a few dozen steps without collapse.",
    )
    lr_schedule: LRScheduleName = Field(
        default="constant",
        description="The learning rate after the warm-up: 'constant' (ToolRL's) or 'cosine', which falls to 0 over "
        "lr_decay_steps updates. The schedule counts learner updates (training steps), as veRL's does.",
    )
    lr_warmup_steps: int = Field(
        default=0,
        ge=0,
        description="Updates over which the learning rate rises linearly to lr (update k gets lr x (k + 1) / "
        "lr_warmup_steps); 0: none.",
    )
    lr_decay_steps: int | None = Field(
        default=None,
        ge=1,
        description="Updates after the warm-up over which 'cosine' falls to 0 (e.g. the run's steps minus "
        "lr_warmup_steps); only for lr_schedule='cosine'.",
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW decoupled weight decay (ToolRL's 0.01).")
    clip_low: float = Field(
        default=0.2, description="The ratio is clipped below at 1 - clip_low for negative advantages; in [0, 1)."
    )
    clip_high: float = Field(
        default=0.2, description="The ratio is clipped above at 1 + clip_high for positive advantages (DAPO: 0.28)."
    )
    kl_coef: float = Field(
        default=0.0,
        ge=0,
        description="Weight of the per-token KL to a frozen copy of the initial policy (k3 estimator). 0 (ToolRL's "
        "setting) creates no reference copy and runs no reference forward pass.",
    )
    entropy_coef: float = Field(
        default=0.0,
        ge=0,
        description="Weight of the entropy bonus (ToolRL: 0.001). Mean token entropy is logged either way.",
    )
    normalize_std: bool = Field(
        default=True,
        description="Divide group-centred rewards by the group's standard deviation (n-1) plus std_eps; "
        "False keeps them centred only (Dr. GRPO).",
    )
    std_eps: float = Field(default=1e-6, gt=0, description="Added to the group std before dividing (ToolRL's 1e-6).")
    multi_objective_aggregation: MultiObjectiveAggregation = Field(
        default="sum_then_normalize",
        description="How the reward's components (format, correctness, ...) become advantages. "
        "'sum_then_normalize': GRPO's, on the episode's total reward. 'normalize_then_sum': GDPO (Liu et al. "
        "2026, arXiv 2601.05242; TRL's option of the same name): each component group-normalised on its own, the "
        "results summed, the sum normalised over the batch, so that a component with a small range still "
        "separates a group's episodes.",
    )
    loss_aggregation: LossAggregation = Field(
        default="token-mean",
        description="How per-token losses become one number, over each mini-batch. 'token-mean': mean over all "
        "action tokens (ToolRL, DAPO; long episodes weigh more). 'seq-mean-token-mean': mean over each episode's "
        "tokens, then over episodes (the original GRPO; every episode weighs the same). 'seq-mean-token-sum-norm': "
        "each episode's token sum divided by the constant max_completion_length, then the mean over episodes "
        "(Dr. GRPO; no length bias).",
    )
    max_completion_length: int = Field(
        default=1024,
        gt=0,
        description="The constant divisor of 'seq-mean-token-sum-norm': the most action tokens an episode may have.",
    )
    epochs: int = Field(default=1, ge=1, description="Passes over each batch (PPO epochs).")
    mini_batches: int = Field(
        default=1,
        ge=1,
        description="Optimiser steps per epoch: the batch is split into this many contiguous mini-batches "
        "(ToolRL: 4). With epochs=1 and mini_batches=1 no separate old-policy pass runs.",
    )
    micro_batch_size: int = Field(
        default=1,
        ge=1,
        description="Episodes per forward/backward pass; gradients accumulate over a mini-batch's micro-batches, "
        "so it changes memory and speed, not the result (benchmarks/bench_update_memory.py measures the peak).",
    )
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient norm clip before each optimiser step.")
    shared_prompt: bool = Field(
        default=True,
        description="Run each distinct prompt once per mini-batch and expand its key/value cache to the episodes "
        "that share it (a GRPO group), gradients flowing back through it: the same loss and gradients with "
        "G-1 fewer prompt passes per group, and less activation memory.",
    )
    gradient_checkpointing: bool = Field(
        default=True,
        description="Recompute the decoder layers' activations of each prompt pass (of every pass when "
        "shared_prompt is off) during backward instead of keeping them: the same gradients for less memory and a "
        "little more time (benchmarks/bench_update_memory.py; figures in benchmarks/RESULTS.md).",
    )

    @model_validator(mode="after")
    def _check(self) -> GRPOConfig:
        if not 0 <= self.clip_low < 1:
            raise ValueError(f"clip_low={self.clip_low} must be in [0, 1) (the lower ratio bound is 1 - clip_low)")
        if self.clip_high < 0:
            raise ValueError(f"clip_high={self.clip_high} must be >= 0 (the upper ratio bound is 1 + clip_high)")
        if self.lr_schedule == "cosine" and self.lr_decay_steps is None:
            raise ValueError(
                "lr_schedule='cosine' needs lr_decay_steps (updates after the warm-up over which the lr falls to 0), "
                "e.g. the run's steps minus lr_warmup_steps"
            )
        if self.lr_schedule == "constant" and self.lr_decay_steps is not None:
            raise ValueError(
                f"lr_decay_steps={self.lr_decay_steps} only applies to lr_schedule='cosine'; drop it or choose cosine"
            )
        return self


def group_advantages(
    rewards: Sequence[float] | torch.Tensor, groups: Sequence[int], normalize_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """Per-episode advantage (R - group mean) / (group std + eps), std with n-1; or R - group mean. A group of one
    episode gets 0 (nothing to compare with)."""
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    advantages = torch.zeros_like(rewards)
    for index in _group_indices(groups):
        if len(index) < 2:
            continue
        group = rewards[index]
        centred = group - group.mean()
        advantages[index] = centred / (group.std() + eps) if normalize_std else centred
    return advantages.float()


def decomposed_advantages(
    components: Sequence[dict[str, float]], groups: Sequence[int], normalize_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """GDPO's advantages: each reward component (a key of `components`, one dict per episode) group-normalised
    on its own, the results summed, and the sum normalised over the batch. A component absent from an episode
    counts as 0."""
    names = sorted({name for episode in components for name in episode})
    if not names:
        return torch.zeros(len(components))
    per_component = [
        group_advantages([episode.get(name, 0.0) for episode in components], groups, normalize_std, eps)
        for name in names
    ]
    summed = torch.stack(per_component).double().sum(0)
    if len(summed) < 2:
        return torch.zeros_like(summed).float()
    return ((summed - summed.mean()) / (summed.std() + eps)).float()


def episode_components(episode: Episode) -> dict[str, float]:
    """The episode's reward components summed over its steps (the total left out)."""
    totals: dict[str, float] = {}
    for step in episode.reward_components:
        for name, value in step.items():
            if name != "total":
                totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def frac_zero_std_groups(rewards: Sequence[float] | torch.Tensor, groups: Sequence[int]) -> float:
    """Share of groups whose rewards are all equal (a group of one counts): they carry no learning signal."""
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    indices = _group_indices(groups)
    return sum(bool((rewards[i] == rewards[i[0]]).all()) for i in indices) / max(len(indices), 1)


def _group_indices(groups: Sequence[int]) -> list[torch.Tensor]:
    groups_t = torch.as_tensor(list(groups))
    return [torch.nonzero(groups_t == g).flatten() for g in groups_t.unique()]


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: LossAggregation, max_length: int) -> torch.Tensor:
    """Reduce a [B, T] per-token loss over the mask's tokens as `GRPOConfig.loss_aggregation` describes."""
    masked = torch.where(mask, per_token, 0.0)
    if mode == "token-mean":
        return masked.sum() / mask.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    return (masked.sum(-1) / max_length).mean()


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: GRPOConfig,
    *,
    ref_logprobs: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one batch: clipped surrogate, plus kl_coef x KL to the reference, minus entropy_coef x entropy,
    per action token and aggregated. logprobs, old_logprobs, mask (bool), ref_logprobs, entropy: [B, T];
    advantages: [B] or [B, T]. Also returns detached stats: policy (the aggregated surrogate), and the token means
    clip_frac (tokens whose gradient the clip removed), approx_kl (old to current, k3), kl and entropy."""
    mask = mask.bool()
    adv = advantages.unsqueeze(-1).expand_as(logprobs) if advantages.dim() == 1 else advantages
    # Masked positions may hold padding garbage: keep them out of exp() so no inf/nan reaches the sums.
    log_ratio = torch.where(mask, logprobs - old_logprobs, 0.0)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - config.clip_low, 1 + config.clip_high)
    surrogate = torch.maximum(unclipped, clipped)
    per_token = surrogate

    def agg(values: torch.Tensor) -> torch.Tensor:
        return aggregate(values, mask, config.loss_aggregation, config.max_completion_length)

    def token_mean(values: torch.Tensor) -> torch.Tensor:
        return aggregate(values.detach().float(), mask, "token-mean", config.max_completion_length)

    stats = {
        "policy": agg(surrogate.detach()),
        "clip_frac": token_mean(clipped > unclipped),
        "approx_kl": token_mean((ratio - 1) - log_ratio),
    }
    if ref_logprobs is not None:
        to_ref = torch.where(mask, ref_logprobs - logprobs, 0.0)
        kl = to_ref.exp() - to_ref - 1  # k3: unbiased, always >= 0
        per_token = per_token + config.kl_coef * kl
        stats["kl"] = token_mean(kl)
    if entropy is not None:
        per_token = per_token - config.entropy_coef * entropy
        stats["entropy"] = token_mean(entropy)
    return agg(per_token), stats


def frozen_reference(policy: Policy) -> Policy:
    """A frozen copy of the policy as it is now: the KL penalty's reference."""
    model = copy.deepcopy(policy.model).eval()
    model.requires_grad_(False)
    return Policy(model, policy.tokenizer, autocast_bf16=policy.autocast_bf16)


def policy_gradient_step(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    episodes: Sequence[Episode],
    advantages: torch.Tensor | Sequence[torch.Tensor],
    config: GRPOConfig,
    reference: Policy | None = None,
) -> dict[str, float]:
    """`config.epochs` x `config.mini_batches` optimiser steps on the episodes. `advantages` is one per episode
    (a [N] tensor, given to all its action tokens) or one per token (a full-length tensor per episode, as PPO's
    GAE gives); returns the mean `losses/*` metrics over the steps taken, `losses/nonfinite_skipped` (steps skipped
    for a NaN or inf loss or gradient norm; see `finite_step`) and `rollout/logprob_diff`."""
    if config.mini_batches > len(episodes):
        raise ValueError(
            f"mini_batches={config.mini_batches} exceeds the batch of {len(episodes)} episodes; "
            "lower mini_batches or sample more episodes per step"
        )
    if len(advantages) != len(episodes):
        raise ValueError(f"got {len(advantages)} advantages for {len(episodes)} episodes; give one per episode")
    single_update = config.epochs == 1 and config.mini_batches == 1
    # Episode.sampling_logprobs are not used as the old log-probs: the sampler's numerics (KV cache, batch shape,
    # autocast) differ slightly from this pass's, which would bias the ratio; their gap is logged as a diagnostic.
    old = None if single_update else logprobs_no_grad(policy, episodes, config)
    ref = None if reference is None else logprobs_no_grad(reference, episodes, config)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    steps = StepMeans()
    current: list[torch.Tensor] = []
    with without_dropout(policy.model):
        for _ in range(config.epochs):
            for lo, hi in mini_batch_ranges(len(episodes), config.mini_batches):
                optimizer.zero_grad(set_to_none=True)
                mini = list(range(lo, hi))
                tokens = sum(sum(episodes[i].action_mask) for i in mini)
                parts: list[tuple[str, float]] = []  # averaged by `steps`, in this order, only if the step is taken
                loss_finite = True
                for chunk, batch, logprobs, entropy in logprob_chunks(policy, episodes, mini, config, True):
                    assert entropy is not None
                    old_lp = logprobs.detach() if old is None else span([old[i] for i in chunk], batch)
                    loss, stats = policy_loss(
                        logprobs,
                        old_lp,
                        advantages[chunk].to(logprobs.device)
                        if isinstance(advantages, torch.Tensor)
                        else span([advantages[i] for i in chunk], batch),
                        batch.mask,
                        config,
                        ref_logprobs=None if ref is None else span([ref[i] for i in chunk], batch),
                        entropy=entropy if config.entropy_coef > 0 else entropy.detach(),
                    )
                    chunk_tokens = int(batch.mask.sum())
                    # Weigh each micro-batch by its share of the mini-batch so the accumulated gradient is the
                    # mini-batch's aggregate, whatever micro_batch_size is.
                    share = (
                        chunk_tokens / max(tokens, 1)
                        if config.loss_aggregation == "token-mean"
                        else len(chunk) / len(mini)
                    )
                    (loss * share).backward()
                    loss_finite = loss_finite and bool(torch.isfinite(loss.detach()))
                    parts.append(("losses/policy", float(stats.pop("policy")) * share))
                    parts += [
                        (f"losses/{name}", float(value) * chunk_tokens / max(tokens, 1))
                        for name, value in stats.items()
                    ]
                    if old is None:
                        current.extend(unspan(old_lp, batch))
                    del logprobs, entropy, loss  # free this micro-batch's logits before the next forward
                # Averaged across processes under torchrun (nothing when run alone), clipped, stepped if finite.
                steps.add(parts, finite_step(optimizer, params, config.max_grad_norm, loss_finite), "losses/grad_norm")
    metrics = steps.means()
    metrics["losses/nonfinite_skipped"] = steps.skipped
    metrics["rollout/logprob_diff"] = _logprob_gap(episodes, current if old is None else old)
    return metrics


def _logprob_gap(episodes: Sequence[Episode], logprobs: Sequence[torch.Tensor]) -> float:
    """Mean |sampler log-prob - learner log-prob| over action tokens: how far the two computations disagree."""
    total, tokens = 0.0, 0
    for episode, values in zip(episodes, logprobs, strict=True):
        mask = torch.tensor(episode.action_mask, dtype=torch.bool)
        gap = (torch.tensor(episode.sampling_logprobs, dtype=torch.float32) - values).abs()
        total += float(gap[mask].sum())
        tokens += int(mask.sum())
    return total / max(tokens, 1)


class PolicyGradientLearner:
    """The Learner protocol around `policy_gradient_step`: AdamW over the trainable weights, an optional frozen
    reference for the KL penalty, the learning-rate schedule. Subclasses define `advantages` (one per episode)."""

    def __init__(self, policy: Policy, config: GRPOConfig | None = None):
        self.policy = policy
        self.config = config or GRPOConfig()
        trainable = [p for p in policy.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.schedule = LRSchedule([(self.optimizer, self.config.lr)], self.config)
        self.reference = frozen_reference(policy) if self.config.kl_coef > 0 else None

    def advantages(self, episodes: Sequence[Episode]) -> torch.Tensor:
        """One advantage per episode."""
        raise NotImplementedError

    def update(self, episodes: list[Episode]) -> dict[str, float]:
        """Advantages, then the configured optimiser steps; returns `losses/*`, `rollout/*` and `optim/lr`."""
        advantages = self.advantages(episodes)
        rewards = [e.reward for e in episodes]
        metrics = {
            "rollout/frac_zero_std_groups": frac_zero_std_groups(rewards, [e.group for e in episodes]),
            "rollout/advantage_mean": float(advantages.mean()),
            "rollout/advantage_std": float(advantages.std()) if len(advantages) > 1 else 0.0,
            "optim/lr": self.schedule.lr,
        }
        metrics |= policy_gradient_step(self.policy, self.optimizer, episodes, advantages, self.config, self.reference)
        self.schedule.step()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Optimiser and schedule state and the KL reference's weights (the policy's own weights are saved with
        `Policy.save`)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "reference": None if self.reference is None else self.reference.model.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s output into a learner built with the same config over the same model."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if (state["reference"] is None) != (self.reference is None):
            raise ValueError(
                "the saved state's KL reference does not match this learner's kl_coef; use the same config"
            )
        if self.reference is not None:
            self.reference.model.load_state_dict(state["reference"])


class GRPOLearner(PolicyGradientLearner):
    """GRPO: each episode's advantage is its reward against its group's mean (and std)."""

    def advantages(self, episodes: Sequence[Episode]) -> torch.Tensor:
        groups = [e.group for e in episodes]
        if self.config.multi_objective_aggregation == "normalize_then_sum":
            components = [episode_components(e) for e in episodes]
            return decomposed_advantages(components, groups, self.config.normalize_std, self.config.std_eps)
        return group_advantages([e.reward for e in episodes], groups, self.config.normalize_std, self.config.std_eps)
