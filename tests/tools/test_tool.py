"""Tool: the @tool decorator's schemas and errors, and the lenient JSON-Schema checker."""

from __future__ import annotations

import copy
import enum
import pickle
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tools.tool import Tool, check_object, tool


def _schemas(node: Any) -> list[dict[str, Any]]:
    """Every schema object under `node` (not the name-to-schema maps of `properties`)."""
    if isinstance(node, list):
        return [found for item in node for found in _schemas(item)]
    if not isinstance(node, dict):
        return []
    children = [value for key, value in node.items() if key != "properties"]
    children += list(node.get("properties", {}).values())
    return [node, *(found for child in children for found in _schemas(child))]


@tool
def search_flights(origin: str, destination: str, passengers: int = 1, flexible: bool = False) -> list[str]:
    """Search flights between two airports.

    Results are sorted by price; this paragraph is not part of the description.

    Args:
        origin: IATA code of the departure airport,
            for example "LHR".
        destination (str): IATA code of the arrival airport.
        passengers: How many seats to book.

    Returns:
        Flight numbers.
    """
    return [f"{origin}-{destination}"] * passengers


def test_decorator_builds_schema_from_hints_and_docstring() -> None:
    assert search_flights.name == "search_flights"
    assert search_flights.description == "Search flights between two airports."
    assert search_flights.parameters == {
        "type": "object",
        "properties": {
            "origin": {"type": "string", "description": 'IATA code of the departure airport, for example "LHR".'},
            "destination": {"type": "string", "description": "IATA code of the arrival airport."},
            "passengers": {"type": "integer", "description": "How many seats to book.", "default": 1},
            "flexible": {"type": "boolean", "default": False},
        },
        "required": ["origin", "destination"],
        "additionalProperties": False,
    }


def test_decorated_tool_runs_the_function() -> None:
    assert search_flights.executor is not None
    assert search_flights.executor(origin="A", destination="B", passengers=2) == ["A-B", "A-B"]


def test_decorator_with_arguments_overrides_name_and_description() -> None:
    @tool(name="add", description="Add two integers.")
    def plus(a: int, b: int) -> int:
        return a + b

    assert (plus.name, plus.description) == ("add", "Add two integers.")
    assert plus.parameters["required"] == ["a", "b"]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Point(BaseModel):
    x: float
    y: float
    title: str = "origin"


def test_decorator_inlines_enums_and_models_and_strips_titles() -> None:
    @tool
    def paint(
        color: Color, where: Point, shade: Literal["light", "dark"] | None = None, tags: tuple[str, ...] = ()
    ) -> str:
        """Paint a point."""
        return ""

    properties = paint.parameters["properties"]
    assert properties["color"] == {"type": "string", "enum": ["red", "green"]}
    assert properties["where"]["properties"]["title"] == {"type": "string", "default": "origin"}
    assert properties["where"]["required"] == ["x", "y"]
    assert properties["tags"] == {"type": "array", "items": {"type": "string"}, "default": []}
    schemas = _schemas(paint.parameters)
    assert all("title" not in node and "$ref" not in node and "$defs" not in node for node in schemas)
    assert paint.validate_arguments({"color": "red", "where": {"x": 1, "y": 2.5}, "shade": None}) is None
    assert paint.validate_arguments({"color": "blue", "where": {"x": 1, "y": 2}}) is not None


def test_decorator_accepts_names_pydantic_reserves_and_bound_methods() -> None:
    class Box:
        def put(self, json: str, schema: int = 0, _private: bool = True) -> str:
            """Put something in the box."""
            return json

    put = tool(Box().put)
    assert list(put.parameters["properties"]) == ["json", "schema", "_private"]
    assert put.executor is not None and put.executor(json="x") == "x"


class Opaque:
    """A class pydantic cannot describe as JSON."""


def test_decorator_errors_name_the_function_and_the_fix() -> None:
    def no_hint(a, b: int) -> int:  # type: ignore[no-untyped-def]
        """Doc."""
        return b

    def no_doc(a: int) -> int:
        return a

    def star_args(*values: int) -> int:
        """Doc."""
        return 0

    def opaque(thing: Opaque) -> None:
        """Doc."""

    with pytest.raises(TypeError, match=r"'no_hint' needs a type hint on parameter 'a'"):
        tool(no_hint)
    with pytest.raises(TypeError, match=r"'no_doc' needs a docstring"):
        tool(no_doc)
    assert tool(no_doc, description="Explicit.").description == "Explicit."
    with pytest.raises(TypeError, match=r"'star_args'.*'values'.*keyword"):
        tool(star_args)
    with pytest.raises(TypeError, match=r"'opaque'.*describable as JSON"):
        tool(opaque)

    def unresolvable(a: Undefined) -> None:  # type: ignore[name-defined]  # noqa: F821
        """Doc."""

    with pytest.raises(TypeError, match=r"'unresolvable': cannot resolve its type hints"):
        tool(unresolvable)


class Node(BaseModel):
    value: int
    children: list[Node] = []


def test_decorator_refuses_recursive_types() -> None:
    def tree(root: Node) -> int:
        """Sum a tree."""
        return 0

    with pytest.raises(TypeError, match="refers to itself"):
        tool(tree)


SCHEMA_TOOL = Tool(
    name="book",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "nights": {"type": "integer"},
            "budget": {"type": "number"},
            "breakfast": {"type": "boolean"},
            "room": {"type": "string", "enum": ["single", "double"]},
            "guests": {"type": "array", "items": {"type": "object", "properties": {"age": {"type": "integer"}}}},
            "note": {"type": ["string", "null"]},
        },
        "required": ["city", "nights"],
        "additionalProperties": False,
    },
)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["Paris"], "arguments must be a JSON object of parameter names to values, got array"),
        ({"nights": 2}, "missing required parameter: 'city'"),
        ({}, "missing required parameters: 'city', 'nights'"),
        (
            {"city": "Paris", "nights": 2, "pets": 1},
            "unknown parameter 'pets'; accepted: city, nights, budget, breakfast, room, guests, note",
        ),
        ({"city": "Paris", "nights": "2"}, "parameter 'nights' should be integer, got string"),
        ({"city": "Paris", "nights": True}, "parameter 'nights' should be integer, got boolean"),
        ({"city": "Paris", "nights": 2.5}, "parameter 'nights' should be integer, got number"),
        ({"city": "Paris", "nights": 2, "budget": False}, "parameter 'budget' should be number, got boolean"),
        ({"city": "Paris", "nights": 2, "breakfast": 1}, "parameter 'breakfast' should be boolean, got integer"),
        ({"city": "Paris", "nights": 2, "room": "suite"}, "parameter 'room' should be one of ['single', 'double']"),
        ({"city": "Paris", "nights": 2, "note": 3}, "parameter 'note' should be null or string, got integer"),
        (
            {"city": "Paris", "nights": 2, "guests": [{"age": 3}, {"age": "x"}]},
            "parameter 'guests[1].age' should be integer, got string",
        ),
    ],
)
def test_validation_errors_say_what_is_wrong(arguments: object, message: str) -> None:
    error = SCHEMA_TOOL.validate_arguments(arguments)
    assert error is not None and error.startswith(message)


@pytest.mark.parametrize(
    "arguments",
    [
        {"city": "Paris", "nights": 2},
        {"city": "Paris", "nights": 2.0},  # JSON Schema counts 2.0 as an integer
        {"city": "Paris", "nights": 2, "budget": 100},  # an integer is a number
        {"city": "Paris", "nights": 2, "room": "double", "note": None, "guests": [], "breakfast": False},
    ],
)
def test_valid_arguments_pass(arguments: dict[str, Any]) -> None:
    assert SCHEMA_TOOL.validate_arguments(arguments) is None


def test_unknown_parameters_are_fine_unless_the_schema_forbids_them() -> None:
    open_tool = Tool(name="t", parameters={"type": "object", "properties": {"a": {"type": "string"}}})
    assert open_tool.validate_arguments({"a": "x", "b": 1}) is None
    assert open_tool.validate_arguments({"a": 1}) == "parameter 'a' should be string, got integer"
    assert Tool(name="empty").validate_arguments({"anything": [1]}) is None


@pytest.mark.parametrize(
    ("type_name", "good", "bad"),
    [
        ("float", 1.5, "1.5"),
        ("int", 3, 3.5),
        ("int, optional", 3, "3"),
        ("String", "a", 1),
        ("str", "a", None),
        ("bool", True, 1),
        ("dict", {"k": 1}, [1]),
        ("List[str]", ["a"], "a"),
        ("list", [], {}),
        (["integer", "null"], None, "x"),
    ],
)
def test_lenient_type_names(type_name: object, good: object, bad: object) -> None:
    lenient = Tool(name="t", parameters={"type": "dict", "properties": {"p": {"type": type_name}}})
    assert lenient.validate_arguments({"p": good}) is None
    assert lenient.validate_arguments({"p": bad}) is not None


@pytest.mark.parametrize("type_name", ["any", "Any", "Optional[int]", "custom_thing", "", 7, None])
def test_unknown_type_names_accept_anything(type_name: object) -> None:
    lenient = Tool(name="t", parameters={"type": "object", "properties": {"p": {"type": type_name}}})
    assert all(lenient.validate_arguments({"p": value}) is None for value in (1, "x", None, [1], {"a": 1}))


class _Hostile:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing me")

    def __repr__(self) -> str:
        raise RuntimeError("no printing me")

    __hash__ = object.__hash__


def test_validation_never_raises_on_hostile_values_and_schemas() -> None:
    cyclic: dict[str, Any] = {"type": "object", "additionalProperties": False}
    cyclic["properties"] = {"next": cyclic}
    deep: dict[str, Any] = {}
    for _ in range(2_000):
        deep = {"next": deep}
    assert "nested more than" in (Tool(name="c", parameters=cyclic).validate_arguments(deep) or "")

    enum_tool = Tool(name="e", parameters={"properties": {"p": {"enum": [_Hostile()]}}})
    assert enum_tool.validate_arguments({"p": _Hostile()}) is not None
    weird = Tool(name="w", parameters={"properties": "nonsense", "required": "all", "items": 3})
    assert weird.validate_arguments({"p": object()}) is None
    huge = Tool(name="h", parameters={"properties": {"p": {"type": "array", "items": {"type": "integer"}}}})
    assert (
        huge.validate_arguments({"p": [*range(200_000), "x"]}) == "parameter 'p[200000]' should be integer, got string"
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


@given(schema=_json, arguments=_json | st.dictionaries(st.text(max_size=3), _json | st.builds(object)))
def test_validation_never_raises(schema: Any, arguments: Any) -> None:
    parameters = schema if isinstance(schema, dict) else {"properties": {"p": schema}}
    result = Tool(name="t", parameters=parameters).validate_arguments(arguments)
    assert result is None or isinstance(result, str)


def test_required_names_missing_from_properties_count_as_declared() -> None:
    sloppy = Tool(
        name="s",
        parameters={"properties": {"a": {"type": "string"}}, "required": ["b"], "additionalProperties": False},
    )
    assert sloppy.validate_arguments({"b": 1}) is None
    assert sloppy.validate_arguments({"b": 1, "c": 2}) == "unknown parameter 'c'; accepted: a, b"


def test_tools_pickle_and_decorated_ones_come_back_as_themselves() -> None:
    assert pickle.loads(pickle.dumps(search_flights)) is search_flights
    schema_only = Tool(name="t", description="d", parameters={"type": "object", "properties": {}})
    assert pickle.loads(pickle.dumps(schema_only)) == schema_only
    assert copy.deepcopy(search_flights).executor is search_flights.executor
    assert "executor" not in search_flights.model_dump()


FLAT_PROPERTY = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["string", "number", "integer", "boolean", "null", "int, optional", "any", "str"])
        | st.lists(st.sampled_from(["string", "number", "integer", "null"]), min_size=1, max_size=2),
        "description": st.just("d"),
        "nullable": st.booleans(),
    },
)
FLAT_SCHEMA = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(st.sampled_from("abcd"), FLAT_PROPERTY, max_size=4)},
    optional={
        "required": st.lists(st.sampled_from("abcde"), max_size=3),
        "additionalProperties": st.sampled_from([False, True, {"type": "integer"}]),
    },
)
SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3)
ARGUMENTS = st.dictionaries(st.sampled_from("abcde"), SCALAR | st.lists(SCALAR, max_size=2), max_size=5)


@settings(max_examples=1000, deadline=None)
@given(schema=FLAT_SCHEMA, arguments=ARGUMENTS)
def test_fast_path_gives_the_full_checkers_verdict(schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    fast = Tool(name="t", parameters=schema).validate_arguments(arguments)
    full = check_object(arguments, schema, "", 0)
    assert fast == full
