"""BFCL's multi-turn verdict: the official `multi_turn_checker` run on an episode's executed calls.

The checker re-executes the model's calls and the gold's on fresh backend instances and compares, after
every turn with gold calls, each instance's public state and that every gold result is among the model's
results. It takes calls as source strings and runs them with `eval()`, so we hand it only calls the env
itself ran to its end (a function of an involved class, neither refused nor stopped by the suite's timeout,
memory cap or sandbox), each written by `call_source` from JSON values with `repr`: a documented method name,
identifier keywords and literals, nothing else.

It keeps its backend instances in module globals named after the model and test id and never frees them;
each check uses a fresh model name and removes its globals afterwards.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from toolrl_env.env import StepRecord
from toolrl_env.envs.bfcl.package import import_bfcl
from toolrl_env.task import Task
from tools.call import ToolCall, ToolResult
from tools.suite import ran_to_its_end


def _literal(value: Any) -> str:
    """Python source for a JSON value (non-finite floats, which `repr` writes as bare names, spelled out)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(map(_literal, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (str, bool, int, float)):
        return repr(value)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def call_source(call: ToolCall) -> str | None:
    """The call as BFCL's call string, `name(key=value, ...)`, or None when it cannot be written as one
    (a name or keyword that is not a plain identifier, a value that is not JSON)."""
    names = [call.name, *call.parameters]
    if not all(isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n) for n in names):
        return None
    try:
        arguments = ", ".join(f"{key}={_literal(value)}" for key, value in call.parameters.items())
    except (TypeError, ValueError, RecursionError):  # ValueError: an int past Python's digit limit
        return None
    return f"{call.name}({arguments})"


def _ran(call: ToolCall, result: ToolResult, offered: set[str]) -> bool:
    """Whether the env ran this call to its end: an offered function the suite neither refused nor stopped (the
    checker replays calls in this process with no timeout or cap, so `power(10, 10**9)` must not reach it)."""
    return call.name in offered and ran_to_its_end(result)


def decoded_calls(task: Task, steps: Sequence[StepRecord]) -> list[list[list[str]]]:
    """The episode's calls as the checker takes them: per turn, per step that ran calls, the call strings."""
    offered = {t.name for t in task.tools}
    turns: list[list[list[str]]] = [[] for _ in task.turns]
    for step in steps:
        sources = [
            call_source(call)
            for call, result in zip(step.parsed.tool_calls, step.results, strict=False)
            if _ran(call, result, offered)
        ]
        ran = [s for s in sources if s is not None]
        if ran:
            turns[step.turn].append(ran)
    return turns


def check_episode(task: Task, decoded: list[list[list[str]]]) -> dict[str, Any]:
    """The official checker's verdict (`{"valid": bool, ...}`) on decoded calls, freeing its backend instances."""
    utils = import_bfcl("eval_checker.multi_turn_eval.multi_turn_utils")
    checker = import_bfcl("eval_checker.multi_turn_eval.multi_turn_checker")
    model_name = f"toolrl_{uuid.uuid4().hex}"
    entry = {"id": task.id, **task.suite_options}
    try:
        verdict: dict[str, Any] = checker.multi_turn_checker(
            decoded, task.metadata["ground_truth"], entry, task.metadata["category"], model_name
        )
    except Exception as exc:  # the checker asserts on shapes; a failure there is a failed episode, not a crash
        verdict = {"valid": False, "error_type": "multi_turn:checker_error", "error_message": repr(exc)}
    finally:
        # Its instance names start with the model name as written into a global name.
        prefix = re.sub(r"[-./:]", "_", model_name)
        for name in [n for n in vars(utils) if n.startswith(prefix)]:
            del vars(utils)[name]
    return verdict


def _key(call: ToolCall) -> tuple[str, str]:
    # JSON text compares values as JSON does (a gold tuple equals the model's list); sort_keys ignores order.
    return call.name, json.dumps(call.parameters, sort_keys=True, default=repr)


def _turn_matches(task: Task, steps: Sequence[StepRecord]) -> list[bool]:
    """Per turn: the calls the model made equal the gold's, as a multiset (exact names and values)."""
    made: list[Counter[tuple[str, str]]] = [Counter() for _ in task.turns]
    for step in steps:
        made[step.turn].update(map(_key, step.parsed.tool_calls))
    gold = [Counter(_key(c) for step in turn.steps for c in step.calls) for turn in task.turns]
    return [m == g for m, g in zip(made, gold, strict=True)]


def bfcl_multi_turn_metrics(task: Task, steps: Sequence[StepRecord]) -> dict[str, Any]:
    """Episode metrics: `success` (the official checker's verdict), `error_type` ("" on success),
    `turn_match` (share of turns whose calls equal the gold's), format, call counts and steps.

    An episode cut off before its last turn ended fails without a check, as BFCL fails a force-terminated
    entry."""
    finished = bool(steps) and steps[-1].turn == len(task.turns) - 1 and not steps[-1].parsed.tool_calls
    if finished:
        verdict = check_episode(task, decoded_calls(task, steps))
    else:
        verdict = {"valid": False, "error_type": "multi_turn:force_terminated"}
    matches = _turn_matches(task, steps)
    results = [r for s in steps for r in s.results]
    return {
        "success": bool(verdict["valid"]),
        "error_type": "" if verdict["valid"] else str(verdict.get("error_type", "")),
        "turn_match": sum(matches) / len(matches),
        "format_ok": sum(s.parsed.format_ok for s in steps) / max(len(steps), 1),
        "tool_calls": sum(len(s.parsed.tool_calls) for s in steps),
        "tool_errors": sum(not r.ok for r in results),
        "steps": len(steps),
    }
