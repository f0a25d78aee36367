"""The warm-up: demonstrations are the env's gold turns, the loss reads only completion tokens, and it learns."""

from __future__ import annotations

import copy
import random

import pytest
import torch

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import make_tool_env
from agents.learners.warmup import (
    WarmupConfig,
    completion_loss,
    demonstration_ids,
    demonstrations,
    warm_up,
)
from agents.policy import Policy


def test_demonstrations_are_prompt_then_gold_turn_then_eos(policy: Policy) -> None:
    env = make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train")
    task = env.tasks[0]
    ((prompt, completion),) = demonstrations(env, [task.id], policy)
    assert prompt == policy.prompt_ids(env.reset(options={"task_id": task.id})[0])
    assert completion[-1] == policy.tokenizer.eos_token_id
    assert policy.tokenizer.decode(completion[:-1]) == task.turns[0].steps[0].text


def test_the_loss_ignores_prompts_and_padding(policy: Policy) -> None:
    short, long = ([5, 6, 7], [8, 9]), ([10, 11, 12, 13, 14, 15], [16, 17, 18])
    alone = completion_loss(policy, [short]).item(), completion_loss(policy, [long]).item()
    together = completion_loss(policy, [short, long]).item()
    assert abs(together - (2 * alone[0] + 3 * alone[1]) / 5) < 1e-4  # mean over the 5 completion tokens
    changed_prompt = completion_loss(policy, [([99, 98, 97], [8, 9])]).item()
    assert changed_prompt != completion_loss(policy, [([5, 6, 7], [8, 9])]).item()  # prompts condition the loss
    # By hand: the full forward pass, and the mean negative log-probability of the completion tokens only.
    prompt, completion = long
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logprobs = torch.log_softmax(policy.model(ids).logits[0, :-1].float(), -1)
    targets = ids[0, 1:]
    picked = logprobs[torch.arange(len(targets)), targets][len(prompt) - 1 :]
    assert abs(alone[1] - (-picked.mean().item())) < 1e-5


def test_warm_up_lowers_the_loss_on_its_demonstrations(policy: Policy) -> None:
    env = make_tool_env("ToolEnv-BFCL-v0", category="simple_python", split="train")
    demos = demonstrations(env, [t.id for t in env.tasks[:4]], policy)
    before = completion_loss(policy, demos).item()
    losses = warm_up(policy, demos, WarmupConfig(examples=4, epochs=6, lr=3e-3, batch_size=2))
    assert len(losses) == 12
    assert completion_loss(policy, demos).item() < 0.75 * before


def test_accumulated_micro_batches_give_the_gradient_of_one_pass(policy: Policy) -> None:
    demos = [([5, 6, 7], [8, 9]), ([10, 11, 12, 13], [16, 17, 18]), ([3, 4], [20])]
    first = copy.deepcopy(policy)
    warm_up(first, demos, WarmupConfig(examples=3, batch_size=3, micro_batch_size=3, lr=1e-2))
    second = copy.deepcopy(policy)
    warm_up(second, demos, WarmupConfig(examples=3, batch_size=3, micro_batch_size=1, lr=1e-2))
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=0)  # Adam amplifies float noise in tiny gradients
    assert not torch.equal(next(first.model.parameters()), next(policy.model.parameters()))


def test_recomputing_layers_changes_nothing_but_memory(policy: Policy) -> None:
    demos = [([5, 6, 7], [8, 9]), ([10, 11, 12, 13], [16, 17, 18])]
    runs = []
    for recompute in (False, True):
        twin = copy.deepcopy(policy)
        config = WarmupConfig(examples=2, batch_size=2, lr=1e-2, gradient_checkpointing=recompute)
        runs.append((warm_up(twin, demos, config), list(twin.model.parameters())))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-6)
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_the_no_call_share_sets_how_many_demonstrations_decline() -> None:
    env = make_tool_env("ToolEnv-BFCL-v0", category=["simple_python", "irrelevance"], split="train")
    ids = sorted(t.id for t in env.tasks)
    silent = {i for i in ids if not env.task(i).turns[0].steps[0].calls}
    assert silent and all(i.startswith("irrelevance") for i in silent)
    for share, expected in ((0.25, 10), (0.5, 20), (0.0, 0), (1.0, 40)):
        drawn = demonstration_ids(env, ids, WarmupConfig(examples=40, no_call_share=share), seed=3)
        assert len(drawn) == len(set(drawn)) == 40
        assert len(silent & set(drawn)) == expected
    # None draws from all tasks alike, as it always has; more than there are gives them all.
    assert demonstration_ids(env, ids, WarmupConfig(examples=40), 3) == random.Random(3).sample(ids, 40)
    assert len(demonstration_ids(env, ids[:5], WarmupConfig(examples=40, no_call_share=0.5), 3)) == 5
