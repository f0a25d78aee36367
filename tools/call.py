"""The records that cross the model/tool boundary: a call the model made and what came back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ToolCall(BaseModel):
    """One tool call in the TIR format: `{"name": ..., "parameters": {...}}`."""

    name: str = Field(description="Name of the tool to call.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the call.")


class ToolResult(BaseModel):
    """What one call returned. Failures are results too: `ok` is False and `content` is `{"error": ...}`."""

    name: str = Field(description="Name of the tool that was called (as the model wrote it).")
    ok: bool = Field(description="False when the tool is unknown, the arguments are invalid, it raised or timed out.")
    content: Any = Field(description="JSON-serialisable return value, or `{'error': message}` when not ok.")
