"""BFCL's executable multi-turn backends (file system, math, messaging, posting, ticketing, trading, travel,
vehicle control) as one ToolSuite, run from the pinned `bfcl-eval` wheel.

Each episode builds fresh instances of the task's involved classes from its `initial_config`, as BFCL's
executor does. BFCL's executor runs the model's call strings with `eval()`; this suite never evaluates
anything: a call reaches `getattr(instance, name)(**arguments)` only when `name` is one of the functions
BFCL documents for an involved class (public method names only). As in BFCL, the arguments are passed as
sent, not checked against the documented schema (one of BFCL's gold answers sends a string where the schema
says integer); whatever the method raises becomes an error result.

Isolation. The stateful backends keep their episode in this process (`state`, snapshotted by `get_state` for
GRPO forks and compared by BFCL's checker), so their calls run on the suite's worker thread with the timeout:
their methods are BFCL's documented ones on JSON arguments, never code the model wrote. The stateless
MathAPI runs in a worker process (`tools.sandbox`) on a fresh instance per call, killed past the timeout and
memory-capped; the worker imports MathAPI's module and mpmath, not our packages. In a thread,
`power(10, 10**9)` would hold the GIL for minutes, beyond any thread timeout, and its precision arguments
would set mpmath's process-wide state.

Confinement. GorillaFileSystem is an in-memory tree (`Directory` and `File` objects; nothing in it opens,
writes or lists real files), so no call reaches the disk. Still, names and paths that would leave the tree
or alias it are refused before the method runs: control characters (NUL), `~`, backslashes, absolute paths,
`..` past the tree's root, and entry names that are paths (`/`) or `.`/`..` (a file named `..` would shadow the
parent). BFCL's gold answers stay within these rules (`cd(folder='..')` inside the tree, `find(path='.')`).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from toolrl_env.envs.bfcl.package import bfcl_root, import_bfcl, read_jsonl
from tools.sandbox import Sandbox, SandboxLimits
from tools.sandbox_worker import call_method
from tools.suite import REFUSED, ToolSuite
from tools.tool import Tool

# The classes of the multi-turn categories, in BFCL's order (web search and memory need more than the wheel).
BACKEND_CLASSES = (
    "GorillaFileSystem",
    "MathAPI",
    "MessageAPI",
    "TwitterAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "VehicleControlAPI",
)


class BackendOptions(BaseModel):
    """What `BFCLBackendSuite.reset` needs from a task (`Task.suite_options`): BFCL's entry fields."""

    model_config = ConfigDict(extra="forbid")

    involved_classes: list[str] = Field(min_length=1, description="Backend classes of the task, in BFCL's order.")
    initial_config: dict[str, Any] = Field(
        default_factory=dict, description="Initial state per class name, as in BFCL's entry."
    )
    long_context: bool = Field(
        default=False, description="Load the scenario with BFCL's long-context padding (multi_turn_long_context)."
    )


# Address-space cap, in MiB, of the worker process that runs the stateless backends.
STATELESS_MEMORY_MB = 1024
# GorillaFileSystem's parameters that name one entry of the current folder, and those that are folder paths;
# its other string parameters (content, pattern, mode, find's name) are data.
NAME_PARAMETERS = frozenset({"file_name", "dir_name", "source", "destination", "file_name1", "file_name2"})
PATH_PARAMETERS = frozenset({"folder", "path"})
_FILE_SYSTEM = "GorillaFileSystem"


def _config() -> Any:
    return import_bfcl("constants.executable_backend_config")


@functools.cache
def stateless_classes() -> frozenset[str]:
    """The backend classes BFCL marks as holding no state (MathAPI)."""
    return frozenset(_config().STATELESS_CLASSES)


def _check_class(class_name: str) -> None:
    if class_name not in BACKEND_CLASSES:
        raise ValueError(f"unknown BFCL backend class {class_name!r}; supported: {', '.join(BACKEND_CLASSES)}")


@functools.cache
def backend_class(class_name: str) -> type:
    """The backend class `class_name` from the wheel (its module as BFCL's config maps it)."""
    _check_class(class_name)
    module = _config().CLASS_FILE_PATH_MAPPING[class_name].removeprefix("bfcl_eval.")
    cls: type = getattr(import_bfcl(module), class_name)
    return cls


@functools.cache
def function_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    """BFCL's function documents of one class (name, description, parameters, response), in file order."""
    _check_class(class_name)
    path = bfcl_root() / "data" / "multi_turn_func_doc" / _config().MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name]
    return tuple(read_jsonl(path))


@dataclass(frozen=True)
class BackendMethod:
    """A documented public method of a backend class; called with the episode's instance of that class."""

    class_name: str
    method: str

    def __post_init__(self) -> None:
        # Only public methods are ever reachable: never `_load_scenario`, dunders or attributes.
        if not self.method.isidentifier() or self.method.startswith("_"):
            raise ValueError(f"{self.class_name}.{self.method!r} is not a public method name")
        if not callable(getattr(backend_class(self.class_name), self.method, None)):
            raise ValueError(f"{self.class_name} has no method {self.method!r}")

    def __call__(self, instance: Any, /, **arguments: Any) -> Any:
        return getattr(instance, self.method)(**arguments)


@functools.cache
def backend_tools(class_name: str) -> tuple[Tool, ...]:
    """The Tools of one backend class, from BFCL's function documents (schemas kept as BFCL writes them)."""
    return tuple(
        Tool(
            name=doc["name"],
            description=doc["description"],
            parameters=doc["parameters"],
            executor=BackendMethod(class_name, doc["name"]),
        )
        for doc in function_docs(class_name)
    )


@functools.cache
def function_owner() -> dict[str, str]:
    """Function name -> the backend class that documents it (names are unique across the classes)."""
    owners: dict[str, str] = {}
    for class_name in BACKEND_CLASSES:
        for doc in function_docs(class_name):
            if doc["name"] in owners:
                raise ValueError(
                    f"BFCL function {doc['name']!r} is documented by {owners[doc['name']]} and {class_name}"
                )
            owners[doc["name"]] = class_name
    return owners


def _depth(file_system: Any) -> int:
    """How many folders below the tree's root the file system's current folder is."""
    depth, folder = 0, file_system._current_dir  # BFCL's own attribute: the tree has no public way to ask
    while folder.parent is not None:
        depth, folder = depth + 1, folder.parent
    return depth


def path_refusal(file_system: Any, method: str, arguments: Mapping[str, Any]) -> str | None:
    """Why a GorillaFileSystem call's names or paths would leave or alias its tree (see the module docstring),
    or None; non-string values are left to the method."""
    for key, value in arguments.items():
        if not isinstance(value, str) or key not in NAME_PARAMETERS | PATH_PARAMETERS:
            continue
        where = f"{REFUSED}{method}({key}={value[:80]!r})"
        control = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
        if control is not None:
            return f"{where}: names cannot hold control characters such as {control!r}"
        if value.startswith("~") or "\\" in value:
            return f"{where}: there are no home folders or backslash paths here; names start from the current folder"
        if key in NAME_PARAMETERS:
            if "/" in value or value in ("", ".", ".."):
                return f"{where}: give the name of one entry of the current folder, without '/' (not '.' or '..')"
            continue
        if value == "" or value.startswith("/"):
            return f"{where}: absolute paths are refused; paths start from the current folder (cd('..') goes up)"
        depth = _depth(file_system)
        for part in value.split("/"):
            depth += -1 if part == ".." else 0 if part in ("", ".") else 1
            if depth < 0:
                return f"{where}: this climbs above the file system's root"
    return None


def parameter_names(function: str) -> list[str]:
    """The Python parameter names of a documented function, in order (for positional arguments in gold strings)."""
    owner = function_owner().get(function)
    if owner is None:
        raise ValueError(f"unknown BFCL function {function!r}")
    return [p for p in inspect.signature(getattr(backend_class(owner), function)).parameters if p != "self"]


class BFCLBackendSuite(ToolSuite):
    """Every function of the eight BFCL backends; `state` maps each involved class name to its live instance.

    `reset(seed, options)` takes `BackendOptions` (a task's `suite_options`); the seed is unused because the
    backends seed their own randomness from the scenario, as in BFCL. A call of a function whose class the
    task does not involve fails with an error result, as does a file-system path that leaves the tree.
    `memory_mb` caps the worker process of the stateless backends (used when `timeout_s` is set).
    """

    def __init__(self, timeout_s: float | None = 5.0, memory_mb: int | None = STATELESS_MEMORY_MB) -> None:
        tools = [t for class_name in BACKEND_CLASSES for t in backend_tools(class_name)]
        super().__init__("bfcl_multi_turn", tools, timeout_s=timeout_s, check_arguments=False)
        self.state: dict[str, Any] = {}
        # The stateless backends' worker process (see the module docstring); with no timeout they run here.
        self.stateless_limits = None if timeout_s is None else SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb)

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        """Fresh instances of the involved classes, each loaded with its part of the initial config."""
        config = BackendOptions.model_validate(options or {})
        stateless = stateless_classes()
        instances: dict[str, Any] = {}
        for class_name in config.involved_classes:
            instance = backend_class(class_name)()
            if class_name not in stateless:
                scenario = copy.deepcopy(config.initial_config.get(class_name, {}))
                instance._load_scenario(scenario, long_context=config.long_context)
            instances[class_name] = instance
        self.state = instances

    def _execute(self, executor: Callable[..., Any], arguments: dict[str, Any]) -> tuple[bool, Any]:
        # Every tool's executor is a BackendMethod; bind it to this episode's instance of its class.
        assert isinstance(executor, BackendMethod)
        instance = self.state.get(executor.class_name)
        if instance is None:
            involved = ", ".join(self.state) or "none (call reset first)"
            return False, f"{executor.method} belongs to {executor.class_name}, not involved here: {involved}"
        if executor.class_name == _FILE_SYSTEM:
            refusal = path_refusal(instance, executor.method, arguments)
            if refusal is not None:
                return False, refusal
        if self.stateless_limits is not None and executor.class_name in stateless_classes():
            cls = backend_class(executor.class_name)
            if self._sandbox is None:  # it imports only the backend's module (and mpmath), not our packages
                self._sandbox = Sandbox(self.stateless_limits, preload=(cls.__module__,))
            result = self._sandbox.run(functools.partial(call_method, cls, executor.method), arguments)
            return (True, result.value) if result.ok else (False, result.error)
        # A copy, as BFCL's eval makes fresh values: backends keep argument lists in their state and mutate
        # them later, which would otherwise rewrite the calls recorded in the episode.
        return super()._execute(functools.partial(executor, instance), copy.deepcopy(arguments))
