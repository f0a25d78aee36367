"""The `python` tool: Python code the model writes, run in a fresh sandboxed process for every call.

`PythonSuite` offers one tool, `python(code)`, whose result is `{"stdout": ..., "result": ...}`: what the code
printed (stdout and stderr, clipped) and the repr of its final expression, as a notebook cell shows it. Each
call runs in a process of its own (forked from a clean worker) in a new, empty folder deleted afterwards, under
`SandboxLimits` (time, memory, CPU, file size, open files), with an environment holding no variables of the
trainer's. Inside, an audit hook refuses sockets, new processes, signals, `ctypes` and similar escape
hatches, writes outside the working folder, and reads outside it and Python's own libraries; where the OS
allows it, the process also gets an empty network namespace. Code that raises, is refused, runs too long,
allocates too much, or kills its process becomes an `{"error": ...}` observation; the trainer is untouched.

The audit hook is defence in depth, not a security boundary: native code can get around it. For untrusted
deployments run the whole trainer in a container or VM.

Register it as an env like any other suite (README, "register a tool suite").
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from tools.sandbox import Sandbox, SandboxLimits
from tools.sandbox_worker import clip_error, run_python
from tools.suite import ToolSuite
from tools.tool import Tool

DEFAULT_LIMITS = SandboxLimits(timeout_s=5.0, memory_mb=512, file_size_mb=16, open_files=64)
# The most characters of output (and of the final expression's repr) an observation shows.
MAX_OUTPUT_CHARS = 10_000

PARAMETERS = {
    "type": "object",
    "properties": {
        "code": {
            "type": "string",
            "description": "Python 3 source to run as a script; the value of a final expression is returned.",
        }
    },
    "required": ["code"],
    "additionalProperties": False,
}


def python_tool(max_output_chars: int = MAX_OUTPUT_CHARS) -> Tool:
    """The `python` tool, whose executor runs inside the sandbox worker."""
    if max_output_chars < 1:
        raise ValueError(f"max_output_chars must be positive, got {max_output_chars!r}")
    return Tool(
        name="python",
        description="Run Python 3 code and get back what it printed and the value of its last expression. "
        "Every call starts afresh, with no network, no files but its own temporary folder, and limited time "
        "and memory.",
        parameters=PARAMETERS,
        executor=functools.partial(run_python, max_output_chars=max_output_chars),
    )


class PythonSuite(ToolSuite):
    """The `python` tool, always under process isolation with `limits`, each call in a child of its own."""

    def __init__(self, limits: SandboxLimits = DEFAULT_LIMITS, max_output_chars: int = MAX_OUTPUT_CHARS) -> None:
        super().__init__(
            "python",
            [python_tool(max_output_chars)],
            timeout_s=limits.timeout_s,
            isolation="process",
            memory_mb=limits.memory_mb,
        )
        self.limits = limits

    def _new_sandbox(self) -> Sandbox:
        # The runner lives in the worker's own module, so nothing is preloaded; PATH and a UTF-8 locale are
        # all the environment the code needs, and none of the trainer's variables (tokens, keys) reach it.
        environment = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}
        return Sandbox(self.limits, environment=environment, fork_per_call=True)

    def _execute(self, executor: Callable[..., Any], arguments: dict[str, Any]) -> tuple[bool, Any]:
        ok, value = super()._execute(executor, arguments)
        if ok and isinstance(value, dict) and "error" in value:
            # The code raised (or was refused): an error observation, with what it printed before.
            printed = value.get("stdout") or ""
            return False, clip_error(f"{value['error']}; it printed: {printed}" if printed else str(value["error"]))
        return ok, value
