"""Warm-up: a short supervised stage on gold-format demonstrations before GRPO.

A 135M model rarely writes the TIR format cold; then every completion in a group scores the same and GRPO
has nothing to learn from. A few dozen optimiser steps of cross-entropy on the env's own gold turns (the
first step of training-split tasks: its prompt, then the gold completion and EOS; loss on the completion
only) teach the format, after which rewards vary within groups. The paper compares SFT-then-GRPO with
GRPO alone; this stage is that SFT, kept short and switchable (`WarmupConfig.enabled`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field

from agents.learners.optim import finite_step
from agents.policy import Policy, recomputing_layers, token_logprobs
from toolrl_env.env import ToolEnv

Demonstration = tuple[list[int], list[int]]  # prompt ids, completion ids


class WarmupConfig(BaseModel):
    """The supervised warm-up stage."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the warm-up before GRPO.")
    examples: int = Field(
        default=48,
        ge=1,
        description="Demonstrations drawn from the training tasks (benchmarks/RESULTS.md: held-out ast_match after "
        "32, 64 and 96, and what each costs).",
    )
    no_call_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The share of demonstrations drawn from tasks whose gold first step calls no tool (BFCL's "
        "irrelevance); None: drawn from all training tasks alike.",
    )
    epochs: int = Field(default=1, ge=1, description="Passes over the demonstrations.")
    lr: float = Field(default=1e-4, gt=0, description="AdamW learning rate (constant).")
    batch_size: int = Field(default=4, ge=1, description="Demonstrations per optimiser step.")
    micro_batch_size: int = Field(
        default=1, ge=1, description="Demonstrations per forward pass; gradients accumulate up to batch_size."
    )
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient-norm clip.")
    gradient_checkpointing: bool = Field(
        default=True,
        description="Recompute each decoder layer's activations in the backward pass (`recomputing_layers`): the "
        "same gradients for less memory (benchmarks/RESULTS.md has the peaks).",
    )


def demonstration_ids(env: ToolEnv, ids: Sequence[str], config: WarmupConfig, seed: int) -> list[str]:
    """`config.examples` of `ids` drawn without replacement (all when there are fewer), `no_call_share` of them
    from the tasks whose gold first step calls no tool when it is set."""
    rng = random.Random(seed)
    if config.no_call_share is None:
        return rng.sample(list(ids), min(config.examples, len(ids)))
    calls = {i: bool(env.task(i).turns[0].steps[0].calls) for i in ids}
    silent, calling = [i for i in ids if not calls[i]], [i for i in ids if calls[i]]
    quiet = min(round(config.no_call_share * config.examples), len(silent))
    return rng.sample(silent, quiet) + rng.sample(calling, min(config.examples - quiet, len(calling)))


def demonstrations(env: ToolEnv, task_ids: Sequence[str], policy: Policy) -> list[Demonstration]:
    """(prompt, gold completion + EOS) token ids of each task's first step."""
    eos = policy.tokenizer.eos_token_id
    demos = []
    for task_id in task_ids:
        obs, _ = env.reset(options={"task_id": task_id})
        gold = env.current_gold().text or ""
        demos.append((policy.prompt_ids(obs), [*policy.text_ids(gold), eos]))
    return demos


def warm_up(
    policy: Policy,
    demos: Sequence[Demonstration],
    config: WarmupConfig,
    seed: int = 0,
    on_step: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """Train on the demonstrations; returns the loss of each optimiser step (a step whose loss or gradient norm is
    NaN or inf is skipped, its loss still listed). `on_step(step, total, loss)`."""
    model = policy.model
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr)
    order = list(range(len(demos)))
    rng = random.Random(seed)
    total = config.epochs * ((len(demos) + config.batch_size - 1) // config.batch_size)
    losses = []
    with recomputing_layers(model, config.gradient_checkpointing):
        for _ in range(config.epochs):
            rng.shuffle(order)
            for start in range(0, len(order), config.batch_size):
                batch = [demos[i] for i in order[start : start + config.batch_size]]
                tokens = sum(len(completion) for _, completion in batch)
                optimizer.zero_grad(set_to_none=True)
                loss = 0.0
                for micro in range(0, len(batch), config.micro_batch_size):
                    # Summed, then divided by the whole batch's tokens: the same gradient as one big pass.
                    part = completion_nll(policy, batch[micro : micro + config.micro_batch_size]) / tokens
                    part.backward()
                    loss += part.item()
                # Skipped, weights untouched, if the loss or gradient norm is NaN or inf. Not averaged across
                # processes: under torchrun every process runs this same warm-up.
                finite_step(optimizer, trainable, config.max_grad_norm, math.isfinite(loss), average=False)
                losses.append(loss)
                if on_step is not None:
                    on_step(len(losses), total, loss)
    return losses


def completion_loss(policy: Policy, batch: Sequence[Demonstration]) -> torch.Tensor:
    """Mean cross-entropy of the completion tokens given their prompts."""
    return completion_nll(policy, batch) / sum(len(completion) for _, completion in batch)


def completion_nll(policy: Policy, batch: Sequence[Demonstration]) -> torch.Tensor:
    """Summed cross-entropy of the completion tokens given their prompts (one right-padded pass)."""
    pad = policy.tokenizer.pad_token_id
    length = max(len(p) + len(c) for p, c in batch)
    keep = length - min(len(p) for p, _ in batch)  # from the earliest completion token to the end
    ids = torch.full((len(batch), length), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), length), dtype=torch.long)
    targets = torch.zeros((len(batch), keep), dtype=torch.float32)
    for row, (prompt, completion) in enumerate(batch):
        sequence = prompt + completion
        ids[row, : len(sequence)] = torch.tensor(sequence)
        attention[row, : len(sequence)] = 1
        first = len(prompt) - (length - keep)  # the completion's first position among the kept ones
        targets[row, first : first + len(completion)] = 1.0
    device = policy.device
    logprobs, _ = token_logprobs(policy, ids.to(device), attention.to(device), keep)
    targets = targets.to(device)
    return -(logprobs * targets).sum()
