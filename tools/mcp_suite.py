"""MCP tool suites: `MCPSuite` starts a Model Context Protocol server over stdio and offers its tools.

The official `mcp` client is async, and `ToolSuite.call` is not: each running server gets a private
event-loop thread whose one long-lived task holds the `mcp.Client` open, and calls are handed to that
loop and waited on with a deadline. Whatever the server does, a call returns a ToolResult:

* text content becomes a string (several blocks a list), structured content is returned as it is, and
  `isError` results, protocol errors and timeouts become `{"error": ...}`;
* a call past `timeout_s` is cancelled on the server; if the server then no longer answers a tool listing
  it is restarted, otherwise it keeps its state;
* a crashed server fails the calls in flight at once and is started again on the next call.

Servers stop on `close()`, on leaving a `with` block, when the suite is garbage-collected, and at
interpreter exit; the mcp client closes the server's stdin and kills its process group if it lingers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import shlex
import sys
import threading
import weakref
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field

from tools.call import ToolCall, ToolResult
from tools.suite import ToolSuite, clip_error, describe_exception, error_result
from tools.tool import Tool, clean_schema

try:
    from mcp import Client, MCPError, StdioServerParameters, stdio_client
    from mcp import types as mcp_types
except ImportError as exc:  # an optional extra
    raise ImportError("tools.mcp_suite needs the `mcp` package: pip install 'toolrl[mcp]'") from exc

_T = TypeVar("_T")

# A request's own deadline is enforced on the loop; this much longer and the loop itself counts as stuck.
_LOOP_GRACE_S = 1.0
# After a timed-out call, a server that cannot list its tools within this is restarted.
_PROBE_TIMEOUT_S = 1.0
# The mcp client's shutdown (close stdin, wait 2 s, SIGTERM, wait 2 s, SIGKILL) ends well within this.
_SHUTDOWN_TIMEOUT_S = 10.0


class MCPStartError(RuntimeError):
    """The MCP server could not be started or did not complete the MCP handshake."""


class MCPServerConfig(BaseModel):
    """How to start an MCP server over stdio."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str = Field(min_length=1, description="Executable that starts the server, e.g. 'python' or 'npx'.")
    args: list[str] = Field(default_factory=list, description="Its command-line arguments.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the server, added to the few the mcp client passes on "
        "(HOME, LOGNAME, PATH, SHELL, TERM, USER); the rest of this process's environment is not passed.",
    )
    cwd: Path | None = Field(default=None, description="Working directory of the server; None: this process's.")
    stderr_path: Path | None = Field(
        default=None, description="File the server's stderr (its log) is appended to; None: this process's stderr."
    )
    startup_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds allowed to start the server, complete the handshake and list tools."
    )

    def command_line(self) -> str:
        """The command as a shell would show it, for messages."""
        return shlex.join([self.command, *self.args])


class MCPSuite(ToolSuite):
    """The tools of an MCP server, run on it; the server starts when the suite is made, to list them.

    Args:
        server: How to start the server.
        name: The suite's name; None takes the name the server gives in its handshake.
        timeout_s: Seconds a call may take before it becomes an error observation.
        check_arguments: Check calls against the listed input schemas before sending them.
        restart_on_reset: Stop the server at each `reset`, so every episode starts from a fresh one.

    `register_suite` accepts it; each env gets a copy that starts its own server on its first call, and
    `env.close()` stops it. The server's own state is not part of `get_state()` or pickles.
    """

    def __init__(
        self,
        server: MCPServerConfig,
        name: str | None = None,
        timeout_s: float = 5.0,
        check_arguments: bool = True,
        restart_on_reset: bool = False,
    ) -> None:
        if timeout_s is None or not timeout_s > 0:
            raise ValueError(
                f"timeout_s must be a positive number of seconds (e.g. 5.0), got {timeout_s!r}: "
                "an MCP server may stop answering, so its calls always need a deadline"
            )
        self.server = server
        self.restart_on_reset = restart_on_reset
        self._connection: _Connection | None = None
        # Each server started, with a finalizer that stops it and waits for it (at close(), collection or exit).
        self._servers: list[tuple[_Connection, weakref.finalize[..., MCPSuite]]] = []
        connection = self._connect()
        try:
            listed = connection.list_tools(server.startup_timeout_s)
            super().__init__(
                name or connection.server_name or server.command,
                [_as_tool(t) for t in listed],
                timeout_s=timeout_s,
                check_arguments=check_arguments,
            )
        except BaseException:
            self._stop_servers()
            raise

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        """Start an episode; with `restart_on_reset` the server is stopped and the next call starts a fresh one."""
        if self.restart_on_reset:
            self._disconnect()

    def call(self, call: ToolCall) -> ToolResult:
        """Run one call on the server; never raises (see the module docstring for what each failure gives)."""
        if self.refusal(call) is not None:
            return super().call(call)  # refused without reaching the server, in the base class's words
        try:
            connection = self._connection or self._connect()
        except MCPStartError as exc:
            return error_result(call.name, clip_error(str(exc)))
        timeout_s = self.timeout_s
        assert timeout_s is not None  # checked in __init__
        try:
            result = connection.call_tool(call.name, call.parameters, timeout_s)
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                # The client has sent the server a cancellation; keep the server (and its state) if it answers.
                if connection.responds(_PROBE_TIMEOUT_S):
                    return error_result(call.name, f"timed out after {timeout_s:g} s")
                self._disconnect()
                return error_result(
                    call.name, f"timed out after {timeout_s:g} s; the server stopped answering and is restarted"
                )
            if exc.code == mcp_types.CONNECTION_CLOSED:
                self._disconnect()
                return error_result(
                    call.name, "the MCP server closed the connection (it crashed or exited); it is restarted"
                )
            return error_result(call.name, clip_error(f"MCP error {exc.code}: {exc.message}"))
        except Exception as exc:  # the loop did not answer, or the client failed: the connection is unusable
            self._disconnect()
            return error_result(call.name, f"MCP client failed ({describe_exception(exc)}); the server is restarted")
        return as_result(call.name, result)

    def close(self) -> None:
        """Stop the server and wait for it to exit; a later call starts a new one."""
        super().close()
        self._stop_servers()

    def __enter__(self) -> MCPSuite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A copy (each env's, or an unpickled one) starts its own server on its first call.
        state = super().__getstate__()
        state["_connection"] = None
        state["_servers"] = []
        return state

    def _connect(self) -> _Connection:
        for connection, finalizer in self._servers:
            if not connection.running:  # already stopped: nothing left to wait for
                finalizer.detach()
        self._servers = [(c, f) for c, f in self._servers if f.alive]
        self._connection = _Connection(self.server)
        self._servers.append((self._connection, weakref.finalize(self, self._connection.close)))
        return self._connection

    def _disconnect(self) -> None:
        """Tell the server to stop without waiting; `close()` (or the finalizer) waits for it."""
        if self._connection is not None:
            self._connection.close(wait=False)
            self._connection = None

    def _stop_servers(self) -> None:
        self._connection = None
        while self._servers:
            _, finalizer = self._servers.pop()
            finalizer()


class _Connection:
    """One running server: a private event-loop thread holds its `mcp.Client` open until `close`."""

    def __init__(self, server: MCPServerConfig) -> None:
        self.server = server
        self.server_name: str | None = None
        self._client: Client | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="toolrl-mcp-client", daemon=True)
        self._thread.start()
        try:
            # The startup deadline is enforced on the loop; this only guards against a stuck loop.
            self._ready.result(timeout=server.startup_timeout_s + _LOOP_GRACE_S)
        except BaseException as exc:
            self.close()
            timed_out = isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError))  # distinct before 3.11
            reason = "it did not finish the handshake in time" if timed_out else _reason(exc)
            raise MCPStartError(
                f"could not start the MCP server `{server.command_line()}`: {reason}; check MCPServerConfig "
                "(command, args, env, cwd) and the server's stderr"
            ) from exc

    def call_tool(self, name: str, arguments: dict[str, Any], timeout_s: float) -> mcp_types.CallToolResult:
        """The server's result; MCPError for protocol errors, REQUEST_TIMEOUT past `timeout_s`."""
        return self._wait(self._client_or_raise().call_tool(name, arguments, read_timeout_seconds=timeout_s), timeout_s)

    def list_tools(self, timeout_s: float) -> list[mcp_types.Tool]:
        """Every tool the server lists, all pages."""
        client = self._client_or_raise()

        async def listing() -> list[mcp_types.Tool]:
            tools: list[mcp_types.Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                tools.extend(page.tools)
                if not (cursor := page.next_cursor):
                    return tools

        return self._wait(asyncio.wait_for(listing(), timeout_s), timeout_s)

    def responds(self, timeout_s: float) -> bool:
        """Whether the server answers a tool listing within `timeout_s`."""
        try:
            self.list_tools(timeout_s)
        except Exception:
            return False
        return True

    @property
    def running(self) -> bool:
        """Whether the client's thread (and so possibly the server) is still running."""
        return self._thread.is_alive()

    def close(self, wait: bool = True) -> None:
        """Stop the server (the client closes its stdin, then kills it if it lingers); `wait` for it to exit."""
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            self._loop.call_soon_threadsafe(self._cancel)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(_SHUTDOWN_TIMEOUT_S)

    def _cancel(self) -> None:
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()

    def _client_or_raise(self) -> Client:
        if self._client is None:
            raise ConnectionError("the MCP client has stopped")
        return self._client

    def _wait(self, coroutine: Coroutine[Any, Any, _T], timeout_s: float) -> _T:
        """Run `coroutine` on the loop and return its result; TimeoutError when the loop is stuck past it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=timeout_s + _LOOP_GRACE_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the MCP client did not answer within {timeout_s + _LOOP_GRACE_S:g} s") from None

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            # Requests still in flight end as cancelled, so nobody waits on a closed loop.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _serve(self) -> None:
        """Hold the client open from the handshake until `close`; the transport is entered and left here.

        Both the startup deadline and `close` cancel one scope around the client; the mcp client shuts the
        server down under a shield, so cancelling never leaks the process.
        """
        try:
            with (
                _server_stderr(self.server.stderr_path) as errlog,
                anyio.CancelScope(deadline=anyio.current_time() + self.server.startup_timeout_s) as self._scope,
            ):
                if self._closing:
                    self._scope.cancel()
                parameters = StdioServerParameters(
                    command=self.server.command, args=self.server.args, env=self.server.env, cwd=self.server.cwd
                )
                async with Client(stdio_client(parameters, errlog=errlog)) as client:
                    self._scope.deadline = math.inf
                    self.server_name = client.server_info.name if client.server_info else None
                    self._client = client
                    self._ready.set_result(None)
                    await anyio.sleep_forever()
        except Exception as exc:  # after the start, failures reach the callers through their requests
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            self._client = None
            if not self._ready.done():
                self._ready.set_exception(TimeoutError() if not self._closing else ConnectionError("closed"))


@contextlib.contextmanager
def _server_stderr(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stderr
    else:
        with path.open("a", encoding="utf-8") as log:
            yield log


def _reason(exc: BaseException) -> str:
    """The innermost first error of `exc`: anyio wraps what fails in a task group in exception groups."""
    while (inner := getattr(exc, "exceptions", None)) and isinstance(inner[0], BaseException):
        exc = inner[0]
    return describe_exception(exc)


def _as_tool(listed: mcp_types.Tool) -> Tool:
    """Our Tool for an MCP tool: its name, description and input schema (titles dropped, `$ref`s inlined)."""
    schema = listed.input_schema
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    try:
        parameters = clean_schema(schema, defs, listed.name, ())
    except TypeError:  # a type that refers to itself cannot be inlined; the checker reads such a `$ref` as any value
        parameters = schema
    return Tool(name=listed.name, description=listed.description or listed.title or "", parameters=parameters)


def as_result(name: str, result: mcp_types.CallToolResult) -> ToolResult:
    """Our ToolResult for an MCP result: structured content if any, else the content blocks; isError fails."""
    blocks = [_block_value(block) for block in result.content]
    if result.is_error:
        text = "\n".join(b if isinstance(b, str) else json.dumps(b) for b in blocks)
        return error_result(name, clip_error(text) or "the tool reported an error without a message")
    if result.structured_content is not None:
        return ToolResult(name=name, ok=True, content=result.structured_content)
    return ToolResult(name=name, ok=True, content=blocks[0] if len(blocks) == 1 else blocks or None)


# Base64 payloads would flood the model's context; the block's type, MIME type and URI say what it was.
_BULKY_FIELDS: Any = {"data": True, "annotations": True, "meta": True, "resource": {"blob"}}


def _block_value(block: mcp_types.ContentBlock) -> Any:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.EmbeddedResource) and isinstance(block.resource, mcp_types.TextResourceContents):
        return block.resource.text
    return block.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=_BULKY_FIELDS)
