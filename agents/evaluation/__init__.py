"""Evaluation: episodes scored on held-out tasks (`episodes`) and paper-shaped tables of the results (`tables`)."""

import importlib
import warnings
from typing import Any

# What `agents.evaluation` held before it became this package; reading one warns, for one release.
_MOVED = (
    "evaluate",
    "evaluation_ids",
    "make_tool_env",
    "make_tool_env_like",
    "summarise",
    "table",
    "takes_split",
    "task_group",
    "task_result",
)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'agents.evaluation' has no attribute {name!r}")
    warnings.warn(
        f"agents.evaluation.{name} moved to agents.evaluation.episodes.{name} (this alias goes in the next release)",
        FutureWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("agents.evaluation.episodes"), name)
