"""Gymnasium ids for ToolEnv, `register_suite` for new tool suites, and the `toolrl_env.suites` entry points."""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from toolrl_env.env import ToolEnv
from toolrl_env.tasks.calc import Split, generate_calc_tasks
from toolrl_env.tasks.rlla import load_rlla
from toolrl_env.tasks.task import GoldStep, Task, Turn
from tools.calculator import CalculatorSuite
from tools.call import ToolCall
from tools.suite import ToolSuite
from tools.tool import Tool

ENTRY_POINT_GROUP = "toolrl_env.suites"
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
# Registered suites: name -> (suite, tasks, env kwargs). Each env gets its own copy of the suite.
_SUITES: dict[str, tuple[ToolSuite, list[Task], dict[str, Any]]] = {}


def make_rlla_env(data_path: str | None = None, **env_kwargs: Any) -> ToolEnv:
    """ToolEnv-RLLA-v0: ToolRL's RLLA rows (single-turn by default, as ToolRL trained)."""
    if data_path is None:
        raise ValueError(
            "ToolEnv-RLLA-v0 needs data_path=<file>: an RLLA .json (instruction/input/output) or .parquet "
            "(prompt, reward_model.ground_truth) from qiancheng0/ToolRL's dataset/ folder"
        )
    return ToolEnv(load_rlla(data_path), **env_kwargs)


def make_calc_env(
    num_tasks: int = 1000, seed: int = 0, split: Split = "train", mode: str = "multi_turn", **env_kwargs: Any
) -> ToolEnv:
    """ToolEnv-Calc-v0: generated calculator / unit-conversion tasks with the real calculator suite."""
    tasks = generate_calc_tasks(num_tasks=num_tasks, seed=seed, split=split)
    return ToolEnv(tasks, suite=CalculatorSuite(), mode=mode, **env_kwargs)


def make_suite_env(suite_name: str, **env_kwargs: Any) -> ToolEnv:
    """Build the env of a suite registered with `register_suite`."""
    if suite_name not in _SUITES:
        raise KeyError(f"unknown tool suite {suite_name!r}; registered: {', '.join(_SUITES) or 'none'}")
    suite, tasks, defaults = _SUITES[suite_name]
    return ToolEnv(tasks, suite=copy.deepcopy(suite), **{**defaults, **env_kwargs})


def _as_task(task: Task | Mapping[str, Any], index: int) -> Task:
    """A Task, or a dict: {"id", "user", "gold_calls": [{"name", "parameters"}], "answer"}, or Task fields."""
    if isinstance(task, Task):
        return task
    if not isinstance(task, Mapping):
        raise TypeError(f"task {index} must be a Task or a dict, got {type(task).__name__}")
    if "turns" in task:
        return Task.model_validate(task)
    unknown = set(task) - {"id", "user", "gold_calls", "answer", "metadata"}
    if unknown or "user" not in task:
        raise ValueError(
            f"task {index}: expected keys id, user, gold_calls, answer, metadata (or Task fields); got {sorted(task)}"
        )
    steps = []
    if task.get("gold_calls"):
        steps.append(GoldStep(calls=[ToolCall.model_validate(c) for c in task["gold_calls"]]))
    if task.get("answer") is not None:
        steps.append(GoldStep(answer=str(task["answer"])))
    if not steps:
        raise ValueError(f"task {index}: give gold_calls, an answer, or both")
    return Task(
        id=str(task.get("id", index)),
        turns=[Turn(user=task["user"], steps=steps)],
        metadata=dict(task.get("metadata", {})),
    )


def register_suite(
    name: str,
    tools: Sequence[Tool] | ToolSuite,
    tasks: Sequence[Task | Mapping[str, Any]],
    **env_kwargs: Any,
) -> str:
    """Register `ToolEnv-<name>-v0` over these tools and tasks and return its id.

    Tasks that list no tools are offered all of the suite's. `env_kwargs` are ToolEnv settings
    (multi-turn by default, so the tools run); `gymnasium.make` kwargs override them.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"suite name {name!r} must be letters, digits, '_' or '.'")
    suite = tools if isinstance(tools, ToolSuite) else ToolSuite(name, list(tools))
    built = [_as_task(t, i) for i, t in enumerate(tasks)]
    if not built:
        raise ValueError(f"suite {name!r} needs at least one task")
    for task in built:
        offered = {t.name for t in task.tools or suite.tools}
        missing = {c.name for turn in task.turns for s in turn.steps for c in s.calls} - offered
        if missing:
            raise ValueError(f"task {task.id!r} calls {sorted(missing)}, which it is not offered ({sorted(offered)})")
    _SUITES[name] = (suite, built, {"mode": "multi_turn", **env_kwargs})
    env_id = f"ToolEnv-{name}-v0"
    gym.register(id=env_id, entry_point="toolrl_env.registry:make_suite_env", kwargs={"suite_name": name})
    return env_id


def make_tool_env(env_id: str, **env_kwargs: Any) -> ToolEnv:
    """`gymnasium.make` for a ToolEnv id, unwrapped (callers need its tasks, reward config and suite)."""
    env = gym.make(env_id, **env_kwargs).unwrapped
    if not isinstance(env, ToolEnv):
        raise TypeError(f"{env_id!r} is not a ToolEnv id (it makes a {type(env).__name__}); use a ToolEnv-* id")
    return env


def takes_split(env_id: str) -> bool:
    """True when the env id's factory has a `split` argument (train/test/all)."""
    entry = gym.spec(env_id).entry_point
    factory = load_env_creator(entry) if isinstance(entry, str) else entry
    return factory is not None and "split" in inspect.signature(factory).parameters


def load_suite_plugins() -> list[str]:
    """Call every `toolrl_env.suites` entry point (each a function that calls `register_suite`).

    Returns the names loaded; a failing plugin is reported as a warning and skipped.
    """
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()()
        except Exception as exc:
            warnings.warn(f"tool-suite plugin {ep.name!r} ({ep.value}) failed: {exc!r}", stacklevel=2)
        else:
            loaded.append(ep.name)
    return loaded


def register_builtin_envs() -> None:
    """Register the ids that ship with toolrl_env."""
    gym.register(id="ToolEnv-RLLA-v0", entry_point="toolrl_env.registry:make_rlla_env")
    gym.register(id="ToolEnv-Calc-v0", entry_point="toolrl_env.registry:make_calc_env")
    gym.register(id="ToolEnv-BFCL-v0", entry_point="toolrl_env.suites.bfcl:make_bfcl_env")
    gym.register(
        id="ToolEnv-BFCLMultiTurn-v0", entry_point="toolrl_env.suites.bfcl_multi_turn:make_bfcl_multi_turn_env"
    )
    gym.register(id="ToolEnv-APIBank-v0", entry_point="toolrl_env.suites.api_bank:make_api_bank_env")
    gym.register(id="ToolEnv-Bamboogle-v0", entry_point="toolrl_env.suites.bamboogle:make_bamboogle_env")
