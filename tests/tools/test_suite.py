"""ToolSuite: every call becomes a ToolResult, whatever the tool does; state snapshots; pickling."""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tools.call import ToolCall, ToolResult
from tools.mock import mock_result
from tools.suite import ToolSuite
from tools.tool import Tool, tool


@tool
def add(a: int, b: int = 0) -> int:
    """Add two integers."""
    return a + b


@tool
def fail(message: str) -> None:
    """Raise an error."""
    raise RuntimeError(message)


@tool
def nap(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "awake"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no printing me")


@tool
def odd_result(kind: str) -> Any:
    """Return something that is not JSON."""
    return {
        "set": {1},
        "nested": {"t": (1, 2), 3: [Unprintable()], "ok": [None, 1.5, "s", True]},
        "bytes": b"ab",
    }[kind]


@tool
def thread_id() -> int:
    """The id of the thread that runs the tool."""
    return threading.get_ident()


@tool
def leave() -> None:
    """Exit the interpreter."""
    raise SystemExit(3)


LOOKUP = Tool(name="lookup", parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})


@pytest.fixture
def suite() -> Iterator[ToolSuite]:
    suite = ToolSuite("test", [add, fail, nap, odd_result, thread_id, leave, LOOKUP], timeout_s=0.2)
    yield suite
    suite.close()


def _call(suite: ToolSuite, name: str, **parameters: Any) -> ToolResult:
    return suite.call(ToolCall(name=name, parameters=parameters))


def test_constructor_checks_names_and_timeout() -> None:
    with pytest.raises(ValueError, match="duplicate tool names: add; give each tool a unique name"):
        ToolSuite("dup", [add, fail, add])
    with pytest.raises(ValueError, match="timeout_s must be positive or None"):
        ToolSuite("t", [add], timeout_s=0)


def test_lookup(suite: ToolSuite) -> None:
    assert suite.tool("add") is add
    assert suite.tool("nope") is None
    assert [t.name for t in suite.tools] == ["add", "fail", "nap", "odd_result", "thread_id", "leave", "lookup"]


def test_successful_call(suite: ToolSuite) -> None:
    assert _call(suite, "add", a=2, b=3) == ToolResult(name="add", ok=True, content=5)


def test_unknown_tool_lists_the_offered_ones(suite: ToolSuite) -> None:
    result = _call(suite, "ad", a=1)
    assert not result.ok
    assert result.content == {
        "error": "unknown tool 'ad'; offered: add, fail, nap, odd_result, thread_id, leave, lookup"
    }


def test_invalid_arguments_are_not_executed(suite: ToolSuite) -> None:
    assert _call(suite, "add", a="1").content == {"error": "parameter 'a' should be integer, got string"}
    assert _call(suite, "add", b=1).content == {"error": "missing required parameter: 'a'"}
    assert _call(suite, "add", a=1, c=2).content == {"error": "unknown parameter 'c'; accepted: a, b"}


def test_schema_only_tool_answers_with_the_mock(suite: ToolSuite) -> None:
    result = _call(suite, "lookup", q="weather")
    assert result.ok and result.content == mock_result(LOOKUP, {"q": "weather"})
    assert _call(suite, "lookup", q="weather") == result


def test_raising_tool_reports_type_and_message(suite: ToolSuite) -> None:
    assert _call(suite, "fail", message="disk full") == ToolResult(
        name="fail", ok=False, content={"error": "RuntimeError: disk full"}
    )
    long = _call(suite, "fail", message="x" * 10_000).content["error"]
    assert len(long) == 500 and long.startswith("RuntimeError: xxx") and long.endswith("...")
    assert _call(suite, "leave").content == {"error": "SystemExit: 3"}


def test_hanging_tool_times_out_and_the_suite_recovers(suite: ToolSuite) -> None:
    start = time.perf_counter()
    result = _call(suite, "nap", seconds=5)
    assert time.perf_counter() - start < 1.0
    assert result == ToolResult(name="nap", ok=False, content={"error": "timed out after 0.2 s"})
    start = time.perf_counter()
    assert _call(suite, "add", a=1).content == 1
    assert _call(suite, "nap", seconds=0.01).content == "awake"
    assert time.perf_counter() - start < 0.5


def test_results_that_are_not_json_become_text(suite: ToolSuite) -> None:
    assert _call(suite, "odd_result", kind="set").content == "{1}"
    assert _call(suite, "odd_result", kind="bytes").content == "b'ab'"
    nested = _call(suite, "odd_result", kind="nested").content
    assert nested == {"t": [1, 2], "3": ["<Unprintable>"], "ok": [None, 1.5, "s", True]}
    json.dumps(nested)


def test_executors_run_on_a_worker_thread_unless_timeout_is_none() -> None:
    threaded = ToolSuite("threaded", [thread_id])
    inline = ToolSuite("inline", [thread_id, fail, leave], timeout_s=None)
    here = threading.get_ident()
    assert _call(threaded, "thread_id").content != here
    assert _call(inline, "thread_id").content == here
    assert _call(inline, "fail", message="m").content == {"error": "RuntimeError: m"}
    assert _call(inline, "leave").content == {"error": "SystemExit: 3"}
    threaded.close()


def test_call_many_keeps_order(suite: ToolSuite) -> None:
    calls = [ToolCall(name="add", parameters={"a": i}) for i in range(3)] + [ToolCall(name="x")]
    assert [(r.name, r.ok, r.content) for r in suite.call_many(calls)][:3] == [
        ("add", True, 0),
        ("add", True, 1),
        ("add", True, 2),
    ]
    assert not suite.call_many(calls)[3].ok


def test_close_then_call_starts_a_new_worker(suite: ToolSuite) -> None:
    first = _call(suite, "thread_id").content
    suite.close()
    suite.close()
    assert _call(suite, "thread_id").content != first


class Counter(ToolSuite):
    """A suite whose tools are bound methods sharing per-episode state."""

    def __init__(self) -> None:
        super().__init__("counter", [tool(self.increment), tool(self.total)])

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.state = {"count": seed or 0}

    def increment(self, by: int = 1) -> int:
        """Add to the counter."""
        self.state["count"] += by
        return self.state["count"]

    def total(self) -> int:
        """Read the counter."""
        return self.state["count"]


def test_state_snapshots_restore_and_are_copies() -> None:
    counter = Counter()
    counter.reset(seed=10)
    snapshot = counter.get_state()
    assert _call(counter, "increment", by=5).content == 15
    assert snapshot == {"count": 10}
    counter.set_state(snapshot)
    snapshot["count"] = 99
    assert _call(counter, "total").content == 10
    counter.reset()
    assert _call(counter, "total").content == 0
    counter.close()


def test_base_suite_state_defaults_to_an_empty_dict(suite: ToolSuite) -> None:
    suite.reset(seed=1)
    assert suite.get_state() == {}
    suite.set_state({"k": [1]})
    assert suite.state == {"k": [1]}


def test_pickle_round_trip_keeps_tools_and_state() -> None:
    counter = Counter()
    counter.reset(seed=3)
    assert _call(counter, "increment").content == 4  # starts the worker thread, which must not be pickled
    clone = pickle.loads(pickle.dumps(counter))
    assert [t.name for t in clone.tools] == ["increment", "total"]
    assert _call(clone, "increment", by=2).content == 6
    assert _call(counter, "total").content == 4  # the clone's executors are bound to the clone
    plain = pickle.loads(pickle.dumps(ToolSuite("test", [add, LOOKUP], timeout_s=0.5)))
    assert (plain.name, plain.timeout_s, _call(plain, "add", a=2).content) == ("test", 0.5, 2)
    for each in (counter, clone, plain):
        each.close()
