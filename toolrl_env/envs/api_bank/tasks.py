"""API-Bank levels 1-3 in ToolRL's processed format as tasks.

The files are `benchmarks/API-Bank/level-{1,2,3}-api_processed.json` in qiancheng0/ToolRL (399, 67 and 131
rows). Each row is `{"system", "user", "answer", "other"}`: `system` is ToolRL's prompt with the APIs listed,
`user` the "**Dialogue Records History**" ending in a request for one tool call, `answer` the gold call (a
one-item list in levels 1 and 3, a bare dict in level 2).

The system prompt is kept verbatim. The tools are read from its listing, which comes in two shapes
(`N. Name: X / Description: ... / Parameters: {...}` in levels 1-2, `N. X: description / Parameters: {...}` in
level 3), with parameters written as Python literals and types named `str`, `int`, `float`, `bool`, `list`,
`list(str)`. API-Bank passes every argument as a string (every gold value is one, even for `int` parameters),
so a parameter of another type also accepts a string, and none is required (gold calls omit some).
Level 2's history header has a typo (`***Dialogue Records History**`); it becomes the standard header, since
the env writes that header itself.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolrl_env.envs.api_bank.apis import seed_state
from toolrl_env.prompt import HISTORY_HEADER
from toolrl_env.task import ANSWER_THOUGHT, GoldStep, Task, Turn
from tools.call import ToolCall
from tools.tool import Tool

LEVELS = (1, 2, 3)
SOURCE = "qiancheng0/ToolRL's benchmarks/API-Bank/level-{1,2,3}-api_processed.json"
_LEVEL_IN_NAME = re.compile(r"level-([123])-api_processed\.json$")
_TOOLS_START = "you can use the following tools:\n"
_TOOLS_END = "\n\n**Steps for Each Turn**"
_ENTRY = re.compile(r"^\d+\. ", re.MULTILINE)
_HEADERS = (HISTORY_HEADER, "***Dialogue Records History**\n")
_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": ["integer", "string"]},
    "float": {"type": ["number", "string"]},
    "bool": {"type": ["boolean", "string"]},
    "list": {"type": ["array", "string"]},
    "list(str)": {"type": ["array", "string"], "items": {"type": "string"}},
}
# After a gold call runs in multi-turn mode, the turn ends with a response to the user (any text: a gold
# step without calls scores the format only).
_RESPONSE_STEP = GoldStep(text=f"<think> {ANSWER_THOUGHT} </think>\n<response> Done. </response>")


def parse_api_bank_tools(system: str) -> list[Tool]:
    """The APIs listed in an API-Bank system prompt, in either of ToolRL's two listing shapes.

    Raises ValueError naming the entry that cannot be read."""
    start = system.find(_TOOLS_START)
    end = system.find(_TOOLS_END, start)
    if start < 0 or end < 0:
        raise ValueError(f"no tool listing between {_TOOLS_START.strip()!r} and {_TOOLS_END.strip()!r}")
    tools: list[Tool] = []
    for entry in _ENTRY.split(system[start + len(_TOOLS_START) : end])[1:]:
        head, sep, params = entry.rpartition("\nParameters: ")
        if not sep:
            raise ValueError(f"tool entry without 'Parameters:': {entry[:80]!r}")
        if head.startswith("Name: "):
            name, _, description = head[len("Name: ") :].partition("\nDescription: ")
        else:
            name, _, description = head.partition(": ")
        try:
            properties = ast.literal_eval(params.strip())  # the listing's own Python literal, not model text
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"parameters of {name.strip()!r} are not a Python literal: {exc}") from None
        if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
            raise ValueError(f"parameters of {name.strip()!r} must map names to {{'type', 'description'}}")
        schema = {
            key: {**_TYPES.get(str(spec.get("type")), {}), "description": str(spec.get("description", ""))}
            for key, spec in properties.items()
        }
        tools.append(
            Tool(
                name=name.strip(),
                description=description.strip(),
                parameters={"type": "object", "properties": schema},
            )
        )
    if not tools:
        raise ValueError("the tool listing names no tools")
    return tools


def gold_call(answer: Any) -> dict[str, Any]:
    """The gold call of a row, as ToolRL's evaluation reads it: the list's first item, or the dict itself."""
    call = answer[0] if isinstance(answer, list) and len(answer) == 1 else answer
    if not (isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("parameters"), dict)):
        raise ValueError(f"answer must be {{'name': str, 'parameters': dict}} or a one-item list of it, got {answer!r}")
    return {"name": call["name"], "parameters": call["parameters"]}


def api_bank_task(row: Any, level: int, index: int, source: str = "") -> Task:
    """One processed row as a task with id `api_bank_l{level}_{index}`; ValueError names the file and row."""
    where = f"{source or 'API-Bank'} row {index}"
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("system", "user")):
        raise ValueError(f"{where}: expected an object with string fields system, user and an answer")
    try:
        gold = gold_call(row.get("answer"))
        tools = parse_api_bank_tools(row["system"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    user = row["user"]
    history = next((user[len(h) :] for h in _HEADERS if user.startswith(h)), user)
    return Task(
        id=f"api_bank_l{level}_{index}",
        tools=tools,
        system=row["system"],
        history=history,
        turns=[Turn(user=None, steps=[GoldStep(calls=[ToolCall(**gold)]), _RESPONSE_STEP])],
        suite_options={
            "tools": [t.model_dump() for t in tools],
            "state": seed_state(history, gold),
        },
        metadata={
            "level": level,
            "row": index,
            "source": source,
            "other": row.get("other"),
            "gold": gold,
            "gold_offered": gold["name"] in {t.name for t in tools},
        },
    )


def level_files(data_path: str | Path) -> dict[int, Path]:
    """The level files at `data_path`: a file, or a folder holding `[API-Bank__]level-N-api_processed.json`."""
    path = Path(data_path)
    if path.is_file():
        match = _LEVEL_IN_NAME.search(path.name)
        if match is None:
            raise ValueError(f"{path}: cannot tell the level; the name must end in level-N-api_processed.json")
        return {int(match.group(1)): path}
    if not path.is_dir():
        raise FileNotFoundError(f"no API-Bank file or folder at {path}; the files are {SOURCE}")
    found: dict[int, Path] = {}
    for file in sorted(path.iterdir()):
        match = _LEVEL_IN_NAME.search(file.name)
        if match and file.name in (match.group(0), f"API-Bank__{match.group(0)}"):
            level = int(match.group(1))
            if level in found:
                raise ValueError(f"{path}: two files for level {level}: {found[level].name} and {file.name}")
            found[level] = file
    if not found:
        raise FileNotFoundError(f"{path} holds no level-N-api_processed.json; the files are {SOURCE}")
    return found


def load_api_bank(data_path: str | Path, level: int | Sequence[int] | None = None) -> list[Task]:
    """Tasks of the chosen levels (1, 2, 3 or a list; default every level found) from a file or folder."""
    files = level_files(data_path)
    wanted = sorted(files) if level is None else sorted({level} if isinstance(level, int) else set(level))
    unknown = [lv for lv in wanted if lv not in LEVELS]
    if unknown:
        raise ValueError(f"unknown API-Bank level(s) {unknown}; choose from {list(LEVELS)}")
    missing = [lv for lv in wanted if lv not in files]
    if missing:
        raise FileNotFoundError(f"{data_path}: no file for level(s) {missing}; found levels {sorted(files)}")
    tasks: list[Task] = []
    for lv in wanted:
        try:
            rows = json.loads(files[lv].read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{files[lv]}: not JSON ({exc})") from None
        if not isinstance(rows, list):
            raise ValueError(f"{files[lv]}: expected a JSON list of rows, got {type(rows).__name__}")
        tasks += [api_bank_task(row, lv, i, str(files[lv])) for i, row in enumerate(rows)]
    return tasks
