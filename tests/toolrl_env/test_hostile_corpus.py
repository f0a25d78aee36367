"""The standing corpus of hostile actions (`tests/fixtures/hostile_actions.py`) through the parser, the reward of
every preset, and a step of every built-in env id in every mode, on tasks that offer every kind of tool.

Each step runs under a CPU-time deadline (`tool_envs.deadline`), so a hang fails the run instead of stalling
it. Nothing may raise, the reward stays within the preset's bounds and at most what the gold earns, nothing the
actions name is executed (the sentinel file never appears, the working folder stays empty, /etc/passwd and the
real working folder never show up in an observation), our own tools explain every error they give, and every
step returns the env's documented info.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.hostile_actions import STATIC, sentinel_paths, tool_entries
from tests.fixtures.tool_envs import CASE_IDS, ENV_CASES, StepTimeout, check_step, deadline, make_env, tool_env
from toolrl_env.env import ToolEnv
from toolrl_env.envs.bfcl.backends import backend_tools
from toolrl_env.format import ParsedTurn, parse, render_turn
from toolrl_env.rewards import PRESETS, RewardConfig, compute_score, reward_bounds
from toolrl_env.task import Task
from tools.calculator import CALCULATE, CONVERT_UNITS

STEP_SECONDS = 5.0  # CPU seconds, generous: the slowest corpus step (100,000 call lines) takes about 3
# BFCL multi-turn tasks whose backends, together, are all eight (file system, math, and the six others).
BFCL_BACKEND_PAIRS = [
    ("GorillaFileSystem", "MathAPI"),
    ("TwitterAPI", "VehicleControlAPI"),
    ("TicketAPI", "TravelAPI"),
    ("MessageAPI", "TradingBot"),
]
BFCL_CATEGORIES = [
    "simple_python",
    "simple_java",
    "simple_javascript",
    "parallel_multiple",
    "irrelevance",
    "live_multiple",
    "live_relevance",
]
# Our tools raise ValueError with a message that names the bad value; an error observation naming another
# exception is a case a tool did not handle. BFCL's backends are BFCL's code, whose TypeErrors are expected.
UNHANDLED_ERROR = re.compile(r"^(?!ValueError\b)[A-Z]\w*(Error|Exception)\b")
THIRD_PARTY_TOOLS = {"ToolEnv-BFCLMultiTurn-v0"}


def corpus_tasks(env_id: str, env: ToolEnv) -> list[Task]:
    """The tasks the corpus runs on: for the benchmarks, ones that offer every kind of tool they have."""
    if env_id == "ToolEnv-BFCLMultiTurn-v0":
        return [
            next(t for t in env.tasks if tuple(t.suite_options["involved_classes"]) == p) for p in BFCL_BACKEND_PAIRS
        ]
    if env_id == "ToolEnv-BFCL-v0":
        return [next(t for t in env.tasks if t.metadata["category"] == c) for c in BFCL_CATEGORIES]
    if env_id == "ToolEnv-APIBank-v0":
        return [next(t for t in env.tasks if t.metadata["level"] == level) for level in (1, 2, 3)]
    if env_id == "ToolEnv-Calc-v0":
        return [env.tasks[0], next(t for t in env.tasks if len(t.turns) == 2)]
    return env.tasks[:4]


@pytest.fixture
def clean_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in an empty working folder; afterwards it must still be empty and no sentinel may exist anywhere."""
    monkeypatch.chdir(tmp_path)
    for path in sentinel_paths(tmp_path):
        path.unlink(missing_ok=True)  # left by someone else's run: it would hide ours
    yield tmp_path
    assert [p for p in sentinel_paths(tmp_path) if p.exists()] == [], "a hostile action ran"
    assert list(tmp_path.iterdir()) == [], "an action wrote into the working folder"


def _passwd_line() -> str | None:
    try:
        return Path("/etc/passwd").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "mode"), ENV_CASES, ids=CASE_IDS)
def test_the_hostile_corpus_through_every_env(
    rlla_data: dict[str, Any], env_id: str, mode: str, clean_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(env_id, mode, str(rlla_data["json"]))
    tool_rl = tool_env(env)
    secrets = [s for s in (_passwd_line(), str(clean_disk)) if s]
    failures: dict[str, str] = {}
    steps = 0
    tasks = corpus_tasks(env_id, tool_rl)
    for task in tasks:
        env.reset(seed=0, options={"task_id": task.id})
        gold = tool_rl.score(tool_rl.current_gold().text or "").total
        entries = {**STATIC, **tool_entries(tool_rl.offered_tools())}
        for name, action in entries.items():
            env.reset(seed=0, options={"task_id": task.id})
            try:
                with deadline(STEP_SECONDS):
                    result = env.step(action)
                check_step(env_id, tool_rl, result, 0)
                assert result[1] <= gold + 1e-9, f"reward {result[1]} above the gold's {gold}"
                observation = result[0][1]["content"]
                leaked = [s for s in secrets if s in observation]
                assert not leaked, f"the observation shows {leaked}"
                if env_id not in THIRD_PARTY_TOOLS:
                    errors = [str(r["content"].get("error")) for r in result[4]["tool_results"] if not r["ok"]]
                    unhandled = [e for e in errors if UNHANDLED_ERROR.match(e)]
                    assert not unhandled, f"a tool did not handle its input: {unhandled}"
            except (Exception, StepTimeout) as error:
                failures[f"{task.id}: {name}"] = f"{type(error).__name__}: {str(error)[:300]}"
            steps += 1
    with capsys.disabled():
        print(f"\nhostile corpus {env_id} {mode}: {steps} steps over {len(tasks)} tasks")
    assert not failures, "\n".join(f"{name} -> {why}" for name, why in failures.items())


# Tools of every kind the envs offer, for the corpus entries that call them.
SCORE_TOOLS = [CALCULATE, CONVERT_UNITS, *backend_tools("GorillaFileSystem"), *backend_tools("MathAPI")]
SCORE_GOLDS = [
    render_turn("t", [{"name": "calculate", "parameters": {"expression": "12 * 7"}}]),
    render_turn("t", [{"name": "cd", "parameters": {"folder": "docs"}}, {"name": "ls", "parameters": {}}]),
    render_turn("t", [{"name": "echo", "parameters": {"content": "x", "file_name": "a.txt"}}], response="done"),
    render_turn("t", response="84"),
]
# Training steps around each schedule's turning points; presets without a schedule score the same at every step.
SCORE_STEPS = [0, 29, 30, 75, 150, 300]


def steps_of(config: RewardConfig) -> list[int]:
    scheduled = (config.two_stage_step, config.schedule_steps, config.length_words_schedule) != (None, None, None)
    return SCORE_STEPS if scheduled else [0]


@pytest.mark.slow
def test_the_hostile_corpus_through_the_parser_and_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    entries = {**STATIC, **tool_entries(SCORE_TOOLS)}
    failures: dict[str, str] = {}
    scored = 0
    for name, action in entries.items():
        try:
            with deadline(STEP_SECONDS):
                assert isinstance(parse(action), ParsedTurn)
            for preset, config in PRESETS.items():
                for gold in SCORE_GOLDS:
                    for step in steps_of(config):
                        with deadline(STEP_SECONDS):
                            result = compute_score(action, gold, step=step, preset=preset)
                        low, high = reward_bounds(config, step)
                        assert math.isfinite(result.total) and low - 1e-9 <= result.total <= high + 1e-9
                        if config.length_words is None:  # ToolRL's length reward can out-earn a short gold
                            assert result.total <= compute_score(gold, gold, step=step, preset=preset).total
                        scored += 1
        except (Exception, StepTimeout) as error:
            failures[name] = f"{type(error).__name__}: {str(error)[:300]}"
    with capsys.disabled():
        print(f"\nhostile corpus parse + compute_score: {len(entries)} entries, {scored} scores")
    assert not failures, "\n".join(f"{name} -> {why}" for name, why in failures.items())
