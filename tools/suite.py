"""A named set of tools with per-episode state; `call` turns every call, good or bad, into a ToolResult.

Executors run in one of two isolations. `thread` (the default): in the calling thread when `timeout_s` is
None, else on a worker thread that the suite stops waiting for after `timeout_s` (the thread itself runs on,
and a C-level computation that holds the GIL delays even the waiting). `process`: in a worker process
(`tools.sandbox`) that is killed after `timeout_s` and can have its memory capped (`memory_mb`); executors
must then be picklable and must not change the suite's own state, which stays in this process.
"""

from __future__ import annotations

import copy
import functools
import pickle
import queue
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

from tools.call import ToolCall, ToolResult
from tools.mock import mock_result
from tools.sandbox import Sandbox, SandboxLimits
from tools.sandbox_worker import REFUSED, STOPPED, TIMED_OUT, clip_error, describe_exception, to_json
from tools.tool import Tool

# A call's arguments may hold at most this many characters (strings by length, other values as one each):
# a megabyte argument is refused before any tool sees it.
MAX_ARGUMENT_CHARS = 100_000

Isolation = Literal["thread", "process"]
_Suite = TypeVar("_Suite", bound="ToolSuite")
_Job = tuple[Callable[..., Any], dict[str, Any]]

__all__ = [
    "MAX_ARGUMENT_CHARS",
    "REFUSED",
    "STOPPED",
    "TIMED_OUT",
    "Isolation",
    "ToolSuite",
    "argument_chars",
    "call_tool",
    "clip_error",
    "describe_exception",
    "error_result",
    "ran_to_its_end",
]


class ToolSuite:
    """Tools offered together plus the state they share in an episode; subclasses add tools and state.

    `isolation="thread"` runs executors on a worker thread so that one running past `timeout_s` cannot hang
    the episode. The hand-off costs two thread wake-ups (about 10 to 20 µs, more on a busy machine), so suites
    whose tools always finish fast (the calculator) pass `timeout_s=None` to run them in the calling thread.
    `isolation="process"` runs them in a worker process under `SandboxLimits` (see the module docstring).
    Every call's arguments are capped at `max_argument_chars` before anything runs (None: no cap).
    """

    def __init__(
        self,
        name: str,
        tools: Sequence[Tool],
        timeout_s: float | None = 5.0,
        check_arguments: bool = True,
        isolation: Isolation = "thread",
        memory_mb: int | None = None,
        max_argument_chars: int | None = MAX_ARGUMENT_CHARS,
    ) -> None:
        counts = Counter(t.name for t in tools)
        duplicates = sorted(tool_name for tool_name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(
                f"tool suite {name!r} has duplicate tool names: {', '.join(duplicates)}; give each tool a unique name"
            )
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None (no timeout), got {timeout_s!r}; use e.g. 5.0")
        if max_argument_chars is not None and max_argument_chars < 1:
            raise ValueError(f"max_argument_chars must be positive or None (no cap), got {max_argument_chars!r}")
        self.name = name
        self.tools = list(tools)
        self.timeout_s = timeout_s
        # Off where a benchmark runs whatever the model sends (BFCL's executor does): the tool then decides.
        self.check_arguments = check_arguments
        self.max_argument_chars = max_argument_chars
        self.isolation: Isolation = isolation
        # The worker process's limits under process isolation, else None; a subclass may set stricter ones.
        self.limits: SandboxLimits | None = _process_limits(name, isolation, timeout_s, memory_mb)
        # What a worker process is sent for each tool: its executor, or the tool itself where the executor alone
        # does not pickle (`@tool` puts the Tool where its function was).
        self._portable = _portable_executors(self) if self.limits is not None else {}
        self.state: Any = {}
        self._by_name = {t.name: t for t in self.tools}
        self._worker: _Worker | None = None
        self._sandbox: Sandbox | None = None

    def tool(self, name: str) -> Tool | None:
        """The tool called `name`, or None."""
        return self._by_name.get(name)

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        """Start an episode; subclasses override this to create fresh state from `seed` and the task's
        `suite_options` (for example BFCL's initial backend configuration)."""

    def get_state(self) -> Any:
        """A snapshot of the per-episode state that `set_state` can restore."""
        return copy.deepcopy(self.state)

    def set_state(self, state: Any) -> None:
        """Restore a snapshot taken with `get_state`."""
        self.state = copy.deepcopy(state)

    def refusal(self, call: ToolCall) -> str | None:
        """Why `call` is refused before anything runs (an unknown tool, arguments too long, or invalid when
        the suite checks them), or None."""
        tool = self._by_name.get(call.name)
        if tool is None:
            offered = ", ".join(self._by_name) or "none"
            return f"unknown tool {call.name!r}; offered: {offered}"
        if self.max_argument_chars is not None and argument_chars(call.parameters, self.max_argument_chars) > (
            self.max_argument_chars
        ):
            return (
                f"{REFUSED}the arguments are over {self.max_argument_chars:,} characters long; send less "
                "(the suite's max_argument_chars sets the cap)"
            )
        return tool.validate_arguments(call.parameters) if self.check_arguments else None

    def call(self, call: ToolCall) -> ToolResult:
        """Run one call; never raises: unknown tools, bad arguments, errors and timeouts give ok=False."""
        refusal = self.refusal(call)
        if refusal is not None:
            return error_result(call.name, refusal)
        tool = self._by_name[call.name]
        if tool.executor is None:
            return ToolResult(name=call.name, ok=True, content=mock_result(tool, call.parameters))
        ok, value = self._execute(self._portable.get(tool.name, tool.executor), call.parameters)
        if not ok:
            return error_result(call.name, value)
        return ToolResult(name=call.name, ok=True, content=to_json(value))

    def _execute(self, executor: Callable[..., Any], arguments: dict[str, Any]) -> tuple[bool, Any]:
        """(True, value) or (False, error message) of `executor(**arguments)`, isolated as the suite says."""
        if self.limits is not None:
            if self._sandbox is None:
                self._sandbox = self._new_sandbox()
            result = self._sandbox.run(executor, arguments)
            return (True, result.value) if result.ok else (False, result.error)
        if self.timeout_s is None:
            try:
                return True, executor(**arguments)
            except (Exception, SystemExit) as exc:
                return False, describe_exception(exc)
        if self._worker is None:
            self._worker = _Worker()
        try:
            ok, value = self._worker.run(executor, arguments, self.timeout_s)
        except queue.Empty:
            # The worker is stuck in the tool; abandon it so the next call gets a fresh one.
            self._worker.stop()
            self._worker = None
            return False, f"{TIMED_OUT}{self.timeout_s:g} s"
        return (True, value) if ok else (False, describe_exception(value))

    def _new_sandbox(self) -> Sandbox:
        """The worker process of process isolation; it preloads the executors' modules."""
        assert self.limits is not None
        modules = (_module_of(t.executor) for t in self.tools if t.executor is not None)
        return Sandbox(self.limits, preload=tuple(dict.fromkeys(m for m in modules if m)))

    def call_many(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run calls in order, each as `call` would."""
        return [self.call(c) for c in calls]

    def close(self) -> None:
        """Stop the worker thread or process; a later call starts a new one."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __enter__(self: _Suite) -> _Suite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Threads and processes cannot be pickled; the copy starts its own worker on its first call.
        state = self.__dict__.copy()
        state["_worker"] = None
        state["_sandbox"] = None
        return state


def _process_limits(name: str, isolation: str, timeout_s: float | None, memory_mb: int | None) -> SandboxLimits | None:
    """The worker process's limits for these settings (None for thread isolation), or a ValueError saying
    which combination does not work and what to change."""
    if isolation not in ("thread", "process"):
        raise ValueError(f"isolation must be 'thread' or 'process', got {isolation!r}")
    if isolation == "thread":
        if memory_mb is not None:
            raise ValueError(
                f"tool suite {name!r}: memory_mb={memory_mb!r} needs isolation='process': a thread shares the "
                "trainer's memory, so only a separate process can be capped; pass isolation='process' or drop memory_mb"
            )
        return None
    if timeout_s is None:
        raise ValueError(
            f"tool suite {name!r}: isolation='process' needs a timeout_s (e.g. 5.0): killing the process past it "
            "is what the isolation is for"
        )
    return SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb)


def call_tool(tool: Tool, /, **arguments: Any) -> Any:
    """`tool`'s executor called with `arguments` (how a worker process runs a tool sent by reference)."""
    assert tool.executor is not None
    return tool.executor(**arguments)


def _portable_executors(suite: ToolSuite) -> dict[str, Callable[..., Any]]:
    """Per tool with an executor, a callable that pickles for a worker process; a ValueError, at construction,
    for executors that cannot run in another process."""
    portable: dict[str, Callable[..., Any]] = {}
    for t in suite.tools:
        if t.executor is None:
            continue
        target: Any = t.executor
        while isinstance(target, functools.partial):
            target = target.func
        if getattr(target, "__self__", None) is suite:
            raise ValueError(
                f"tool {t.name!r} of suite {suite.name!r} is a method of the suite: under isolation='process' it "
                "would change a copy of the suite in the worker, not this episode's state; keep stateful suites "
                "on isolation='thread'"
            )
        errors = []
        for candidate in (t.executor, functools.partial(call_tool, t)):
            try:
                pickle.dumps(candidate)
            except Exception as exc:
                errors.append(exc)
            else:
                portable[t.name] = candidate
                break
        else:
            raise ValueError(
                f"tool {t.name!r} of suite {suite.name!r} cannot be sent to a worker process "
                f"({describe_exception(errors[0])}); under isolation='process' executors must pickle by reference "
                "(module-level functions, objects of importable classes), so no lambdas or local functions"
            ) from errors[0]
    return portable


def _module_of(executor: Callable[..., Any] | None) -> str | None:
    """The module that defines an executor (a function, a partial of one, or a callable object)."""
    while isinstance(executor, functools.partial):
        executor = executor.func
    module = getattr(executor, "__module__", None) or getattr(type(executor), "__module__", None)
    return module if isinstance(module, str) and module not in ("builtins", "__main__") else None


def argument_chars(arguments: Any, limit: int) -> int:
    """The size of a call's arguments: every string and key by its length, every other value as 1 (a number
    holds at most a few thousand digits once parsed); counting stops once past `limit`."""
    total = 0
    stack = [arguments]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            for key, value in item.items():
                total += len(key) if isinstance(key, str) else 1
                stack.append(value)
        elif isinstance(item, (list, tuple)):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            break
    return total


class _Worker:
    """One daemon thread that runs calls in order; daemon so a hung tool cannot block interpreter exit."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        threading.Thread(
            target=_serve, args=(self._jobs, self._replies), name="toolrl-tool-worker", daemon=True
        ).start()
        # The thread holds only the queues, so a worker nobody closed is still collected and its thread ends.
        weakref.finalize(self, self._jobs.put, None)

    def run(self, executor: Callable[..., Any], arguments: dict[str, Any], timeout_s: float) -> tuple[bool, Any]:
        """Run `executor(**arguments)` on the thread: (True, value) or (False, exception); raises queue.Empty
        when `timeout_s` passes first."""
        self._jobs.put((executor, arguments))
        return self._replies.get(timeout=timeout_s)

    def stop(self) -> None:
        """Let the thread end once its current job, if any, returns."""
        self._jobs.put(None)


def _serve(jobs: queue.SimpleQueue[_Job | None], replies: queue.SimpleQueue[tuple[bool, Any]]) -> None:
    while (job := jobs.get()) is not None:
        executor, arguments = job
        try:
            replies.put((True, executor(**arguments)))
        except BaseException as exc:  # whatever the tool raises, even SystemExit, is the caller's to report
            replies.put((False, exc))


def error_result(name: str, message: str) -> ToolResult:
    """A failed call's result: the error observation the model reads."""
    return ToolResult(name=name, ok=False, content={"error": message})


def ran_to_its_end(result: ToolResult) -> bool:
    """False when the suite refused the call before it ran or stopped it (its timeout, its memory cap, its
    process dying); True for results and for the tool's own errors."""
    error = result.content.get("error") if not result.ok and isinstance(result.content, dict) else None
    return not (isinstance(error, str) and error.startswith((REFUSED, TIMED_OUT, STOPPED)))
