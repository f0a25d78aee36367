"""What the model can call: tools, the suites that run them, the calculator and the sandboxed Python tool.

A `Tool` is a name, a description and a JSON schema, optionally with an executor; `@tool` builds one
from a typed function. A `ToolSuite` runs `ToolCall`s into `ToolResult`s without ever raising, and
answers schema-only tools with `mock_result`; with `isolation="process"` its executors run in a `Sandbox`
worker process under `SandboxLimits`. `PythonSuite` offers a `python` tool that runs the model's code there.
"""

from tools.calculator import CalculatorSuite, convert_units, evaluate
from tools.call import ToolCall, ToolResult
from tools.mock import mock_result, sample_arguments
from tools.python_tool import PythonSuite
from tools.sandbox import Sandbox, SandboxLimits, SandboxResult
from tools.suite import ToolSuite
from tools.tool import Tool, tool

__all__ = [
    "CalculatorSuite",
    "PythonSuite",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "Tool",
    "ToolCall",
    "ToolResult",
    "ToolSuite",
    "convert_units",
    "evaluate",
    "mock_result",
    "sample_arguments",
    "tool",
]
