"""Schema-only tools: deterministic mock results and random arguments that validate."""

from __future__ import annotations

import enum
import json
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from tools.calculator import CALCULATE, CONVERT_UNITS
from tools.mock import mock_result, sample_arguments
from tools.tool import Tool, tool

WEATHER = Tool(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_mock_result_is_deterministic_and_plausible() -> None:
    first = mock_result(WEATHER, {"city": "Paris", "days": [1, 2]})
    assert first == mock_result(WEATHER, {"days": [1, 2], "city": "Paris"})  # key order does not matter
    assert first["status"] == "ok" and first["tool"] == "get_weather"
    assert first["echo"] == {"city": "Paris", "days": [1, 2]}
    assert len(first["id"]) == 12 and int(first["id"], 16) >= 0
    assert json.loads(json.dumps(first)) == first
    assert mock_result(WEATHER, {"city": "Rome"})["id"] != first["id"]
    assert (
        mock_result(WEATHER.model_copy(update={"name": "other"}), {"city": "Paris", "days": [1, 2]})["id"]
        != first["id"]
    )


def test_mock_result_survives_odd_arguments() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    odd: list[Any] = [{1: "a", "b": 2}, {"s": {1, 2}}, {"o": object()}, {"c": cyclic}, {"x": "\ud800"}]
    for arguments in odd:
        result = mock_result(WEATHER, arguments)
        json.dumps(result)
        assert result["status"] == "ok"
    assert mock_result(WEATHER, odd[0]) == mock_result(WEATHER, dict(odd[0]))


class Size(enum.Enum):
    SMALL = "S"
    LARGE = "L"


class Address(BaseModel):
    street: str
    number: int
    floor: int | None = None


@tool
def order(
    item: str,
    quantity: int,
    size: Size,
    gift: bool = False,
    price: float = 1.0,
    toppings: tuple[Literal["cheese", "ham"], ...] = (),
    address: Address | None = None,
    extras: dict[str, int] | None = None,
    pair: tuple[int, str] = (0, ""),
) -> str:
    """Order food."""
    return item


SCHEMAS = [
    CALCULATE,
    CONVERT_UNITS,
    WEATHER,
    order,
    Tool(name="empty"),
    Tool(  # shaped like real tool data: lenient type names, a required name that is not declared
        name="legacy",
        parameters={
            "type": "dict",
            "properties": {
                "limit": {"type": "int, optional"},
                "query": {"type": "String"},
                "mode": {"enum": [1, "two", None, True]},
                "any": {"type": "any"},
                "rows": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}},
                "either": {"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "boolean"}}]},
                "both": {"allOf": [{"type": "string", "enum": ["x", "y"]}]},
            },
            "required": ["query", "mode", "undeclared"],
            "additionalProperties": False,
        },
    ),
]


@pytest.mark.parametrize("target", SCHEMAS, ids=lambda t: t.name)
@given(seed=st.integers(0, 2**32 - 1))
def test_sampled_arguments_validate(target: Tool, seed: int) -> None:
    arguments = sample_arguments(target, np.random.default_rng(seed))
    assert target.validate_arguments(arguments) is None
    assert set(target.parameters.get("required", [])) <= set(arguments)
    assert json.loads(json.dumps(arguments)) == arguments


def test_sampling_is_seeded_and_varies_the_optional_parameters() -> None:
    draws = [sample_arguments(order, np.random.default_rng(seed)) for seed in range(40)]
    assert draws == [sample_arguments(order, np.random.default_rng(seed)) for seed in range(40)]
    assert len({json.dumps(d, sort_keys=True) for d in draws}) > 30
    assert any("gift" in d for d in draws) and any("gift" not in d for d in draws)
    assert {d["size"] for d in draws} == {"S", "L"}
