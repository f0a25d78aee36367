"""BFCL's multi-turn backends as a ToolSuite: the real classes from the wheel, only documented methods reachable."""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import pickle
import time
import uuid
from decimal import Context, Decimal
from typing import Any

import mpmath
import pytest

from toolrl_env.env import ToolEnv
from toolrl_env.envs.bfcl.backends import (
    BACKEND_CLASSES,
    NAME_PARAMETERS,
    PATH_PARAMETERS,
    BackendMethod,
    BFCLBackendSuite,
    backend_class,
    function_docs,
    function_owner,
    parameter_names,
)
from toolrl_env.envs.bfcl.multi_turn_metrics import bfcl_multi_turn_metrics, decoded_calls
from toolrl_env.envs.bfcl.multi_turn_tasks import load_bfcl_multi_turn
from toolrl_env.envs.bfcl.package import import_bfcl, load_entries
from tools.call import ToolCall, ToolResult
from tools.suite import ran_to_its_end

FILE_SYSTEM = {
    "root": {
        "alex": {
            "type": "directory",
            "contents": {
                "notes.txt": {"type": "file", "content": "b line\na line"},
                "docs": {"type": "directory", "contents": {}},
            },
        }
    }
}


def suite_with(
    classes: list[str], config: dict[str, Any] | None = None, long_context: bool = False
) -> BFCLBackendSuite:
    suite = BFCLBackendSuite()
    suite.reset(
        seed=0, options={"involved_classes": classes, "initial_config": config or {}, "long_context": long_context}
    )
    return suite


def public_state(suite: BFCLBackendSuite) -> dict[str, dict[str, Any]]:
    """What BFCL's checker compares: each instance's public attributes."""
    return {name: {k: v for k, v in vars(obj).items() if not k.startswith("_")} for name, obj in suite.state.items()}


def call(suite: BFCLBackendSuite, name: str, **parameters: Any) -> Any:
    result = suite.call(ToolCall(name=name, parameters=parameters))
    return result.content if result.ok else pytest.fail(f"{name} failed: {result.content}")


def test_every_multi_turn_class_of_bfcl_is_here() -> None:
    config = import_bfcl("constants.executable_backend_config")
    offline = {c for c in config.CLASS_FILE_PATH_MAPPING if not c.startswith(("Memory", "WebSearch"))}
    assert set(BACKEND_CLASSES) == offline


@pytest.mark.parametrize("class_name", BACKEND_CLASSES)
def test_the_documented_functions_are_exactly_the_public_methods(class_name: str) -> None:
    public = {n for n, _ in inspect.getmembers(backend_class(class_name), inspect.isfunction) if not n.startswith("_")}
    assert {d["name"] for d in function_docs(class_name)} == public
    assert all(function_owner()[name] == class_name for name in public)


def test_positional_parameter_names_come_from_the_method_signature() -> None:
    assert parameter_names("sort") == ["file_name"]
    with pytest.raises(ValueError, match="unknown BFCL function"):
        parameter_names("__init__")


def test_a_call_runs_on_the_episode_instance_loaded_from_the_initial_config() -> None:
    suite = suite_with(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})
    assert call(suite, "ls") == {"current_directory_content": ["notes.txt", "docs"]}
    assert call(suite, "sort", file_name="notes.txt") == {"sorted_content": "a line\nb line"}
    call(suite, "touch", file_name="new.txt")
    assert call(suite, "ls") == {"current_directory_content": ["notes.txt", "docs", "new.txt"]}
    suite.reset(
        seed=0,
        options={"involved_classes": ["GorillaFileSystem"], "initial_config": {"GorillaFileSystem": FILE_SYSTEM}},
    )
    assert call(suite, "ls") == {"current_directory_content": ["notes.txt", "docs"]}


@pytest.mark.parametrize("name", ["__class__", "__init__", "_load_scenario", "__dict__", "eval", "open", "root"])
def test_private_and_unknown_names_are_never_reached(name: str) -> None:
    suite = suite_with(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})
    before = suite.get_state()
    result = suite.call(ToolCall(name=name, parameters={"scenario": {}}))
    assert not result.ok and "unknown tool" in result.content["error"]
    assert suite.state["GorillaFileSystem"] == before["GorillaFileSystem"]


@pytest.mark.parametrize("name", ["_load_scenario", "__class__", "not a name"])
def test_a_backend_method_is_public_by_construction(name: str) -> None:
    with pytest.raises(ValueError, match="public method"):
        BackendMethod("GorillaFileSystem", name)


def test_bad_arguments_and_raising_methods_become_error_results() -> None:
    suite = suite_with(["GorillaFileSystem", "MathAPI"], {"GorillaFileSystem": FILE_SYSTEM})
    missing = suite.call(ToolCall(name="cd", parameters={}))
    unexpected = suite.call(ToolCall(name="cd", parameters={"folder": "docs", "self": 1}))
    assert not missing.ok and "TypeError" in missing.content["error"]
    assert not unexpected.ok and "TypeError" in unexpected.content["error"]
    # As in BFCL, types are not checked against the schema: the method decides (here it reports an error).
    assert "error" in call(suite, "add", a="1", b=[2])


def test_a_function_of_a_class_the_task_does_not_involve_fails() -> None:
    suite = suite_with(["MathAPI"])
    result = suite.call(ToolCall(name="ls", parameters={}))
    assert not result.ok and "GorillaFileSystem, not involved here: MathAPI" in result.content["error"]


def test_arguments_are_copied_so_later_mutations_leave_the_call_alone() -> None:
    suite = suite_with(["TwitterAPI"], {"TwitterAPI": {"username": "ann", "password": "pw"}})
    call(suite, "authenticate_twitter", username="ann", password="pw")
    mentions = ["@bob"]
    posted = ToolCall(name="post_tweet", parameters={"content": "hi", "mentions": mentions})
    tweet_id = call(suite, posted.name, **posted.parameters)["id"]
    call(suite, "mention", tweet_id=tweet_id, mentioned_usernames=["@carl"])
    assert posted.parameters["mentions"] == ["@bob"]


def test_snapshots_restore_the_backend_state() -> None:
    suite = suite_with(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})
    snapshot = suite.get_state()
    call(suite, "mkdir", dir_name="new")
    call(suite, "cd", folder="docs")
    suite.set_state(snapshot)
    assert call(suite, "pwd") == {"current_working_directory": "/alex"}
    assert call(suite, "ls") == {"current_directory_content": ["notes.txt", "docs"]}
    call(suite, "mkdir", dir_name="again")  # the snapshot itself is not changed by the restored episode
    suite.set_state(snapshot)
    assert "again" not in call(suite, "ls")["current_directory_content"]


def test_the_suite_pickles_with_its_live_instances() -> None:
    suite = suite_with(["TradingBot", "MessageAPI"], load_entries("multi_turn_base")[100]["initial_config"])
    call(suite, "get_current_time")
    copy = pickle.loads(pickle.dumps(suite))
    assert public_state(copy) == public_state(suite)
    assert call(copy, "get_current_time") == call(suite, "get_current_time")


def test_long_context_scenarios_are_padded_as_bfcl_pads_them() -> None:
    config = {"GorillaFileSystem": FILE_SYSTEM}
    short, long = (
        suite_with(["GorillaFileSystem"], config),
        suite_with(["GorillaFileSystem"], config, long_context=True),
    )
    assert len(call(long, "cat", file_name="notes.txt")["file_content"]) > 100 * len("b line\na line")
    for suite in (short, long):
        call(suite, "cd", folder="docs")
    assert call(short, "ls") == {"current_directory_content": []}
    assert len(call(long, "ls")["current_directory_content"]) > 10


def test_reset_options_are_validated() -> None:
    with pytest.raises(ValueError, match="involved_classes"):
        BFCLBackendSuite().reset(seed=0, options={"initial_config": {}})
    with pytest.raises(ValueError, match="unknown BFCL backend class 'WebSearchAPI'"):
        BFCLBackendSuite().reset(seed=0, options={"involved_classes": ["WebSearchAPI"]})


# -- isolation and confinement ----------------------------------------------------------------------------------
DATA_PARAMETERS = {"content", "pattern", "mode", "name"}  # file contents, search text, wc's mode: not paths


def test_every_string_parameter_of_the_file_system_is_a_name_a_path_or_data() -> None:
    strings = {
        (doc["name"], key)
        for doc in function_docs("GorillaFileSystem")
        for key, spec in doc["parameters"]["properties"].items()
        if spec.get("type") == "string"
    }
    unclassified = {(f, k) for f, k in strings if k not in NAME_PARAMETERS | PATH_PARAMETERS | DATA_PARAMETERS}
    assert strings and not unclassified


OUTSIDE = f"/tmp/toolrl-hostile-{uuid.uuid4().hex}"
HOSTILE_CALLS = [
    ("cd", {"folder": ".."}),  # at the root
    ("cd", {"folder": "../.."}),
    ("cd", {"folder": "docs/../.."}),
    ("cd", {"folder": "/"}),
    ("cd", {"folder": "/etc"}),
    ("cd", {"folder": ""}),
    ("cd", {"folder": "~"}),
    ("cd", {"folder": "..\\.."}),
    ("cd", {"folder": "docs\x00"}),
    ("find", {"path": "/"}),
    ("find", {"path": "../"}),
    ("find", {"path": "~/.ssh"}),
    ("find", {"path": "/etc", "name": "passwd"}),
    ("touch", {"file_name": "../escape"}),
    ("touch", {"file_name": OUTSIDE}),
    ("touch", {"file_name": "."}),
    ("touch", {"file_name": ".."}),
    ("touch", {"file_name": "a\x00b"}),
    ("touch", {"file_name": "~root"}),
    ("mkdir", {"dir_name": ".."}),
    ("mkdir", {"dir_name": "a/b"}),
    ("mv", {"source": "notes.txt", "destination": ".."}),
    ("mv", {"source": "notes.txt", "destination": "../x"}),
    ("mv", {"source": "../notes.txt", "destination": "x"}),
    ("cp", {"source": "notes.txt", "destination": OUTSIDE}),
    ("cat", {"file_name": "/etc/passwd"}),
    ("cat", {"file_name": "../notes.txt"}),
    ("echo", {"content": "x", "file_name": OUTSIDE}),
    ("rm", {"file_name": "/"}),
    ("rmdir", {"dir_name": ".."}),
    ("diff", {"file_name1": "/etc/passwd", "file_name2": "notes.txt"}),
    ("wc", {"file_name": "~/.bashrc"}),
    ("grep", {"file_name": "../../etc/passwd", "pattern": "root"}),
    ("sort", {"file_name": "\\etc\\passwd"}),
    ("tail", {"file_name": "..", "lines": 1}),
]


@pytest.mark.parametrize(
    ("method", "parameters"), HOSTILE_CALLS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(HOSTILE_CALLS)]
)
def test_hostile_paths_are_refused_and_nothing_reaches_the_disk(
    method: str, parameters: dict[str, Any], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    suite = suite_with(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})
    before = suite.get_state()
    result = suite.call(ToolCall(name=method, parameters=parameters))
    assert not result.ok and result.content["error"].startswith(f"refused: {method}(")
    assert suite.state["GorillaFileSystem"] == before["GorillaFileSystem"]
    assert call(suite, "pwd") == {"current_working_directory": "/alex"}
    assert not list(tmp_path.iterdir()) and not os.path.exists(OUTSIDE)


def test_paths_inside_the_tree_still_work() -> None:
    suite = suite_with(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})

    def find(path: str, name: str) -> Any:
        return suite.call(ToolCall(name="find", parameters={"path": path, "name": name})).content

    assert find(".", "notes") == {"matches": ["./notes.txt"]}
    call(suite, "cd", folder="docs/")
    call(suite, "touch", file_name=".hidden")
    assert find(".", "hidden") == {"matches": ["./.hidden"]}
    call(suite, "cd", folder="..")
    assert call(suite, "pwd") == {"current_working_directory": "/alex"}
    # Where BFCL's rules are stricter than ours (one level per cd, no `..` in find) it answers with its own error.
    assert "error" in call(suite, "cd", folder="docs/..")
    assert "error" in find("docs/..", "notes")


def test_the_stateless_math_backend_runs_in_a_worker_process_killed_past_the_timeout() -> None:
    suite = BFCLBackendSuite(timeout_s=3.0)
    suite.reset(seed=0, options={"involved_classes": ["MathAPI"]})
    precision = mpmath.mp.dps
    logarithm = call(suite, "logarithm", value=8, base=2, precision=60)
    assert float(logarithm["result"]) == pytest.approx(3.0) and mpmath.mp.dps == precision  # not set in the trainer
    worker = suite._sandbox.pid if suite._sandbox is not None else None
    assert worker is not None and worker != os.getpid()
    start = time.perf_counter()
    result = suite.call(ToolCall(name="power", parameters={"base": 10, "exponent": 10**9}))
    error = result.content["error"]
    assert not result.ok and ("timed out after 3 s" in error or "MemoryError" in error)
    assert time.perf_counter() - start < 13  # its 3 s timeout, with slack for a busy machine
    assert call(suite, "add", a=1, b=2) == {"result": 3}
    assert call(suite, "square_root", number=2, precision=30) == {"result": str(Decimal(2).sqrt(Context(prec=30)))}
    suite.close()


def test_an_argument_past_the_cap_is_refused() -> None:
    suite = suite_with(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})
    call(suite, "touch", file_name="big.txt")
    result = suite.call(ToolCall(name="echo", parameters={"content": "x" * 1_000_000, "file_name": "big.txt"}))
    assert not result.ok and result.content["error"].startswith("refused: the arguments are over 100,000 characters")
    assert call(suite, "cat", file_name="big.txt") == {"file_content": ""}


def test_calls_the_suite_refused_or_stopped_never_reach_the_checker() -> None:
    # BFCL's checker replays the model's calls in this process with no timeout: were the stopped power call
    # handed to it, the episode's end would hang for minutes.
    task = next(
        t
        for t in load_bfcl_multi_turn("multi_turn_base")
        if {"GorillaFileSystem", "MathAPI"} <= set(t.suite_options["involved_classes"])
    )
    suite = BFCLBackendSuite(timeout_s=3.0)
    env = ToolEnv([task], suite=suite, metrics=bfcl_multi_turn_metrics, mode="multi_turn", max_turns=40)
    env.reset(options={"task_id": task.id})
    hostile = [
        {"name": "power", "parameters": {"base": 10, "exponent": 10**9}},
        {"name": "cd", "parameters": {"folder": "/"}},
        {"name": "pwd", "parameters": {}},
    ]
    lines = "\n".join(json.dumps(c) for c in hostile)
    _, _, _, _, info = env.step(f"<think> t </think>\n<tool_call>\n{lines}\n</tool_call>")
    assert [ran_to_its_end(ToolResult(**r)) for r in info["tool_results"]] == [False, False, True]
    assert decoded_calls(task, env.get_state()["steps"])[0] == [["pwd()"]]  # what the checker will replay
    start = time.perf_counter()
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step("<think> t </think>\n<response> done </response>")
    assert time.perf_counter() - start < 30 and info["metrics"]["success"] is False
    env.close()
