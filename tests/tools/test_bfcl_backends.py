"""BFCL's multi-turn backends as a ToolSuite: the real classes from the wheel, only documented methods reachable."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

from toolrl_env.bfcl_package import import_bfcl, load_entries
from tools.bfcl_backends import (
    BACKEND_CLASSES,
    BackendMethod,
    BFCLBackendSuite,
    backend_class,
    function_docs,
    function_owner,
    parameter_names,
)
from tools.call import ToolCall

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
