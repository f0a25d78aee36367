"""Bamboogle's scoring: the gold step a completion is scored against, and the episode's EM / F1 and tool use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolrl_env.env import StepRecord
from toolrl_env.format import ParsedTurn
from toolrl_env.qa import exact_match, f1_score, normalize_answer
from toolrl_env.task import GoldStep, Task
from tools.call import ToolCall


def align_gold(task: Task, gold: GoldStep, parsed: ParsedTurn) -> GoldStep:
    """The gold step of the completion's kind: the search step if it calls tools, else the answer step.

    A search whose query equals the gold query after QA normalisation is scored as the gold query itself.
    """
    steps = next((t.steps for t in task.turns if gold in t.steps), task.turns[-1].steps)
    if not parsed.tool_calls:
        return next((s for s in reversed(steps) if s.answer is not None), gold)
    call_step = next((s for s in steps if s.calls), gold)
    wanted = [normalize_answer(str(c.parameters.get("query", ""))) for c in call_step.calls]
    for call in parsed.tool_calls:
        query = call.parameters.get("query")
        if isinstance(query, str) and normalize_answer(query) in wanted:
            calls = [
                ToolCall(name=c.name, parameters={**c.parameters, "query": query})
                if w == normalize_answer(query)
                else c
                for c, w in zip(call_step.calls, wanted, strict=True)
            ]
            return GoldStep(calls=calls)
    return call_step


def bamboogle_metrics(task: Task, steps: Sequence[StepRecord]) -> dict[str, Any]:
    """EM and F1 of the final step's `<response>` against the answer, and tool use."""
    answer = next(s.answer for t in task.turns for s in reversed(t.steps) if s.answer is not None)
    response = steps[-1].parsed.response if steps else None
    results = [r for s in steps for r in s.results]
    return {
        "em": exact_match(response, answer),
        "f1": f1_score(response, answer),
        "answered": response is not None,
        "tool_calls": sum(len(s.parsed.tool_calls) for s in steps),
        "tool_errors": sum(not r.ok for r in results),
        "format_ok": sum(s.parsed.format_ok for s in steps) / max(len(steps), 1),
        "steps": len(steps),
    }
