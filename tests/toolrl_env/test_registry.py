"""register_suite: a new tool suite becomes a gymnasium id; its validation; entry-point plugins."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from toolrl_env import Task, register_suite
from toolrl_env.prompt import render_system
from toolrl_env.registry import load_suite_plugins
from toolrl_env.task import GoldStep, Turn
from tools.call import ToolCall
from tools.tool import Tool, tool

ROOT = Path(__file__).resolve().parents[2]
RUNS: list[tuple[float, str, str]] = []
_METRES = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0}


@tool
def convert_length(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a length between mm, cm, m and km.

    Args:
        value: The length to convert.
        from_unit: Unit of `value`: mm, cm, m or km.
        to_unit: Unit to convert to.
    """
    RUNS.append((value, from_unit, to_unit))
    return round(value * _METRES[from_unit] / _METRES[to_unit], 10)


@tool
def echo(text: str) -> str:
    """Repeat the text."""
    return text


GOLD_CALL = {"name": "convert_length", "parameters": {"value": 10, "from_unit": "cm", "to_unit": "m"}}
TASK = {"id": "t1", "user": "Convert 10 cm to m.", "gold_calls": [GOLD_CALL], "answer": "0.1"}
CALL_ACTION = "<think> convert </think>\n<tool_call>\n" + json.dumps(GOLD_CALL) + "\n</tool_call>"
ANSWER_ACTION = "<think> done </think>\n<response> 10 cm is 0.1 m. </response>"


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names of suites a test registers; their ids leave the gymnasium registry afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        gym.registry.pop(f"ToolEnv-{name}-v0", None)


def test_register_suite_makes_an_env_that_runs_the_tools(registered: list[str]) -> None:
    registered.append("MyConv")
    env_id = register_suite("MyConv", tools=[convert_length], tasks=[TASK])
    assert env_id == "ToolEnv-MyConv-v0"
    assert env_id in gym.registry

    env = gym.make(env_id)
    RUNS.clear()
    obs, info = env.reset(seed=0)
    assert info["task_id"] == "t1"
    assert obs == [
        {"role": "system", "content": render_system([convert_length])},
        {"role": "user", "content": "**Dialogue Records History**\n<user> Convert 10 cm to m. </user>"},
    ]
    obs, reward, terminated, truncated, info = env.step(CALL_ACTION)
    assert RUNS == [(10, "cm", "m")]  # the function defined here ran
    assert (reward, terminated, truncated) == (4.0, False, False)
    assert info["tool_results"] == [{"name": "convert_length", "ok": True, "content": 0.1}]
    assert obs[1]["content"].endswith('<obs> [{"name": "convert_length", "results": 0.1}] </obs>')
    _, reward, terminated, truncated, info = env.step(ANSWER_ACTION)
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["metrics"]["exact_match"] is True
    assert info["metrics"]["answer_match"] is True


def test_registered_suite_passes_check_env(registered: list[str]) -> None:
    registered.append("MyConvCheck")
    env = gym.make(register_suite("MyConvCheck", tools=[convert_length, echo], tasks=[TASK]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_registered_suite_with_a_stateful_suite_pickles_mid_episode(registered: list[str], counter_suite: Any) -> None:
    registered.append("CounterPickle")
    add = {"name": "add", "parameters": {"amount": 2}}
    env = gym.make(
        register_suite("CounterPickle", counter_suite, tasks=[{"user": "Add 2.", "gold_calls": [add], "answer": "2"}])
    )
    env.reset(seed=1)
    action = "<think> add </think>\n<tool_call>\n" + json.dumps(add) + "\n</tool_call>"
    env.step(action)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.step(action) == env.step(action)
    assert copy.unwrapped.suite.state == env.unwrapped.suite.state == {"count": 4}


def test_registered_suite_of_decorated_functions_pickles(registered: list[str]) -> None:
    registered.append("MyConvPickle")
    env = gym.make(register_suite("MyConvPickle", tools=[convert_length, echo], tasks=[TASK]))
    env.reset(seed=1)
    env.step(CALL_ACTION)
    copy = pickle.loads(pickle.dumps(env))
    assert copy.step(ANSWER_ACTION) == env.step(ANSWER_ACTION)


def test_envs_from_one_id_do_not_share_suite_state(registered: list[str], counter_suite: Any) -> None:
    registered.append("Counter")
    add = {"name": "add", "parameters": {"amount": 2}}
    env_id = register_suite(
        "Counter", counter_suite, tasks=[{"id": "c", "user": "Add 2.", "gold_calls": [add], "answer": "2"}]
    )
    first, second = gym.make(env_id), gym.make(env_id)
    assert first.unwrapped.suite is not second.unwrapped.suite
    first.reset(seed=0)
    second.reset(seed=0)
    action = "<think> add </think>\n<tool_call>\n" + json.dumps(add) + "\n</tool_call>"
    first.step(action)
    first.step(action)
    obs, *_ = second.step(action)
    assert obs[1]["content"].endswith('<obs> [{"name": "add", "results": 2}] </obs>')
    assert first.unwrapped.suite.state == {"count": 4}
    assert second.unwrapped.suite.state == {"count": 2}
    assert counter_suite.state == {}  # the registered suite itself is never used


def test_register_suite_env_kwargs_are_defaults_that_make_overrides(registered: list[str]) -> None:
    registered.append("MyConvKw")
    env_id = register_suite("MyConvKw", tools=[convert_length], tasks=[TASK], max_turns=2)
    env = gym.make(env_id)
    assert env.unwrapped.config.mode == "multi_turn"  # tools run by default
    assert env.unwrapped.config.max_turns == 2
    assert gym.make(env_id, max_turns=5).unwrapped.config.max_turns == 5
    assert gym.make(env_id, mode="single_turn").unwrapped.config.mode == "single_turn"


def test_register_suite_accepts_task_records(registered: list[str]) -> None:
    registered.append("MyConvTasks")
    two_turns = Task(
        id="two",
        turns=[
            Turn(user="Convert 10 cm to m.", steps=[GoldStep(calls=[ToolCall(**GOLD_CALL)]), GoldStep(answer="0.1")]),
            Turn(user="Say hi.", steps=[GoldStep(answer="hi")]),
        ],
    )
    env_id = register_suite("MyConvTasks", tools=[convert_length], tasks=[two_turns, TASK])
    env = gym.make(env_id)
    assert [t.id for t in env.unwrapped.tasks] == ["two", "t1"]
    env.reset(options={"task_id": "two"})
    env.step(CALL_ACTION)
    obs, _, terminated, _, _ = env.step(ANSWER_ACTION)
    assert not terminated
    assert obs[1]["content"].endswith("<user> Say hi. </user>")


@pytest.mark.parametrize("name", ["", "My Conv", "My-Conv", "conv/1", "Convé", "a\nb", 123, None])
def test_bad_suite_names_are_refused(name: Any) -> None:
    with pytest.raises(ValueError, match=r"suite name .* must be letters, digits"):
        register_suite(name, tools=[convert_length], tasks=[TASK])
    assert not any(env_id.startswith(f"ToolEnv-{name}") for env_id in gym.registry if name)


def test_task_calling_a_tool_outside_the_suite_is_refused() -> None:
    task = {"id": "bad", "user": "Shout.", "gold_calls": [{"name": "shout", "parameters": {"text": "hi"}}]}
    message = r"task 'bad' calls \['shout'\], which it is not offered \(\['convert_length'\]\)"
    with pytest.raises(ValueError, match=message):
        register_suite("Refused", tools=[convert_length], tasks=[TASK, task])
    assert "ToolEnv-Refused-v0" not in gym.registry


def test_task_with_its_own_tools_calling_an_unknown_tool_is_refused(registered: list[str]) -> None:
    registered.append("OwnTools")
    task = Task(
        id="own",
        tools=[echo],
        turns=[Turn(user="Shout.", steps=[GoldStep(calls=[ToolCall(name="shout", parameters={"text": "hi"})])])],
    )
    with pytest.raises(ValueError, match="shout"):
        register_suite("OwnTools", tools=[convert_length], tasks=[task])


def test_empty_task_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"suite 'Empty' needs at least one task"):
        register_suite("Empty", tools=[convert_length], tasks=[])
    assert "ToolEnv-Empty-v0" not in gym.registry


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"id": "x", "answer": "1"}, r"task 0: expected keys id, user"),
        ({"user": "Hi", "answer": "1", "colour": "red"}, r"task 0: expected keys .*got \['answer', 'colour', 'user'\]"),
        ({"user": "Hi"}, r"task 0: give gold_calls, an answer, or both"),
        ({"user": "Hi", "gold_calls": [], "answer": None}, r"task 0: give gold_calls, an answer, or both"),
        ({"user": "Hi", "gold_calls": [{"parameters": {}}]}, r"name"),
        ({"user": "Hi", "gold_calls": [{"name": "convert_length", "parameters": "10 cm"}]}, r"parameters"),
        ({"user": "Hi", "gold_calls": "convert_length"}, r"ToolCall"),
        ({"user": 5, "answer": "1"}, r"user"),
        ({"id": "t", "turns": []}, r"turns"),
    ],
)
def test_malformed_task_dicts_are_refused(task: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        register_suite("Malformed", tools=[convert_length], tasks=[task])
    assert "ToolEnv-Malformed-v0" not in gym.registry


def test_a_task_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(TypeError, match=r"task 1 must be a Task or a dict, got str"):
        register_suite("NotDict", tools=[convert_length], tasks=[TASK, "Convert 10 cm to m."])


def test_duplicate_task_ids_are_refused(registered: list[str]) -> None:
    registered.append("Dupes")
    with pytest.raises(ValueError, match=r"duplicate task ids: \['t1'\]"):
        gym.make(register_suite("Dupes", tools=[convert_length], tasks=[TASK, TASK]))


SPAWN_SCRIPT = """
import json
import sys

import gymnasium as gym
from gymnasium.vector import AutoresetMode

import toolrl_env
from tools import tool


@tool
def word_count(text: str) -> int:
    \"\"\"Count the words in a text.

    Args:
        text: The text to count.
    \"\"\"
    return len(text.split())


if __name__ == "__main__":  # registered here only: a spawned worker does not run this block
    task = {"id": "w1", "user": "How many words in 'to be or not'?", "answer": "4",
            "gold_calls": [{"name": "word_count", "parameters": {"text": "to be or not"}}]}
    env_id = toolrl_env.register_suite("SpawnWords", tools=[word_count], tasks=[task])
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="async", vector_kwargs={
        "context": sys.argv[1], "shared_memory": False, "autoreset_mode": AutoresetMode.SAME_STEP})
    envs.reset(seed=0)
    action = "<think> count </think>\\n<tool_call>\\n" + json.dumps(task["gold_calls"][0]) + "\\n</tool_call>"
    _, rewards, _, _, info = envs.step((action, action))
    print(json.dumps({"rewards": rewards.tolist(), "contents": [r[0]["content"] for r in info["tool_results"]]}))
    envs.close()
"""


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_a_registered_suite_works_in_async_workers_started_with_spawn_or_forkserver(
    tmp_path: Path, context: str
) -> None:
    """The suite travels with the id's spec: a worker that imports the script afresh (spawn, forkserver: macOS's
    default, Linux's from Python 3.14) makes the env although register_suite never ran in it."""
    script = tmp_path / "train.py"
    script.write_text(SPAWN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), context], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"rewards": [4.0, 4.0], "contents": [4, 4]}  # the gold call, run in each worker


def test_suite_tools_can_be_plain_tool_records(registered: list[str]) -> None:
    """A schema-only tool (no executor) is answered by the suite's mock, so the episode still runs."""
    registered.append("Schema")
    lookup = Tool(
        name="lookup",
        description="Look a word up.",
        parameters={"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
    )
    call = {"name": "lookup", "parameters": {"word": "gym"}}
    env = gym.make(register_suite("Schema", tools=[lookup], tasks=[{"user": "Look up gym.", "gold_calls": [call]}]))
    env.reset(seed=0)
    _, reward, _, _, info = env.step("<think> look </think>\n<tool_call>\n" + json.dumps(call) + "\n</tool_call>")
    assert reward == 4.0
    assert info["tool_results"][0]["ok"] is True
    assert info["tool_results"][0]["content"]["echo"] == {"word": "gym"}


# -- entry-point plugins --------------------------------------------------------------------------------

PLUGIN = '''
import toolrl_env
from tools.tool import tool

RUNS = []


@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    RUNS.append(text)
    return text.upper()


def register():
    toolrl_env.register_suite(
        "FakePlugin",
        tools=[shout],
        tasks=[{"id": "s1", "user": "Shout hi.", "gold_calls": [{"name": "shout", "parameters": {"text": "hi"}}],
                "answer": "HI"}],
    )
'''

BROKEN_PLUGIN = """
def register():
    raise RuntimeError("plugin exploded")
"""


def install_plugin(site: Path, dist: str, entry: str, module: str, source: str | None) -> None:
    """A distribution as pip leaves it: `<dist>-0.1.dist-info` with METADATA and entry_points.txt, plus its module."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[toolrl_env.suites]\n{entry} = {module}:register\n")
    if source is not None:
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered: list[str]) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    registered.append("FakePlugin")
    yield tmp_path
    for module in ("fake_suite_mod", "broken_suite_mod"):
        sys.modules.pop(module, None)


def test_load_suite_plugins_registers_a_suite_from_an_entry_point(plugin_site: Path) -> None:
    install_plugin(plugin_site, "fake_pkg", "fake", "fake_suite_mod", PLUGIN)
    assert "ToolEnv-FakePlugin-v0" not in gym.registry
    loaded = load_suite_plugins()
    assert "fake" in loaded
    env = gym.make("ToolEnv-FakePlugin-v0")
    env.reset(seed=0)
    call = {"name": "shout", "parameters": {"text": "hi"}}
    obs, reward, _, _, _ = env.step("<think> shout </think>\n<tool_call>\n" + json.dumps(call) + "\n</tool_call>")
    assert reward == 4.0
    assert obs[1]["content"].endswith('<obs> [{"name": "shout", "results": "HI"}] </obs>')
    assert sys.modules["fake_suite_mod"].RUNS == ["hi"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_a_failing_plugin_warns_and_the_others_still_load(plugin_site: Path) -> None:
    install_plugin(plugin_site, "fake_pkg", "fake", "fake_suite_mod", PLUGIN)
    install_plugin(plugin_site, "broken_pkg", "broken", "broken_suite_mod", BROKEN_PLUGIN)
    install_plugin(plugin_site, "ghost_pkg", "ghost", "no_such_module_for_toolrl", None)
    with pytest.warns(UserWarning) as caught:
        loaded = load_suite_plugins()
    messages = [str(w.message) for w in caught]
    assert any("'broken'" in m and "plugin exploded" in m for m in messages), messages
    assert any("'ghost'" in m and "no_such_module_for_toolrl" in m for m in messages), messages
    assert "fake" in loaded and "broken" not in loaded and "ghost" not in loaded
    assert "ToolEnv-FakePlugin-v0" in gym.registry
