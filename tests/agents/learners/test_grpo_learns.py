"""GRPO learns: on a trivial ToolEnv task its updates alone raise a tiny model's reward within 25 steps (the idiom of
Stable-Baselines3's `test_identity`: an algorithm must solve a trivial env).

The env is an identity task in the TIR format: one single-turn task whose gold answer is one of four words, scored
by ToolRL's real reward with the answer component on (format 0/1 + exact match 0/1). A random 2-layer Llama never
writes the format, so a short supervised warm-up first teaches it the format with each of the four answers equally
often (every warm-up step sees all four): afterwards the format is mostly right and the answer a four-sided coin, so
the reward starts near chance (1 + 1/4) and differs within each GRPO group. Everything after that is GRPO: rollouts
through the real env with the HF sampler, then `GRPOLearner.update`. A control with the same sampling seeds and no
updates stays where it started, so the rise is GRPO's, not the warm-up's or the seeds'.
"""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from agents.learners.grpo import GRPOConfig, GRPOLearner
from agents.learners.warmup import WarmupConfig, warm_up
from agents.policy import Policy
from agents.protocols import SamplingParams
from agents.rollout import rollout
from agents.sampling import HFSampler
from tests.agents.conftest import tiny_policy
from toolrl_env.env import ToolEnv
from toolrl_env.rewards import RewardConfig
from toolrl_env.task import GoldStep, Task, Turn

SEED = 0
ANSWERS = ("north", "south", "east", "west")
GOLD = "east"
GROUP = 8  # episodes per GRPO step (one task, so one group)
STEPS = 25  # GRPO steps (at 20, two seeds in 12 had not yet risen by the margin)
K = 5  # steps averaged at each end
# Chance is 1.25 (format right, answer right one time in four) and a solved task 2.0. Over seeds 0-11 GRPO's rise
# from the first 5 steps to the last 5 was 0.42-0.75 (0.52 for seed 0), the control's -0.20 to 0.15 (sampling noise:
# two means of 40 episodes). 0.3 is twice the control's largest and well below GRPO's smallest.
MARGIN = 0.3
# 60 steps, each on all four demonstrations at once: enough for the format to be mostly right at TEMPERATURE.
WARMUP = WarmupConfig(
    lr=1e-2, epochs=60, batch_size=len(ANSWERS), micro_batch_size=len(ANSWERS), gradient_checkpointing=False
)
# lr: Adam moves every weight by about lr a step; at 1e-3 the tiny model's format broke for a step or more on some
# seeds. kl_coef: after a step that breaks the format (every reward 0, so no advantage) the KL to the warmed-up
# model is the only gradient left, and it brings the format back.
GRPO = GRPOConfig(lr=5e-4, lr_warmup_steps=3, kl_coef=0.5, micro_batch_size=GROUP, gradient_checkpointing=False)
# Below 1, the format tokens (each learned to near certainty) are sampled reliably, while four equally likely
# answers stay equally likely.
TEMPERATURE = 0.5
MAX_NEW_TOKENS = 16  # the gold completion is 15 tokens


def completion(answer: str) -> str:
    """A completion in the gold format with this answer."""
    return f"<think> go </think>\n<response> {answer} </response>"


TASK = Task(
    id="compass",
    system="Answer with a direction.",
    turns=[Turn(user="Which way is the sea?", steps=[GoldStep(answer=GOLD, text=completion(GOLD))])],
)


def make_env() -> ToolEnv:
    """The env: the one task, single-turn, ToolRL's reward plus exact match of the answer."""
    return ToolEnv([TASK], reward=RewardConfig(answer="em"))


def warmed_up_policy(tokenizer: PreTrainedTokenizerBase, seed: int) -> Policy:
    """The tiny model after the warm-up on the gold format with every answer (the policy GRPO starts from)."""
    policy = tiny_policy(tokenizer, seed)
    observation, _ = make_env().reset(options={"task_id": TASK.id})
    prompt = policy.prompt_ids(observation)
    eos = policy.tokenizer.eos_token_id
    demos = [(prompt, [*policy.text_ids(completion(answer)), eos]) for answer in ANSWERS]
    warm_up(policy, demos, WARMUP, seed)
    return policy


def mean_rewards(policy: Policy, learner: GRPOLearner | None, seed: int) -> list[float]:
    """Each step's mean episode reward over `STEPS` rollouts of a group, each step followed by the learner's update
    (none for the control); step i samples with seed `seed * 1000 + i` either way."""
    envs = [make_env() for _ in range(GROUP)]
    sampler = HFSampler(policy)
    means = []
    for step in range(STEPS):
        params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, seed=seed * 1000 + step)
        episodes = rollout(envs, [TASK.id], GROUP, policy, sampler, params, seed=step, training_step=step)
        means.append(sum(e.reward for e in episodes) / len(episodes))
        if learner is not None:
            learner.update(episodes)
    return means


def rise(rewards: list[float]) -> float:
    """Mean reward of the last `K` steps minus that of the first `K`."""
    return sum(rewards[-K:]) / K - sum(rewards[:K]) / K


@pytest.mark.slow
def test_grpo_raises_the_reward_of_a_trivial_task(tokenizer: PreTrainedTokenizerBase) -> None:
    torch.manual_seed(SEED)
    policy = warmed_up_policy(tokenizer, SEED)
    control = mean_rewards(policy, None, SEED)  # no updates: the weights stay the warmed-up ones
    learned = mean_rewards(policy, GRPOLearner(policy, GRPO), SEED)
    assert control[0] == learned[0]  # the same policy and seed at step 0
    assert rise(learned) >= MARGIN, f"GRPO did not learn: mean rewards per step {learned}"
    assert rise(control) < MARGIN, f"the reward rose without updates: {control}"
