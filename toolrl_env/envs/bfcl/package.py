"""BFCL's data, official checkers and executable backends, read from the pinned `bfcl-eval` wheel.

The wheel is unpacked into the asset cache (see `toolrl_env.assets`) and put on `sys.path`; it is never
installed, since its declared dependencies are every model SDK and numpy 1.26. Its AST checker imports
`bfcl_eval.constants.model_config` only to read one flag, `MODEL_CONFIG_MAPPING[model].underscore_to_dot`,
and that module imports every API client. We put a stand-in module of that name in `sys.modules` first,
whose mapping answers `underscore_to_dot = False` for any model name (function names are compared as
the data writes them, dots included), so the official checker runs with the standard library alone.
The multi-turn backends also need `mpmath` (MathAPI), which torch's `sympy` dependency brings.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

from toolrl_env.assets import BFCL_EVAL, asset_dir

# The single-turn (AST) categories and the executable multi-turn ones, with BFCL's own names.
SINGLE_TURN_CATEGORIES = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
# Categories of the same data set that need the network (web search) or memory backends.
UNSUPPORTED_CATEGORIES = ("web_search", "memory", "format_sensitivity")

_MODEL_CONFIG = "bfcl_eval.constants.model_config"


class _NoDotConversion:
    """A MODEL_CONFIG_MAPPING entry: keep function names as they are."""

    underscore_to_dot = False


class _AnyModel(dict[str, _NoDotConversion]):
    def __missing__(self, key: str) -> _NoDotConversion:
        return _NoDotConversion()


@cache
def bfcl_root() -> Path:
    """The unpacked `bfcl_eval` package folder (fetched on first use), importable as `bfcl_eval`."""
    root = asset_dir(BFCL_EVAL)
    if str(root) not in sys.path:
        sys.path.append(str(root))
    if _MODEL_CONFIG not in sys.modules:
        stand_in = types.ModuleType(_MODEL_CONFIG, "toolrl stand-in: no model SDKs, underscore_to_dot off")
        stand_in.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
        sys.modules[_MODEL_CONFIG] = stand_in
    return root / "bfcl_eval"


def import_bfcl(module: str) -> types.ModuleType:
    """Import `bfcl_eval.<module>` from the pinned wheel, e.g. `eval_checker.ast_eval.ast_checker`."""
    bfcl_root()
    return importlib.import_module(f"bfcl_eval.{module}")


def _check_category(category: str) -> None:
    if category in UNSUPPORTED_CATEGORIES:
        raise ValueError(
            f"BFCL category {category!r} is not supported offline: it needs the network (web search) or memory backends"
        )
    if category not in SINGLE_TURN_CATEGORIES + MULTI_TURN_CATEGORIES:
        known = ", ".join(SINGLE_TURN_CATEGORIES + MULTI_TURN_CATEGORIES)
        raise ValueError(f"unknown BFCL category {category!r}; known: {known}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (BFCL's data files are JSON lines despite their .json names)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_entries(category: str) -> list[dict[str, Any]]:
    """BFCL's test entries of one category (`id`, `question`, `function`, ...), in file order."""
    _check_category(category)
    return read_jsonl(bfcl_root() / "data" / f"BFCL_v4_{category}.json")


def load_possible_answers(category: str) -> dict[str, Any]:
    """The possible answers of one category by test id (`ground_truth`); empty for irrelevance categories."""
    _check_category(category)
    path = bfcl_root() / "data" / "possible_answer" / f"BFCL_v4_{category}.json"
    if not path.is_file():
        return {}
    return {row["id"]: row["ground_truth"] for row in read_jsonl(path)}
