"""BFCL's single-turn metric, `ast_match`: exactly the verdict of bfcl-eval's official AST checker, as its
runner (`bfcl_eval/eval_checker/eval_runner.py`) reaches it; and the gold aligner that lets the reward count
every value that checker accepts as correct.

**Decoding** (what ToolRL's BFCL handler did, read through our parser): the calls are those `format.parse`
decodes from the completion's `<tool_call>` block, minus calls named "none" in any case and spacing, each as
`{name: parameters}`; no block means no call. Two differences from ToolRL's handler, both so that the metric
and the reward read the same calls: the *first* block is read (ToolRL read the last; the reward reads the
first, and a completion with two blocks fails ToolRL's format reward anyway), and a block with a line that is
not a JSON call is a decode failure (ToolRL skipped such lines; the reward gives them the minimum).

**Verdict**, per category, as the official runner decides it:
- irrelevance, live_irrelevance: true when no call is decoded (a decode failure counts as no call);
- live_relevance: true when at least one call is decoded;
- the others: false on a decode failure, else `ast_checker(function, calls, possible_answer, language,
  category, model_name)["valid"]`; a checker exception on hostile values (it raises on some) is false, and so
  is a Java or JavaScript collection argument too long or too bracket-heavy for the checker's regexes to read
  in bounded time (`regex_safe`; no BFCL answer comes near its bounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from toolrl_env.env import StepRecord, tool_call_metrics
from toolrl_env.envs.bfcl.package import import_bfcl
from toolrl_env.envs.bfcl.tasks import IRRELEVANCE_CATEGORIES
from toolrl_env.format import ParsedTurn, tool_call_lines
from toolrl_env.task import GoldStep, Task
from tools.call import ToolCall

# Only read by the checker's `underscore_to_dot` lookup, which our model-config stand-in answers with False.
MODEL_NAME = "toolrl"
Decoded = list[dict[str, dict[str, Any]]]
# BFCL's Java and JavaScript type converters read these parameter types from the model's string with regexes
# that backtrack exponentially in the closing brackets (for `[[]` + `,[]` * n + `,[` the JavaScript array
# pattern takes 0.1 s at n = 18 and 1.8 times longer for each further n, holding the interpreter, so no
# timeout can stop it) and quadratically in the length. Strings past these bounds are not accepted, without
# asking the checker: no BFCL answer comes near them (the longest gold value has 144 characters, 5 brackets).
REGEX_PARSED_TYPES = {"JavaScript": frozenset({"array", "dict"}), "Java": frozenset({"ArrayList", "Array", "HashMap"})}
MAX_PARSED_CHARS = 1_000
MAX_PARSED_BRACKETS = 16
# The reward matches every predicted call against every gold call, so a gold aligned to thousands of accepted
# calls (any call is accepted on live_relevance) costs seconds a step; BFCL's answers have at most a few.
MAX_ALIGNED_CALLS = 64


@cache
def _checker() -> Any:
    return import_bfcl("eval_checker.ast_eval.ast_checker")


@cache
def _language(name: str) -> Any:
    return getattr(import_bfcl("constants.enums").Language, name.upper())


def is_none_call(call: ToolCall) -> bool:
    """ToolRL's handler drops calls named "none" (its prompt invited them when nothing fits)."""
    return call.name.strip().lower() == "none"


def decode_calls(parsed: ParsedTurn, action: str | None = None) -> Decoded | None:
    """The completion's calls as BFCL's `[{name: parameters}]`, or None when its call block does not decode
    (a line that is not a JSON call; needs the completion `action` to tell)."""
    calls = parsed.tool_calls
    if calls and action is not None and len(tool_call_lines(action.strip())) != len(calls):
        return None
    return [{c.name: c.parameters} for c in calls if not is_none_call(c)]


def ast_verdict(task: Task, decoded: Decoded | None) -> bool:
    """The official verdict for one task's decoded calls (None: the decoding failed)."""
    category = task.metadata["category"]
    if category in IRRELEVANCE_CATEGORIES:
        return not decoded
    if category == "live_relevance":
        return bool(decoded)
    if decoded is None:
        return False
    return _check(
        task.metadata["function"], decoded, task.metadata["possible_answer"], task.metadata["language"], category
    )


def regex_safe(function: Any, decoded: Decoded, language: str) -> bool:
    """False when a call gives a Java or JavaScript collection parameter a string that BFCL's type converters
    could not read in reasonable time (longer than MAX_PARSED_CHARS or with more than MAX_PARSED_BRACKETS
    closing brackets)."""
    parsed_types = REGEX_PARSED_TYPES.get(language)
    if parsed_types is None:
        return True
    functions = {f.get("name"): f for f in function if isinstance(f, dict)}
    for call in decoded:
        for name, parameters in call.items():
            properties = functions.get(name, {}).get("parameters", {}).get("properties", {})
            for param, value in parameters.items():
                if not isinstance(value, str) or properties.get(param, {}).get("type") not in parsed_types:
                    continue
                brackets = value.count("]") + value.count(")") + value.count("}")
                if len(value) > MAX_PARSED_CHARS or brackets > MAX_PARSED_BRACKETS:
                    return False
    return True


def _check(function: Any, decoded: Decoded, answer: Any, language: str, category: str) -> bool:
    if not regex_safe(function, decoded, language):
        return False
    try:
        result = _checker().ast_checker(function, decoded, answer, _language(language), category, MODEL_NAME)
    except Exception:  # the checker indexes and converts values as it finds them; hostile ones raise
        return False
    return result["valid"] is True


def bfcl_metrics(task: Task, steps: Sequence[StepRecord]) -> dict[str, Any]:
    """ToolEnv's default tool-call metrics, plus `ast_match` (the official verdict) and `category`.

    `exact_match` compares with the gold the step was scored against, after alignment (so it is true when the
    calls equal what BFCL accepted); `answer_match` is left out: an irrelevance gold's response is a placeholder.
    """
    metrics = tool_call_metrics(task, steps)
    metrics.pop("answer_match", None)
    # BFCL scores the model's one answer to the question: the first step (later ones exist only in
    # multi_turn mode, after mock observations)
    first = steps[0] if steps else None
    decoded = decode_calls(first.parsed, first.action) if first is not None else []
    metrics["ast_match"] = ast_verdict(task, decoded)
    metrics["category"] = task.metadata["category"]
    return metrics


# -- the gold the reward scores against -----------------------------------------------------------------------
def align_bfcl_gold(task: Task, gold: GoldStep, parsed: ParsedTurn) -> GoldStep:
    """The gold to score `parsed` against, so that what BFCL accepts scores as correct.

    - The whole output accepted (by the official verdict): the gold becomes the completion's own calls, so
      the correctness reward is at its top.
    - Otherwise each gold call is paired, in gold order, with the unused predicted call of its name that has
      the most parameter values BFCL accepts for it (the official checker run on that one parameter against
      that call's possible answer), and takes those values; the rest of the gold stays as built.
    Irrelevance golds (no call) are never changed: the reward gives a call-free gold 0 correctness anyway;
    nor are golds for more than MAX_ALIGNED_CALLS calls.
    """
    calls = parsed.tool_calls
    category = task.metadata["category"]
    if not calls or category in IRRELEVANCE_CATEGORIES or len(calls) > MAX_ALIGNED_CALLS:
        return gold
    if ast_verdict(task, decode_calls(parsed)):
        return GoldStep(calls=list(calls))
    answer = task.metadata["possible_answer"]
    if answer is None:  # live_relevance without a call the checker counts
        return gold
    used: set[int] = set()
    aligned = []
    for gold_call, possible in zip(gold.calls, answer, strict=True):
        best, best_accepted = None, {}
        for index, call in enumerate(calls):
            if index in used or call.name != gold_call.name:
                continue
            accepted = _accepted_values(task, call, possible)
            if best is None or len(accepted) > len(best_accepted):
                best, best_accepted = index, accepted
        if best is not None:
            used.add(best)
        if best_accepted:
            gold_call = ToolCall(name=gold_call.name, parameters={**gold_call.parameters, **best_accepted})
        aligned.append(gold_call)
    return GoldStep(calls=aligned) if aligned != gold.calls else gold


def _accepted_values(task: Task, call: ToolCall, possible: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """The call's parameters whose values the official checker accepts for this possible answer, one by one."""
    ((name, accepted_values),) = possible.items()
    function = next((f for f in task.metadata["function"] if f["name"] == name), None)
    if function is None:
        return {}
    properties = function.get("parameters", {}).get("properties", {})
    accepted = {}
    for param, value in call.parameters.items():
        if param not in properties or param not in accepted_values:
            continue
        one = {"name": name, "parameters": {"type": "dict", "properties": {param: properties[param]}, "required": []}}
        if _check(
            [one],
            [{name: {param: value}}],
            [{name: {param: accepted_values[param]}}],
            task.metadata["language"],
            "simple",
        ):
            accepted[param] = value
    return accepted
