"""API-Bank's `api_match`, exactly as ToolRL's benchmarks/API-Bank scripts compute it.

generate.py decodes the model's output: the text after the last `<tool_call>` up to the next `</tool_call>`
(the whole output when there is no tag), split into lines, each line that `json.loads` accepts kept, the
others dropped. evaluate.py then walks those values in order: a string is decoded again; a value without
both "name" and "parameters" counts as the parameters of a call to the gold API; a hit is a name equal to
the gold name and parameters equal (Python ==) to the gold parameters. Any error (a number, null or a string
where a call should be) ends the walk with what was found so far. No other normalisation happens. Their
JSON round trip of the decoded calls through result.json changes nothing that can compare equal to a gold,
whose values are all strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from toolrl_env.env import StepRecord, tool_call_metrics
from toolrl_env.task import Task


def decode_tool_calls(completion: str) -> list[Any]:
    """The JSON values generate.py reads from a completion."""
    block = completion.strip().split("<tool_call>")[-1].split("</tool_call>")[0].strip()
    values = []
    for line in block.split("\n"):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except Exception:  # generate.py drops whatever json.loads refuses (a bare except)
            continue
    return values


def api_match(completion: str, gold: Mapping[str, Any]) -> bool:
    """True if a decoded call has the gold's name and parameters (evaluate.py's soft match)."""
    if not isinstance(completion, str):
        return False
    gold_name, gold_parameters = gold["name"], gold["parameters"]
    try:
        for call in decode_tool_calls(completion):
            if isinstance(call, str):
                call = json.loads(call)
            if "name" not in call or "parameters" not in call:
                name, parameters = gold_name, call
            else:
                name, parameters = call["name"], call["parameters"]
            if name == gold_name and parameters == gold_parameters:
                return True
    except Exception:  # evaluate.py catches, prints and keeps score 0
        return False
    return False


def api_bank_metrics(task: Task, steps: Sequence[StepRecord]) -> dict[str, Any]:
    """The default metrics plus `api_match` of the first step (the completion ToolRL scored) and `level`."""
    metrics = tool_call_metrics(task, steps)
    metrics["api_match"] = bool(steps) and api_match(steps[0].action, task.metadata["gold"])
    metrics["level"] = task.metadata["level"]
    return metrics
