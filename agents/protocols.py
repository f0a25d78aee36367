"""The agent's records and protocols in one place: what a sampler returns, what a rollout produces, and what
a learner consumes. Samplers and learners are interchangeable behind these."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field

# Where an assistant turn ends in the TIR format: a model stops after its calls or its answer.
TURN_STOPS = ("</tool_call>", "</response>")
# Most tokens per model turn, in training and evaluation alike, unless a config says otherwise: room for 91 % of
# BFCL parallel and 83 % of parallel_multiple gold turns (96 fits 11 % and 8 %; simple ones are all under 192).
MAX_NEW_TOKENS = 192


FinishReason = Literal["stop", "eos", "length"]


class SamplingParams(BaseModel):
    """How to sample one assistant turn."""

    model_config = ConfigDict(frozen=True)

    max_new_tokens: int = Field(default=MAX_NEW_TOKENS, gt=0, description="Most tokens generated for one turn.")
    temperature: float = Field(default=1.0, ge=0.0, description="Sampling temperature; 0 decodes greedily.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: tuple[str, ...] = Field(default=TURN_STOPS, description="Text that ends a turn (kept in the output).")
    seed: int | None = Field(default=None, description="Seed for this call's sampling; None continues the stream.")


class Sample(BaseModel):
    """One sampled continuation."""

    token_ids: list[int] = Field(description="Generated token ids, up to and including the stop or EOS token.")
    logprobs: list[float] = Field(description="Log-probability of each generated token under the sampler.")
    text: str = Field(description="Decoded text of `token_ids` (special tokens dropped).")
    finish_reason: FinishReason = Field(description="Why generation ended.")


class Sampler(Protocol):
    """Generates continuations of token-id prompts; `sync` pulls the learner's current weights."""

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        """One sample per prompt, in order."""
        ...

    def sync(self, model: torch.nn.Module) -> None:
        """Load the learner's weights (a no-op when the sampler shares the learner's model)."""
        ...

    def close(self) -> None:
        """Release what the sampler holds (an engine's processes); it is not used afterwards."""
        ...


class Episode(BaseModel):
    """One episode as tokens: the first prompt, then each model turn and the observation tokens after it."""

    task_id: str = Field(description="The env's task id.")
    group: int = Field(description="Index of the task in the batch; episodes of one group share a task.")
    token_ids: list[int] = Field(description="Prompt, model turns and observation tokens, in order.")
    prompt_length: int = Field(description="Tokens of the first prompt (never trained).")
    action_mask: list[int] = Field(
        description="1 for tokens the model generated (trained), 0 otherwise; same length as token_ids."
    )
    sampling_logprobs: list[float] = Field(description="Sampler log-probs per token (0 where action_mask is 0).")
    step_rewards: list[float] = Field(description="The env's reward of each step.")
    turn_ends: list[int] = Field(
        default_factory=list,
        description="Index in token_ids of each model turn's last token, one per step (PPO puts each step's "
        "reward there).",
    )
    reward_components: list[dict[str, float]] = Field(description="Each step's reward breakdown.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="The env's episode metrics at the end.")
    tool_calls: int = Field(default=0, description="Tool calls the model made in the episode.")
    tool_failures: int = Field(
        default=0,
        description="Calls that failed: the env's `info['call_errors']` (an unknown tool, invalid arguments, an "
        "error or timeout while running, calls past max_calls), summed over the steps.",
    )
    truncated: bool = Field(default=False, description="Ended by max_turns or a token budget, not by the env.")

    @property
    def reward(self) -> float:
        """The episode's return: the sum of its step rewards."""
        return float(sum(self.step_rewards))


class Learner(Protocol):
    """Turns a batch of episodes (groups of episodes per task) into one or more optimiser updates."""

    def update(self, episodes: list[Episode]) -> dict[str, float]:
        """Learn from the episodes; returns namespaced metrics (`losses/policy`, ...)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Optimiser and learner state for checkpoints."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s output."""
        ...
