"""MCPSuite over a real MCP server (tests/fixtures/mcp_server.py) started over stdio: listing, calls, errors,
timeouts, crashes, restarts, an env registered over it, and no server process left behind."""

from __future__ import annotations

import copy
import gc
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from mcp import types as mcp_types

from toolrl_env import register_suite
from toolrl_env.prompt import render_system
from tools.call import ToolCall, ToolResult
from tools.mcp_suite import MCPServerConfig, MCPStartError, MCPSuite, as_result

SERVER_SCRIPT = Path(__file__).parents[1] / "fixtures" / "mcp_server.py"
SERVER = MCPServerConfig(command=sys.executable, args=[str(SERVER_SCRIPT)])
TOOL_NAMES = ["add", "shout", "fail", "refuse", "nap", "freeze", "count", "pid", "crash"]


def _server_pids(marker: str = str(SERVER_SCRIPT)) -> set[int]:
    """Live processes whose command line holds `marker` (the fixture server by default), read from /proc."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # it exited while we looked
                continue
            if marker.encode() in cmdline:
                pids.add(int(entry.name))
    return pids


def _reaped(pid: int, within_s: float = 0.0) -> bool:
    """True once the process has exited and been waited for (a zombie still counts as there)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@pytest.fixture(scope="module", autouse=True)
def no_server_survives() -> Iterator[None]:
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("counting server processes reads /proc (Linux)")
    assert _server_pids() == set()
    yield
    assert _server_pids() == set()


@pytest.fixture(scope="module")
def suite() -> Iterator[MCPSuite]:
    with MCPSuite(SERVER, timeout_s=5.0) as suite:  # the timeout test shortens it
        yield suite


def _call(suite: MCPSuite, name: str, **parameters: Any) -> ToolResult:
    return suite.call(ToolCall(name=name, parameters=parameters))


def _pid(suite: MCPSuite) -> int:
    result = _call(suite, "pid")
    assert result.ok, result
    return int(result.content["result"])


def test_tools_are_listed_with_their_schemas(suite: MCPSuite) -> None:
    assert suite.name == "fixture-server"  # the name the server gives in its handshake
    assert [t.name for t in suite.tools] == TOOL_NAMES
    add = suite.tool("add")
    assert add is not None and add.description == "Add two integers."
    assert add.parameters == {  # the server's input schema, without its titles
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 0}},
        "required": ["a"],
    }
    assert [t.parameters for t in suite.tools if t.name == "count"] == [{"type": "object", "properties": {}}]


def test_calls_return_the_servers_content(suite: MCPSuite) -> None:
    assert _call(suite, "add", a=2, b=3) == ToolResult(name="add", ok=True, content={"result": 5})  # structured
    assert _call(suite, "shout", text="hi") == ToolResult(name="shout", ok=True, content="HI")  # text only


def test_failures_become_error_results(suite: MCPSuite) -> None:
    assert _call(suite, "fail", message="disk full") == ToolResult(
        name="fail", ok=False, content={"error": "Error executing tool fail: disk full"}
    )
    assert _call(suite, "refuse").content == {"error": "MCP error -32602: refused on purpose"}
    # Checked against the listed schema before anything is sent:
    assert _call(suite, "add", a="2").content == {"error": "parameter 'a' should be integer, got string"}
    assert _call(suite, "nope").content == {"error": f"unknown tool 'nope'; offered: {', '.join(TOOL_NAMES)}"}
    # Over-long arguments too (the base suite's cap), so a megabyte never reaches the server:
    refused = _call(suite, "shout", text="x" * (suite.max_argument_chars or 0))
    assert "characters long" in refused.content["error"]


def test_a_slow_call_times_out_and_the_server_keeps_its_state(suite: MCPSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = _pid(suite)
    before = _call(suite, "count").content["result"]
    monkeypatch.setattr(suite, "timeout_s", 0.5)
    start = time.perf_counter()
    result = _call(suite, "nap", seconds=30)
    assert time.perf_counter() - start < 10.0  # far below the 30 s nap, even on a loaded machine
    assert result == ToolResult(name="nap", ok=False, content={"error": "timed out after 0.5 s"})
    # The server still answers, so it was kept: same process, same state.
    assert _pid(suite) == pid
    assert _call(suite, "count").content == {"result": before + 1}
    assert _call(suite, "nap", seconds=0.01).content == {"result": "awake"}


def test_copies_start_nothing_until_called(suite: MCPSuite) -> None:
    running = _server_pids()
    for clone in (copy.deepcopy(suite), pickle.loads(pickle.dumps(suite))):
        assert clone.tools == suite.tools and clone.server == suite.server
        assert _server_pids() == running
        clone.close()


def test_an_env_registered_over_the_suite_runs_an_episode(suite: MCPSuite) -> None:
    gold = {"name": "add", "parameters": {"a": 2, "b": 3}}
    env_id = register_suite(
        "MCPFixture", suite, tasks=[{"id": "t1", "user": "What is 2 + 3?", "gold_calls": [gold], "answer": "5"}]
    )
    try:
        env = gym.make(env_id)
        obs, info = env.reset(seed=0)
        assert info["task_id"] == "t1"
        assert obs[0]["content"] == render_system(suite.tools)  # the server's tools are offered
        action = "<think> add them </think>\n<tool_call>\n" + json.dumps(gold) + "\n</tool_call>"
        obs, reward, terminated, truncated, info = env.step(action)
        assert (reward, terminated, truncated) == (4.0, False, False)
        assert info["tool_results"] == [{"name": "add", "ok": True, "content": {"result": 5}}]
        assert obs[1]["content"].endswith('<obs> [{"name": "add", "results": {"result": 5}}] </obs>')
        _, reward, terminated, _, info = env.step("<think> done </think>\n<response> 5 </response>")
        assert (reward, terminated) == (1.0, True)
        assert info["metrics"]["exact_match"] is True
        # The env ran its own copy of the suite, on a server of its own, which close() stops.
        env_suite = env.unwrapped.suite
        assert isinstance(env_suite, MCPSuite) and env_suite is not suite
        env_pid = _pid(env_suite)
        assert env_pid != _pid(suite)
        env.close()
        assert _reaped(env_pid)
    finally:
        gym.registry.pop(env_id, None)


def test_restart_on_reset_gives_each_episode_a_fresh_server_and_collection_stops_it() -> None:
    suite = MCPSuite(SERVER, restart_on_reset=True)
    assert [_call(suite, "count").content for _ in range(2)] == [{"result": 1}, {"result": 2}]
    first = _pid(suite)
    suite.reset(seed=0)
    assert _call(suite, "count").content == {"result": 1}
    second = _pid(suite)
    assert second != first
    del suite
    gc.collect()  # the finalizer stops both servers and waits for them
    assert _reaped(first) and _reaped(second)


# The last argument of each marks its process, so the test can check that none is left.
EXITS = "pass  # a server that exits at once"
SILENT = "import time; time.sleep(60)  # a server that never answers"


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (MCPServerConfig(command="/no/such/mcp-server", args=["--toolrl-missing"]), "FileNotFoundError"),
        (MCPServerConfig(command=sys.executable, args=["-c", EXITS]), "Connection closed"),
        (
            MCPServerConfig(command=sys.executable, args=["-c", SILENT], startup_timeout_s=0.5),
            "it did not finish the handshake in time",
        ),
    ],
)
def test_a_server_that_cannot_start_is_a_clear_error(server: MCPServerConfig, reason: str) -> None:
    start = time.perf_counter()
    with pytest.raises(MCPStartError, match="could not start the MCP server") as raised:
        MCPSuite(server)
    assert time.perf_counter() - start < 8.0
    assert server.command_line() in str(raised.value) and reason in str(raised.value)
    assert "check MCPServerConfig (command, args, env, cwd)" in str(raised.value)
    assert _server_pids(server.args[-1]) == set()


@pytest.mark.parametrize("timeout_s", [None, 0])
def test_a_timeout_is_required(timeout_s: float) -> None:
    running = _server_pids()
    with pytest.raises(ValueError, match=f"timeout_s must be a positive number of seconds .e.g. 5.0., got {timeout_s}"):
        MCPSuite(SERVER, timeout_s=timeout_s)
    assert _server_pids() == running  # refused before any server starts


@pytest.mark.slow
def test_a_frozen_or_crashed_server_is_restarted() -> None:
    with MCPSuite(SERVER, timeout_s=0.5) as suite:
        frozen = _pid(suite)
        start = time.perf_counter()
        result = _call(suite, "freeze", seconds=30)  # blocks the server's event loop
        assert time.perf_counter() - start < 10.0  # not the 30 s freeze
        assert result.content == {"error": "timed out after 0.5 s; the server stopped answering and is restarted"}
        crashed = _pid(suite)
        assert crashed != frozen
        start = time.perf_counter()
        assert _call(suite, "crash").content == {
            "error": "the MCP server closed the connection (it crashed or exited); it is restarted"
        }
        assert time.perf_counter() - start < 5.0
        assert _reaped(crashed, within_s=5.0)
        restarted = _pid(suite)
        assert restarted not in (frozen, crashed)
        assert _call(suite, "add", a=1).content == {"result": 1}
    assert _reaped(frozen) and _reaped(restarted)


@pytest.mark.slow
def test_a_server_left_running_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    # The frozen server would outlive its stdin by 30 s; only the suite's exit handler kills it in time.
    # Its stderr goes to a file: had it inherited our pipe, subprocess.run would wait for it to exit.
    log = tmp_path / "server.log"
    script = textwrap.dedent(
        f"""
        import sys
        from tools.call import ToolCall
        from tools.mcp_suite import MCPServerConfig, MCPSuite

        server = MCPServerConfig(command=sys.executable, args=[{str(SERVER_SCRIPT)!r}], stderr_path={str(log)!r})
        suite = MCPSuite(server, timeout_s=0.5)
        print(suite.call(ToolCall(name="pid")).content["result"], flush=True)
        print(suite.call(ToolCall(name="freeze", parameters={{"seconds": 30}})).content["error"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid, error = done.stdout.splitlines()
    assert error.startswith("timed out after 0.5 s; the server stopped answering")
    assert int(pid) not in _server_pids()
    assert log.exists()


def test_results_are_converted_to_our_conventions() -> None:
    text = mcp_types.TextContent(text="hello")
    image = mcp_types.ImageContent(data="aGVsbG8=" * 1000, mime_type="image/png")
    resource = mcp_types.EmbeddedResource(resource=mcp_types.TextResourceContents(uri="file:///a.txt", text="a"))

    def convert(**fields: Any) -> ToolResult:
        return as_result("t", mcp_types.CallToolResult(**fields))

    assert convert(content=[text]).content == "hello"
    assert convert(content=[]).content is None
    # Several blocks become a list; binary payloads are described, not copied into the model's context.
    assert convert(content=[text, image, resource]).content == [
        "hello",
        {"type": "image", "mimeType": "image/png"},
        "a",
    ]
    assert convert(content=[text], structured_content={"n": [1, 2]}).content == {"n": [1, 2]}
    assert convert(content=[text], is_error=True) == ToolResult(name="t", ok=False, content={"error": "hello"})
    assert convert(content=[], is_error=True).content == {"error": "the tool reported an error without a message"}
    clipped = convert(content=[mcp_types.TextContent(text="x" * 10_000)], is_error=True).content["error"]
    assert len(clipped) == 500 and clipped.endswith("...")
