"""Gymnasium ids for ToolEnv, `register_suite` for new tool suites, and the `toolrl_env.suites` entry points."""

from __future__ import annotations

import copy
import importlib
import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, load_env_creator

from toolrl_env.env import ToolEnv
from toolrl_env.envs import BUILTIN_ENVS
from toolrl_env.task import GoldStep, Task, Turn
from tools.call import ToolCall
from tools.suite import ToolSuite
from tools.tool import Tool

ENTRY_POINT_GROUP = "toolrl_env.suites"
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


class SuiteRegistration:
    """A registered suite and its tasks, as its id's spec carries them. gymnasium deep-copies a spec's kwargs on
    every `make`; this record is shared instead (its tasks are read, never changed), and each env copies the
    suite, whose state is per episode."""

    def __init__(self, suite: ToolSuite, tasks: Sequence[Task]) -> None:
        self.suite, self.tasks = suite, list(tasks)

    def __deepcopy__(self, memo: dict[int, Any]) -> SuiteRegistration:
        return self


def make_suite_env(registration: SuiteRegistration, **env_kwargs: Any) -> ToolEnv:
    """The env of a suite registered with `register_suite`, on its own copy of the suite."""
    return ToolEnv(registration.tasks, suite=copy.deepcopy(registration.suite), **env_kwargs)


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
    (multi-turn by default, so the tools run); `gymnasium.make` kwargs override them. Every env made gets its own
    copy of the suite. The registration lives in the id's spec, so `gymnasium.make_vec(..., "async")` workers
    started with spawn or forkserver make it too (the suite and tasks must pickle, as every ToolEnv must).
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
    env_id = f"ToolEnv-{name}-v0"
    # The suite and tasks travel in the spec's kwargs, not in a registry of this process: a vector env's worker
    # started with spawn or forkserver gets the spec (pickled) and so can make the env without this registration.
    kwargs = {"registration": SuiteRegistration(suite, built), "mode": "multi_turn", **env_kwargs}
    gym.register(id=env_id, entry_point="toolrl_env.registry:make_suite_env", kwargs=kwargs)
    return env_id


def make_tool_env(env_id: str, **env_kwargs: Any) -> ToolEnv:
    """`gymnasium.make` for a ToolEnv id, unwrapped (callers need its tasks, reward config and suite)."""
    env = gym.make(env_id, **env_kwargs).unwrapped
    if not isinstance(env, ToolEnv):
        raise TypeError(f"{env_id!r} is not a ToolEnv id (it makes a {type(env).__name__}); use a ToolEnv-* id")
    return env


def env_spec(env_id: str) -> EnvSpec:
    """The spec of a registered id; for gymnasium's 'module:Id' form the module is imported first (it registers
    the id). An id that is not registered is a ValueError naming the ToolEnv ids that are."""
    module, _, name = env_id.rpartition(":")
    try:
        if module:
            importlib.import_module(module)
        return gym.spec(name)
    except (ImportError, gym.error.Error) as exc:
        known = ", ".join(sorted(i for i in gym.registry if i.startswith("ToolEnv-")))
        raise ValueError(f"{env_id!r} is not a registered env id ({exc}); ToolEnv ids: {known}") from None


def takes_split(env_id: str) -> bool:
    """True when the env id's factory has a `split` argument (train/test/all)."""
    entry = env_spec(env_id).entry_point
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
    """Register the ids that ship with toolrl_env (`toolrl_env.envs.BUILTIN_ENVS`)."""
    for env_id, entry_point in BUILTIN_ENVS.items():
        gym.register(id=env_id, entry_point=entry_point)
