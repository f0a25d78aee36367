"""DiscreteToolChoice: a ToolEnv as a K-way choice among candidate completions, for Stable-Baselines3 and the like."""

from __future__ import annotations

import operator
from typing import Any, SupportsIndex

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field

from toolrl_env.env import ToolEnv
from toolrl_env.wrappers.candidates import Candidate, build_candidates
from toolrl_env.wrappers.features import ChoiceFeaturiser, split_dialogue

Conversation = list[dict[str, str]]


class DiscreteToolChoiceConfig(BaseModel):
    """Settings of `DiscreteToolChoice`."""

    model_config = ConfigDict(extra="forbid")

    num_candidates: int = Field(
        default=4, ge=2, description="K: completions offered per step (the gold and K - 1 distractors)."
    )
    request_buckets: int = Field(default=64, ge=1, description="Hash buckets of the request's bag of features.")
    tool_buckets: int = Field(default=8, ge=1, description="Hash buckets of each candidate's tool names.")


class DiscreteToolChoice(gym.Wrapper[np.ndarray, np.int64, Conversation, str], gym.utils.RecordConstructorArgs):
    """A ToolEnv whose action picks one of K candidate completions, with a numeric observation.

    ## Description
    At every step the wrapper builds K candidates for the step the env expects next: the gold and K - 1
    distractors derived from the offered tools' schemas (another tool, a wrong parameter name, a dropped
    parameter, a wrong value of the right type, a dropped or repeated call, a response instead of calls,
    a needless call instead of the answer; see `toolrl_env.wrappers.candidates`), each scoring strictly
    below the gold under the env's reward, in a random order. The chosen candidate is a complete TIR
    completion (`<think>`, then `<tool_call>` lines and/or `<response>`) and is stepped through the wrapped
    env, so tools run as usual and the reward is ToolRL's, unchanged.

    ## Action Space
    `Discrete(K)`: the index of the chosen candidate.

    ## Observation Space
    `Box(0, 1, (dim,), float32)` from `ChoiceFeaturiser`: a hashed bag of the user's request, whether tools
    have run in this turn, and one block of features per candidate (its shape, schema validity, overlap of
    its arguments and tool with the request); `toolrl_env.wrappers.features` documents every value.

    ## Rewards
    The wrapped env's reward for the chosen completion: the gold earns the most any candidate can.

    ## Randomness
    Candidates and their order are drawn from the wrapped env's `np_random`, so `reset(seed=...)` makes
    whole episodes deterministic.

    ## Info
    The env's info, plus `gold_index` (the gold's index among the new candidates; -1 once the episode has
    ended) and `candidate_kinds`; after a step also `chosen_kind` and `chose_gold`.
    """

    def __init__(
        self,
        env: gym.Env[Conversation, str],
        num_candidates: int = 4,
        request_buckets: int = 64,
        tool_buckets: int = 8,
    ) -> None:
        # Recording the arguments lets `env.spec` (and gymnasium's checker) make this wrapped env again.
        gym.utils.RecordConstructorArgs.__init__(
            self, num_candidates=num_candidates, request_buckets=request_buckets, tool_buckets=tool_buckets
        )
        super().__init__(env)  # type: ignore[arg-type]  # gymnasium annotates `env` with the wrapper's own types
        if not isinstance(env.unwrapped, ToolEnv):
            raise TypeError(
                f"DiscreteToolChoice wraps a ToolEnv, got {type(env.unwrapped).__name__}; "
                "make one with gymnasium.make('ToolEnv-...') after `import toolrl_env`"
            )
        self.tool_env: ToolEnv = env.unwrapped
        self.text_env = env  # `self.env`, typed: gymnasium types that with the wrapper's own spaces
        self.config = DiscreteToolChoiceConfig(
            num_candidates=num_candidates, request_buckets=request_buckets, tool_buckets=tool_buckets
        )
        self.featuriser = ChoiceFeaturiser(num_candidates, request_buckets, tool_buckets)
        self.action_space = spaces.Discrete(num_candidates)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.featuriser.dim,), dtype=np.float32)
        self.candidates: list[Candidate] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        conversation, info = self.text_env.reset(seed=seed, options=options)
        return self._decision(conversation, info, done=False)

    def step(self, action: SupportsIndex) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.candidates:
            raise RuntimeError("call reset() before step(): the episode has not started or has ended")
        try:
            index = operator.index(action)
        except TypeError:
            raise TypeError(f"action must be an integer candidate index, got {action!r}") from None
        if not 0 <= index < len(self.candidates):
            raise ValueError(
                f"action {index} is out of range: choose a candidate index from 0 to {len(self.candidates) - 1}"
            )
        chosen = self.candidates[index]
        conversation, reward, terminated, truncated, info = self.text_env.step(chosen.text)
        info = {**info, "chosen_kind": chosen.kind, "chose_gold": chosen.kind == "gold"}
        observation, info = self._decision(conversation, info, done=terminated or truncated)
        return observation, float(reward), terminated, truncated, info

    def _decision(
        self, conversation: Conversation, info: dict[str, Any], done: bool
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Build the next step's candidates (none once the episode is over) and featurise them."""
        tools = self.tool_env.offered_tools()
        if done:
            self.candidates = []
        else:
            request, _ = split_dialogue(conversation)
            self.candidates = build_candidates(
                self.tool_env.current_gold(),
                tools,
                request,
                lambda text: self.tool_env.score(text).total,
                self.config.num_candidates,
                self.np_random,
            )
        observation = self.featuriser(conversation, [(c.calls, c.response) for c in self.candidates], tools)
        kinds = [c.kind for c in self.candidates]
        gold_index = kinds.index("gold") if kinds else -1
        return observation, {**info, "gold_index": gold_index, "candidate_kinds": kinds}
