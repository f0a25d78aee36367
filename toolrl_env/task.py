"""A task is one episode: the tools offered, the dialogue so far, and the gold answer of every assistant step."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from toolrl_env.format import render_turn
from tools.call import ToolCall
from tools.tool import Tool

# ToolRL's placeholder thoughts for gold steps rendered from calls and answer.
CALL_THOUGHT = "I should use the appropriate tool with proper parameters to respond to the user's need."
ANSWER_THOUGHT = "I should directly respond to the user's need."


class GoldStep(BaseModel):
    """The gold for one assistant step: tool calls, a final answer, or both."""

    calls: list[ToolCall] = Field(default_factory=list, description="Gold tool calls of this step, in order.")
    answer: str | None = Field(default=None, description="Gold text of the `<response>`, if the step answers.")
    text: str | None = Field(
        default=None,
        description="The gold step in the TIR format, scored against (ToolRL's `ground_truth`); when not "
        "given it is rendered from `calls` and `answer` with ToolRL's placeholder thought.",
    )

    @model_validator(mode="after")
    def _fill_text(self) -> GoldStep:
        if self.text is None:
            if not self.calls and self.answer is None:
                raise ValueError("a gold step needs calls, an answer or its TIR text")
            thought = CALL_THOUGHT if self.calls else ANSWER_THOUGHT
            self.text = render_turn(think=thought, tool_calls=self.calls, response=self.answer)
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
    suite_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the tool suite's `reset(seed, options)` at the start of each multi-turn episode "
        "(for example BFCL's initial backend state).",
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Source information (data set, row, split).")
