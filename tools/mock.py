"""Stand-ins for tools that exist only as a schema: a fake result for a call, and random valid arguments."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from tools.tool import Tool, json_types

# Sampled strings are plain words so sampled calls read like something a model could write.
_WORDS = ("alpha", "report", "Paris", "weather", "2024-05-01", "blue", "query", "user42", "total", "London")
# Sampling stops descending here, so a schema that contains itself still gives an answer.
_MAX_DEPTH = 8


def mock_result(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A plausible, deterministic fake result: the same tool and arguments always give the same JSON."""
    try:
        canonical = json.dumps(arguments, sort_keys=True, default=str)
        echo: Any = json.loads(canonical)
    except Exception:  # keys that cannot be sorted, cycles: fall back to the repr, still deterministic
        canonical = _safe_repr(arguments)
        echo = canonical
    digest = hashlib.sha256(f"{tool.name}\0{canonical}".encode("utf-8", "surrogatepass")).hexdigest()
    return {"status": "ok", "tool": tool.name, "echo": echo, "id": digest[:12]}


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def sample_arguments(tool: Tool, rng: np.random.Generator) -> dict[str, Any]:
    """Random arguments that pass `tool.validate_arguments`: all required parameters, about half the rest."""
    return _sample_object(tool.parameters, rng, 0)


def _sample(schema: object, rng: np.random.Generator, depth: int) -> Any:
    if not isinstance(schema, Mapping):
        return _sample_string(rng)
    options = schema.get("enum")
    if isinstance(options, list) and options:
        return options[int(rng.integers(len(options)))]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        alternatives = schema.get(key)
        if isinstance(alternatives, list) and alternatives:
            return _sample(alternatives[int(rng.integers(len(alternatives)))], rng, depth + 1)
    parts = schema.get("allOf")
    # Merging the parts is exact for the usual one-part allOf.
    if isinstance(parts, list) and depth < _MAX_DEPTH:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in parts:
            if isinstance(part, Mapping):
                merged.update(part)
        return _sample(merged, rng, depth + 1)
    types = json_types(schema)
    if types is None:  # any value: a string is the most common real argument
        if isinstance(schema.get("properties"), Mapping):
            return _sample_object(schema, rng, depth)
        return _sample_string(rng)
    json_type = sorted(types)[int(rng.integers(len(types)))]
    if json_type == "string":
        return _sample_string(rng)
    if json_type == "integer":
        return int(rng.integers(0, 100))
    if json_type == "number":
        return round(float(rng.uniform(0, 100)), 2)
    if json_type == "boolean":
        return bool(rng.integers(2))
    if json_type == "null":
        return None
    if json_type == "array":
        if depth >= _MAX_DEPTH:
            return []
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            return [_sample(item, rng, depth + 1) for item in prefix]
        return [_sample(schema.get("items"), rng, depth + 1) for _ in range(int(rng.integers(0, 3)))]
    return _sample_object(schema, rng, depth)


def _sample_object(schema: Mapping[str, Any], rng: np.random.Generator, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or depth >= _MAX_DEPTH:
        properties = {}
    required = schema.get("required")
    if not isinstance(required, list):
        required = []
    required_names = {name for name in required if isinstance(name, str)}
    arguments = {
        name: _sample(sub, rng, depth + 1)
        for name, sub in properties.items()
        if name in required_names or rng.random() < 0.5
    }
    for name in sorted(required_names - arguments.keys()):  # required but undeclared: any value passes
        arguments[name] = _sample_string(rng)
    return arguments


def _sample_string(rng: np.random.Generator) -> str:
    return str(_WORDS[int(rng.integers(len(_WORDS)))])
