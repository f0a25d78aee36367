"""Where the policy computes in bf16: generation may run under CPU autocast, training passes never do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import PreTrainedTokenizerBase

from agents.learners.grpo import GRPOConfig, GRPOLearner
from agents.learners.warmup import WarmupConfig, warm_up
from agents.policy import Policy
from agents.protocols import SamplingParams
from agents.sampling import HFSampler
from tests.agents.conftest import tiny_policy
from tests.agents.learners.test_grpo import PROMPT, episode


@contextmanager
def autocast_seen(policy: Policy) -> Iterator[list[bool]]:
    """Whether CPU autocast was on at each forward pass of the policy's model."""
    seen: list[bool] = []
    handle = policy.model.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    try:
        yield seen
    finally:
        handle.remove()


def bf16_policy(tokenizer: PreTrainedTokenizerBase) -> Policy:
    policy = tiny_policy(tokenizer)
    return Policy(policy.model, tokenizer, autocast_bf16=True)


def test_generation_runs_under_bf16_autocast(tokenizer: PreTrainedTokenizerBase) -> None:
    policy = bf16_policy(tokenizer)
    with autocast_seen(policy) as seen:
        HFSampler(policy).generate([policy.text_ids(PROMPT)] * 2, SamplingParams(max_new_tokens=3, seed=0))
    assert seen and all(seen)


def test_training_passes_run_in_fp32_even_when_generation_uses_bf16(tokenizer: PreTrainedTokenizerBase) -> None:
    # Under CPU bf16 autocast, training passes grew resident memory with every optimiser step (see agents/policy.py).
    policy = bf16_policy(tokenizer)
    episodes = [
        episode(policy, [(PROMPT, False), (" 5", True)], reward=1.0),
        episode(policy, [(PROMPT, False), (" 6", True)], reward=0.0),
    ]
    with autocast_seen(policy) as seen:
        GRPOLearner(policy, GRPOConfig()).update(episodes)
        warm_up(policy, [(policy.text_ids(PROMPT), policy.text_ids(" 5"))], WarmupConfig(examples=1, batch_size=1))
    assert seen and not any(seen)
