"""Optimiser plumbing every learner shares: a step that is skipped when its loss or gradient is not finite, the
metrics of the steps taken, and the learning-rate schedule (warm-up, then constant or cosine)."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import torch

from agents.runtime.distributed import average_gradients

LRScheduleName = Literal["constant", "cosine"]


class ScheduleSettings(Protocol):
    """The learning-rate schedule's settings (`GRPOConfig` has them)."""

    lr_schedule: LRScheduleName
    lr_warmup_steps: int
    lr_decay_steps: int | None


def lr_factor(config: ScheduleSettings, update: int) -> float:
    """The multiple of the base learning rate that learner update `update` (from 0) uses."""
    if update < config.lr_warmup_steps:
        return (update + 1) / config.lr_warmup_steps
    if config.lr_schedule == "constant" or config.lr_decay_steps is None:
        return 1.0
    progress = min(1.0, (update - config.lr_warmup_steps) / config.lr_decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class LRSchedule:
    """Sets each optimiser's learning rate to its base rate x `lr_factor` of the update count; its state (the count)
    travels in checkpoints. One object serves several optimisers (PPO's actor and critic)."""

    def __init__(self, optimizers: Sequence[tuple[torch.optim.Optimizer, float]], config: ScheduleSettings):
        self.optimizers = list(optimizers)
        self.config = config
        self.updates = 0
        self._apply()

    @property
    def lr(self) -> float:
        """The first optimiser's learning rate for the next update."""
        return float(self.optimizers[0][0].param_groups[0]["lr"])

    def step(self) -> None:
        """Count one finished update and set the rates for the next."""
        self.updates += 1
        self._apply()

    def _apply(self) -> None:
        factor = lr_factor(self.config, self.updates)
        for optimizer, base in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved count; the rates follow this schedule's config (so a resumed run may change lr)."""
        self.updates = int(state["updates"])
        self._apply()


NONFINITE_WARNING = (
    "skipped an optimiser step whose loss or gradient norm was NaN or inf: the weights and optimiser state are "
    "unchanged; skips are counted in losses/nonfinite_skipped (critic/nonfinite_skipped for PPO's critic). "
    "Python shows this warning once per process."
)


def finite_step(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    max_grad_norm: float,
    loss_finite: bool = True,
    average: bool = True,
) -> float:
    """Average the gradients across processes (unless `average` is False), clip them to `max_grad_norm` and take the
    optimiser step, unless the loss or the gradient norm is not finite: then no step is taken and a warning is
    shown. The gradients are cleared either way. Returns the gradient norm (NaN or inf when the step was skipped)."""
    if not loss_finite:
        # A non-finite loss marks the gradients non-finite, so the one test below decides, and under torchrun every
        # process sees a non-finite average and skips the same step (the replicas stay identical).
        with_grad = [p for p in params if p.grad is not None]
        if with_grad:
            with_grad[0].grad.fill_(math.nan)  # type: ignore[union-attr]
        else:
            params[0].grad = torch.full_like(params[0], math.nan)
    if average:
        average_gradients(params)
    norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    if math.isfinite(norm):
        optimizer.step()
    else:
        warnings.warn(NONFINITE_WARNING, RuntimeWarning, stacklevel=2)
    # Gradients are not needed until the next update; freeing them now keeps rollouts' peak memory lower.
    optimizer.zero_grad(set_to_none=True)
    return norm


class StepMeans:
    """Metrics averaged over the optimiser steps taken; a skipped (non-finite) step only adds to `skipped`."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.applied = self.skipped = 0

    def add(self, parts: Sequence[tuple[str, float]], grad_norm: float, grad_norm_name: str) -> None:
        """One step's metrics and its gradient norm (`finite_step`'s result), counted only if the step was taken."""
        if not math.isfinite(grad_norm):
            self.skipped += 1
            return
        self.applied += 1
        for name, part in [*parts, (grad_norm_name, grad_norm)]:
            self.totals[name] += part

    def means(self) -> dict[str, float]:
        return {name: value / self.applied for name, value in self.totals.items()}
