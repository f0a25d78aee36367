"""A fixed-size numeric view of one ToolEnv decision: the user's request plus K candidate completions.

`ChoiceFeaturiser(K, request_buckets=R, tool_buckets=B)` maps a conversation and its K candidates to a
float32 vector of `dim = R + 1 + K * (13 + B)` values, every one in [0, 1]:

Tokens: the text with camelCase split, lower-cased, cut into numbers (`12`, `3.5`; `12.0` reads as `12`),
runs of letters, and single other characters (`+`, `(`, `?`); `_` and spaces separate. The request is the
text of the last `<user> … </user>` record of the dialogue; the results are the `<obs>` records after it
(what the tools returned in this turn).

Request part (R + 1 values):
  [0, R)   hashed bag of the request: each token (every number as the one token `<num>`) and each
           character trigram of each letter run (with `^`/`$` marking its ends) adds 1 at
           `crc32(feature) % R`; the counts are divided by their L2 norm.
  R        1 if an `<obs>` record follows the request (tools have run in this turn), else 0.
Then one block of 13 + B values per candidate, in the order of the action indices (a block of zeros when
the episode has ended and there is nothing to choose). "Args" are the leaf values of the candidate's call
parameters (inside lists and objects too); values 4 to 11 and the buckets are 0 for a candidate without calls:
  0   1 (a candidate is here)
  1   1 if it makes no tool call
  2   1 if it has a `<response>`
  3   number of calls / 4, capped at 1
  4   share of calls naming an offered tool
  5   share of calls whose arguments pass the named tool's schema (`Tool.validate_arguments`)
  6   share of argument names the named tool declares (1 for calls without arguments)
  7   mean over args of the share of the arg's tokens that occur in the request (1 with no args)
  8   share of the request's distinct numbers that occur among the args' tokens (1 if it has none)
  9   order: within each call, take the parameters (top level, in the call's order) whose value's first
      token occurs in the request; the share of consecutive ones whose first occurrences in the request
      are in the same order (1 when no call has two such parameters)
  10  mean over calls of the share of the request's letter tokens found in the named tool's name and
      description (0 for a tool not offered)
  11  share of calls equal to an earlier call of the same candidate
  12  share of the response's tokens found in the results (0 without a response)
  13… B tool-name buckets: each call adds 1 / (number of calls) at `crc32(tool name) % B`.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tools.call import ToolCall
from tools.tool import Tool

CANDIDATE_FEATURES = 13  # per-candidate values before the tool-name buckets
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[^\w\s]")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_OBS = re.compile(r"<obs>.*?</obs>", re.DOTALL)


@functools.lru_cache(maxsize=8192)  # requests, values and tool descriptions recur step after step
def tokens(text: str) -> tuple[str, ...]:
    """The featuriser's tokens: numbers (canonical: `12.0` is `12`), letter runs, single other characters."""
    found = _TOKEN.findall(_CAMEL.sub(" ", text).lower())
    return tuple(_canonical_number(t) if t[0].isdigit() else t for t in found)


def _canonical_number(token: str) -> str:
    return token.rstrip("0").rstrip(".") if "." in token else token


def is_number(token: str) -> bool:
    return token[0].isdigit()


def split_dialogue(conversation: Sequence[dict[str, str]]) -> tuple[str, str]:
    """(request, results): the text of the dialogue's last `<user>` record, and the `<obs>` records after it."""
    text = conversation[-1]["content"] if conversation else ""
    start = text.rfind("<user>")
    end = text.find("</user>", start) if start >= 0 else -1
    if end < 0:
        return "", ""
    return text[start + len("<user>") : end].strip(), " ".join(_OBS.findall(text, end))


def _bucket(feature: str, buckets: int) -> int:
    return zlib.crc32(feature.encode("utf-8", "surrogatepass")) % buckets


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield value


def _value_tokens(value: Any) -> tuple[str, ...]:
    return tokens(value if isinstance(value, str) else json.dumps(value))


def _share(hits: float, total: int, empty: float) -> float:
    return hits / total if total else empty


@functools.lru_cache(maxsize=1024)  # one request is featurised at every step of its turn
def _hashed_bag(request_tokens: tuple[str, ...], buckets: int) -> np.ndarray:
    counts = np.zeros(buckets, dtype=np.float64)
    for token in request_tokens:
        counts[_bucket("<num>" if is_number(token) else token, buckets)] += 1
        if token.isalpha():
            marked = f"^{token}$"
            for i in range(len(marked) - 2):
                counts[_bucket(marked[i : i + 3], buckets)] += 1
    norm = float(np.linalg.norm(counts))
    bag = counts / norm if norm else counts
    bag.flags.writeable = False
    return bag


class ChoiceFeaturiser:
    """Conversation + candidates -> a float32 vector in [0, 1]^dim (the module docstring says what each value is)."""

    def __init__(self, num_candidates: int, request_buckets: int = 64, tool_buckets: int = 8) -> None:
        self.num_candidates = num_candidates
        self.request_buckets = request_buckets
        self.tool_buckets = tool_buckets
        self.candidate_dim = CANDIDATE_FEATURES + tool_buckets
        self.dim = request_buckets + 1 + num_candidates * self.candidate_dim

    def __call__(
        self,
        conversation: Sequence[dict[str, str]],
        candidates: Sequence[tuple[Sequence[ToolCall], str | None]],
        tools: Sequence[Tool],
    ) -> np.ndarray:
        """The features of a decision; `candidates` are (calls, response) pairs in action order."""
        if len(candidates) not in (0, self.num_candidates):
            raise ValueError(f"expected {self.num_candidates} candidates (or none), got {len(candidates)}")
        request, results = split_dialogue(conversation)
        request_tokens = tokens(request)
        out = np.zeros(self.dim, dtype=np.float32)
        out[: self.request_buckets] = _hashed_bag(request_tokens, self.request_buckets)
        out[self.request_buckets] = float(bool(results))
        context = _Context(request_tokens, set(tokens(results)), {t.name: t for t in tools})
        start = self.request_buckets + 1
        for calls, response in candidates:
            out[start : start + self.candidate_dim] = self._candidate(calls, response, context)
            start += self.candidate_dim
        return np.clip(out, 0.0, 1.0, out=out)  # float rounding of a normalised count can pass 1 by an ulp

    def _candidate(self, calls: Sequence[ToolCall], response: str | None, ctx: _Context) -> np.ndarray:
        f = np.zeros(self.candidate_dim, dtype=np.float64)
        n = len(calls)
        f[0], f[1], f[2], f[3] = 1.0, float(n == 0), float(response is not None), min(n, 4) / 4
        if response is not None:
            said = tokens(response)
            f[12] = _share(sum(t in ctx.results for t in said), len(said), 0.0)
        if not n:
            return f
        named = [ctx.tools.get(c.name) for c in calls]
        keys = [(tool, key) for tool, call in zip(named, calls, strict=True) for key in call.parameters]
        args = [_value_tokens(v) for call in calls for v in _leaves(call.parameters)]
        arg_tokens = {t for arg in args for t in arg}
        pairs = [pair for call in calls for pair in ctx.ordered_pairs(call)]
        f[4] = sum(t is not None for t in named) / n
        f[5] = (
            sum(t is not None and t.validate_arguments(c.parameters) is None for t, c in zip(named, calls, strict=True))
            / n
        )
        f[6] = _share(sum(t is not None and key in t.parameters.get("properties", {}) for t, key in keys), len(keys), 1)
        f[7] = _share(sum(ctx.found(arg) for arg in args), len(args), 1.0)
        f[8] = _share(len(ctx.numbers & arg_tokens), len(ctx.numbers), 1.0)
        f[9] = _share(sum(pairs), len(pairs), 1.0)
        f[10] = sum(ctx.tool_overlap(t) for t in named) / n
        seen = [(c.name, json.dumps(c.parameters, sort_keys=True, default=str)) for c in calls]
        f[11] = sum(key in seen[:i] for i, key in enumerate(seen)) / n
        for call in calls:
            f[CANDIDATE_FEATURES + _bucket(call.name, self.tool_buckets)] += 1 / n
        return f


class _Context:
    """What every candidate of one decision is compared with."""

    def __init__(self, request_tokens: Sequence[str], results: set[str], tools: dict[str, Tool]) -> None:
        self.request = set(request_tokens)
        self.results = results
        self.tools = tools
        self.numbers = {t for t in request_tokens if is_number(t)}
        self.words = {t for t in request_tokens if t.isalpha()}
        self.position: dict[str, int] = {}
        for i, token in enumerate(request_tokens):
            self.position.setdefault(token, i)
        self._overlap: dict[str, float] = {}

    def found(self, arg_tokens: Sequence[str]) -> float:
        return _share(sum(t in self.request for t in arg_tokens), len(arg_tokens), 1.0)

    def ordered_pairs(self, call: ToolCall) -> list[bool]:
        """For consecutive arguments whose first tokens occur in the request: are they in request order?"""
        firsts = [_value_tokens(v)[:1] for v in call.parameters.values()]
        places = [self.position[t[0]] for t in firsts if t and t[0] in self.position]
        return [a < b for a, b in itertools.pairwise(places)]

    def tool_overlap(self, tool: Tool | None) -> float:
        if tool is None:
            return 0.0
        if tool.name not in self._overlap:
            described = set(tokens(f"{tool.name} {tool.description}"))
            self._overlap[tool.name] = _share(len(self.words & described), len(self.words), 0.0)
        return self._overlap[tool.name]
