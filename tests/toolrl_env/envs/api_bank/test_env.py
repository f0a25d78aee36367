"""ToolEnv-APIBank-v0: the loader on copies of ToolRL's three level files, ToolRL's `api_match` with verdicts
worked out by hand from their evaluate.py, rewards, and multi-turn episodes with real executors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from toolrl_env import ToolEnv
from toolrl_env.envs.api_bank.metrics import api_match, decode_tool_calls
from toolrl_env.envs.api_bank.tasks import load_api_bank
from toolrl_env.prompt import HISTORY_HEADER
from toolrl_env.rewards import resolve_config, reward_bounds

DATA = Path(__file__).parents[3] / "fixtures" / "api_bank"
THINK = "<think> t </think>\n"
CALC = {"name": "Calculator", "parameters": {"formula": "(5+6)*3"}}  # level 1 fixture row 0


def calls(*lines: str, think: str = THINK) -> str:
    return think + "<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


def make(**kwargs: Any) -> ToolEnv:
    env = gym.make("ToolEnv-APIBank-v0", **{"data_path": str(DATA), **kwargs}).unwrapped
    assert isinstance(env, ToolEnv)
    return env


def rows(level: int) -> list[dict[str, Any]]:
    return json.loads((DATA / f"level-{level}-api_processed.json").read_text())


# -- loading ----------------------------------------------------------------------------------------------


def test_loader_reads_every_level_of_the_fixture_copies() -> None:
    tasks = load_api_bank(DATA)
    by_level = {lv: [t for t in tasks if t.metadata["level"] == lv] for lv in (1, 2, 3)}
    assert [len(by_level[lv]) for lv in (1, 2, 3)] == [len(rows(lv)) for lv in (1, 2, 3)] == [8, 4, 4]
    assert [t.id for t in by_level[2]] == [f"api_bank_l2_{i}" for i in range(4)]
    for lv in (1, 2, 3):
        for task, row in zip(by_level[lv], rows(lv), strict=True):
            gold = row["answer"] if lv == 2 else row["answer"][0]  # level 2: a bare dict
            assert isinstance(row["answer"], dict if lv == 2 else list)
            assert task.metadata["gold"] == gold
            assert [c.model_dump() for c in task.turns[0].steps[0].calls] == [gold]
            assert task.system == row["system"]
            assert HISTORY_HEADER + task.history == row["user"].replace("***Dialogue", "**Dialogue", 1)


def test_tools_are_read_from_both_listing_shapes() -> None:
    tasks = {t.id: t for t in load_api_bank(DATA)}
    meeting = next(t for t in tasks["api_bank_l1_6"].tools if t.name == "AddMeeting")  # "Name: ... Description:"
    assert meeting.description.startswith("This API allows users to make a reservation for a meeting")
    assert meeting.parameters["properties"]["attendees"]["type"] == ["array", "string"]
    assert meeting.parameters["properties"]["token"] == {"type": "string", "description": "User's token."}
    level3 = tasks["api_bank_l3_2"]  # "N. Name: description"
    assert [t.name for t in level3.tools] == ["Geocoding", "GetWeatherForCoordinates"]
    assert level3.tools[1].parameters["properties"]["latitude"]["type"] == ["number", "string"]
    # every gold call fits its schema (API-Bank sends strings), and undeclared parameters are tolerated
    for task in tasks.values():
        gold = task.turns[0].steps[0].calls[0]
        tool = next((t for t in task.tools if t.name == gold.name), None)
        assert (tool is not None) == task.metadata["gold_offered"]
        assert tool is None or tool.validate_arguments(gold.parameters) is None
    assert not tasks["api_bank_l2_1"].metadata["gold_offered"]  # ToolRL's data: DeleteReminder is not listed


def test_level_selection_single_files_and_prefixed_names(tmp_path: Path) -> None:
    assert {t.metadata["level"] for t in load_api_bank(DATA, level=2)} == {2}
    assert {t.metadata["level"] for t in load_api_bank(DATA, level=[3, 1])} == {1, 3}
    assert len(load_api_bank(DATA / "level-3-api_processed.json")) == 4
    for lv in (1, 2):
        shutil.copy(DATA / f"level-{lv}-api_processed.json", tmp_path / f"API-Bank__level-{lv}-api_processed.json")
    assert len(make(data_path=str(tmp_path)).tasks) == 12
    with pytest.raises(FileNotFoundError, match=r"no file for level\(s\) \[3\]; found levels \[1, 2\]"):
        load_api_bank(tmp_path, level=3)
    with pytest.raises(ValueError, match=r"unknown API-Bank level\(s\) \[4\]"):
        load_api_bank(DATA, level=4)


def test_without_data_path_the_error_says_where_the_files_come_from() -> None:
    with pytest.raises(ValueError, match=r"data_path") as raised:
        gym.make("ToolEnv-APIBank-v0")
    assert "qiancheng0/ToolRL" in str(raised.value) and "benchmarks/API-Bank/" in str(raised.value)
    with pytest.raises(FileNotFoundError, match="qiancheng0/ToolRL"):
        load_api_bank(DATA / "missing")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("answer"), "answer must be"),
        (lambda r: r.update(answer=[r["answer"][0], r["answer"][0]]), "answer must be"),
        (lambda r: r.update(answer=[{"name": 3, "parameters": {}}]), "answer must be"),
        (lambda r: r.update(user=None), "string fields system, user"),
        (lambda r: r.update(system="no tools here"), "no tool listing"),
        (lambda r: r.update(system=r["system"].replace("Parameters: {", "Parameters: {(")), "not a Python literal"),
    ],
)
def test_bad_rows_name_the_file_and_row(tmp_path: Path, change: Any, message: str) -> None:
    data = rows(1)
    change(data[2])
    path = tmp_path / "level-1-api_processed.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as raised:
        load_api_bank(path)
    assert f"{path} row 2: " in str(raised.value)


# -- ToolRL's api_match ------------------------------------------------------------------------------------

GOLD_LINE = json.dumps(CALC)


@pytest.mark.parametrize(
    ("completion", "hit"),
    [
        (calls(GOLD_LINE), True),
        (calls('{"name": "Calculate", "parameters": {"formula": "(5+6)*3"}}'), False),  # wrong name
        (calls('{"name": "Calculator", "parameters": {"formula": "(5+6) * 3"}}'), False),  # wrong value, no normalising
        (calls('{"name": "Calculator", "parameters": {"formula": "(5+6)*3", "x": "1"}}'), False),  # extra key
        (calls('{"name": "Calculator", "parameters": {}}'), False),
        (f"{THINK}<response> 33 </response>", False),  # no call
        ("", False),
        (calls('{"name": "Calculator", "arguments": {"formula": "(5+6)*3"}}'), False),  # the whole dict is params
        (calls('{"formula": "(5+6)*3"}'), True),  # no name/parameters: parameters of the gold API
        (calls(json.dumps(GOLD_LINE)), True),  # a JSON string is decoded again
        (calls('{"name": "GetToday", "parameters": {}}', GOLD_LINE), True),  # any call may hit
        (calls("not json", GOLD_LINE), True),  # undecodable lines are dropped
        (calls("42", GOLD_LINE), False),  # an error ends evaluate.py's walk
        (calls("null", GOLD_LINE), False),
        (calls(GOLD_LINE, "42"), True),  # ... but a hit before it stands
        (calls('"a string"', GOLD_LINE), False),  # decoding "a string" again fails
        (calls(GOLD_LINE) + "\n<tool_call>\n{}\n</tool_call>", False),  # the last block is read
        (GOLD_LINE, True),  # no tags: every line of the output is a candidate
        (f"<tool_call>\n{GOLD_LINE}", True),  # no closing tag
    ],
)
def test_api_match_follows_toolrls_evaluate(completion: str, hit: bool) -> None:
    assert api_match(completion, CALC) is hit


def test_api_match_compares_with_python_equality() -> None:
    gold = {"name": "BookHotel", "parameters": {"rooms": 2}}
    assert api_match(calls('{"name": "BookHotel", "parameters": {"rooms": 2.0}}'), gold)  # 2 == 2.0
    assert not api_match(calls('{"name": "BookHotel", "parameters": {"rooms": "2"}}'), gold)
    assert decode_tool_calls(calls("1", "[1]", "x")) == [1, [1]]


# -- the env -----------------------------------------------------------------------------------------------


def test_gold_gets_the_top_reward_and_api_match_on_every_fixture_row() -> None:
    env = make()
    top = reward_bounds(resolve_config("default"))[1]
    for task in env.tasks:
        env.reset(options={"task_id": task.id})
        _, reward, terminated, truncated, info = env.step(task.turns[0].steps[0].text or "")
        assert reward == top and terminated and not truncated
        assert info["metrics"]["api_match"] is True and info["metrics"]["level"] == task.metadata["level"]


def test_wrong_calls_miss_and_bad_input_gets_the_lowest_reward() -> None:
    env = make()
    low = reward_bounds(resolve_config("default"))[0]
    for action, lowest in [
        (calls('{"name": "Calculator", "parameters": {"formula": "5+6*3"}}'), False),
        (calls('{"name": "GetToday", "parameters": {}}'), False),
        ("", True),
        ("<think> x </think>\n<tool_call>\n{oops", True),
        ("\x00" * 1000, True),
        (None, True),
    ]:
        env.reset(options={"task_id": "api_bank_l1_0"})
        _, reward, *_, info = env.step(action)  # type: ignore[arg-type]
        assert info["metrics"]["api_match"] is False
        assert (reward == low) is lowest
    # a well-shaped block whose line is not JSON keeps the format point but gets the lowest correctness
    env.reset(options={"task_id": "api_bank_l1_0"})
    _, reward, *_, info = env.step(calls("{oops"))
    assert info["reward_breakdown"]["correctness"] == -3.0 and reward == -2.0


def test_multi_turn_runs_the_real_api_then_ends_on_a_response() -> None:
    env = make(mode="multi_turn")
    obs, _ = env.reset(options={"task_id": "api_bank_l1_0"})
    obs, reward, terminated, _, info = env.step(calls(GOLD_LINE))
    assert reward == 4.0 and not terminated
    assert info["tool_results"] == [{"name": "Calculator", "ok": True, "content": 33}]
    assert '<obs> [{"name": "Calculator", "results": 33}] </obs>' in obs[1]["content"]
    _, reward, terminated, _, info = env.step(f"{THINK}<response> It is 33. </response>")
    assert terminated and reward == 1.0 and info["metrics"]["api_match"] is True


def test_multi_turn_state_comes_from_the_task() -> None:
    env = make(mode="multi_turn")
    env.reset(options={"task_id": "api_bank_l1_1"})  # QueryAlarm with the token from the history
    gold = env.tasks[1].turns[0].steps[0].calls[0]
    _, _, _, _, info = env.step(calls(json.dumps(gold.model_dump())))
    assert info["tool_results"][0]["content"] == [{"time": "2023-03-20 06:30:00"}]
    env.reset(options={"task_id": "api_bank_l1_1"})
    _, _, _, _, info = env.step(calls('{"name": "QueryAlarm", "parameters": {"token": "x"}}'))
    assert "invalid token 'x'" in info["tool_results"][0]["content"]["error"]
    env.reset(options={"task_id": "api_bank_l3_2"})  # Geocoding: no executor, the schema mock answers
    _, _, _, _, info = env.step(calls('{"name": "Geocoding", "parameters": {"address": "Tokyo"}}'))
    assert info["tool_results"][0]["content"]["tool"] == "Geocoding"
