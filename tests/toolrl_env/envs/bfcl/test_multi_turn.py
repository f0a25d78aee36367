"""ToolEnv-BFCLMultiTurn-v0: BFCL's multi-turn tasks, executed on its backends, judged by its official checker."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import gymnasium as gym
import pytest

import toolrl_env  # noqa: F401 (registers the ids)
from toolrl_env.env import StepRecord, ToolEnv
from toolrl_env.envs.bfcl.multi_turn_env import make_bfcl_multi_turn_env
from toolrl_env.envs.bfcl.multi_turn_metrics import call_source, decoded_calls
from toolrl_env.envs.bfcl.multi_turn_tasks import CANNOT_ANSWER, load_bfcl_multi_turn, parse_call
from toolrl_env.envs.bfcl.package import MULTI_TURN_CATEGORIES, UNSUPPORTED_CATEGORIES, import_bfcl
from toolrl_env.format import parse, render_turn
from toolrl_env.rewards import RewardBreakdown
from toolrl_env.task import GoldStep, Task
from tools.call import ToolCall, ToolResult

THINK = "<think> t </think>\n"


@cache
def env_of(category: str) -> ToolEnv:
    return make_bfcl_multi_turn_env(category=category)


def gold_action(step: GoldStep) -> str:
    return render_turn(think="t", tool_calls=step.calls, response=step.answer)


def calls_action(*calls: dict[str, Any]) -> str:
    return THINK + "<tool_call>\n" + "\n".join(json.dumps(c) for c in calls) + "\n</tool_call>"


def answer_action(text: str = "ok") -> str:
    return f"{THINK}<response> {text} </response>"


def play(env: ToolEnv, task: Task, actions: list[str]) -> dict[str, Any]:
    env.reset(options={"task_id": task.id})
    info: dict[str, Any] = {}
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return info


def replay_gold(env: ToolEnv, task: Task) -> dict[str, Any]:
    return play(env, task, [gold_action(step) for turn in task.turns for step in turn.steps])


def checker_globals() -> list[str]:
    return [n for n in vars(import_bfcl("eval_checker.multi_turn_eval.multi_turn_utils")) if n.startswith("toolrl_")]


# -- tasks ----------------------------------------------------------------------------------------------------
def test_every_category_has_bfcls_200_tasks_under_bfcls_ids() -> None:
    for category in MULTI_TURN_CATEGORIES:
        tasks = load_bfcl_multi_turn(category)
        assert [t.id for t in tasks] == [f"{category}_{i}" for i in range(200)]


def test_splits_are_a_fixed_80_20_cut_per_category() -> None:
    train, test = load_bfcl_multi_turn(split="train"), load_bfcl_multi_turn(split="test")
    assert len(train) == 640 and len(test) == 160
    assert {t.id for t in train}.isdisjoint(t.id for t in test)
    assert all(t.metadata["split"] == "test" for t in test)
    assert [t.id for t in load_bfcl_multi_turn(split="test")] == [t.id for t in test]
    with pytest.raises(ValueError, match="unknown split"):
        load_bfcl_multi_turn(split="dev")  # type: ignore[arg-type]


@pytest.mark.parametrize("category", UNSUPPORTED_CATEGORIES)
def test_network_and_memory_categories_are_refused_clearly(category: str) -> None:
    with pytest.raises(ValueError, match="not supported offline"):
        make_bfcl_multi_turn_env(category=category)


def test_single_turn_categories_point_to_the_single_turn_env() -> None:
    with pytest.raises(ValueError, match="ToolEnv-BFCL-v0"):
        load_bfcl_multi_turn(["multi_turn_base", "simple_python"])
    with pytest.raises(ValueError, match="multi_turn"):
        make_bfcl_multi_turn_env(mode="single_turn")


def test_gold_call_strings_are_read_as_literals_only() -> None:
    assert parse_call("sort('a.txt')") == ToolCall(name="sort", parameters={"file_name": "a.txt"})
    assert parse_call("mv(source='a', destination = 'b')").parameters == {"source": "a", "destination": "b"}
    assert parse_call("lockDoors(unlock=False, door=['driver'])").parameters == {"unlock": False, "door": ["driver"]}
    for hostile in ("cd(folder=__import__('os').getcwd())", "os.system('ls')", "cd(**{'folder': 'x'})", "cd(folder="):
        with pytest.raises(ValueError):
            parse_call(hostile)


def test_a_turn_is_a_call_step_then_an_answer_and_an_empty_gold_turn_only_answers() -> None:
    task = load_bfcl_multi_turn("multi_turn_miss_param")[0]
    for turn, gold in zip(task.turns, task.metadata["ground_truth"], strict=True):
        if gold:
            assert [len(s.calls) for s in turn.steps] == [len(gold), 0]
        else:
            assert [s.answer for s in turn.steps] == [CANNOT_ANSWER]


def test_miss_func_shows_withheld_functions_only_from_their_turn_and_runs_them_anyway() -> None:
    env = env_of("multi_turn_miss_func")
    task = env.tasks[0]  # `sort` is withheld until turn 3
    assert "Name: sort\n" not in (task.system or "") and any(t.name == "sort" for t in task.tools)
    assert "Name: sort\n" in (task.turns[3].user or "") and "updated some more functions" in (task.turns[3].user or "")
    env.reset(options={"task_id": task.id})
    _, _, _, _, info = env.step(calls_action({"name": "sort", "parameters": {"file_name": "x"}}))
    assert info["tool_results"][0]["ok"]  # BFCL's executor runs every method of an involved class


# -- the checker's verdict -------------------------------------------------------------------------------------
@pytest.mark.parametrize("category", MULTI_TURN_CATEGORIES)
def test_replaying_the_gold_succeeds_for_every_task(category: str) -> None:
    env = env_of(category)
    failures = {}
    for task in env.tasks:
        metrics = replay_gold(env, task)["metrics"]
        if not (metrics["success"] and metrics["turn_match"] == 1.0 and metrics["tool_errors"] == 0):
            failures[task.id] = metrics
    assert not failures
    assert len(env.tasks) == 200 and not checker_globals()


def test_an_episode_without_calls_fails() -> None:
    env = env_of("multi_turn_base")
    for task in env.tasks[:20]:
        metrics = play(env, task, [answer_action()] * len(task.turns))["metrics"]
        assert not metrics["success"] and metrics["error_type"] == "multi_turn:empty_turn_model_response"
        assert metrics["tool_calls"] == 0


def test_a_wrong_value_fails_and_a_truncated_episode_is_force_terminated() -> None:
    env = env_of("multi_turn_base")
    task = env.tasks[0]
    actions = [gold_action(step) for turn in task.turns for step in turn.steps]
    first = task.turns[0].steps[0].calls[0]
    actions[0] = calls_action({"name": first.name, "parameters": {k: f"{v}x" for k, v in first.parameters.items()}})
    assert not play(env, task, actions)["metrics"]["success"]
    truncated = make_bfcl_multi_turn_env(category="multi_turn_base", max_turns=2)
    metrics = play(truncated, task, [gold_action(s) for turn in task.turns for s in turn.steps])["metrics"]
    assert metrics == {**metrics, "success": False, "error_type": "multi_turn:force_terminated", "steps": 2}


# -- execution ------------------------------------------------------------------------------------------------
def test_calls_run_and_come_back_as_observations() -> None:
    env = env_of("multi_turn_base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    obs, _, terminated, _, info = env.step(calls_action({"name": "pwd", "parameters": {}}))
    assert not terminated and info["tool_results"][0]["ok"] and "current_working_directory" in obs[1]["content"]
    assert "<obs>" in obs[1]["content"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"name": "cd", "parameters": {"no_such": 1}}, "TypeError"),
        ({"name": "get_stock_info", "parameters": {"symbol": "X"}}, "unknown tool"),  # a class not involved here
        ({"name": "__class__", "parameters": {}}, "unknown tool"),
        ({"name": "_load_scenario", "parameters": {"scenario": {}}}, "unknown tool"),
        ({"name": "__init__", "parameters": {}}, "unknown tool"),
        ({"name": "eval", "parameters": {"source": "1"}}, "unknown tool"),
    ],
)
def test_bad_calls_become_error_observations(call: dict[str, Any], message: str) -> None:
    env = env_of("multi_turn_base")
    env.reset(options={"task_id": "multi_turn_base_0"})
    before = env.get_state()["suite"]
    _, _, _, _, info = env.step(calls_action(call))
    assert not info["tool_results"][0]["ok"] and message in info["call_errors"][0]
    assert env.get_state()["suite"]["GorillaFileSystem"] == before["GorillaFileSystem"]  # compares the file tree


def test_only_calls_the_env_ran_reach_the_checker_and_only_as_literals() -> None:
    task = load_bfcl_multi_turn("multi_turn_base")[0]
    calls = [
        ToolCall(name="cd", parameters={"folder": "a'); import os; ('"}),
        ToolCall(name="open", parameters={"file": "/etc/passwd", "mode": "w"}),  # not offered
        ToolCall(name="cd", parameters={"folder=1, x": "a"}),  # not an identifier
        ToolCall(name="ls", parameters={}),  # timed out
    ]
    results = [
        ToolResult(name="cd", ok=True, content={}),
        ToolResult(name="open", ok=False, content={"error": "unknown tool"}),
        ToolResult(name="cd", ok=False, content={"error": "TypeError"}),
        ToolResult(name="ls", ok=False, content={"error": "timed out after 5 s"}),
    ]
    text = calls_action(*(c.model_dump() for c in calls))
    step = StepRecord(
        turn=0,
        action=text,
        parsed=parse(text),
        gold=task.turns[0].steps[0],
        reward=RewardBreakdown(format=0, correctness=0, length=0, total=0),
        results=results,
    )
    [[source]] = decoded_calls(task, [step])[0]
    assert parse_call(source) == calls[0]  # one literal call, the same call back
    assert call_source(ToolCall(name="add", parameters={"a": float("inf"), "b": [1, {"k": None}]})) == (
        "add(a=float('inf'), b=[1, {'k': None}])"
    )
    assert call_source(ToolCall(name="cd", parameters={"class": 1})) is None


def test_snapshots_fork_an_episode_with_its_backend_state() -> None:
    env, other = env_of("multi_turn_base"), make_bfcl_multi_turn_env(category="multi_turn_base")
    task = env.tasks[0]
    env.reset(options={"task_id": task.id})
    env.step(calls_action({"name": "cd", "parameters": {"folder": "document"}}))
    snapshot = env.get_state()
    env.step(calls_action({"name": "mkdir", "parameters": {"dir_name": "fork"}}))
    other.set_state(snapshot)
    obs, _, _, _, info = other.step(calls_action({"name": "ls", "parameters": {}}))
    assert "fork" not in json.dumps(info["tool_results"]) and "document" in obs[1]["content"]
    env.set_state(snapshot)
    _, _, _, _, info = env.step(calls_action({"name": "pwd", "parameters": {}}))
    assert info["tool_results"][0]["content"]["current_working_directory"].endswith("/document")


def test_long_context_tasks_start_from_the_padded_scenarios() -> None:
    env = env_of("multi_turn_long_context")
    task = env.tasks[0]
    env.reset(options={"task_id": task.id})
    _, _, _, _, info = env.step(calls_action({"name": "ls", "parameters": {}}))
    plain = env_of("multi_turn_base")
    plain.reset(options={"task_id": "multi_turn_base_0"})
    _, _, _, _, plain_info = plain.step(calls_action({"name": "ls", "parameters": {}}))
    assert task.suite_options["long_context"] and len(json.dumps(info["tool_results"])) >= len(
        json.dumps(plain_info["tool_results"])
    )
    assert replay_gold(env, task)["metrics"]["success"]


def test_the_registered_id_builds_the_env() -> None:
    env = gym.make("ToolEnv-BFCLMultiTurn-v0", category="multi_turn_base", split="test")
    assert len(env.unwrapped.tasks) == 40 and env.unwrapped.config.mode == "multi_turn"
