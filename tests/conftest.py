"""Shared fixtures: a handful of RLLA rows written in exactly ToolRL's two file layouts.

The rows are built here (tests never read the real data under /work/shared): ToolRL's system prompt comes
from `render_system`, so it has their exact layout, and the rows cover the shapes the loader must handle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolrl_env.prompt import HISTORY_HEADER, render_system
from tools.suite import ToolSuite
from tools.tool import Tool, tool


def _tool(name: str, description: str, properties: dict[str, Any]) -> Tool:
    return Tool(name=name, description=description, parameters={"type": "object", "properties": properties})


def _param(description: str, json_type: str, default: str = "") -> dict[str, str]:
    # ToolRL's tool listings carry description, a loose type name and a default for every parameter.
    return {"description": description, "type": json_type, "default": default}


RLLA_TOOLS = [
    _tool("Search Managers", "Search for managers by name.", {"name": _param("The manager's name.", "string")}),
    _tool(
        "Get Weather",
        "Forecast for a city.",
        {"city": _param("City name.", "string"), "days": _param("Days ahead.", "int", "1")},
    ),
    _tool(
        "Currency Converter",
        "Convert an amount between currencies.",
        {
            "amount": _param("Amount to convert.", "float"),
            "from": _param("Source currency code.", "string"),
            "to": _param("Target currency code.", "string"),
        },
    ),
]

CALL_PLACEHOLDER = "I should use the appropriate tool with proper parameters to respond to the user's need."

_WEATHER_PARIS = {"name": "Get Weather", "parameters": {"city": "Paris", "days": 3}}
_WEATHER_ROME = {"name": "Get Weather", "parameters": {"city": "Rome", "days": 3}}
_CONVERT = {"name": "Currency Converter", "parameters": {"amount": 100, "from": "USD", "to": "EUR"}}
_SEARCH_FERGUSON = {"name": "Search Managers", "parameters": {"name": "Alex Ferguson"}}
_SEARCH_PEP = {"name": "Search Managers", "parameters": {"name": "Pep Guardiola"}}


def _calls(*calls: dict[str, Any]) -> str:
    return "<tool_call>\n" + "\n".join(json.dumps(c) for c in calls) + "\n</tool_call>"


def _history(*records: str) -> str:
    return HISTORY_HEADER + "\n\n".join(records)


_OBS = (
    '<obs> [{"name": "Search Managers", "results": {"managers": [{"name": "Alex Ferguson", "club": "MUFC"}]}}] </obs>'
)


def rlla_rows() -> list[dict[str, Any]]:
    """Four RLLA rows ({instruction, input, output}), one per shape the loader must handle."""
    system = render_system(RLLA_TOOLS)
    return [
        # 0: the gold makes two calls.
        {
            "instruction": system,
            "input": _history("<user> What's the weather in Paris and in Rome for the next 3 days? </user>"),
            "output": "<think> The user wants two forecasts, so I call Get Weather twice. </think>\n"
            + _calls(_WEATHER_PARIS, _WEATHER_ROME),
        },
        # 1: the gold only responds.
        {
            "instruction": system,
            "input": _history("<user> Hi there! </user>"),
            "output": "<think> A greeting; no tool is needed. </think>\n"
            "<response> Hello! How can I help you today? </response>",
        },
        # 2: prior history with an assistant call and its <obs>, then a new user turn.
        {
            "instruction": system,
            "input": _history(
                "<user> Find the manager Alex Ferguson. </user>",
                f"<think> {CALL_PLACEHOLDER} </think>\n{_calls(_SEARCH_FERGUSON)}\n{_OBS}",
                "<user> Now convert 100 USD to EUR. </user>",
            ),
            "output": "<think> The user now wants a currency conversion. </think>\n" + _calls(_CONVERT),
        },
        # 3: the distilled thought itself mentions <tool_call>, which would hide the real block.
        {
            "instruction": system,
            "input": _history("<user> Look up Pep Guardiola. </user>"),
            "output": "<think> I must put the call inside the <tool_call> tags, one JSON object per line. </think>\n"
            + _calls(_SEARCH_PEP),
        },
    ]


def write_rlla_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows, indent=2))
    return path


def write_rlla_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The rows in the layout of ToolRL's verl parquet (dataset/rlla_4k/*.parquet)."""
    table = pa.Table.from_pylist(
        [
            {
                "data_source": "rlla",
                "prompt": [
                    {"content": row["instruction"], "role": "system"},
                    {"content": row["input"], "role": "user"},
                ],
                "ability": "math",
                "reward_model": {"ground_truth": row["output"], "style": "rule"},
                "extra_info": {
                    "index": i,
                    "input": row["input"],
                    "instruction": row["instruction"],
                    "output": row["output"],
                    "split": "test",
                },
            }
            for i, row in enumerate(rows)
        ]
    )
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="session")
def rlla_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{"rows", "tools", "json", "parquet"}: the rows, the tools their prompt lists, and the two files."""
    folder = tmp_path_factory.mktemp("rlla")
    rows = rlla_rows()
    return {
        "rows": rows,
        "tools": RLLA_TOOLS,
        "json": write_rlla_json(folder / "rlla_fixture.json", rows),
        "parquet": write_rlla_parquet(folder / "rlla_fixture.parquet", rows),
    }


class CounterSuite(ToolSuite):
    """A stateful suite: `add` changes a counter kept in the suite's per-episode state."""

    def __init__(self) -> None:
        super().__init__("counter", [tool(self.add)], timeout_s=None)

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.state = {"count": 0}

    def add(self, amount: int) -> int:
        """Add to the counter and return its new value.

        Args:
            amount: How much to add.
        """
        self.state["count"] += amount
        return self.state["count"]


@pytest.fixture
def counter_suite() -> CounterSuite:
    return CounterSuite()
