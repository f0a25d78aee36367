"""Regressions for what the fuzzing and the hostile corpus found, each with the failing example, by module."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import gymnasium as gym
import pytest
from pydantic import ValidationError

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from tests.fixtures.tool_envs import deadline
from toolrl_env.env import ToolEnv
from toolrl_env.envs.bfcl.metrics import MAX_PARSED_BRACKETS, regex_safe
from toolrl_env.envs.bfcl.tasks import load_bfcl_tasks
from toolrl_env.format import render_observation
from toolrl_env.rewards import RewardConfig, compute_score
from toolrl_env.task import GoldStep, Task, Turn
from tools.calculator import convert_units
from tools.call import ToolCall, ToolResult
from tools.suite import ToolSuite
from tools.tool import tool

THINK = "<think> t </think>\n"


def calls_action(*calls: dict[str, Any]) -> str:
    return THINK + "<tool_call>\n" + "\n".join(json.dumps(c) for c in calls) + "\n</tool_call>"


# -- toolrl_env/rewards.py --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule_steps": 0.0}, "schedule_steps"),  # ZeroDivisionError while scoring
        ({"schedule_steps": -150.0}, "schedule_steps"),
        ({"length_words": 0.0}, "length_words"),  # ZeroDivisionError while scoring
        ({"length_words": -512.0}, "length_words"),  # a length reward of -0.01, below length_min
        ({"length_words": 512, "length_words_schedule": (384.0, 640.0, 0.0)}, "length_words_schedule"),
        ({"length_words": 512, "length_words_schedule": (0.0, 640.0, 105.0)}, "length_words_schedule"),
        ({"format_max": math.nan}, "format_max"),  # every total NaN
        ({"correctness_min": -math.inf}, "correctness_min"),
    ],
)
def test_configs_that_broke_scoring_are_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RewardConfig(**fields)


def test_a_falling_length_schedule_past_zero_words_gives_the_full_length_reward() -> None:
    # (512, 256, 100) extrapolates to 0 words at step 200 (a ZeroDivisionError) and to -256 at step 300 (a
    # negative share: a length reward below length_min).
    config = RewardConfig(length_words=512, length_words_schedule=(512.0, 256.0, 100.0))
    turn = "<think> a b c </think>\n<response> r </response>"
    assert compute_score(turn, turn, step=0, preset=config).length == 0.01  # round(3 / 512, 2)
    assert compute_score(turn, turn, step=200, preset=config).length == 1.0
    assert compute_score(turn, turn, step=300, preset=config).length == 1.0


# -- toolrl_env/format.py ---------------------------------------------------------------------------------


def test_an_observation_with_an_integer_too_long_to_print_is_rendered() -> None:
    # json.dumps raised ValueError (Python prints at most 4,300 digits) out of env.step.
    rendered = render_observation([ToolResult(name="power", ok=True, content={"result": 10**5000, "x": [7]})])
    assert (
        rendered
        == '<obs> [{"name": "power", "results": {"result": "<an integer of about 5,000 digits>", "x": [7]}}] </obs>'
    )


def power_of_ten(exponent: int) -> int:
    """Ten to the power `exponent`.

    Args:
        exponent: The exponent.
    """
    return 10**exponent


def test_a_tool_result_too_long_to_print_does_not_break_the_step() -> None:
    # BFCL's MathAPI.power(10, 5000) did this before it moved to a worker process; any suite's tool still can.
    task = Task(
        id="power",
        turns=[
            Turn(user="10^5000?", steps=[GoldStep(calls=[ToolCall(name="power_of_ten", parameters={"exponent": 3})])])
        ],
    )
    env = ToolEnv([task], suite=ToolSuite("powers", [tool(power_of_ten)], timeout_s=None), mode="multi_turn")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(calls_action({"name": "power_of_ten", "parameters": {"exponent": 5000}}))
    assert info["tool_results"][0]["ok"] is True
    assert obs[1]["content"].endswith(
        '[{"name": "power_of_ten", "results": "<an integer of about 5,000 digits>"}] </obs>'
    )


# -- toolrl_env/envs/bfcl/metrics.py ---------------------------------------------------------------------------

# BFCL's JavaScript array converter backtracks exponentially on this: 0.1 s at 18 repeats, hours at 40.
REDOS_ARRAY = "[[]" + ",[]" * 40 + ",["


def test_a_javascript_array_that_backtracks_bfcls_regex_is_refused_at_once() -> None:
    env = gym.make("ToolEnv-BFCL-v0", category="simple_javascript").unwrapped
    assert isinstance(env, ToolEnv)
    env.reset(seed=0, options={"task_id": "simple_javascript_2"})  # extractLastTransactionId(..., status: array)
    gold = env.current_gold().calls[0]
    action = calls_action({"name": gold.name, "parameters": {**gold.parameters, "status": REDOS_ARRAY}})
    start = time.perf_counter()
    with deadline(5.0):
        _, reward, _, _, info = env.step(action)
    assert time.perf_counter() - start < 1.0
    assert info["metrics"]["ast_match"] is False
    assert reward < 4.0  # the other parameters still earn their partial credit


@pytest.mark.parametrize("category", ["simple_java", "simple_javascript"])
def test_every_java_and_javascript_gold_passes_the_regex_screen(category: str) -> None:
    for task in load_bfcl_tasks(category):
        calls = [{c.name: c.parameters} for turn in task.turns for step in turn.steps for c in step.calls]
        assert regex_safe(task.metadata["function"], calls, task.metadata["language"]), task.id


def test_the_regex_screen_only_reads_collection_parameters_of_java_and_javascript() -> None:
    function = [{"name": "f", "parameters": {"properties": {"xs": {"type": "array"}, "s": {"type": "String"}}}}]
    heavy = "]" * (MAX_PARSED_BRACKETS + 1)
    assert not regex_safe(function, [{"f": {"xs": heavy}}], "JavaScript")
    assert not regex_safe(function, [{"f": {"xs": "[" + "1," * 600 + "1]"}}], "JavaScript")  # over 1,000 characters
    assert regex_safe(function, [{"f": {"xs": "]" * MAX_PARSED_BRACKETS}}], "JavaScript")
    assert regex_safe(function, [{"f": {"s": heavy}}], "JavaScript")  # a String is not parsed with the regexes
    assert regex_safe(function, [{"f": {"xs": heavy}}], "Python")


# -- tools/calculator.py ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "digits"), [(10**400, "400"), (-(10**4299), "4,299"), (2**1024 - 1, "308")])
def test_convert_units_explains_an_integer_past_the_float_range(value: int, digits: str) -> None:
    # math.isfinite raised OverflowError ("int too large to convert to float"), which reached the model as such.
    with pytest.raises(
        ValueError, match=f"value must be a finite number up to 1.8e308, got an integer of about {digits} digits"
    ):
        convert_units(value, "m", "km")


# -- toolrl_env/env.py ------------------------------------------------------------------------------------


def calc_env(**kwargs: Any) -> ToolEnv:
    env = gym.make("ToolEnv-Calc-v0", num_tasks=5, seed=0, **kwargs).unwrapped
    assert isinstance(env, ToolEnv)
    return env


def test_a_megabyte_completion_keeps_the_conversation_in_the_observation_space_and_truncates() -> None:
    # The history took the whole completion: a 1,000,034-character user message, outside Conversation's 10**6.
    env = calc_env(mode="multi_turn")
    env.reset(seed=0)
    call = {"name": "calculate", "parameters": {"expression": "1 + 1"}}
    obs, _, terminated, truncated, info = env.step(calls_action(call).replace(" t ", " " + "a" * 1_000_000 + " "))
    assert env.observation_space.contains(obs) and len(obs[1]["content"]) == 1_000_000
    assert obs[1]["content"].endswith("[... cut: the conversation reached the length limit of the observation space]")
    assert (terminated, truncated) == (False, True) and info["metrics"]["steps"] == 1
    assert info["tool_results"][0]["ok"] is True  # the call still ran; only the record of it was cut


@pytest.mark.parametrize("mode", ["single_turn", "multi_turn"])
def test_a_step_checks_or_runs_at_most_max_calls(mode: str) -> None:
    # 100,000 call lines took over 5 s of CPU a step (all decoded, then each one validated or run).
    env = calc_env(mode=mode, max_calls=3)
    env.reset(seed=0)
    calls = [{"name": "calculate", "parameters": {"expression": f"{i} + 1"}} for i in range(5)]
    _, _, _, _, info = env.step(calls_action(*calls))
    assert len(info["parsed"]["tool_calls"]) == 5  # the parse and the reward still read every line
    assert info["call_errors"] == ["2 calls past the first 3 were not run (max_calls)"]
    assert [r["content"] for r in info["tool_results"]] == ([1, 2, 3] if mode == "multi_turn" else [])


# -- toolrl_env/envs/bfcl/metrics.py: alignment -----------------------------------------------------------------


def test_thousands_of_accepted_calls_are_scored_without_aligning_the_gold() -> None:
    # live_relevance accepts any call, and the gold became the completion's calls: the reward then matched
    # 100,000 predicted calls against thousands of gold calls (minutes a step).
    env = gym.make("ToolEnv-BFCL-v0", category="live_relevance").unwrapped
    assert isinstance(env, ToolEnv)
    env.reset(seed=0)
    name = env.offered_tools()[0].name
    with deadline(5.0):
        _, reward, _, _, info = env.step(calls_action(*[{"name": name, "parameters": {"i": i}} for i in range(5_000)]))
    assert info["metrics"]["ast_match"] is True  # still the official verdict
    assert reward < 4.0  # scored against the built gold, not against itself
