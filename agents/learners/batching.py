"""Episodes as padded token batches (collation, the span training reads, contiguous mini-batches) and the
micro-batched log-prob passes over them that every learner runs."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

import torch

from agents.learners.prompt_cache import SharedPrompt
from agents.policy import Policy, logprobs_from_logits, recomputing_layers, token_logprobs, without_dropout
from agents.protocols import Episode


class Batch(NamedTuple):
    """Episodes as one right-padded batch, and the span of columns that training reads."""

    input_ids: torch.Tensor  # [B, T], right-padded
    attention_mask: torch.Tensor  # [B, T]
    start: int  # the trained span, columns [start, T), holds every action token
    mask: torch.Tensor  # [B, T - start] bool, action tokens
    lengths: list[int]


def collate(episodes: Sequence[Episode], pad_id: int, device: torch.device, start: int | None = None) -> Batch:
    """Right-padded rows; the span starts at `start`, or by default at the earliest action token."""
    width = max(len(e.token_ids) for e in episodes)
    firsts = []
    for e in episodes:
        if len(e.action_mask) != len(e.token_ids):
            raise ValueError(
                f"episode {e.task_id!r}: action_mask has {len(e.action_mask)} entries for "
                f"{len(e.token_ids)} tokens; give one per token"
            )
        first = e.action_mask.index(1) if 1 in e.action_mask else len(e.token_ids)
        if first == 0:
            raise ValueError(f"episode {e.task_id!r} starts with an action token; its prompt must come first")
        if start is not None and first < start:
            raise ValueError(f"episode {e.task_id!r} has action tokens inside its prompt_length; fix its action_mask")
        firsts.append(first)
    start = min(start if start is not None else min(firsts), width - 1)
    ids = torch.full((len(episodes), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(episodes), width), dtype=torch.long)
    action = torch.zeros((len(episodes), width), dtype=torch.bool)
    for row, e in enumerate(episodes):
        ids[row, : len(e.token_ids)] = torch.tensor(e.token_ids)
        attention[row, : len(e.token_ids)] = 1
        action[row, : len(e.token_ids)] = torch.tensor(e.action_mask, dtype=torch.bool)
    lengths = [len(e.token_ids) for e in episodes]
    return Batch(ids.to(device), attention.to(device), start, action[:, start:].to(device), lengths)


def span(rows: Sequence[torch.Tensor | list[float]], batch: Batch) -> torch.Tensor:
    """Per-token values of each episode (full length), right-padded and cut to the batch's trained span."""
    width = batch.input_ids.shape[1]
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for row, values in enumerate(rows):
        out[row, : len(values)] = torch.as_tensor(values, dtype=torch.float32)
    return out[:, batch.start :].to(batch.input_ids.device)


def unspan(values: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
    """Inverse of `span`: each row back to its episode's full length (zeros before the span), on the CPU."""
    width = batch.input_ids.shape[1]
    full = torch.zeros((values.shape[0], width), dtype=torch.float32)
    full[:, batch.start :] = values.detach().float().cpu()
    return [full[row, :length] for row, length in enumerate(batch.lengths)]


def mini_batch_ranges(count: int, mini_batches: int) -> list[tuple[int, int]]:
    """`mini_batches` contiguous (start, end) ranges covering `count` episodes, as even as rounding allows."""
    bounds = torch.linspace(0, count, mini_batches + 1).round().long().tolist()
    return list(itertools.pairwise(bounds))


def chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive lists of at most `size` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class PassSettings(Protocol):
    """How log-prob passes are batched (`GRPOConfig` has these)."""

    micro_batch_size: int
    shared_prompt: bool
    gradient_checkpointing: bool


LogprobChunk = tuple[list[int], Batch, torch.Tensor, torch.Tensor | None]


def logprob_chunks(
    policy: Policy, episodes: Sequence[Episode], indices: Sequence[int], config: PassSettings, with_entropy: bool
) -> Iterator[LogprobChunk]:
    """For each micro-batch of `indices`: its episode indices, batch, and the log-probs (and entropies) of the
    batch's trained span. The caller may call backward on each before asking for the next. With
    `shared_prompt`, episodes with the same prompt (a GRPO group) share one prompt pass (`SharedPrompt`)."""
    pad_id = int(policy.tokenizer.pad_token_id)
    if not config.shared_prompt:
        for chunk in chunks(indices, config.micro_batch_size):
            batch = collate([episodes[i] for i in chunk], pad_id, policy.device)
            keep = batch.input_ids.shape[1] - batch.start
            with recomputing_layers(policy.model, config.gradient_checkpointing):
                logprobs, entropy = token_logprobs(policy, batch.input_ids, batch.attention_mask, keep, with_entropy)
            yield chunk, batch, logprobs, entropy
        return
    by_prompt: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i in indices:
        by_prompt[tuple(episodes[i].token_ids[: episodes[i].prompt_length])].append(i)
    for prompt, members in by_prompt.items():
        shared = SharedPrompt(policy.model, list(prompt), policy.device, config.gradient_checkpointing)
        for chunk in chunks(members, config.micro_batch_size):
            batch = collate([episodes[i] for i in chunk], pad_id, policy.device, start=shared.length)
            logits = shared.logits(batch.input_ids, batch.attention_mask)
            yield chunk, batch, *logprobs_from_logits(logits, batch.input_ids[:, shared.length :], with_entropy)
        shared.backward()


def logprobs_no_grad(policy: Policy, episodes: Sequence[Episode], config: PassSettings) -> list[torch.Tensor]:
    """Each episode's per-token log-probs (full length; only action tokens meaningful) under `policy`, no grad."""
    out: dict[int, torch.Tensor] = {}
    with torch.no_grad(), without_dropout(policy.model):
        for chunk, batch, logprobs, _ in logprob_chunks(policy, episodes, range(len(episodes)), config, False):
            out.update(zip(chunk, unspan(logprobs, batch), strict=True))
    return [out[i] for i in range(len(episodes))]
