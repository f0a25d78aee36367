"""What the model can call: tools, the suites that run them, and the calculator suite.

A `Tool` is a name, a description and a JSON schema, optionally with an executor; `@tool` builds one
from a typed function. A `ToolSuite` runs `ToolCall`s into `ToolResult`s without ever raising, and
answers schema-only tools with `mock_result`.
"""

from tools.calculator import CalculatorSuite, convert_units, evaluate
from tools.call import ToolCall, ToolResult
from tools.mock import mock_result, sample_arguments
from tools.suite import ToolSuite
from tools.tool import Tool, tool

__all__ = [
    "CalculatorSuite",
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
