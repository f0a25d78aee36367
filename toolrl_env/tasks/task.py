"""A task is one episode: the tools offered, the dialogue so far, and the gold answer of every assistant step."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.call import ToolCall
from tools.tool import Tool


class GoldStep(BaseModel):
    """The gold for one assistant step: tool calls, a final answer, or both."""

    calls: list[ToolCall] = Field(default_factory=list, description="Gold tool calls of this step, in order.")
    answer: str | None = Field(default=None, description="Gold text of the `<response>`, if the step answers.")
    text: str | None = Field(
        default=None,
        description="The gold step verbatim in the TIR format (ToolRL's `ground_truth`); "
        "when unset it is rendered from `calls` and `answer`.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> GoldStep:
        if not self.calls and self.answer is None and self.text is None:
            raise ValueError("a gold step needs calls, an answer or its TIR text")
        return self


class Turn(BaseModel):
    """One user turn and the gold assistant steps that should follow it (calls, observations, then an answer)."""

    user: str | None = Field(
        default=None,
        description="The user's message for this turn; None when it already ends `Task.history` (ToolRL's RLLA rows).",
    )
    steps: list[GoldStep] = Field(min_length=1, description="Gold of each assistant step in this turn, in order.")


class Task(BaseModel):
    """One episode of a ToolEnv."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str = Field(description="Stable identifier; `reset(options={'task_id': id})` selects it.")
    tools: list[Tool] = Field(default_factory=list, description="The tools offered to the model.")
    system: str | None = Field(
        default=None,
        description="System prompt verbatim; None renders ToolRL's TIR system prompt listing `tools`.",
    )
    history: str = Field(
        default="",
        description="Dialogue records before the first turn, in ToolRL's history format "
        "(`<user> … </user>`, assistant turns, `<obs> … </obs>`).",
    )
    turns: list[Turn] = Field(min_length=1, description="The user turns of the episode, each with its gold.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Source information (data set, row, split).")
