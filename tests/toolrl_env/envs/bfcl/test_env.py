"""ToolEnv-BFCL-v0 on the whole of bfcl-eval's single-turn data: counts, splits, prompts, and `ast_match` equal to
the official AST checker's verdict (called here directly) on gold and perturbed completions."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import gymnasium as gym
import pytest

import toolrl_env  # registers the ToolEnv ids
from toolrl_env import ToolEnv
from toolrl_env.envs.bfcl.env import make_bfcl_env
from toolrl_env.envs.bfcl.metrics import decode_calls
from toolrl_env.envs.bfcl.package import SINGLE_TURN_CATEGORIES, bfcl_root, import_bfcl, load_entries
from toolrl_env.envs.bfcl.tasks import category_tasks, load_bfcl_tasks
from toolrl_env.format import render_turn
from toolrl_env.rewards import resolve_config, reward_bounds
from toolrl_env.task import Task
from tools.call import ToolCall

COUNTS = {
    "simple_python": 400,
    "simple_java": 100,
    "simple_javascript": 50,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 884,
    "live_relevance": 16,
}
# Data errors: the official checker rejects the ground truth itself. The four live ones: a required parameter
# with no accepted value, or an answer parameter the schema lacks. The three Java ones: the checker reads every
# element of an `ArrayList<any>` as a string, so an answer list holding 42 or true cannot match (36, 65), and a
# HashMap answer written as a bare string is compared character by character (64).
KNOWN_UNSATISFIABLE = {
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_862-181-3",
    "live_multiple_964-207-0",
    "simple_java_36",
    "simple_java_64",
    "simple_java_65",
}
# Answers outside their own schema (a value not in the parameter's enum, a string for an array, null for a
# string): our argument validator flags these gold calls, BFCL's checker does not look at enums.
SCHEMA_INCONSISTENT = {
    "parallel_multiple_21",
    "parallel_multiple_94",
    "live_simple_71-35-0",
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_87-38-4",
    "live_multiple_152-58-6",
    "live_multiple_552-153-1",
    "live_multiple_595-158-1",
    "live_multiple_596-158-2",
    "live_multiple_731-167-2",
    "live_multiple_733-167-4",
    "live_multiple_735-167-6",
    "live_multiple_750-169-5",
    "live_multiple_756-169-11",
    "live_multiple_835-178-10",
    "live_multiple_871-182-8",
    "live_multiple_947-197-0",
    "live_multiple_964-207-0",
    "live_multiple_1038-265-0",
    "live_parallel_multiple_2-2-0",
}
AST_CATEGORIES = [c for c in SINGLE_TURN_CATEGORIES if "relevance" not in c]
LOW, HIGH = reward_bounds(resolve_config("default"))
TOP_CORRECTNESS = resolve_config("default").correctness_max
THINK = "<think> t </think>\n"


@pytest.fixture(scope="module")
def env() -> ToolEnv:
    made = gym.make("ToolEnv-BFCL-v0").unwrapped
    assert isinstance(made, ToolEnv)
    return made


def official_verdict(task: Task, calls: list[ToolCall]) -> bool:
    """The official checker's verdict, called here as bfcl-eval's runner calls it (language from the category)."""
    meta = task.metadata
    decoded = [{c.name: c.parameters} for c in calls]
    language = import_bfcl("constants.enums").Language
    lang = {"simple_java": language.JAVA, "simple_javascript": language.JAVASCRIPT}.get(meta["category"])
    checker = import_bfcl("eval_checker.ast_eval.ast_checker").ast_checker
    try:
        result = checker(
            copy.deepcopy(load_function(task.id)),
            copy.deepcopy(decoded),
            copy.deepcopy(meta["possible_answer"]),
            lang or language.PYTHON,
            meta["category"],
            "any_model",
        )
    except Exception:
        return False
    return bool(result["valid"])


@cache
def _functions() -> dict[str, Any]:
    return {e["id"]: e["function"] for c in SINGLE_TURN_CATEGORIES for e in load_entries(c)}


def load_function(task_id: str) -> Any:
    return _functions()[task_id]


def calls_action(calls: list[ToolCall]) -> str:
    return render_turn(think="t", tool_calls=calls)


def play(env: ToolEnv, task_id: str, action: Any) -> tuple[float, dict[str, Any]]:
    env.reset(options={"task_id": task_id})
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    return reward, info


def gold_of(task: Task) -> list[ToolCall]:
    return list(task.turns[0].steps[0].calls)


def with_answer(category: str) -> list[Task]:
    return [t for t in category_tasks(category) if t.metadata["possible_answer"] is not None]


# -- data -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("category", SINGLE_TURN_CATEGORIES)
def test_one_task_per_line_of_bfcl_files(category: str) -> None:
    path = bfcl_root() / "data" / f"BFCL_v4_{category}.json"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = category_tasks(category)
    assert len(tasks) == len(lines) == COUNTS[category]
    assert [t.id for t in tasks] == [row["id"] for row in lines]
    assert all(t.metadata["category"] == category for t in tasks)


def test_default_env_has_every_category(env: ToolEnv) -> None:
    assert len(env.tasks) == sum(COUNTS.values()) == 3641
    assert env.config.mode == "single_turn"


# -- the gold, fed back ---------------------------------------------------------------------------------------
def test_gold_completion_gets_the_official_verdict_and_top_correctness(env: ToolEnv) -> None:
    rejected = set()
    checked = 0
    for category in AST_CATEGORIES:
        for task in with_answer(category):
            gold = gold_of(task)
            _, info = play(env, task.id, calls_action(gold))
            verdict = official_verdict(task, gold)
            assert info["metrics"]["ast_match"] is verdict, task.id
            assert info["reward_breakdown"]["correctness"] == TOP_CORRECTNESS, task.id
            assert info["metrics"]["category"] == category
            rejected |= set() if verdict else {task.id}
            checked += 1
    assert checked == sum(COUNTS[c] for c in AST_CATEGORIES)
    assert rejected == KNOWN_UNSATISFIABLE


def test_our_validator_accepts_the_gold_calls_except_bfcl_data_errors() -> None:
    flagged = set()
    for task in load_bfcl_tasks():
        tools = {t.name: t for t in task.tools}
        for call in gold_of(task) if task.metadata["possible_answer"] is not None else []:
            if tools[call.name].validate_arguments(call.parameters) is not None:
                flagged.add(task.id)
    assert flagged == SCHEMA_INCONSISTENT


# -- perturbed completions: exactly the official verdict --------------------------------------------------------
def _other_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1000
    if isinstance(value, str):
        return value + " zebra"
    if isinstance(value, list):
        return [*value, value[0] if value else 7]
    if isinstance(value, dict):
        return {**value, "zz_extra": 1}
    return "zebra"


def _other_type(value: Any) -> Any:
    if isinstance(value, str):
        return 12345
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def _replace_first(calls: list[ToolCall], change: Callable[[Any], Any]) -> list[ToolCall] | None:
    for i, call in enumerate(calls):
        if call.parameters:
            key = next(iter(call.parameters))
            changed = ToolCall(name=call.name, parameters={**call.parameters, key: change(call.parameters[key])})
            return [*calls[:i], changed, *calls[i + 1 :]]
    return None


def _drop_required(task: Task, calls: list[ToolCall]) -> list[ToolCall] | None:
    functions = {f["name"]: f for f in load_function(task.id)}
    for i, call in enumerate(calls):
        required = functions[call.name]["parameters"].get("required", [])
        key = next((k for k in call.parameters if k in required), None)
        if key is not None:
            rest = {k: v for k, v in call.parameters.items() if k != key}
            return [*calls[:i], ToolCall(name=call.name, parameters=rest), *calls[i + 1 :]]
    return None


PERTURBATIONS: dict[str, Callable[[Task, list[ToolCall]], list[ToolCall] | None]] = {
    "wrong_value": lambda task, calls: _replace_first(calls, _other_value),
    "wrong_type": lambda task, calls: _replace_first(calls, _other_type),
    "missing_required": _drop_required,
    "unknown_parameter": lambda task, calls: [
        ToolCall(name=calls[0].name, parameters={**calls[0].parameters, "zz_unknown": 1}),
        *calls[1:],
    ],
    "wrong_name": lambda task, calls: [
        ToolCall(name=calls[0].name + "_v2", parameters=calls[0].parameters),
        *calls[1:],
    ],
    "extra_call": lambda task, calls: [*calls, calls[0]],
    "missing_call": lambda task, calls: calls[:-1],
}


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_perturbed_completions_get_exactly_the_official_verdict(env: ToolEnv, kind: str) -> None:
    verdicts = []
    for category in AST_CATEGORIES:
        for task in with_answer(category):
            calls = PERTURBATIONS[kind](task, gold_of(task))
            if calls is None:
                continue
            _, info = play(env, task.id, calls_action(calls))
            verdict = official_verdict(task, calls)
            assert info["metrics"]["ast_match"] is verdict, (kind, task.id)
            if verdict:  # whatever BFCL accepts scores as correct
                assert info["reward_breakdown"]["correctness"] == TOP_CORRECTNESS, (kind, task.id)
            verdicts.append(verdict)
    assert len(verdicts) > 1500
    assert verdicts.count(False) > 0.9 * len(verdicts)  # the perturbations really break the calls


def test_an_accepted_alternative_value_scores_top_and_a_wrong_one_keeps_partial_credit(env: ToolEnv) -> None:
    task = next(t for t in category_tasks("simple_python") if t.id == "simple_python_0")
    # {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}
    assert task.metadata["possible_answer"] == [
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}
    ]
    alternative = ToolCall(name="calculate_triangle_area", parameters={"base": 10, "height": 5, "unit": "Units"})
    _, info = play(env, task.id, calls_action([alternative]))
    assert info["metrics"]["ast_match"] is True
    assert info["reward_breakdown"]["correctness"] == TOP_CORRECTNESS
    # base wrong, unit accepted: only base costs, as if the gold had named the unit the model chose
    wrong = ToolCall(name="calculate_triangle_area", parameters={"base": 11, "height": 5, "unit": "units"})
    _, info = play(env, task.id, calls_action([wrong]))
    expected = toolrl_env.compute_score(
        calls_action([wrong]),
        calls_action([ToolCall(name="calculate_triangle_area", parameters={"base": 10, "height": 5, "unit": "units"})]),
    )
    assert info["metrics"]["ast_match"] is False
    assert info["reward_breakdown"]["correctness"] == pytest.approx(expected.correctness)
    assert info["reward_breakdown"]["correctness"] < TOP_CORRECTNESS


def test_parallel_calls_in_any_order_score_top(env: ToolEnv) -> None:
    task = next(t for t in with_answer("parallel") if len(gold_of(t)) >= 3)
    calls = gold_of(task)[::-1]
    _, info = play(env, task.id, calls_action(calls))
    assert info["metrics"]["ast_match"] is True
    assert info["reward_breakdown"]["correctness"] == TOP_CORRECTNESS


# -- decoding ------------------------------------------------------------------------------------------------
def test_calls_named_none_are_dropped_and_a_broken_line_fails_decoding(env: ToolEnv) -> None:
    task = with_answer("simple_python")[0]
    gold = gold_of(task)
    _, info = play(env, task.id, calls_action([*gold, ToolCall(name=" None ", parameters={})]))
    assert info["metrics"]["ast_match"] is True
    assert info["reward_breakdown"]["correctness"] == TOP_CORRECTNESS
    broken = calls_action(gold).replace("\n</tool_call>", "\n{not json\n</tool_call>")
    _, info = play(env, task.id, broken)
    assert info["metrics"]["ast_match"] is False
    assert info["reward_breakdown"]["correctness"] == resolve_config("default").correctness_min
    # only the first <tool_call> block is read, as the reward reads it
    two_blocks = calls_action([ToolCall(name="other", parameters={})]) + "\n" + calls_action(gold)[len(THINK) :]
    assert play(env, task.id, two_blocks)[1]["metrics"]["ast_match"] is False


def test_decode_calls_shape() -> None:
    from toolrl_env.format import parse

    text = calls_action([ToolCall(name="f", parameters={"a": 1}), ToolCall(name="NONE", parameters={})])
    assert decode_calls(parse(text), text) == [{"f": {"a": 1}}]
    assert decode_calls(parse(THINK + "<response> hi </response>"), "") == []


# -- irrelevance and relevance -------------------------------------------------------------------------------
@pytest.mark.parametrize("category", ["irrelevance", "live_irrelevance"])
def test_irrelevance_no_call_is_a_match_and_a_call_is_not(env: ToolEnv, category: str) -> None:
    for task in category_tasks(category):
        reward, info = play(env, task.id, THINK + "<response> I cannot help with that. </response>")
        assert info["metrics"]["ast_match"] is True
        assert reward == 1.0  # format 1; a call-free gold gives correctness 0
        name = task.tools[0].name if task.tools else "lookup"  # a few live entries offer no function at all
        _, info = play(env, task.id, calls_action([ToolCall(name=name, parameters={})]))
        assert info["metrics"]["ast_match"] is False
        assert "answer_match" not in info["metrics"]


def test_relevance_any_call_is_a_match_and_no_call_is_not(env: ToolEnv) -> None:
    for task in category_tasks("live_relevance"):
        call = ToolCall(name=task.tools[-1].name, parameters={"anything": 1})
        _, info = play(env, task.id, calls_action([call]))
        assert info["metrics"]["ast_match"] is True
        assert info["reward_breakdown"]["correctness"] == TOP_CORRECTNESS
        _, info = play(env, task.id, THINK + "<response> no </response>")
        assert info["metrics"]["ast_match"] is False
        _, info = play(env, task.id, calls_action([ToolCall(name="None", parameters={})]))
        assert info["metrics"]["ast_match"] is False


# -- splits and categories -----------------------------------------------------------------------------------
def test_splits_are_fixed_disjoint_and_80_20_per_category() -> None:
    for category in SINGLE_TURN_CATEGORIES:
        train = [t.id for t in load_bfcl_tasks(category, "train")]
        test = [t.id for t in load_bfcl_tasks(category, "test")]
        assert not set(train) & set(test)
        assert sorted(train + test) == sorted(t.id for t in category_tasks(category))
        assert len(test) == round(COUNTS[category] * 0.2)
    # the cut depends on the ids alone (SHA-256), not on Python's hash seed or the machine
    assert sorted(t.id for t in load_bfcl_tasks("live_parallel", "test")) == [
        "live_parallel_15-11-0",
        "live_parallel_3-0-3",
        "live_parallel_4-1-0",
    ]
    assert [t.id for t in make_bfcl_env(split="test").tasks] == [t.id for t in load_bfcl_tasks(split="test")]


def test_category_kwarg() -> None:
    assert [t.id for t in make_bfcl_env(category="live_parallel").tasks] == [
        t.id for t in category_tasks("live_parallel")
    ]
    both = make_bfcl_env(category=["live_relevance", "live_parallel", "live_relevance"])
    assert len(both.tasks) == COUNTS["live_relevance"] + COUNTS["live_parallel"]
    with pytest.raises(ValueError, match=r"simple_python.*live_relevance"):
        make_bfcl_env(category="simple")
    with pytest.raises(ValueError, match="ToolEnv-BFCLMultiTurn-v0"):
        make_bfcl_env(category=["simple_python", "multi_turn_base"])
    with pytest.raises(ValueError, match="selects nothing"):
        make_bfcl_env(category=[])
    with pytest.raises(ValueError, match="split"):
        make_bfcl_env(split="dev")  # type: ignore[arg-type]


# -- prompts -------------------------------------------------------------------------------------------------
def test_prompt_lists_the_functions_with_bfcl_hints(env: ToolEnv) -> None:
    obs, info = env.reset(options={"task_id": "simple_python_0"})
    assert info["task_id"] == "simple_python_0"
    assert obs[0]["content"].startswith("You are a helpful multi-turn dialogue assistant")
    assert "1. Name: calculate_triangle_area\nDescription: " in obs[0]["content"]
    assert "Note that the provided function is in Python 3 syntax." in obs[0]["content"]
    assert '"type": "integer"' in obs[0]["content"]
    question = load_entries("simple_python")[0]["question"][0][0]["content"]
    assert obs[1]["content"] == f"**Dialogue Records History**\n<user> {question} </user>"
    java, _ = env.reset(options={"task_id": "simple_java_1"})
    assert "This is Java boolean type parameter in string representation." in java[0]["content"]
    assert '"type": "boolean"' not in java[0]["content"]  # Java values are written as source strings


def test_an_entry_system_message_is_appended_and_earlier_turns_are_history(env: ToolEnv) -> None:
    with_system = next(e for e in load_entries("live_simple") if e["question"][0][0]["role"] == "system")
    obs, _ = env.reset(options={"task_id": with_system["id"]})
    assert obs[0]["content"].endswith("**Additional Instructions**\n" + with_system["question"][0][0]["content"])
    assert "1. Name: " in obs[0]["content"]
    earlier = next(e for e in load_entries("live_irrelevance") if len(e["question"][0]) >= 3)
    obs, _ = env.reset(options={"task_id": earlier["id"]})
    messages = [m for m in earlier["question"][0] if m["role"] != "system"]
    assert "<response> " + messages[-2]["content"].strip() in obs[1]["content"]
    assert obs[1]["content"].endswith(f"<user> {messages[-1]['content'].strip()} </user>")


# -- bad actions, metrics, speed -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "action",
    ["", "garbage", None, "\x00" * 50, '<tool_call>\n{"name": 1}', "<think>" * 10_000, "x" * 1_000_000],
)
def test_bad_actions_get_the_lowest_reward(env: ToolEnv, action: Any) -> None:
    for task_id in ("simple_python_0", "parallel_multiple_0", "live_relevance_0-0-0", "simple_java_0"):
        reward, info = play(env, task_id, action)
        assert reward == LOW, task_id
        assert info["metrics"]["ast_match"] is False
    reward, info = play(env, "irrelevance_0", action)
    assert reward == 0.0  # format 0; a call-free gold has no correctness to lose
    assert info["metrics"]["ast_match"] is True  # no call made, which is what BFCL asks here


def test_metrics_keep_the_default_keys(env: ToolEnv) -> None:
    task = with_answer("multiple")[0]
    _, info = play(env, task.id, calls_action(gold_of(task)))
    assert set(info["metrics"]) == {
        "exact_match",
        "format_ok",
        "tool_calls",
        "tool_errors",
        "steps",
        "ast_match",
        "category",
    }
    assert info["metrics"]["exact_match"] is True and info["metrics"]["tool_calls"] == 1
