"""The observation text: ToolRL's TIR system prompt listing the tools, and the dialogue-records history."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tools.tool import Tool

HISTORY_HEADER = "**Dialogue Records History**\n"
# Heads a task's own instructions after the system prompt (BFCL's live entries carry a system message).
ADDITIONAL_INSTRUCTIONS = "**Additional Instructions**"

# ToolRL's system prompt (qiancheng0/ToolRL, Apache-2.0), kept verbatim so that models trained on
# their RLLA data see the prompt they were trained with.
_EXAMPLE_CALLS = (
    '{"name": "Tool name", "parameters": {"Parameter name": "Parameter content", "... ...": "... ..."}}\n'
    '{"name": "... ...", "parameters": {"... ...": "... ...", "... ...": "... ..."}}'
)
SYSTEM_TEMPLATE = """You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve \
user tasks and provide structured chat responses.

**Available Tools**
In your response, you can use the following tools:
{tools}

**Steps for Each Turn**
1. **Think:** Recall relevant context and analyze the current user goal.
2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its parameters.
3. **Respond Appropriately:** If a response is needed, generate one while maintaining consistency across \
user queries.

**Output Format**
```plaintext
<think> Your thoughts and reasoning </think>
<tool_call>
{example_calls}
...
</tool_call>
<response> AI's final response </response>
```

**Important Notes**
1. You must always include the `<think>` field to outline your reasoning. Provide at least one of \
`<tool_call>` or `<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, \
or both.
2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should be \
a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. If no \
parameters are needed, leave the "parameters" field an empty dictionary.
3. Refer to the previous dialogue records in the history, including the user's queries, previous \
`<tool_call>`, `<response>`, and any tool feedback noted as `<obs>` (if exists)."""


def render_tools(tools: Sequence[Tool]) -> str:
    """List tools as ToolRL does: `N. Name / Description / Parameters` with only the schema's properties."""
    return "\n".join(
        f"{i}. Name: {t.name}\nDescription: {t.description}\n"
        f"Parameters: {json.dumps(t.parameters.get('properties', {}))}"
        for i, t in enumerate(tools, start=1)
    )


def render_system(tools: Sequence[Tool]) -> str:
    """ToolRL's TIR system prompt listing `tools`."""
    return SYSTEM_TEMPLATE.format(tools=render_tools(tools), example_calls=_EXAMPLE_CALLS)


def join_records(history: str, record: str, gap: str = "\n\n") -> str:
    """Append a dialogue record to the history: `gap` before a new user or assistant turn, a newline before <obs>."""
    return record if not history else history + gap + record


def added_text(before: str, after: str, action: str) -> str:
    """What the env appended to the dialogue after the model's turn: `after` minus `before` minus the action."""
    delta = after[len(before) :] if after.startswith(before) else after
    action = action.strip()
    at = delta.find(action) if action else -1
    return delta[at + len(action) :] if at >= 0 else delta
