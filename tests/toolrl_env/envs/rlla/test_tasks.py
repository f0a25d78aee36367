"""ToolRL's RLLA files (.json and .parquet) as tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from toolrl_env.envs.rlla.tasks import load_rlla, parse_tools
from toolrl_env.prompt import HISTORY_HEADER, render_system
from tools.tool import Tool

CALL_PLACEHOLDER = "I should use the appropriate tool with proper parameters to respond to the user's need."
ANSWER_PLACEHOLDER = "I should directly respond to the user's need."


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_load_rlla_reads_every_row(rlla_data: dict[str, Any], file_type: str) -> None:
    rows = rlla_data["rows"]
    tasks = load_rlla(rlla_data[file_type])
    assert [t.id for t in tasks] == [f"rlla_fixture-{i}" for i in range(len(rows))]
    for task, row in zip(tasks, rows, strict=True):
        assert task.system == row["instruction"]
        assert HISTORY_HEADER + task.history == row["input"]
        assert len(task.turns) == 1 and task.turns[0].user is None  # the user turn already ends the history
        assert len(task.turns[0].steps) == 1
        assert task.metadata["row"] == tasks.index(task)
        assert task.metadata["source"] == str(rlla_data[file_type])
    if file_type == "parquet":
        assert [t.metadata["split"] for t in tasks] == ["test"] * len(rows)
        assert [t.metadata["index"] for t in tasks] == list(range(len(rows)))


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_load_rlla_parses_the_tools_from_the_system_prompt(rlla_data: dict[str, Any], file_type: str) -> None:
    for task in load_rlla(rlla_data[file_type]):
        assert [t.name for t in task.tools] == ["Search Managers", "Get Weather", "Currency Converter"]
        assert [t.description for t in task.tools] == [t.description for t in rlla_data["tools"]]
        assert [t.parameters["properties"] for t in task.tools] == [
            t.parameters["properties"] for t in rlla_data["tools"]
        ]
        assert task.tools[1].parameters["properties"]["days"] == {
            "description": "Days ahead.",
            "type": "int",
            "default": "1",
        }
        assert all(t.executor is None for t in task.tools)  # schema only: RLLA executes nothing


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_load_rlla_gold_steps(rlla_data: dict[str, Any], file_type: str) -> None:
    rows = rlla_data["rows"]
    gold = [t.turns[0].steps[0] for t in load_rlla(rlla_data[file_type])]

    # Two calls, verbatim.
    assert [c.model_dump() for c in gold[0].calls] == [
        {"name": "Get Weather", "parameters": {"city": "Paris", "days": 3}},
        {"name": "Get Weather", "parameters": {"city": "Rome", "days": 3}},
    ]
    assert gold[0].answer is None and gold[0].text == rows[0]["output"]
    # Response only.
    assert gold[1].calls == [] and gold[1].answer == "Hello! How can I help you today?"
    assert gold[1].text == rows[1]["output"]
    # Prior history with an <obs>: the gold is the next turn only.
    assert [c.name for c in gold[2].calls] == ["Currency Converter"]
    assert gold[2].calls[0].parameters == {"amount": 100, "from": "USD", "to": "EUR"}
    # The thought mentions <tool_call>: replaced by ToolRL's placeholder, the block kept verbatim.
    tail = rows[3]["output"][rows[3]["output"].index("</think>") :]
    assert gold[3].text == f"<think> {CALL_PLACEHOLDER} {tail}"
    assert [c.model_dump() for c in gold[3].calls] == [
        {"name": "Search Managers", "parameters": {"name": "Pep Guardiola"}}
    ]


def test_json_and_parquet_give_the_same_tasks(rlla_data: dict[str, Any]) -> None:
    from_json, from_parquet = load_rlla(rlla_data["json"]), load_rlla(rlla_data["parquet"])
    assert [t.model_dump(exclude={"metadata"}) for t in from_json] == [
        t.model_dump(exclude={"metadata"}) for t in from_parquet
    ]


def write_rows(path: Path, outputs: list[str], rlla_data: dict[str, Any]) -> Path:
    row = rlla_data["rows"][0]
    path.write_text(
        json.dumps([{"instruction": row["instruction"], "input": row["input"], "output": o} for o in outputs])
    )
    return path


def test_placeholder_for_a_response_whose_thought_mentions_tool_call(tmp_path: Path, rlla_data: dict[str, Any]) -> None:
    outputs = [
        "<think> No <tool_call> is needed, I can answer. </think>\n<response> Hi! </response>",
        '<think> I write the <tool_call> block and then reply. </think>\n<tool_call>\n{"name": "Search Managers", '
        '"parameters": {"name": "Zidane"}}\n</tool_call>\n<response> Looking him up. </response>',
        # Mentions only the closing tag: the real block is found, so the thought stays.
        '<think> Close with </tool_call> as usual. </think>\n<tool_call>\n{"name": "Search Managers", '
        '"parameters": {"name": "Klopp"}}\n</tool_call>',
    ]
    steps = [t.turns[0].steps[0] for t in load_rlla(write_rows(tmp_path / "r.json", outputs, rlla_data))]
    assert steps[0].text == f"<think> {ANSWER_PLACEHOLDER} </think>\n<response> Hi! </response>"
    assert (steps[0].calls, steps[0].answer) == ([], "Hi!")
    assert steps[1].text.startswith(f"<think> {CALL_PLACEHOLDER} </think>\n<tool_call>\n")
    assert [c.parameters for c in steps[1].calls] == [{"name": "Zidane"}]
    assert steps[1].answer == "Looking him up."
    assert steps[2].text == outputs[2]
    assert [c.parameters for c in steps[2].calls] == [{"name": "Klopp"}]


def test_parse_tools_reads_back_what_render_system_lists() -> None:
    tools = [
        Tool(name="no params", description="Nothing to pass."),
        Tool(
            name="nested",
            description="Line one.\nLine two mentions Parameters: inline.",
            parameters={
                "type": "object",
                "properties": {"q": {"type": "array", "items": {"type": "string"}}, "k": {"enum": [1, 2]}},
            },
        ),
        Tool(name="ünïcode_名前", description="", parameters={"type": "object", "properties": {"x": {}}}),
    ]
    parsed = parse_tools(render_system(tools))
    assert [(t.name, t.description, t.parameters) for t in parsed] == [
        (t.name, t.description, {"type": "object", "properties": t.parameters.get("properties", {})}) for t in tools
    ]
    assert parse_tools("no tool listing here") == []


def test_missing_file_says_where_rlla_comes_from(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no RLLA file at .*missing\.json.*qiancheng0/ToolRL"):
        load_rlla(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="no RLLA file"):
        load_rlla(tmp_path)  # a folder is not a file


@pytest.mark.parametrize("name", ["rows.csv", "rows.jsonl", "rows.JSON", "rows"])
def test_wrong_extension_is_refused(tmp_path: Path, rlla_data: dict[str, Any], name: str) -> None:
    path = tmp_path / name
    path.write_text(Path(rlla_data["json"]).read_text())
    with pytest.raises(ValueError, match=r"unsupported RLLA file type .*expected \.json or \.parquet"):
        load_rlla(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"instruction": "s", "input": "u", "output": "o"}',
            r"expected a JSON list of \{instruction, input, output\}",
        ),
        ('"rows"', r"expected a JSON list"),
        ("not json at all", r"Expecting value"),
    ],
)
def test_wrong_json_shape_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "rows.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_rlla(path)


@pytest.mark.parametrize(
    "rows", [[{"instruction": "s", "input": "u"}], [1, 2], [["s", "u", "o"]]], ids=["missing key", "ints", "lists"]
)
def test_malformed_json_rows_are_refused_with_the_row(tmp_path: Path, rows: list[Any]) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"rows\.json.*row 0"):
        load_rlla(path)


def test_unparsable_gold_call_is_refused(tmp_path: Path, rlla_data: dict[str, Any]) -> None:
    path = write_rows(tmp_path / "r.json", ["<think> t </think>\n<tool_call>\nnot json\n</tool_call>"], rlla_data)
    with pytest.raises(ValueError, match="unparsable <tool_call> line 'not json'"):
        load_rlla(path)


def test_empty_rlla_file_gives_no_tasks_and_no_env(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]")
    assert load_rlla(path) == []
    with pytest.raises(ValueError, match="at least one task"):
        gym.make("ToolEnv-RLLA-v0", data_path=str(path))


def test_parquet_prompt_without_a_system_message_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "prompt": [{"content": "**Dialogue Records History**\n<user> hi </user>", "role": "user"}],
                    "reward_model": {"ground_truth": "<think> a </think>\n<response> b </response>", "style": "rule"},
                    "extra_info": {"index": 0, "split": "test"},
                }
            ]
        ),
        path,
    )
    with pytest.raises(ValueError, match=r"bad\.parquet row 0: prompt needs a system and a user message"):
        load_rlla(path)


def test_parquet_with_only_prompt_and_reward_model_loads(tmp_path: Path, rlla_data: dict[str, Any]) -> None:
    row = rlla_data["rows"][1]
    path = tmp_path / "minimal.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "prompt": [
                        {"content": row["instruction"], "role": "system"},
                        {"content": row["input"], "role": "user"},
                    ],
                    "reward_model": {"ground_truth": row["output"], "style": "rule"},
                }
            ]
        ),
        path,
    )
    (task,) = load_rlla(path)
    assert task.turns[0].steps[0].answer == "Hello! How can I help you today?"
