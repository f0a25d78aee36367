"""BFCL's executable multi-turn backends (file system, math, messaging, posting, ticketing, trading, travel,
vehicle control) as one ToolSuite, run from the pinned `bfcl-eval` wheel.

Each episode builds fresh instances of the task's involved classes from its `initial_config`, as BFCL's
executor does. BFCL's executor runs the model's call strings with `eval()`; this suite never evaluates
anything: a call reaches `getattr(instance, name)(**arguments)` only when `name` is one of the functions
BFCL documents for an involved class (public method names only). As in BFCL, the arguments are passed as
sent, not checked against the documented schema (one of BFCL's gold answers sends a string where the schema
says integer); whatever the method raises becomes an error result.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from toolrl_env.bfcl_package import bfcl_root, import_bfcl, read_jsonl
from tools.suite import ToolSuite
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


def _config() -> Any:
    return import_bfcl("constants.executable_backend_config")


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
    task does not involve fails with an error result.
    """

    def __init__(self, timeout_s: float | None = 5.0) -> None:
        tools = [t for class_name in BACKEND_CLASSES for t in backend_tools(class_name)]
        super().__init__("bfcl_multi_turn", tools, timeout_s=timeout_s, check_arguments=False)
        self.state: dict[str, Any] = {}

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        """Fresh instances of the involved classes, each loaded with its part of the initial config."""
        config = BackendOptions.model_validate(options or {})
        stateless = set(_config().STATELESS_CLASSES)
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
            return False, LookupError(
                f"{executor.method} belongs to {executor.class_name}, not involved here: {involved}"
            )
        # A copy, as BFCL's eval makes fresh values: backends keep argument lists in their state and mutate
        # them later, which would otherwise rewrite the calls recorded in the episode.
        return super()._execute(functools.partial(executor, instance), copy.deepcopy(arguments))
