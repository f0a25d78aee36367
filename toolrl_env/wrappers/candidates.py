"""Candidate completions for one ToolEnv step: the gold, and distractors derived from the offered tools' schemas.

Each distractor is one edit of the gold step (or, when the gold makes no call, a call instead of the answer):

- `other_tool`: one gold call replaced by a call of another offered tool, with schema-valid arguments
  sampled from the schema, three in four of the free numbers and strings then replaced by one of the
  request's numbers (number/integer parameters) or words (non-enum strings);
- `wrong_name`: one argument of a gold call renamed to a name its tool does not declare (a parameter name
  of another offered tool, else `<name>_value`);
- `missing_param`: one argument of a gold call dropped;
- `wrong_value`: one argument changed within its JSON type: a number moved by a nonzero step, a boolean
  flipped, an enum string set to another member, a number inside a string moved, another free-text string
  swapped with another free-text string argument of the call (or replaced by a word of the request), a
  list without its last item;
- `missing_call`: one of several gold calls dropped; `extra_call`: one gold call repeated;
- `no_call`: a `<response>` instead of the calls;
- `needless_call` (gold without calls): a call of an offered tool, arguments as for `other_tool`;
- `wrong_answer`: the gold `<response>` with one of its numbers moved ("I don't know." if it has none).

A distractor is kept only if it differs from the gold and from the others as a set of calls and a response
and the env's reward scores it strictly below the gold, so the gold is the one best choice. Under ToolRL's
default reward a response is not graded on its content, so `wrong_answer` only survives with an answer reward
(`RewardConfig.answer`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from toolrl_env.format import parse, render_turn
from toolrl_env.task import GoldStep
from toolrl_env.wrappers.features import is_number, tokens
from tools.call import ToolCall
from tools.mock import sample_arguments
from tools.tool import Tool, json_types

NO_CALL_RESPONSE = "I cannot do that without more information."
UNKNOWN_ANSWER = "I don't know."
_INTEGER = re.compile(r"\d+")

Edit = tuple[list[ToolCall], str | None]


class Candidate(BaseModel):
    """One choice offered for a step: a complete TIR completion and what the env's reward gives it."""

    kind: str = Field(description="'gold' or the kind of distractor (see the module docstring).")
    calls: list[ToolCall] = Field(description="Its tool calls, in order.")
    response: str | None = Field(description="Its `<response>` text, if any.")
    text: str = Field(description="The completion stepped through the env: `<think>`, then calls and/or response.")
    reward: float = Field(description="The env's reward for it at this step (its total).")


def build_candidates(
    gold: GoldStep,
    tools: Sequence[Tool],
    request: str,
    score: Callable[[str], float],
    count: int,
    rng: np.random.Generator,
) -> list[Candidate]:
    """The gold and `count - 1` distractors scoring strictly below it, in an order drawn from `rng`.

    `score` is the env's reward for a completion at this step (`ToolEnv.score(text).total`). Raises ValueError
    when the step does not allow that many distinct distractors.
    """
    gold_text = gold.text or ""
    parsed = parse(gold_text)
    edits = _Edits(parsed.tool_calls, parsed.response, list(tools), request)
    best = score(gold_text)
    found = [Candidate(kind="gold", calls=edits.calls, response=edits.response, text=gold_text, reward=best)]
    seen = {_key(edits.calls, edits.response)}
    kinds = edits.kinds()
    names = list(kinds)
    for _ in range(20 * count + 20):
        if len(found) == count or not names:
            break
        kind = names[int(rng.integers(len(names)))]
        edit = kinds[kind](rng)
        if edit is None or _key(*edit) in seen:
            continue
        seen.add(_key(*edit))
        calls, response = edit
        text = render_turn(think=parsed.think, tool_calls=calls, response=response)
        reward = score(text)
        if reward < best:
            found.append(Candidate(kind=kind, calls=calls, response=response, text=text, reward=reward))
    if len(found) < count:
        raise ValueError(
            f"only {len(found) - 1} distinct distractors scoring below the gold {gold_text[-120:]!r} could be built "
            f"with the tools {[t.name for t in tools]}; use num_candidates <= {len(found)}"
        )
    return [found[i] for i in rng.permutation(count)]


def _key(calls: Sequence[ToolCall], response: str | None) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Calls as a multiset, plus the response: two candidates with equal keys score the same."""
    return tuple(sorted((c.name, json.dumps(c.parameters, sort_keys=True, default=str)) for c in calls)), response


def _step(rng: np.random.Generator, size: float) -> int:
    """A nonzero integer step of up to half the size (at least 1)."""
    return int(rng.integers(1, max(1, int(abs(size)) // 2) + 1))


def _sign(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


class _Edits:
    """The distractor kinds for one gold step; each method returns (calls, response) or None if it cannot."""

    def __init__(self, calls: list[ToolCall], response: str | None, tools: list[Tool], request: str) -> None:
        self.calls, self.response, self.tools = calls, response, tools
        numbers = [t for t in tokens(request) if is_number(t)]
        self.integers = [int(t) for t in numbers if "." not in t]
        self.numbers: list[int | float] = [float(t) if "." in t else int(t) for t in numbers]
        self.words = sorted({t for t in tokens(request) if t.isalpha()})

    def kinds(self) -> dict[str, Callable[[np.random.Generator], Edit | None]]:
        """The edits that apply to this gold, by kind."""
        kinds: dict[str, Callable[[np.random.Generator], Edit | None]] = {}
        if self.calls:
            kinds.update(extra_call=self.extra_call, no_call=self.no_call)
            names = {c.name for c in self.calls}
            if any(t.name not in names for t in self.tools):
                kinds["other_tool"] = self.other_tool
            if any(c.parameters for c in self.calls):
                kinds.update(wrong_name=self.wrong_name, missing_param=self.missing_param, wrong_value=self.wrong_value)
            if len(self.calls) > 1:
                kinds["missing_call"] = self.missing_call
        elif self.tools:
            kinds["needless_call"] = self.needless_call
        if self.response is not None:
            kinds["wrong_answer"] = self.wrong_answer
        return kinds

    # -- edits of the calls -------------------------------------------------------------------------------
    def other_tool(self, rng: np.random.Generator) -> Edit | None:
        i = int(rng.integers(len(self.calls)))
        others = [t for t in self.tools if t.name != self.calls[i].name]
        if not others:
            return None
        return self._with_call(i, self._request_call(others[int(rng.integers(len(others)))], rng))

    def needless_call(self, rng: np.random.Generator) -> Edit:
        return [self._request_call(self.tools[int(rng.integers(len(self.tools)))], rng)], None

    def wrong_name(self, rng: np.random.Generator) -> Edit:
        i, call = self._call_with_arguments(rng)
        keys = list(call.parameters)
        old = keys[int(rng.integers(len(keys)))]
        declared = set(self._properties(call.name)) | set(call.parameters)
        names = sorted({n for t in self.tools for n in _properties(t)} - declared) or [f"{old}_value"]
        new = names[int(rng.integers(len(names)))]
        parameters = {(new if k == old else k): v for k, v in call.parameters.items()}
        return self._with_call(i, ToolCall(name=call.name, parameters=parameters))

    def missing_param(self, rng: np.random.Generator) -> Edit:
        i, call = self._call_with_arguments(rng)
        keys = list(call.parameters)
        dropped = keys[int(rng.integers(len(keys)))]
        parameters = {k: v for k, v in call.parameters.items() if k != dropped}
        return self._with_call(i, ToolCall(name=call.name, parameters=parameters))

    def wrong_value(self, rng: np.random.Generator) -> Edit | None:
        i, call = self._call_with_arguments(rng)
        properties = self._properties(call.name)
        for key in rng.permutation(list(call.parameters)):
            parameters = self._changed(call.parameters, str(key), properties, rng)
            if parameters is not None:
                return self._with_call(i, ToolCall(name=call.name, parameters=parameters))
        return None

    def missing_call(self, rng: np.random.Generator) -> Edit:
        dropped = int(rng.integers(len(self.calls)))
        return [c for j, c in enumerate(self.calls) if j != dropped], self.response

    def extra_call(self, rng: np.random.Generator) -> Edit:
        return [*self.calls, self.calls[int(rng.integers(len(self.calls)))]], self.response

    def no_call(self, rng: np.random.Generator) -> Edit:
        return [], NO_CALL_RESPONSE if self.response is None else self.response

    # -- edit of the answer -------------------------------------------------------------------------------
    def wrong_answer(self, rng: np.random.Generator) -> Edit | None:
        assert self.response is not None
        answer = _moved_number(self.response, rng) or UNKNOWN_ANSWER
        return None if answer == self.response else (self.calls, answer)

    # -- helpers ------------------------------------------------------------------------------------------
    def _with_call(self, i: int, call: ToolCall) -> Edit:
        return [call if j == i else c for j, c in enumerate(self.calls)], self.response

    def _call_with_arguments(self, rng: np.random.Generator) -> tuple[int, ToolCall]:
        indices = [i for i, c in enumerate(self.calls) if c.parameters]
        i = indices[int(rng.integers(len(indices)))]
        return i, self.calls[i]

    def _properties(self, name: str) -> Mapping[str, Any]:
        tool = next((t for t in self.tools if t.name == name), None)
        return {} if tool is None else _properties(tool)

    def _request_call(self, tool: Tool, rng: np.random.Generator) -> ToolCall:
        """A schema-valid call of `tool`; each free number or string comes from the request 3 times in 4."""
        arguments = sample_arguments(tool, rng)
        properties = _properties(tool)
        for key, value in arguments.items():
            schema = properties.get(key)
            if not isinstance(schema, Mapping) or "enum" in schema or isinstance(value, bool):
                continue
            types = json_types(schema) or frozenset()
            pool: Sequence[Any]
            if "integer" in types and isinstance(value, int):
                pool = self.integers
            elif "number" in types and isinstance(value, (int, float)):
                pool = self.numbers
            elif "string" in types and isinstance(value, str):
                pool = self.words
            else:
                continue
            if pool and rng.random() < 0.75:
                arguments[key] = pool[int(rng.integers(len(pool)))]
        return ToolCall(name=tool.name, parameters=arguments)

    def _changed(
        self, parameters: dict[str, Any], key: str, properties: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, Any] | None:
        """`parameters` with `key`'s value changed within its JSON type, or None if this one cannot be."""
        value = parameters[key]
        changed: Any = None
        if isinstance(value, bool):
            changed = not value
        elif isinstance(value, int):
            changed = value + _step(rng, value) * _sign(rng)
        elif isinstance(value, float):
            changed = round(value + max(abs(value) * float(rng.uniform(0.1, 0.5)), 1.0) * _sign(rng), 2)
        elif isinstance(value, list) and value:
            changed = value[:-1]
        elif isinstance(value, str):
            options = _enum(properties.get(key))
            others = [o for o in options if o != value]
            swaps = [
                k
                for k, v in parameters.items()
                if k != key and isinstance(v, str) and v != value and not _enum(properties.get(k))
            ]
            words = [w for w in self.words if w != value.lower()]
            if others:
                changed = others[int(rng.integers(len(others)))]
            elif (moved := _moved_number(value, rng)) is not None:
                changed = moved
            elif swaps:
                other = swaps[int(rng.integers(len(swaps)))]
                return {**parameters, key: parameters[other], other: value}
            elif words:
                changed = words[int(rng.integers(len(words)))]
        return None if changed is None else {**parameters, key: changed}


def _properties(tool: Tool) -> Mapping[str, Any]:
    properties = tool.parameters.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _enum(schema: Any) -> list[Any]:
    """The members of an enum schema (none for any other schema)."""
    options = schema.get("enum") if isinstance(schema, Mapping) else None
    return options if isinstance(options, list) else []


def _moved_number(text: str, rng: np.random.Generator) -> str | None:
    """`text` with one of its integers (digit runs) moved by a nonzero step, staying non-negative."""
    found = list(_INTEGER.finditer(text))
    if not found:
        return None
    match = found[int(rng.integers(len(found)))]
    number = int(match.group())
    step = _step(rng, number)
    moved = number - step if number - step >= 0 and rng.random() < 0.5 else number + step
    return text[: match.start()] + str(moved) + text[match.end() :]
