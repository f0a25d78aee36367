"""TIRAction and Conversation: spaces that hold JSON-bearing text and know the offered tools."""

from __future__ import annotations

import json
import pickle
from typing import Any

import gymnasium as gym
import pytest

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from toolrl_env.envs.rlla.tasks import load_rlla
from toolrl_env.format import parse
from toolrl_env.spaces import ROLES, Conversation, TIRAction
from tools.calculator import CALCULATE, CONVERT_UNITS
from tools.tool import Tool

RICH = Tool(
    name="book flight",
    description="A schema with most of what real tool schemas use.",
    parameters={
        "type": "object",
        "properties": {
            "from": {"type": "string"},
            "seats": {"type": "integer"},
            "price": {"type": "number"},
            "window": {"type": "boolean"},
            "class": {"enum": ["economy", "business", 'first "class"\nlounge']},
            "legs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"to": {"type": "string"}, "day": {"type": "integer"}},
                    "required": ["to"],
                    "additionalProperties": False,
                },
            },
            "note": {"type": ["string", "null"]},
            "when": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "meta": {"type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]},
        },
        "required": ["from", "seats", "legs", "undeclared"],
        "additionalProperties": False,
    },
)
LOOSE = Tool(
    name="Tennis Schedules Odds API",  # ToolRL-style: spaces in the name, Python type names, string defaults
    parameters={
        "type": "object",
        "properties": {
            "year": {"description": "Year.", "type": "float", "default": ""},
            "names": {"description": "Players.", "type": "List[str]", "default": ""},
            "lang": {"description": "Language.", "type": "str", "default": "en"},
            "count": {"description": "How many.", "type": "int, optional", "default": 3},
        },
    },
)
EMPTY = Tool(name="ping", description="No parameters.")
ODD = Tool(name='naïve "quoted" tool', parameters={"type": "object", "properties": {"ключ": {"type": "string"}}})

TOOLSETS = {
    "calculator": [CALCULATE, CONVERT_UNITS],
    "rich": [RICH],
    "loose": [LOOSE],
    "mixed": [RICH, LOOSE, EMPTY, ODD, CALCULATE],
}


# -- TIRAction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain words",
        '{"name": "calculate", "parameters": {"expression": "1 + 1"}}',
        '<think> t </think>\n<tool_call>\n{"name": "x", "parameters": {}}\n</tool_call>',
        "\x00\x00 NUL bytes \x00",
        "ünïcødé 名前 🎉 \u200b",
        "[1, 2, null]",
        "x" * 100,
    ],
)
def test_action_space_contains_any_text_up_to_max_length(text: str) -> None:
    assert TIRAction([CALCULATE], max_length=100).contains(text)
    assert text in TIRAction([CALCULATE], max_length=100)


@pytest.mark.parametrize("value", ["x" * 101, None, 123, 1.5, b"bytes", ["text"], {"text": "x"}])
def test_action_space_rejects_non_text_and_too_long(value: Any) -> None:
    assert not TIRAction([CALCULATE], max_length=100).contains(value)


def test_env_action_space_length_comes_from_the_config() -> None:
    space = gym.make("ToolEnv-Calc-v0", num_tasks=3, max_action_chars=10).action_space
    assert space.contains("x" * 10) and not space.contains("x" * 11)
    assert {t.name for t in space.tools} == {"calculate", "convert_units"}


@pytest.mark.parametrize("toolset", sorted(TOOLSETS))
def test_sample_is_deterministic_after_seed(toolset: str) -> None:
    tools = TOOLSETS[toolset]
    space = TIRAction(tools, seed=11)
    first = [space.sample() for _ in range(30)]
    twin = TIRAction(tools, seed=11)
    assert [twin.sample() for _ in range(30)] == first
    other = TIRAction(tools)
    other.seed(11)
    assert [other.sample() for _ in range(30)] == first
    other.seed(12)
    assert [other.sample() for _ in range(30)] != first


@pytest.mark.parametrize("toolset", sorted(TOOLSETS))
def test_sample_is_a_well_formed_turn_with_schema_valid_calls(toolset: str) -> None:
    tools = {t.name: t for t in TOOLSETS[toolset]}
    space = TIRAction(list(tools.values()), seed=0)
    shapes = {"call": 0, "response": 0}
    called: set[str] = set()
    for _ in range(300):
        text = space.sample()
        assert space.contains(text)
        parsed = parse(text)
        assert parsed.format_ok, (text, parsed.errors)
        assert parsed.think
        if parsed.tool_calls:
            shapes["call"] += 1
            assert parsed.response is None and 1 <= len(parsed.tool_calls) <= 3
            for call in parsed.tool_calls:
                assert tools[call.name].validate_arguments(call.parameters) is None, (call, text)
                called.add(call.name)
        else:
            shapes["response"] += 1
            assert parsed.response
    assert shapes["call"] > 150 and shapes["response"] > 30  # about 3 in 4 call tools
    assert called == set(tools)


def test_sample_calls_fill_required_parameters() -> None:
    space = TIRAction([RICH], seed=1)
    for _ in range(100):
        for call in parse(space.sample()).tool_calls:
            assert {"from", "seats", "legs", "undeclared"} <= set(call.parameters)
            assert isinstance(call.parameters["seats"], int)
            assert all(set(leg) <= {"to", "day"} and "to" in leg for leg in call.parameters["legs"])


def test_sample_without_tools_responds() -> None:
    space = TIRAction([], seed=2)
    for _ in range(50):
        parsed = parse(space.sample())
        assert parsed.format_ok and parsed.tool_calls == [] and parsed.response


def test_sample_with_rlla_tools_parsed_from_a_prompt(rlla_data: dict[str, Any]) -> None:
    tools = {t.name: t for task in load_rlla(rlla_data["json"]) for t in task.tools}
    space = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["json"])).action_space
    space.seed(4)
    for _ in range(200):
        for call in parse(space.sample()).tool_calls:
            assert tools[call.name].validate_arguments(call.parameters) is None


def test_action_space_equality_and_pickle() -> None:
    space = TIRAction([CALCULATE, RICH], max_length=50, seed=3)
    copy = pickle.loads(pickle.dumps(space))
    assert copy == space
    assert [copy.sample() for _ in range(5)] == [space.sample() for _ in range(5)]
    assert space != TIRAction([CALCULATE, RICH], max_length=51)
    assert space != TIRAction([CALCULATE], max_length=50)
    assert "max_length=50" in repr(space)


# -- Conversation ---------------------------------------------------------------------------------------


def message(role: str = "user", content: str = "hi") -> dict[str, str]:
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    "value",
    [
        [message()],
        [message(role) for role in ROLES],
        [message("system", ""), message("user", json.dumps({"name": "x", "parameters": {"a": [1, None]}}))],
        [message("tool", "<obs> \x00 NUL and ünïcode </obs>")],
        [message(content="x" * 100)],
        [message()] * 4,
    ],
)
def test_conversation_contains_chats(value: list[dict[str, str]]) -> None:
    assert Conversation(max_messages=4, max_length=100).contains(value)


@pytest.mark.parametrize(
    "value",
    [
        [],
        [message()] * 5,
        (message(),),
        message(),
        "hi",
        None,
        [message(content="x" * 101)],
        [message(role="robot")],
        [message(role="User")],
        [{"role": "user"}],
        [{"content": "hi"}],
        [{"role": "user", "content": "hi", "name": "bob"}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": 3}],
        [{"role": None, "content": "hi"}],
        [message(), "hi"],
        [["user", "hi"]],
    ],
)
def test_conversation_rejects_anything_else(value: Any) -> None:
    assert not Conversation(max_messages=4, max_length=100).contains(value)


def test_conversation_sample_is_contained_and_deterministic() -> None:
    space = Conversation(seed=5)
    samples = [space.sample() for _ in range(20)]
    assert all(space.contains(s) for s in samples)
    space.seed(5)
    assert [space.sample() for _ in range(20)] == samples
    assert Conversation(max_messages=3) == Conversation(max_messages=3)
    assert Conversation(max_messages=3) != Conversation(max_messages=4)
    assert pickle.loads(pickle.dumps(space)) == space


def test_env_observations_are_in_the_space(rlla_data: dict[str, Any]) -> None:
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["parquet"]))
    for task in env.unwrapped.tasks:
        obs, _ = env.reset(options={"task_id": task.id})
        assert env.observation_space.contains(obs)
        assert 'Parameters: {"' in obs[0]["content"]  # JSON that gymnasium's Text space would not contain
