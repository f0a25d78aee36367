"""Spaces for text environments: TIR completions as actions, conversations as observations.

Gymnasium's `Text` space only contains strings over a fixed charset (alphanumeric by default), so JSON-bearing
text would not be `contains`-valid; these spaces accept any unicode text up to a length, and know the offered
tools so that `sample()` yields well-formed TIR turns with schema-valid calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Space

from toolrl_env.format import render_turn
from tools.call import ToolCall
from tools.mock import sample_arguments
from tools.tool import Tool

ROLES = ("system", "user", "assistant", "tool")
_WORDS = ("check", "the", "tool", "value", "answer", "user", "call", "result", "need", "first")


def _sample_text(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(_WORDS, size=words))


class TIRAction(Space[str]):
    """Any string up to `max_length` characters: a model's completion for one turn.

    `sample()` returns a well-formed TIR turn: a think text and either one to three schema-valid calls of the
    known tools or a response.
    """

    def __init__(self, tools: Sequence[Tool] = (), max_length: int = 100_000, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.tools = list(tools)
        self.max_length = max_length

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        rng = self.np_random
        think = _sample_text(rng, int(rng.integers(3, 12)))
        if not self.tools or rng.random() < 0.25:
            return render_turn(think=think, response=_sample_text(rng, int(rng.integers(1, 8))))
        picks = rng.integers(0, len(self.tools), size=int(rng.integers(1, 4)))
        calls = [ToolCall(name=self.tools[i].name, parameters=sample_arguments(self.tools[i], rng)) for i in picks]
        return render_turn(think=think, tool_calls=calls)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"TIRAction(tools={len(self.tools)}, max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TIRAction) and other.max_length == self.max_length and other.tools == self.tools


class Conversation(Space[list[dict[str, str]]]):
    """A chat as a list of `{"role", "content"}` messages, as `tokenizer.apply_chat_template` takes it.

    Contains any list of 1 to `max_messages` dicts with exactly the keys role (one of `ROLES`) and content
    (any string up to `max_length` characters).
    """

    def __init__(self, max_messages: int = 64, max_length: int = 1_000_000, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_messages = max_messages
        self.max_length = max_length

    def contains(self, x: Any) -> bool:
        return (
            isinstance(x, list)
            and 0 < len(x) <= self.max_messages
            and all(
                isinstance(m, dict)
                and m.keys() == {"role", "content"}
                and m["role"] in ROLES
                and isinstance(m["content"], str)
                and len(m["content"]) <= self.max_length
                for m in x
            )
        )

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, str]]:
        rng = self.np_random
        return [
            {"role": "system", "content": _sample_text(rng, 8)},
            {"role": "user", "content": _sample_text(rng, int(rng.integers(1, 20)))},
        ]

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Conversation(max_messages={self.max_messages}, max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Conversation)
            and other.max_messages == self.max_messages
            and other.max_length == self.max_length
        )
