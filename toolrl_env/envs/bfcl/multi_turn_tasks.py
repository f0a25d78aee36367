"""BFCL's executable multi-turn tasks (base, miss_func, miss_param, long_context) from the pinned `bfcl-eval` wheel.

Each BFCL entry becomes one Task with BFCL's id. Its turns are BFCL's `question` turns; the gold of a turn is
its possible answer (call strings such as `cd(folder='document')`, read with `ast` literals only, never
evaluated): one step making all of the turn's calls, then a step that answers in text. A turn whose gold is
empty (the missing function or parameter of miss_func / miss_param) is a single answering step.

miss_func: BFCL removes the functions named in the entry's `missed_function` from the documents it shows and
adds them back at the turn given there, whose user message is empty; its prompting handlers then send the
new documents followed by "I have updated some more functions you can choose from. What about now?". Its
executor still runs every public method of an involved class, withheld or not (one gold answer,
multi_turn_miss_func_49, calls a withheld function before its turn). We do the same: the system prompt lists
only the shown functions, the added turn's user message lists the new ones (ToolRL's tool listing) followed
by BFCL's sentence, read from the wheel, and `Task.tools` holds every function of the involved classes, so
each runs whenever called.

Splits: as for the single-turn tasks (`toolrl_env.envs.bfcl.tasks.held_out_ids`), the 20% of each category's ids
whose SHA-256 digest sorts first are `test`, the rest `train`.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any, Literal

from toolrl_env.envs.bfcl.backends import backend_tools, parameter_names
from toolrl_env.envs.bfcl.package import MULTI_TURN_CATEGORIES, import_bfcl, load_entries, load_possible_answers
from toolrl_env.envs.bfcl.tasks import held_out_ids
from toolrl_env.prompt import render_system, render_tools
from toolrl_env.task import GoldStep, Task, Turn
from tools.call import ToolCall

Split = Literal["train", "test", "all"]

# BFCL has no gold text for the answering steps; only their shape (a response, no call) is scored.
DONE_ANSWER = "I have done what you asked; the results are above."
CANNOT_ANSWER = "I cannot do that with the functions and information I have; please tell me what is missing."


def parse_call(text: str) -> ToolCall:
    """A BFCL call string (`name(arg, key=value, ...)` with literal values) as a ToolCall; nothing is evaluated."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a BFCL call string: {text!r} ({exc.msg})") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a BFCL call string: {text!r}; expected name(key=value, ...)")
    name = node.func.id
    parameters: dict[str, Any] = {}
    if node.args:
        names = parameter_names(name)
        if len(node.args) > len(names):
            raise ValueError(f"{text!r} passes {len(node.args)} positional arguments; {name} takes {len(names)}")
        parameters.update(zip(names, (ast.literal_eval(arg) for arg in node.args), strict=False))
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError(f"{text!r} unpacks **arguments; BFCL gold names each argument")
        parameters[keyword.arg] = ast.literal_eval(keyword.value)
    return ToolCall(name=name, parameters=parameters)


def _categories(category: str | Sequence[str] | None) -> list[str]:
    if category is None:
        names = list(MULTI_TURN_CATEGORIES)
    else:
        names = [category] if isinstance(category, str) else list(category)
    if not names:
        raise ValueError(f"no BFCL multi-turn category given; choose from {', '.join(MULTI_TURN_CATEGORIES)}")
    for name in names:
        if name not in MULTI_TURN_CATEGORIES:
            load_entries(name)  # raises bfcl_package's error (unknown, or unsupported offline)
            raise ValueError(
                f"BFCL category {name!r} is not a multi-turn category; use ToolEnv-BFCL-v0 for it, or choose from "
                f"{', '.join(MULTI_TURN_CATEGORIES)}"
            )
    return names


def _user_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m["content"]) for m in messages if m.get("role") == "user")


def _task(entry: dict[str, Any], ground_truth: list[list[str]], split: str, category: str, added_prompt: str) -> Task:
    classes: list[str] = entry["involved_classes"]
    withheld = {int(turn): set(names) for turn, names in entry.get("missed_function", {}).items()}
    every_tool = [t for class_name in classes for t in backend_tools(class_name)]
    turns = []
    for index, (messages, gold) in enumerate(zip(entry["question"], ground_truth, strict=True)):
        added = [t for t in every_tool if t.name in withheld.get(index, ())]
        if added:
            if messages:
                raise ValueError(f"{entry['id']}: turn {index} adds functions but also has a user message")
            user = f"{render_tools(added)}\n{added_prompt}"
        else:
            user = _user_text(messages)
        calls = [parse_call(text) for text in gold]
        steps = [GoldStep(calls=calls), GoldStep(answer=DONE_ANSWER)] if calls else [GoldStep(answer=CANNOT_ANSWER)]
        turns.append(Turn(user=user, steps=steps))
    shown = [t for t in every_tool if not any(t.name in names for names in withheld.values())]
    return Task(
        id=entry["id"],
        tools=every_tool,
        system=render_system(shown),
        turns=turns,
        suite_options={
            "involved_classes": classes,
            "initial_config": entry.get("initial_config", {}),
            "long_context": "long_context" in category,
        },
        metadata={"source": "bfcl", "category": category, "ground_truth": ground_truth, "split": split},
    )


def load_bfcl_multi_turn(category: str | Sequence[str] | None = None, split: Split = "all") -> list[Task]:
    """BFCL's multi-turn tasks of `category` (a name, a list, or None for all four), in file order.

    Raises ValueError for single-turn categories and for those needing the network or memory backends."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'test' or 'all'")
    added_prompt: str = import_bfcl("constants.default_prompts").DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC
    tasks = []
    for name in _categories(category):
        answers = load_possible_answers(name)
        entries = load_entries(name)
        test_ids = held_out_ids([entry["id"] for entry in entries])
        for entry in entries:
            entry_split = "test" if entry["id"] in test_ids else "train"
            if split in ("all", entry_split):
                tasks.append(_task(entry, answers[entry["id"]], entry_split, name, added_prompt))
    return tasks
