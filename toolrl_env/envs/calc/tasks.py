"""Procedurally generated calculator and unit-conversion tasks: seeded, any count, disjoint train/test splits.

Each task has one or two user turns; each turn's gold is a step of tool calls (`calculate`, `convert_units`)
followed by an answer step, with answers computed by the very tools the env executes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Literal

import numpy as np

from toolrl_env.task import GoldStep, Task, Turn
from tools.calculator import CALCULATE, CONVERT_UNITS, convert_units, evaluate
from tools.call import ToolCall

Split = Literal["train", "test", "all"]

_CONVERSIONS = {
    "length": ["mm", "cm", "m", "km", "in", "ft", "mi"],
    "mass": ["g", "kg", "lb", "oz"],
    "time": ["s", "min", "h", "day"],
    "volume": ["ml", "l", "gal"],
    "temperature": ["C", "F", "K"],
}
_OPS = ["+", "-", "*", "/"]


def _number(value: float) -> str:
    """Answers as people write them: integers without a decimal point, others to 6 significant digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def _calc_turn(rng: np.random.Generator) -> tuple[str, list[ToolCall], str]:
    a, b, c = (int(x) for x in rng.integers(2, 999, size=3))
    op1, op2 = rng.choice(_OPS, size=2)
    expression = f"{a} {op1} {b}" if rng.random() < 0.6 else f"({a} {op1} {b}) {op2} {c}"
    question = rng.choice(["What is {e}?", "Compute {e}.", "Please calculate {e} for me.", "How much is {e}?"])
    calls = [ToolCall(name="calculate", parameters={"expression": expression})]
    return question.format(e=expression), calls, _number(evaluate(expression))


def _convert_call(rng: np.random.Generator) -> tuple[str, ToolCall, float]:
    units = _CONVERSIONS[str(rng.choice(list(_CONVERSIONS)))]
    source, target = (str(u) for u in rng.choice(units, size=2, replace=False))
    value = int(rng.integers(1, 500)) if rng.random() < 0.7 else round(float(rng.uniform(0.5, 500)), 1)
    call = ToolCall(name="convert_units", parameters={"value": value, "from_unit": source, "to_unit": target})
    return f"{value} {source} to {target}", call, convert_units(value, source, target)


def _convert_turn(rng: np.random.Generator) -> tuple[str, list[ToolCall], str]:
    phrase, call, result = _convert_call(rng)
    question = rng.choice(["Convert {p}.", "How much is {p}?", "Please convert {p}."])
    return question.format(p=phrase), [call], _number(result)


def _parallel_turn(rng: np.random.Generator) -> tuple[str, list[ToolCall], str]:
    (p1, c1, r1), (p2, c2, r2) = _convert_call(rng), _convert_call(rng)
    return f"Convert {p1}, and also {p2}.", [c1, c2], f"{_number(r1)} and {_number(r2)}"


_TURNS: list[Callable[[np.random.Generator], tuple[str, list[ToolCall], str]]] = [
    _calc_turn,
    _convert_turn,
    _parallel_turn,
]


def _draw_task(rng: np.random.Generator, index: int) -> Task:
    turns = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        make = _TURNS[int(rng.choice(len(_TURNS), p=[0.4, 0.4, 0.2]))]
        question, calls, answer = make(rng)
        turns.append(Turn(user=question, steps=[GoldStep(calls=calls), GoldStep(answer=answer)]))
    return Task(
        id=f"calc-{index}",
        tools=[CALCULATE, CONVERT_UNITS],
        turns=turns,
        metadata={"source": "calc", "index": index},
    )


def split_of(task: Task, test_fraction: float = 0.2) -> Literal["train", "test"] | None:
    """The split of a task: each question hashes to one split, and a task whose questions disagree has none,
    so no question is in both splits."""
    splits: set[Literal["train", "test"]] = {
        "test" if zlib.crc32((t.user or "").encode()) % 1000 < test_fraction * 1000 else "train" for t in task.turns
    }
    return splits.pop() if len(splits) == 1 else None


def generate_calc_tasks(
    num_tasks: int = 1000, seed: int = 0, split: Split = "train", test_fraction: float = 0.2
) -> list[Task]:
    """`num_tasks` distinct tasks of `split`, drawn from one stream seeded by `seed`."""
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks <= 0:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'test' or 'all'")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    tasks: list[Task] = []
    seen: set[str] = set()
    index = 0
    while len(tasks) < num_tasks:
        task = _draw_task(rng, index)
        index += 1
        key = "\n".join(t.user or "" for t in task.turns)
        task_split = split_of(task, test_fraction)
        if key in seen or task_split is None or (split != "all" and task_split != split):
            continue
        seen.add(key)
        tasks.append(task)
    return tasks
