"""BFCL's single-turn categories as Tasks, read from the pinned `bfcl-eval` wheel.

One task per BFCL entry, with BFCL's own id (`simple_python_0`, `live_simple_0-0-0`):

- **Tools**: the entry's functions after BFCL's own load-time preprocessing (a "Note that the provided function
  is in … syntax." hint on each description; Java and JavaScript parameters typed `string` with their real type
  named in the description, since those languages' values are written as source strings). The schemas keep
  BFCL's type names (`dict`, `float`, `tuple`, `any`), which the prompt shows as ToolRL's BFCL handler did and
  our validator reads (`dict` is an object, `float` a number, `tuple` an array, `any` anything).
- **Prompt**: the last user message is the turn; earlier user and assistant messages (a few live entries have
  them) become dialogue records, an assistant message as `<response> … </response>`. ToolRL's handler dropped
  a live entry's own system message; we keep it, appended to ToolRL's TIR system prompt under
  `**Additional Instructions**`, because some carry facts the question needs.
- **Gold**: one call per possible-answer entry, in order. A parameter whose accepted values include `""`
  (BFCL's mark for "may be omitted") is omitted unless the schema requires it (the checker then still demands
  it); otherwise the first accepted value other than `""` is used, written for
  Java / JavaScript as a source string that BFCL's type converter reads back as that value. Irrelevance
  categories: a `<response>` without calls. `live_relevance` has no possible answer: BFCL only checks that some
  call is made, so the gold is a call of the first offered function without arguments, and the env's gold
  aligner replaces it with the model's own calls whenever it makes any (see `toolrl_env.envs.bfcl.metrics`).
- **Split**: within each category, the 20% of ids whose SHA-256 digest sorts first are `test`, the rest
  `train` (exactly round(n / 5) test ids per category); the digest depends on the id alone, so the split is
  the same on every machine and Python version.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from toolrl_env.envs.bfcl.package import (
    MULTI_TURN_CATEGORIES,
    SINGLE_TURN_CATEGORIES,
    load_entries,
    load_possible_answers,
)
from toolrl_env.format import render_user
from toolrl_env.prompt import ADDITIONAL_INSTRUCTIONS, join_records, render_system
from toolrl_env.task import GoldStep, Task, Turn
from tools.call import ToolCall
from tools.tool import Tool

BFCLSplit = Literal["train", "test", "all"]
SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2
IRRELEVANCE_CATEGORIES = ("irrelevance", "live_irrelevance")
# The gold's text for a task where no offered function fits; the reward only checks the response's shape.
NO_CALL_ANSWER = "None of the offered functions can answer this request."


def language_of(category: str) -> str:
    """BFCL's checker language for a category: "Java", "JavaScript" or "Python"."""
    if category == "simple_java":
        return "Java"
    if category == "simple_javascript":
        return "JavaScript"
    return "Python"


def check_categories(category: str | Sequence[str] | None) -> list[str]:
    """The single-turn categories asked for (all of them for None), in order, without repeats."""
    if category is None:
        return list(SINGLE_TURN_CATEGORIES)
    names = [category] if isinstance(category, str) else list(category)
    if not names:
        raise ValueError(f"category=[] selects nothing; give one or more of: {', '.join(SINGLE_TURN_CATEGORIES)}")
    for name in names:
        if name in MULTI_TURN_CATEGORIES:
            raise ValueError(
                f"BFCL category {name!r} is multi-turn: use ToolEnv-BFCLMultiTurn-v0; "
                f"ToolEnv-BFCL-v0 takes the single-turn ones: {', '.join(SINGLE_TURN_CATEGORIES)}"
            )
        if name not in SINGLE_TURN_CATEGORIES:
            raise ValueError(
                f"unknown BFCL single-turn category {name!r}; valid: {', '.join(SINGLE_TURN_CATEGORIES)} "
                f"(multi-turn categories are in ToolEnv-BFCLMultiTurn-v0)"
            )
    return list(dict.fromkeys(names))


def _digest(task_id: str) -> bytes:
    return hashlib.sha256(task_id.encode("utf-8")).digest()


def held_out_ids(ids: Sequence[str]) -> frozenset[str]:
    """The test share of one category's ids: the round(n / 5) ids whose SHA-256 digest sorts first."""
    ranked = sorted(ids, key=_digest)
    return frozenset(ranked[: round(len(ids) * TEST_FRACTION)])


# -- BFCL's load-time preprocessing of function docs ---------------------------------------------------------
# bfcl-eval's prompting hints (ShishirPatil/gorilla, Apache-2.0), verbatim so the model sees what BFCL shows.
_HINTS = {
    "Python": " Note that the provided function is in Python 3 syntax.",
    "Java": " Note that the provided function is in Java 8 SDK syntax.",
    "JavaScript": " Note that the provided function is in JavaScript syntax.",
}
_SOURCE_LANGUAGES = ("Java", "JavaScript")  # values written as source strings


def _as_source_string(prop: dict[str, Any], language: str) -> None:
    """Retype one Java / JavaScript parameter as a source string, its real type named in the description,
    as bfcl-eval does before prompting (the checker converts the string back with that type)."""
    kind = prop.get("type")
    name = language
    description = prop.get("description", "")
    if kind == "any":
        description += f" This parameter can be of any type of {name} object in string representation."
    else:
        description += f" This is {name} {kind} type parameter in string representation."
    if kind in (("ArrayList", "Array") if language == "Java" else ("array",)) and "items" in prop:
        item_type = prop.pop("items").get("type")
        description += f" The list elements are of type {item_type}; they are not in string representation."
    if language == "JavaScript" and kind == "dict" and "properties" in prop:
        entries = json.dumps(prop.pop("properties"))
        description += (
            f" The dictionary entries have the following schema; they are not in string representation. {entries}"
        )
    prop["description"] = description
    prop["type"] = "string"


def bfcl_tools(functions: Sequence[dict[str, Any]], language: str) -> list[Tool]:
    """BFCL function docs as Tools, with bfcl-eval's prompting preprocessing (the originals are not changed)."""
    tools = []
    for function in copy.deepcopy(list(functions)):
        parameters = function.get("parameters") or {"type": "dict", "properties": {}}
        if language in _SOURCE_LANGUAGES:
            for prop in parameters.get("properties", {}).values():
                _as_source_string(prop, language)
        tools.append(
            Tool(
                name=function["name"],
                description=function.get("description", "") + _HINTS[language],
                parameters=parameters,
            )
        )
    return tools


# -- gold values as the model must write them -----------------------------------------------------------
def _java_element(value: Any, item_type: str | None, quote_strings: bool) -> str:
    if item_type in ("String", "char") or (item_type is None and isinstance(value, str)):
        return f'"{value}"' if quote_strings else str(value)
    return java_source(value, item_type or _java_type_of(value))


def _java_type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    return "String"


def java_source(value: Any, java_type: str, item_type: str | None = None) -> str:
    """`value` as Java source that bfcl-eval's `java_type_converter(…, java_type, item_type)` reads back."""
    if java_type == "boolean":
        return "true" if value else "false"
    if java_type == "long":
        return f"{value}L"
    if java_type == "float":
        return f"{value}f"
    if java_type in ("byte", "short", "integer", "double"):
        return str(value)
    if java_type == "Array" and isinstance(value, list):
        # Array elements are converted by their type, and a String element keeps any quotes it is given.
        elements = ", ".join(_java_element(v, item_type, quote_strings=False) for v in value)
        return f"new {item_type or 'Object'}[]{{{elements}}}"
    if java_type == "ArrayList" and isinstance(value, list):
        if not value:
            return "new ArrayList<>()"
        elements = ", ".join(_java_element(v, item_type, quote_strings=True) for v in value)
        return f"new ArrayList<>(Arrays.asList({elements}))"
    if java_type == "HashMap" and isinstance(value, dict):
        puts = " ".join(f'put("{k}", {_java_element(v, None, quote_strings=True)});' for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}" if puts else "new HashMap<>()"
    return value if isinstance(value, str) else json.dumps(value)


def js_source(value: Any, js_type: str) -> str:
    """`value` as JavaScript source that bfcl-eval's `js_type_converter(…, js_type, item_type)` reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if js_type == "Bigint":
        return f"{value}n"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_js_element(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_element(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _js_element(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else js_source(value, "")


def _unwrap(value: Any) -> Any:
    """A possible-answer value as a value: a dict's entries are lists of accepted values themselves (an entry
    accepting `""` is omitted, else its first value is taken), also inside a list of dicts."""
    if isinstance(value, dict):
        return {
            k: _unwrap(v[0] if isinstance(v, list) else v)
            for k, v in value.items()
            if not (isinstance(v, list) and ("" in v or not v))
        }
    if isinstance(value, list):
        return [_unwrap(v) if isinstance(v, dict) else v for v in value]
    return value


def _gold_value(value: Any, prop: dict[str, Any] | None, language: str) -> Any:
    value = _unwrap(value)
    if language == "Python" or prop is None:
        return value
    if language == "Java":
        item_type = prop.get("items", {}).get("type") if isinstance(prop.get("items"), dict) else None
        return java_source(value, prop.get("type", "String"), item_type)
    return js_source(value, prop.get("type", "String"))


def gold_calls(
    answers: Sequence[dict[str, dict[str, list[Any]]]], functions: Sequence[dict[str, Any]], language: str
) -> list[ToolCall]:
    """One call per possible answer: omit a parameter that may be omitted (`""` accepted, and not required
    by the schema), else give its first accepted value, as a source string for Java and JavaScript."""
    described = {f["name"]: f.get("parameters", {}) for f in functions}
    calls = []
    for answer in answers:
        ((name, accepted),) = answer.items()
        properties = described.get(name, {}).get("properties", {})
        required = described.get(name, {}).get("required", [])
        parameters = {}
        for param, values in accepted.items():
            # `""` means "may be omitted", but the checker still demands a required parameter (data errors),
            # and then takes "" itself when nothing else is accepted
            given = [v for v in values if v != ""] or values
            if given and ("" not in values or param in required):
                parameters[param] = _gold_value(given[0], properties.get(param), language)
        calls.append(ToolCall(name=name, parameters=parameters))
    return calls


# -- tasks ----------------------------------------------------------------------------------------------
def _dialogue(question: list[list[dict[str, str]]]) -> tuple[str | None, str, str]:
    """(the entry's system message, earlier records, the last user message) of a single-turn question."""
    messages = [m for turn in question for m in turn]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    rest = [m for m in messages if m["role"] != "system"]
    last = max((i for i, m in enumerate(rest) if m["role"] == "user"), default=None)
    if last is None:
        raise ValueError("a BFCL question without a user message")
    history = ""
    for message in rest[:last]:
        if message["role"] == "user":
            record = render_user(message["content"])
        else:
            record = f"<response> {message['content'].strip()} </response>"
        history = join_records(history, record)
    return system, history, rest[last]["content"]


def _task(entry: dict[str, Any], category: str, answer: list[Any] | None, split: str) -> Task:
    language = language_of(category)
    tools = bfcl_tools(entry["function"], language)
    system, history, user = _dialogue(entry["question"])
    if category in IRRELEVANCE_CATEGORIES:
        gold = GoldStep(answer=NO_CALL_ANSWER)
    elif answer is None:  # live_relevance: any call counts; the aligner takes the model's own
        gold = GoldStep(calls=[ToolCall(name=entry["function"][0]["name"], parameters={})])
    else:
        gold = GoldStep(calls=gold_calls(answer, entry["function"], language))
    return Task(
        id=entry["id"],
        tools=tools,
        system=None if system is None else f"{render_system(tools)}\n\n{ADDITIONAL_INSTRUCTIONS}\n{system}",
        history=history,
        turns=[Turn(user=user, steps=[gold])],
        metadata={
            "source": "bfcl",
            "category": category,
            "language": language,
            "split": split,
            "function": entry["function"],  # as the official checker reads them (no prompting hints)
            "possible_answer": answer,
        },
    )


@cache
def category_tasks(category: str) -> tuple[Task, ...]:
    """Every task of one single-turn category, in file order (built once per process and shared: envs never
    change their tasks)."""
    (category,) = check_categories(category)
    entries = load_entries(category)
    answers = load_possible_answers(category)
    test = held_out_ids([e["id"] for e in entries])
    return tuple(_task(e, category, answers.get(e["id"]), "test" if e["id"] in test else "train") for e in entries)


def load_bfcl_tasks(category: str | Sequence[str] | None = None, split: BFCLSplit = "all") -> list[Task]:
    """The tasks of the given single-turn categories (all by default) in the given split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return [
        task
        for name in check_categories(category)
        for task in category_tasks(name)
        if split == "all" or task.metadata["split"] == split
    ]
