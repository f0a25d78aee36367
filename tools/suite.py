"""A named set of tools with per-episode state; `call` turns every call, good or bad, into a ToolResult."""

from __future__ import annotations

import copy
import queue
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tools.call import ToolCall, ToolResult
from tools.mock import mock_result
from tools.tool import Tool

# Long tracebacks or reprs would flood the model's context; the head says what went wrong.
_MAX_ERROR_CHARS = 500
# Results nested deeper than this are shown as text rather than walked.
_MAX_RESULT_DEPTH = 100

_Job = tuple[Callable[..., Any], dict[str, Any]]


class ToolSuite:
    """Tools offered together plus the state they share in an episode; subclasses add tools and state.

    Executors run on a worker thread so that one running past `timeout_s` cannot hang the episode.
    The hand-off costs two thread wake-ups (about 10 to 20 µs, more on a busy machine), so suites whose
    tools always finish fast (the calculator) pass `timeout_s=None` to run them in the calling thread.
    """

    def __init__(
        self, name: str, tools: Sequence[Tool], timeout_s: float | None = 5.0, check_arguments: bool = True
    ) -> None:
        counts = Counter(t.name for t in tools)
        duplicates = sorted(tool_name for tool_name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(
                f"tool suite {name!r} has duplicate tool names: {', '.join(duplicates)}; give each tool a unique name"
            )
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None (no timeout), got {timeout_s!r}; use e.g. 5.0")
        self.name = name
        self.tools = list(tools)
        self.timeout_s = timeout_s
        # Off where a benchmark runs whatever the model sends (BFCL's executor does): the tool then decides.
        self.check_arguments = check_arguments
        self.state: Any = {}
        self._by_name = {t.name: t for t in self.tools}
        self._worker: _Worker | None = None

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

    def call(self, call: ToolCall) -> ToolResult:
        """Run one call; never raises: unknown tools, bad arguments, errors and timeouts give ok=False."""
        tool = self._by_name.get(call.name)
        if tool is None:
            offered = ", ".join(self._by_name) or "none"
            return error_result(call.name, f"unknown tool {call.name!r}; offered: {offered}")
        error = tool.validate_arguments(call.parameters) if self.check_arguments else None
        if error is not None:
            return error_result(call.name, error)
        if tool.executor is None:
            return ToolResult(name=call.name, ok=True, content=mock_result(tool, call.parameters))
        try:
            ok, value = self._execute(tool.executor, call.parameters)
        except TimeoutError:
            return error_result(call.name, f"timed out after {self.timeout_s:g} s")
        if not ok:
            return error_result(call.name, describe_exception(value))
        return ToolResult(name=call.name, ok=True, content=_to_json(value, 0))

    def _execute(self, executor: Callable[..., Any], arguments: dict[str, Any]) -> tuple[bool, Any]:
        """(True, value) or (False, exception) of `executor(**arguments)`; TimeoutError past `timeout_s`."""
        if self.timeout_s is None:
            try:
                return True, executor(**arguments)
            except (Exception, SystemExit) as exc:
                return False, exc
        if self._worker is None:
            self._worker = _Worker()
        try:
            return self._worker.run(executor, arguments, self.timeout_s)
        except queue.Empty:
            # The worker is stuck in the tool; abandon it so the next call gets a fresh one.
            self._worker.stop()
            self._worker = None
            raise TimeoutError from None

    def call_many(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run calls in order, each as `call` would."""
        return [self.call(c) for c in calls]

    def close(self) -> None:
        """Stop the worker thread; a later call starts a new one."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __getstate__(self) -> dict[str, Any]:
        # Threads cannot be pickled; the copy starts its own worker on its first call.
        state = self.__dict__.copy()
        state["_worker"] = None
        return state


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


def clip_error(text: str) -> str:
    """An error text cut to its first _MAX_ERROR_CHARS characters."""
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """'Type: message' of an exception (even one whose str() raises), clipped."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    return clip_error(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def _to_json(value: Any, depth: int) -> Any:
    """Keep JSON values as they are; anything else (sets, objects, numpy arrays) becomes its `str`."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth < _MAX_RESULT_DEPTH:
        if isinstance(value, dict):
            return {k if isinstance(k, str) else _text(k): _to_json(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_to_json(v, depth + 1) for v in value]
    return _text(value)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # str can fail (a raising __str__, a structure too deep to print)
        return f"<{type(value).__name__}>"
