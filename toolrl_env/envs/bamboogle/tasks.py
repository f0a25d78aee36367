"""Bamboogle (Press et al., 2022) as tasks: two-hop questions that a search engine answers in pieces.

The file is ToolRL's copy, `benchmarks/Bamboogle/data.json` in qiancheng0/ToolRL: a JSON list of 125
`{"Question": ..., "Answer": ...}` objects. Each question becomes a one-turn task whose gold is two steps:
a `Search` call whose query is the question, then a `<response>` with the answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolrl_env.task import GoldStep, Task, Turn
from tools.call import ToolCall
from tools.search import SEARCH_TOOL_NAME

SOURCE = "qiancheng0/ToolRL benchmarks/Bamboogle/data.json"
# Appended to each question, in the spirit of ToolRL's Bamboogle prompt (their wording differs): search when
# unsure, step by step, then answer briefly.
INSTRUCTION = "Search if you are not sure of the answer, one step at a time, then give a short answer in <response>."


def load_bamboogle(path: str | Path, instruction: str | None = INSTRUCTION) -> list[Task]:
    """Tasks `bamboogle-<i>` from a Bamboogle JSON file; `instruction` (None: none) follows each question.

    Raises FileNotFoundError for a missing file and ValueError naming the item for a malformed one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Bamboogle file {str(path)!r} not found; it is {SOURCE}")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); expected {SOURCE}") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty JSON list of {{'Question', 'Answer'}} objects ({SOURCE})")
    tasks = []
    for index, row in enumerate(rows):
        if not (isinstance(row, dict) and isinstance(row.get("Question"), str) and isinstance(row.get("Answer"), str)):
            raise ValueError(f"{path} item {index}: expected string 'Question' and 'Answer', got {row!r:.200}")
        question, answer = row["Question"].strip(), row["Answer"].strip()
        if not question or not answer:
            raise ValueError(f"{path} item {index}: empty Question or Answer")
        user = question if instruction is None else f"{question}\n{instruction}"
        search = ToolCall(name=SEARCH_TOOL_NAME, parameters={"query": question})
        tasks.append(
            Task(
                id=f"bamboogle-{index}",
                turns=[Turn(user=user, steps=[GoldStep(calls=[search]), GoldStep(answer=answer)])],
                metadata={"source": "bamboogle", "index": index, "question": question, "answer": answer},
            )
        )
    return tasks
