"""ToolSuite: every call becomes a ToolResult, whatever the tool does; state snapshots; pickling."""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tools.call import ToolCall, ToolResult
from tools.mock import mock_result
from tools.suite import ToolSuite, argument_chars, error_result, ran_to_its_end
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


# -- process isolation and the argument cap ----------------------------------------------------------------------
@tool
def process_id() -> int:
    """The id of the process that runs the tool."""
    return os.getpid()


@tool
def allocate(mb: int) -> int:
    """Allocate `mb` MiB and return how many bytes that was."""
    return len(bytearray(mb * 1024 * 1024))


@tool
def echo(value: Any) -> Any:
    """Return the value."""
    return value


@pytest.fixture
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker imports the tools' module by name, as a user's worker imports theirs: make this one importable."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))


@pytest.fixture
def isolated(importable: None) -> Iterator[ToolSuite]:
    suite = ToolSuite(
        "isolated",
        [add, fail, nap, odd_result, leave, process_id, allocate, LOOKUP],
        timeout_s=30.0,  # no ordinary call reaches it, even on a busy machine; the timeout test sets its own
        isolation="process",
        memory_mb=256,
    )
    yield suite
    suite.close()


def test_isolation_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="memory_mb=256 needs isolation='process': a thread shares the trainer's"):
        ToolSuite("t", [add], memory_mb=256)
    with pytest.raises(ValueError, match="isolation='process' needs a timeout_s"):
        ToolSuite("t", [add], timeout_s=None, isolation="process")
    with pytest.raises(ValueError, match="isolation must be 'thread' or 'process', got 'fork'"):
        ToolSuite("t", [add], isolation="fork")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_argument_chars must be positive"):
        ToolSuite("t", [add], max_argument_chars=0)


def test_process_isolation_refuses_executors_it_cannot_run() -> None:
    def local(x: int) -> int:
        """A local function."""
        return x

    with pytest.raises(ValueError, match="tool 'local' of suite 't' cannot be sent to a worker process"):
        ToolSuite("t", [tool(local)], isolation="process")

    class Stateful(Counter):
        def __init__(self) -> None:
            ToolSuite.__init__(self, "stateful", [tool(self.increment)], isolation="process")

    with pytest.raises(ValueError, match="is a method of the suite: under isolation='process' it would change a copy"):
        Stateful()


def test_process_isolation_gives_the_results_a_thread_gives(isolated: ToolSuite, suite: ToolSuite) -> None:
    assert _call(isolated, "process_id").content != os.getpid()
    for name, parameters in [
        ("add", {"a": 2, "b": 3}),
        ("fail", {"message": "disk full"}),
        ("fail", {"message": "x" * 10_000}),
        ("leave", {}),
        ("odd_result", {"kind": "set"}),
        ("odd_result", {"kind": "nested"}),
        ("lookup", {"q": "weather"}),
        ("add", {"a": "1"}),
    ]:
        assert _call(isolated, name, **parameters) == _call(suite, name, **parameters)


def test_process_isolation_kills_a_hanging_tool_and_recovers(importable: None) -> None:
    with ToolSuite("hang", [nap, process_id], timeout_s=1.0, isolation="process") as isolated:
        worker = _call(isolated, "process_id").content
        start = time.perf_counter()
        result = _call(isolated, "nap", seconds=60)
        assert result == ToolResult(
            name="nap", ok=False, content={"error": "timed out after 1 s; its process was killed"}
        )
        assert time.perf_counter() - start < 10  # its 1 s timeout, with slack for a busy machine
        assert _call(isolated, "process_id").content != worker
        assert _call(isolated, "nap", seconds=0.01).content == "awake"


def test_the_memory_cap_turns_a_huge_allocation_into_an_error(isolated: ToolSuite) -> None:
    assert _call(isolated, "allocate", mb=1).content == 1024 * 1024
    assert _call(isolated, "allocate", mb=4096).content == {
        "error": "stopped: the tool ran past its memory cap of 256 MiB (MemoryError)"
    }
    assert _call(isolated, "allocate", mb=2).content == 2 * 1024 * 1024


def test_a_process_isolated_suite_pickles_without_its_worker(isolated: ToolSuite) -> None:
    worker = _call(isolated, "process_id").content
    clone = pickle.loads(pickle.dumps(isolated))
    assert clone.limits == isolated.limits and _call(clone, "process_id").content not in (worker, os.getpid())
    clone.close()


def test_arguments_past_the_cap_are_refused_before_anything_runs() -> None:
    suite = ToolSuite("echo", [echo], timeout_s=None, max_argument_chars=1_000)
    assert _call(suite, "echo", value="x" * 994).ok  # 994 characters, the key's 5, and 1 for the object's one item
    for value in ["x" * 995, ["x"] * 600, {"k": [[1] * 100] * 10}]:
        result = _call(suite, "echo", value=value)
        assert result.content == {
            "error": "refused: the arguments are over 1,000 characters long; send less (the suite's "
            "max_argument_chars sets the cap)"
        }
    default = ToolSuite("echo", [echo], timeout_s=None)
    assert not _call(default, "echo", value="x" * 1_000_000).ok
    assert _call(ToolSuite("echo", [echo], timeout_s=None, max_argument_chars=None), "echo", value="x" * 10**6).ok


def test_argument_chars_counts_strings_keys_and_values() -> None:
    # 2 items + keys "a", "bb" + "xyz" + 4 list items + 1 item + key "c" + 5 other values
    assert argument_chars({"a": "xyz", "bb": [1, 2.5, None, {"c": True}]}, 1_000) == 18
    assert argument_chars({"a": ["x"] * 10**6}, 100) == 1_000_002  # stops once past the limit, before the items


def test_ran_to_its_end_tells_the_suites_refusals_and_stops_from_the_tools_errors(
    suite: ToolSuite, isolated: ToolSuite
) -> None:
    with ToolSuite("hang", [nap], timeout_s=1.0, isolation="process") as hang:
        timed_out = _call(hang, "nap", seconds=60)
    stopped = [
        _call(suite, "nap", seconds=5),
        timed_out,
        _call(isolated, "allocate", mb=4096),
        _call(ToolSuite("echo", [echo], timeout_s=None, max_argument_chars=10), "echo", value="x" * 20),
    ]
    ran = [_call(suite, "add", a=1), _call(suite, "fail", message="no"), _call(isolated, "leave")]
    assert not any(map(ran_to_its_end, stopped)) and all(map(ran_to_its_end, ran))
    assert ran_to_its_end(error_result("x", "a tool's own words"))
