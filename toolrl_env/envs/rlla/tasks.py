"""ToolRL's RLLA files as tasks: the instruction/input/output JSON and the verl parquet.

Both come from qiancheng0/ToolRL (`dataset/rlla_4k_raw/*.json`, `dataset/rlla_4k/*.parquet`); each row is one
single-step task whose prompt is ToolRL's system prompt plus a "**Dialogue Records History**" user message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from toolrl_env.format import parse
from toolrl_env.prompt import HISTORY_HEADER
from toolrl_env.rewards import gold_calls
from toolrl_env.task import GoldStep, Task, Turn
from tools.call import ToolCall
from tools.tool import Tool

_TOOL_ENTRY = re.compile(r"^\d+\. Name: ", re.MULTILINE)
_TOOLS_START = "you can use the following tools:\n"
_TOOLS_END = "\n\n**Steps for Each Turn**"
_PLACEHOLDER = {
    True: "I should use the appropriate tool with proper parameters to respond to the user's need.",
    False: "I should directly respond to the user's need.",
}


def parse_tools(system: str) -> list[Tool]:
    """The tools listed in a ToolRL system prompt (`N. Name / Description / Parameters`); unreadable entries are
    skipped."""
    start = system.find(_TOOLS_START)
    if start < 0:
        return []
    end = system.find(_TOOLS_END, start)
    listing = system[start + len(_TOOLS_START) : end if end >= 0 else None]
    tools: list[Tool] = []
    for entry in _TOOL_ENTRY.split(listing)[1:]:
        name, _, rest = entry.partition("\nDescription: ")
        description, _, params = rest.rpartition("\nParameters: ")
        try:
            properties = json.loads(params)
        except ValueError:
            continue
        if isinstance(properties, dict) and name.strip() not in {t.name for t in tools}:
            tools.append(
                Tool(
                    name=name.strip(),
                    description=description.strip(),
                    parameters={"type": "object", "properties": properties},
                )
            )
    return tools


def gold_step(output: str) -> GoldStep:
    """The gold step of an RLLA output.

    A distilled thought that itself mentions `<tool_call>` would hide the real block from ToolRL's reward, so
    such a thought is replaced by ToolRL's placeholder (as their RL split did); the rest stays verbatim.
    """
    text = output.strip()
    try:
        calls = gold_calls(text)
    except ValueError:
        tail = text[text.rfind("</think>") + len("</think>") :]
        text = f"<think> {_PLACEHOLDER['<tool_call>' in tail]} </think>{tail}"
        calls = gold_calls(text)
    return GoldStep(calls=[ToolCall(**c) for c in calls], answer=parse(text).response, text=text)


def _task(row_id: str, system: str, user: str, output: str, metadata: dict[str, Any]) -> Task:
    history = user[len(HISTORY_HEADER) :] if user.startswith(HISTORY_HEADER) else user
    return Task(
        id=row_id,
        tools=parse_tools(system),
        system=system,
        history=history,
        turns=[Turn(user=None, steps=[gold_step(output)])],
        metadata=metadata,
    )


def load_rlla(path: str | Path) -> list[Task]:
    """Tasks from an RLLA `.json` (instruction, input, output) or `.parquet` (prompt, reward_model) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no RLLA file at {path}; ToolRL's files are dataset/rlla_4k_raw/rlla_*.json and "
            "dataset/rlla_4k/*.parquet in the qiancheng0/ToolRL repository"
        )
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = {"prompt", "reward_model"} - set(table.column_names)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}; expected verl's prompt and reward_model")
        rows = table.select(
            [c for c in ("prompt", "reward_model", "extra_info") if c in table.column_names]
        ).to_pylist()
        return [_parquet_task(path, i, row) for i, row in enumerate(rows)]
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of {{instruction, input, output}} rows")
        return [_json_task(path, i, row) for i, row in enumerate(rows)]
    raise ValueError(f"{path}: unsupported RLLA file type {path.suffix!r}; expected .json or .parquet")


def _json_task(path: Path, i: int, row: Any) -> Task:
    fields = ("instruction", "input", "output")
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in fields):
        raise ValueError(f"{path} row {i}: expected an object with string fields instruction, input, output")
    return _task(f"{path.stem}-{i}", row["instruction"], row["input"], row["output"], {"source": str(path), "row": i})


def _parquet_task(path: Path, i: int, row: dict[str, Any]) -> Task:
    messages = {m["role"]: m["content"] for m in row["prompt"]}
    if "system" not in messages or "user" not in messages:
        raise ValueError(f"{path} row {i}: prompt needs a system and a user message, got {list(messages)}")
    extra = row.get("extra_info") or {}
    metadata = {"source": str(path), "row": i, "split": extra.get("split"), "index": extra.get("index")}
    return _task(
        f"{path.stem}-{i}",
        messages["system"],
        messages["user"],
        row["reward_model"]["ground_truth"],
        metadata,
    )
