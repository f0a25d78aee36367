"""A tool the model can call: its name, description and JSON-Schema parameters, plus an optional executor.

`Tool.validate_arguments` checks a call against the schema with a small, lenient JSON-Schema checker
(the subset tool schemas use: type, enum, properties, required, additionalProperties, items, anyOf).
`@tool` builds a Tool from a typed, documented Python function.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, SupportsIndex, overload

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})

# Type names found in real tool data (Python names, capitalised names) mapped to JSON-Schema types.
_TYPE_ALIASES = {
    "str": "string",
    "text": "string",
    "float": "number",
    "double": "number",
    "decimal": "number",
    "int": "integer",
    "long": "integer",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "dict": "object",
    "map": "object",
    "none": "null",
}

# Cycles only come from hand-built schemas that refer to themselves; real ones are a few levels deep.
_MAX_DEPTH = 64


def _empty_object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class Tool(BaseModel):
    """A tool offered to the model; with no executor it is schema-only and the suite answers with a mock."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str = Field(min_length=1, description="Name the model uses in its calls.")
    description: str = Field(default="", description="What the tool does, shown to the model.")
    parameters: dict[str, Any] = Field(
        default_factory=_empty_object_schema,
        description="JSON Schema of the arguments: an object schema with `properties` and `required`.",
    )
    executor: Callable[..., Any] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Called with the arguments as keyword arguments; None answers with `mock_result`.",
    )

    _flat: _FlatSchema | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        self._flat = _FlatSchema.of(self.parameters)

    def validate_arguments(self, arguments: object) -> str | None:
        """None when `arguments` fit the schema, else a short message saying what is wrong; never raises."""
        if not isinstance(arguments, dict):
            return f"arguments must be a JSON object of parameter names to values, got {_type_name(arguments)}"
        # Not `self._flat`: pydantic's private-attribute lookup is slow; its store always exists here.
        flat = self.__pydantic_private__["_flat"]  # type: ignore[index]
        if flat is not None and flat.accepts(arguments):
            return None  # the common case, decided without walking the schema
        try:
            return check_object(arguments, self.parameters, "", 0)
        except Exception as exc:  # a value or schema this checker cannot handle, e.g. an `==` that raises
            return f"could not validate the arguments ({type(exc).__name__}); send plain JSON values"

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        # `@tool` puts this Tool where its function was, so pickle could not find the function by
        # name; pickle the Tool by reference instead, the way pickle treats functions.
        module = getattr(self.executor, "__module__", None)
        qualname = getattr(self.executor, "__qualname__", "")
        if inspect.isfunction(self.executor) and module and "<locals>" not in qualname:
            try:
                found = _find_global(module, qualname)
            except (ImportError, AttributeError):
                found = None
            # A deep copy of the decorated tool (a suite copied per env) is equal to it, not identical.
            if found is self or (isinstance(found, Tool) and found == self):
                return (_find_global, (module, qualname))
        return super().__reduce_ex__(protocol)


_UNDECLARED = frozenset({"undeclared"})  # a sentinel of the types' own type
_PLAIN_KEYS = frozenset({"type", "description", "title", "default", "examples", "nullable"})


class _FlatSchema(typing.NamedTuple):
    """A fast yes for the usual call: scalar arguments of an object schema whose properties only set types.

    `accepts` says True only where the full checker finds nothing wrong; anything else goes to the full
    checker, which also writes the message.
    """

    types: dict[str, frozenset[str] | None]  # property -> allowed JSON types (None: any)
    required: frozenset[str]
    closed: bool  # additionalProperties is false
    open_schema: bool  # additionalProperties is a schema of its own: leave those to the full checker

    @staticmethod
    def of(schema: Mapping[str, Any]) -> _FlatSchema | None:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            return None
        types = {}
        for name, prop in properties.items():
            if not isinstance(prop, Mapping) or not prop.keys() <= _PLAIN_KEYS:
                return None
            types[name] = json_types(prop)
        additional = schema.get("additionalProperties")
        return _FlatSchema(
            types,
            frozenset(n for n in required if isinstance(n, str)),
            additional is False,
            isinstance(additional, Mapping),
        )

    def accepts(self, arguments: dict[Any, Any]) -> bool:
        if not self.required <= arguments.keys():
            return False
        types = self.types
        for key, value in arguments.items():
            if isinstance(value, (dict, list, tuple)):
                return False  # containers: the full checker also bounds their depth
            allowed = types.get(key, _UNDECLARED)
            if allowed is _UNDECLARED:
                if self.open_schema or (self.closed and key not in self.required):
                    return False
            elif allowed is not None:
                for json_type in allowed:
                    if _is_type(value, json_type):
                        break
                else:
                    return False
        return True


def _find_global(module: str, qualname: str) -> Any:
    """The object named `qualname` in `module`: how a decorated tool is found again when unpickled."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def json_types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    """The JSON types `schema` allows, reading lenient type names; None when it allows any value."""
    declared = schema.get("type")
    if isinstance(declared, str) and "nullable" not in schema:
        return _types_named(declared)  # the common case, cached
    names = declared if isinstance(declared, list) else [declared]
    types = set()
    for name in names:
        json_type = _normalise_type(name) if isinstance(name, str) else None
        if json_type is None:
            return None
        types.add(json_type)
    if schema.get("nullable") is True:  # OpenAPI's way of saying "or null"
        types.add("null")
    return frozenset(types)


@functools.lru_cache(maxsize=256)
def _types_named(name: str) -> frozenset[str] | None:
    json_type = _normalise_type(name)
    return None if json_type is None else frozenset((json_type,))


@functools.lru_cache(maxsize=256)
def _normalise_type(name: str) -> str | None:
    # The leading word decides: "int, optional" is int, "List[str]" is list; unknown words mean any.
    match = re.match(r"\s*([A-Za-z]+)", name)
    if match is None:
        return None
    word = match.group(1).lower()
    return word if word in _JSON_TYPES else _TYPE_ALIASES.get(word)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: object, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        # JSON Schema counts 1.0 as an integer, but never a boolean.
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "array":
        return isinstance(value, (list, tuple))
    if json_type == "object":
        return isinstance(value, dict)
    return value is None


def _json_equal(value: object, option: object) -> bool:
    # In JSON true is not 1, though Python says so.
    if isinstance(value, bool) or isinstance(option, bool):
        return value is option
    try:
        return bool(value == option)
    except Exception:
        return False


def _short(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(path: str) -> str:
    return f"parameter {path!r}" if path else "arguments"


def _check(value: object, schema: object, path: str, depth: int) -> str | None:
    if not isinstance(schema, Mapping):
        return None  # not a schema (e.g. a bare description string): anything goes
    if depth > _MAX_DEPTH:
        return f"{_label(path)} is nested more than {_MAX_DEPTH} levels deep"
    options = schema.get("enum")
    if isinstance(options, list) and options and not any(_json_equal(value, o) for o in options):
        return f"{_label(path)} should be one of {_short(options)}, got {_short(value)}"
    for key in ("anyOf", "oneOf"):  # oneOf is read as anyOf: exclusivity never matters for a call
        alternatives = schema.get(key)
        if (
            isinstance(alternatives, list)
            and alternatives
            and all(_check(value, alt, path, depth + 1) is not None for alt in alternatives)
        ):
            allowed = " | ".join(_describe(alt) for alt in alternatives)
            return f"{_label(path)} should be {allowed}, got {_type_name(value)}"
    required_all = schema.get("allOf")
    if isinstance(required_all, list):
        for alt in required_all:
            error = _check(value, alt, path, depth + 1)
            if error is not None:
                return error
    types = json_types(schema)
    if types is not None and not any(_is_type(value, t) for t in types):
        return f"{_label(path)} should be {' or '.join(sorted(types))}, got {_type_name(value)}"
    if isinstance(value, dict):
        return check_object(value, schema, path, depth)
    if isinstance(value, (list, tuple)):
        return _check_array(value, schema, path, depth)
    return None


def _describe(schema: object) -> str:
    types = json_types(schema) if isinstance(schema, Mapping) else None
    return " or ".join(sorted(types)) if types else "any value"


def check_object(value: dict[Any, Any], schema: Mapping[str, Any], path: str, depth: int) -> str | None:
    """What is wrong with an object argument `value` at `path` against an object `schema` (None: nothing)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        properties = {}
    required = schema.get("required")
    required_names = [name for name in required if isinstance(name, str)] if isinstance(required, list) else []
    missing = [name for name in required_names if name not in value]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        noun = "parameter" if len(missing) == 1 else "parameters"
        where = f" of {_label(path)}" if path else ""
        return f"missing required {noun}{where}: {names}"
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        child = f"{path}.{key}" if path else str(key)
        if key in properties:
            error = _check(item, properties[key], child, depth + 1)
        elif additional is False and key not in required_names:
            # A required name missing from `properties` (sloppy real data) still counts as declared.
            accepted = ", ".join(dict.fromkeys([*map(str, properties), *required_names])) or "none"
            return f"unknown {_label(child)}; accepted: {accepted}"
        else:
            error = _check(item, additional, child, depth + 1)
        if error is not None:
            return error
    return None


def _check_array(value: Sequence[Any], schema: Mapping[str, Any], path: str, depth: int) -> str | None:
    items = schema.get("items")
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    for index, item in enumerate(value):
        item_schema = prefix[index] if index < len(prefix) else items
        error = _check(item, item_schema, f"{path}[{index}]", depth + 1)
        if error is not None:
            return error
    return None


@overload
def tool(func: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> Tool: ...


@overload
def tool(
    func: None = None, *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function with a docstring into a Tool that runs it: `@tool` or `@tool(name=...)`.

    The function receives the JSON values as sent: an Enum parameter gets the value, a model a dict."""
    if func is None:
        return lambda f: _tool_from_function(f, name, description)
    return _tool_from_function(func, name, description)


def _tool_from_function(func: Callable[..., Any], name: str | None, description: str | None) -> Tool:
    func_name = getattr(func, "__name__", repr(func))
    summary, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    if description is None and not summary:
        raise TypeError(
            f"tool function {func_name!r} needs a docstring: its first paragraph is the description "
            "shown to the model (or pass @tool(description=...))"
        )
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise TypeError(f"tool function {func_name!r}: cannot resolve its type hints ({exc})") from exc
    fields: dict[str, Any] = {}
    for index, param in enumerate(inspect.signature(func).parameters.values()):
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(
                f"tool function {func_name!r}: parameter {param.name!r} is {param.kind.description}; "
                "tools are called with keyword arguments, so declare each one by name"
            )
        if param.name not in hints:
            raise TypeError(
                f"tool function {func_name!r} needs a type hint on parameter {param.name!r} "
                f"(e.g. `{param.name}: str`): the hint becomes the JSON schema shown to the model"
            )
        default = ... if param.default is param.empty else param.default
        # Aliases keep any parameter name legal: pydantic rejects or warns on names like `_x` or `json`.
        field = Field(default, alias=param.name, description=arg_docs.get(param.name))
        fields[f"p{index}"] = (hints[param.name], field)
    try:
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{func_name}_parameters", __config__=ConfigDict(extra="forbid"), **fields
        )
        raw_schema = model.model_json_schema()
    except Exception as exc:
        raise TypeError(
            f"tool function {func_name!r}: its parameter types must be describable as JSON "
            f"(str, int, float, bool, list, dict, Literal, pydantic models): {exc}"
        ) from exc
    defs = raw_schema.get("$defs", {})
    return Tool(
        name=name or func_name,
        description=description if description is not None else summary,
        parameters=clean_schema(raw_schema, defs, func_name, ()),
        executor=func,
    )


_SECTION = re.compile(r"^\s*(Args|Arguments|Returns?|Raises|Yields?|Examples?|Notes?|Attributes):\s*$")
_ARG_LINE = re.compile(r"^\s*\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its first paragraph and the descriptions in its `Args:` section."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary.append(line.strip())
    arg_docs: dict[str, str] = {}
    start = next((i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:")), None)
    if start is not None:
        header_indent = len(lines[start]) - len(lines[start].lstrip())
        entry_indent: int | None = None
        current: str | None = None
        for line in lines[start + 1 :]:
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            if indent <= header_indent:
                break  # the next section
            match = _ARG_LINE.match(line)
            if match and (entry_indent is None or indent <= entry_indent):
                entry_indent = indent
                current = match.group(1)
                arg_docs[current] = match.group(2).strip()
            elif current is not None:
                arg_docs[current] = f"{arg_docs[current]} {line.strip()}".strip()
    return " ".join(summary), arg_docs


# Schema keys in reading order for the prompt: the type first, then what it means, then the details.
_KEY_ORDER = {
    key: index for index, key in enumerate(("type", "description", "enum", "items", "properties", "required"))
}
# Keys whose values are data, not schemas: copied as they are.
_DATA_KEYS = frozenset({"default", "enum", "const", "examples", "required"})


def clean_schema(node: Any, defs: Mapping[str, Any], func_name: str, active: tuple[str, ...]) -> Any:
    """Inline `$ref`s and drop titles so the schema shown to the model is short and self-contained."""
    if isinstance(node, list):
        return [clean_schema(item, defs, func_name, active) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        ref_name = ref.rsplit("/", 1)[-1]
        if ref_name in active:
            raise TypeError(
                f"tool function {func_name!r}: type {ref_name!r} refers to itself; "
                "tool parameters must be finite JSON, so use a non-recursive type"
            )
        cleaned.update(clean_schema(defs.get(ref_name, {}), defs, func_name, (*active, ref_name)))
    for key, value in node.items():
        if key in ("title", "$ref", "$defs"):
            continue
        if key in _DATA_KEYS:
            cleaned[key] = value
        elif key in ("properties", "patternProperties") and isinstance(value, dict):
            cleaned[key] = {prop: clean_schema(sub, defs, func_name, active) for prop, sub in value.items()}
        else:
            cleaned[key] = clean_schema(value, defs, func_name, active)
    return dict(sorted(cleaned.items(), key=lambda item: _KEY_ORDER.get(item[0], len(_KEY_ORDER))))
