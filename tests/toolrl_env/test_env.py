"""ToolEnv: the env contract on every registered id, ToolRL's single-turn reward on RLLA rows, multi-turn
episodes with the real calculator, bad actions, scheduled rewards, and snapshots."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import pyarrow.parquet as pq
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from toolrl_env import ToolEnv, compute_score
from toolrl_env import env as env_module
from toolrl_env.prompt import render_system
from toolrl_env.rewards import resolve_config, reward_bounds
from toolrl_env.task import GoldStep, Task, Turn
from tools.calculator import CALCULATE, CONVERT_UNITS, CalculatorSuite, convert_units, evaluate
from tools.call import ToolCall
from tools.tool import Tool

FIXTURES = Path(__file__).parent.parent / "fixtures"
REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("ToolEnv-"))

THINK = "<think> t </think>\n"
CALC_12x7 = {"name": "calculate", "parameters": {"expression": "12 * 7"}}


def call_action(*calls: dict[str, Any], think: str = THINK) -> str:
    return think + "<tool_call>\n" + "\n".join(json.dumps(c) for c in calls) + "\n</tool_call>"


def answer_action(text: str) -> str:
    return f"{THINK}<response> {text} </response>"


def obs_record(*results: tuple[str, Any]) -> str:
    """A tool-result record as ToolRL's RLLA data writes it."""
    return "<obs> " + json.dumps([{"name": name, "results": value} for name, value in results]) + " </obs>"


def gold_steps(task: Task) -> list[GoldStep]:
    return [step for turn in task.turns for step in turn.steps]


def gold_action(step: GoldStep) -> str:
    """The gold step as the policy would write it (ToolRL's ground truth; rendered when not given verbatim)."""
    assert step.text is not None
    return step.text


@pytest.fixture
def env_kwargs(rlla_data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each registered id needs to be made (ids not listed need nothing)."""
    return {
        "ToolEnv-RLLA-v0": {"data_path": str(rlla_data["json"])},
        "ToolEnv-APIBank-v0": {"data_path": str(FIXTURES / "api_bank")},
        "ToolEnv-Bamboogle-v0": {
            "data_path": str(FIXTURES / "bamboogle.json"),
            "corpus_path": str(FIXTURES / "bamboogle_corpus.jsonl"),
        },
    }


def calc_env(**kwargs: Any) -> ToolEnv:
    env = gym.make("ToolEnv-Calc-v0", **{"num_tasks": 40, "seed": 0, **kwargs}).unwrapped
    assert isinstance(env, ToolEnv)
    return env


def hand_task() -> Task:
    """Two user turns, each a call then an answer, with results worked out by hand."""
    return Task(
        id="hand",
        tools=[CALCULATE, CONVERT_UNITS],
        turns=[
            Turn(user="What is 12 * 7?", steps=[GoldStep(calls=[ToolCall(**CALC_12x7)]), GoldStep(answer="84")]),
            Turn(
                user="Convert 10 cm to m.",
                steps=[
                    GoldStep(
                        calls=[
                            ToolCall(name="convert_units", parameters={"value": 10, "from_unit": "cm", "to_unit": "m"})
                        ]
                    ),
                    GoldStep(answer="0.1"),
                ],
            ),
        ],
    )


def hand_env(**kwargs: Any) -> ToolEnv:
    return ToolEnv([hand_task()], suite=CalculatorSuite(), **{"mode": "multi_turn", **kwargs})


def rollout(env: gym.Env, seed: int, episodes: int = 3) -> list[Any]:
    """Everything the env returns over a few episodes of seeded random actions."""
    env.action_space.seed(seed)
    trace: list[Any] = []
    for episode in range(episodes):
        trace.append(env.reset(seed=seed if episode == 0 else None))
        done = False
        while not done:
            step = env.step(env.action_space.sample())
            trace.append(step)
            done = step[2] or step[3]
    return trace


# -- the contract, on every registered id -----------------------------------------------------------------


def test_registry_has_the_builtin_ids() -> None:
    assert {"ToolEnv-RLLA-v0", "ToolEnv-Calc-v0"} <= set(REGISTERED)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_check_env_passes(env_id: str, env_kwargs: dict[str, dict[str, Any]]) -> None:
    env = gym.make(env_id, **env_kwargs.get(env_id, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_seeded_rollout_is_deterministic(env_id: str, env_kwargs: dict[str, dict[str, Any]]) -> None:
    kwargs = env_kwargs.get(env_id, {})
    first = rollout(gym.make(env_id, **kwargs), seed=123)
    assert first == rollout(gym.make(env_id, **kwargs), seed=123)
    assert first != rollout(gym.make(env_id, **kwargs), seed=124)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_pickle_round_trip_of_a_fresh_env(env_id: str, env_kwargs: dict[str, dict[str, Any]]) -> None:
    env = gym.make(env_id, **env_kwargs.get(env_id, {}))
    copy = pickle.loads(pickle.dumps(env))
    assert rollout(copy, seed=5) == rollout(env, seed=5)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_pickle_round_trip_mid_episode(env_id: str, env_kwargs: dict[str, dict[str, Any]]) -> None:
    env = gym.make(env_id, **env_kwargs.get(env_id, {}))
    env.action_space.seed(9)
    _, info = env.reset(seed=9)
    if env.unwrapped.config.mode == "multi_turn":
        # A gold call keeps a multi-turn episode going and puts a tool result into the state.
        task = next(t for t in env.unwrapped.tasks if t.id == info["task_id"])
        first_gold = gold_steps(task)[0]
        *_, done, truncated, _ = env.step(gold_action(first_gold))
        assert not (done or truncated)
    copy = pickle.loads(pickle.dumps(env))  # the action space's RNG travels with it

    def finish(e: gym.Env) -> list[Any]:
        trace, done = [], False
        while not done:
            step = e.step(e.action_space.sample())
            trace.append(step)
            done = step[2] or step[3]
        return trace

    assert finish(copy) == finish(env)


@pytest.mark.parametrize("env_id", REGISTERED)
def test_reset_with_task_id_picks_that_task(env_id: str, env_kwargs: dict[str, dict[str, Any]]) -> None:
    env = gym.make(env_id, **env_kwargs.get(env_id, {}))
    tasks = env.unwrapped.tasks
    for task in (tasks[-1], tasks[0]):
        for seed in (0, 1, None):
            obs, info = env.reset(seed=seed, options={"task_id": task.id})
            assert info["task_id"] == task.id
            assert (task.turns[0].user or task.history) in obs[1]["content"]
            _, _, _, _, info = env.step(env.action_space.sample())
            assert info["task_id"] == task.id
    with pytest.raises(KeyError, match=r"unknown task_id 'no-such-task'"):
        env.reset(options={"task_id": "no-such-task"})


# -- ToolEnv-RLLA-v0: ToolRL's single-turn training step ------------------------------------------------


def test_rlla_without_data_path_says_where_the_files_come_from() -> None:
    with pytest.raises(ValueError, match=r"data_path") as raised:
        gym.make("ToolEnv-RLLA-v0")
    message = str(raised.value)
    assert "qiancheng0/ToolRL" in message
    assert ".json" in message and ".parquet" in message


def test_rlla_observation_is_the_parquet_prompt(rlla_data: dict[str, Any]) -> None:
    prompts = pq.read_table(rlla_data["parquet"]).column("prompt").to_pylist()
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["parquet"]))
    for i, prompt in enumerate(prompts):
        obs, info = env.reset(options={"task_id": f"rlla_fixture-{i}"})
        assert obs == prompt
        assert info["task_id"] == f"rlla_fixture-{i}"


def test_rlla_observation_is_instruction_and_input(rlla_data: dict[str, Any]) -> None:
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["json"]))
    for i, row in enumerate(rlla_data["rows"]):
        obs, _ = env.reset(options={"task_id": f"rlla_fixture-{i}"})
        assert obs == [{"role": "system", "content": row["instruction"]}, {"role": "user", "content": row["input"]}]


def ground_truths(rows: list[dict[str, Any]]) -> list[str]:
    """ToolRL's ground truth per row; row 3's thought mentions <tool_call>, so its RL target has the placeholder."""
    truths = [row["output"] for row in rows]
    tail = truths[3][truths[3].index("</think>") :]
    truths[3] = (
        "<think> I should use the appropriate tool with proper parameters to respond to the user's need. " + tail
    )
    return truths


@pytest.mark.parametrize("file_type", ["json", "parquet"])
def test_rlla_single_turn_reward_is_toolrls_score(rlla_data: dict[str, Any], file_type: str) -> None:
    rows = rlla_data["rows"]
    truths = ground_truths(rows)
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data[file_type]))
    env.action_space.seed(0)
    actions = [row["output"] for row in rows] + [truths[3], "", "<think> hm </think>", env.action_space.sample()]
    actions += [env.action_space.sample() for _ in range(8)]
    seen = set()
    for i, truth in enumerate(truths):
        for action in actions:
            env.reset(options={"task_id": f"rlla_fixture-{i}"})
            _, reward, terminated, truncated, info = env.step(action)
            expected = compute_score(action, truth)
            assert (terminated, truncated) == (True, False)
            assert reward == expected.total
            assert info["reward_breakdown"] == expected.model_dump()
            assert info["task_id"] == f"rlla_fixture-{i}"
            assert set(info["parsed"]) >= {"think", "tool_calls", "response", "format_ok", "errors"}
            assert {"exact_match", "format_ok", "tool_calls", "tool_errors", "steps"} <= set(info["metrics"])
            assert info["metrics"]["steps"] == 1
            assert info["tool_results"] == []  # single-turn executes nothing
            seen.add(reward)
            with pytest.raises(RuntimeError):
                env.step(action)
    assert len(seen) > 4  # the actions really score differently


def test_rlla_gold_output_scores_the_maximum(rlla_data: dict[str, Any]) -> None:
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["json"]))
    for i, truth in enumerate(ground_truths(rlla_data["rows"])):
        env.reset(options={"task_id": f"rlla_fixture-{i}"})
        _, reward, _, _, info = env.step(truth)
        has_call = "<tool_call>" in truth
        assert reward == (4.0 if has_call else 1.0)
        assert info["metrics"]["exact_match"] is True
        assert info["parsed"]["format_ok"] is True
        if not has_call:
            assert info["metrics"]["answer_match"] is True
    # The parsed calls reach the learner: row 0's two gold calls.
    env.reset(options={"task_id": "rlla_fixture-0"})
    _, _, _, _, info = env.step(rlla_data["rows"][0]["output"])
    assert info["parsed"]["tool_calls"] == [
        {"name": "Get Weather", "parameters": {"city": "Paris", "days": 3}},
        {"name": "Get Weather", "parameters": {"city": "Rome", "days": 3}},
    ]


# -- multi-turn on ToolEnv-Calc-v0 ----------------------------------------------------------------------


def expected_result(call: ToolCall) -> Any:
    """The calculator's answer for a gold call, computed without the env."""
    if call.name == "calculate":
        return evaluate(**call.parameters)
    return convert_units(**call.parameters)


def test_hand_task_gold_episode_runs_the_calculator() -> None:
    env = hand_env()
    obs, info = env.reset(seed=0)
    assert info == {"task_id": "hand", "turn": 0}
    assert obs[1]["content"] == "**Dialogue Records History**\n<user> What is 12 * 7? </user>"
    task = hand_task()
    call_1, answer_1 = gold_steps(task)[:2]

    obs, reward, terminated, truncated, info = env.step(gold_action(call_1))
    assert (reward, terminated, truncated) == (4.0, False, False)
    assert info["tool_results"] == [{"name": "calculate", "ok": True, "content": 84}]
    assert obs[1]["content"].endswith(
        "<user> What is 12 * 7? </user>\n\n" + gold_action(call_1) + "\n" + obs_record(("calculate", 84))
    )

    obs, reward, terminated, truncated, info = env.step(gold_action(answer_1))
    assert (reward, terminated, truncated, info["turn"]) == (1.0, False, False, 0)
    # The second user message follows the first answer.
    assert obs[1]["content"].endswith(gold_action(answer_1) + "\n\n<user> Convert 10 cm to m. </user>")
    assert info["metrics"] == {}

    obs, reward, _, _, info = env.step(
        call_action({"name": "convert_units", "parameters": {"value": 10, "from_unit": "cm", "to_unit": "m"}})
    )
    assert info["turn"] == 1
    assert info["tool_results"] == [{"name": "convert_units", "ok": True, "content": 0.1}]
    assert obs[1]["content"].endswith(obs_record(("convert_units", 0.1)))

    _, reward, terminated, truncated, info = env.step(answer_action("10 cm is 0.1 m."))
    assert (terminated, truncated) == (True, False)
    metrics = info["metrics"]
    assert metrics["exact_match"] is True and metrics["answer_match"] is True
    assert (metrics["tool_calls"], metrics["tool_errors"], metrics["steps"]) == (2, 0, 4)


def test_every_generated_task_replays_its_gold_with_full_reward() -> None:
    env = calc_env()
    kinds = set()
    for task in env.tasks:
        obs, _ = env.reset(options={"task_id": task.id})
        steps = gold_steps(task)
        kinds.add((len(task.turns), max(len(s.calls) for s in steps)))
        for n, gold in enumerate(steps, start=1):
            obs, reward, terminated, truncated, info = env.step(gold_action(gold))
            assert truncated is False
            assert terminated is (n == len(steps))
            if gold.calls:
                assert info["reward_breakdown"]["format"] == 1.0 and info["reward_breakdown"]["correctness"] == 3.0
                assert reward == 4.0
                results = [(c.name, expected_result(c)) for c in gold.calls]
                assert [(r["name"], r["content"]) for r in info["tool_results"]] == results
                assert all(r["ok"] for r in info["tool_results"])
                assert obs[1]["content"].endswith("\n" + obs_record(*results))
            else:
                assert reward == 1.0
                assert info["tool_results"] == []
        assert info["metrics"]["exact_match"] is True
        assert info["metrics"]["answer_match"] is True
        assert info["metrics"]["tool_errors"] == 0
    # The set covers one- and two-turn tasks, and turns with two parallel calls.
    assert {t for t, _ in kinds} == {1, 2} and {c for _, c in kinds} == {1, 2}


def test_two_turn_task_appends_the_second_user_message() -> None:
    env = calc_env()
    task = next(t for t in env.tasks if len(t.turns) == 2)
    env.reset(options={"task_id": task.id})
    first_call, first_answer = task.turns[0].steps
    env.step(gold_action(first_call))
    obs, _, terminated, _, info = env.step(gold_action(first_answer))
    assert not terminated and info["turn"] == 0
    assert obs[1]["content"].endswith(f"{gold_action(first_answer)}\n\n<user> {task.turns[1].user} </user>")
    _, _, _, _, info = env.step(gold_action(task.turns[1].steps[0]))
    assert info["turn"] == 1


def test_system_prompts_stay_right_and_bounded_over_many_tasks() -> None:
    # Each task's prompt was kept for the env's lifetime: 8 MiB over BFCL's tasks in the soak benchmark.
    tasks = [
        Task(id=f"t{i}", tools=[Tool(name=f"tool_{i}")], turns=[Turn(user="u", steps=[GoldStep(answer="r")])])
        for i in range(3 * env_module._SYSTEMS_KEPT)
    ]
    env = ToolEnv(tasks)
    for task in tasks + tasks[::-1]:
        obs, _ = env.reset(options={"task_id": task.id})
        assert obs[0]["content"] == render_system(task.tools)
    assert len(env._systems) == env_module._SYSTEMS_KEPT


def test_max_turns_truncates_an_agent_that_keeps_calling() -> None:
    env = hand_env(max_turns=3)
    env.reset(seed=0)
    for n in range(1, 4):
        _, _, terminated, truncated, info = env.step(call_action(CALC_12x7))
        assert terminated is False
        assert truncated is (n == 3)
    assert info["metrics"]["steps"] == 3
    assert info["metrics"]["tool_calls"] == 3
    with pytest.raises(RuntimeError, match="reset"):
        env.step(call_action(CALC_12x7))


def test_registered_calc_env_honours_max_turns() -> None:
    env = calc_env(max_turns=2)
    task = env.tasks[0]
    env.reset(seed=0, options={"task_id": task.id})
    first = gold_steps(task)[0]
    assert env.step(gold_action(first))[3] is False
    assert env.step(gold_action(first))[3] is True


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            {"name": "teleport", "parameters": {"to": "Mars"}},
            "unknown tool 'teleport'; offered: calculate, convert_units",
        ),
        ({"name": "calculate", "parameters": {"expr": "1 + 1"}}, "missing required parameter: 'expression'"),
        ({"name": "calculate", "parameters": {"expression": 84}}, "parameter 'expression' should be string"),
        ({"name": "calculate", "parameters": {"expression": "1 / 0"}}, "division by zero"),
        ({"name": "convert_units", "parameters": {"value": 1, "from_unit": "kg", "to_unit": "m"}}, "cannot convert"),
    ],
)
def test_tool_errors_become_observations(call: dict[str, Any], error: str) -> None:
    env = hand_env()
    env.reset(seed=0)
    obs, _, terminated, truncated, info = env.step(call_action(call, CALC_12x7))
    assert not (terminated or truncated)
    bad, good = info["tool_results"]
    assert bad["ok"] is False and error in bad["content"]["error"]
    assert good == {"name": "calculate", "ok": True, "content": 84}
    assert error in obs[1]["content"].rpartition("<obs>")[2]
    env.step(call_action(call))
    _, _, _, _, info = env.step(answer_action("84"))
    _, _, _, _, info = env.step(call_action(call))
    _, _, terminated, _, info = env.step(answer_action("0.1"))
    assert terminated
    assert info["metrics"]["tool_errors"] == 3
    assert info["metrics"]["tool_calls"] == 4


def test_step_before_reset_and_after_the_end_raises() -> None:
    env = hand_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(answer_action("84"))
    env.reset(seed=0)
    env.step(answer_action("84"))
    _, _, terminated, _, _ = env.step(answer_action("0.1"))
    assert terminated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(answer_action("0.1"))
    env.reset(seed=0)  # a new episode can start
    assert env.step(answer_action("84"))[2] is False


# -- scheduled rewards ----------------------------------------------------------------------------------

# ToolRL's schedule_reward by hand: format in [-2 + 2n/150 (capped at -1), 2 - n/150 (floored at 1)],
# correctness in [-2 - n/150 (floored at -3), 2 + n/150 (capped at 3)].
SCHEDULE = {
    # n: (format max, format min, correctness max, correctness min)
    0: (2.0, -2.0, 2.0, -2.0),
    30: (1.8, -1.6, 2.2, -2.2),
    75: (1.5, -1.0, 2.5, -2.5),
    120: (1.2, -1.0, 2.8, -2.8),
    150: (1.0, -1.0, 3.0, -3.0),
    300: (1.0, -1.0, 3.0, -3.0),
}


@pytest.mark.parametrize("n", sorted(SCHEDULE))
def test_schedule_reward_follows_the_training_step_given_at_reset(n: int) -> None:
    fmt_max, fmt_min, correct_max, correct_min = SCHEDULE[n]
    env = hand_env(reward="schedule_reward")

    env.reset(seed=0, options={"training_step": n})
    _, _, _, _, info = env.step(call_action(CALC_12x7))
    assert info["reward_breakdown"]["format"] == pytest.approx(fmt_max, abs=1e-12)
    assert info["reward_breakdown"]["correctness"] == pytest.approx(correct_max, abs=1e-12)
    _, reward, _, _, _ = env.step(answer_action("84"))
    assert reward == pytest.approx(fmt_max, abs=1e-12)

    env.reset(seed=0, options={"training_step": n})
    _, reward, _, _, info = env.step("")
    assert reward == pytest.approx(fmt_min + correct_min, abs=1e-12)
    assert reward == pytest.approx(reward_bounds(resolve_config("schedule_reward"), n)[0], abs=1e-12)


def test_set_training_step_changes_the_reward_mid_episode_and_persists() -> None:
    env = hand_env(reward="schedule_reward")
    env.reset(seed=0)
    assert env.step(call_action(CALC_12x7))[1] == pytest.approx(2.0 + 2.0)
    env.set_training_step(75)
    assert env.step(answer_action("84"))[1] == pytest.approx(1.5)
    env.reset(seed=0)  # no training_step option: the step set before stays
    env.step(call_action(CALC_12x7))
    assert env.step(answer_action("84"))[1] == pytest.approx(1.5)
    env.reset(seed=0, options={"training_step": 30})
    env.step(call_action(CALC_12x7))
    assert env.step(answer_action("84"))[1] == pytest.approx(1.8)
    with pytest.raises(ValueError, match="training step"):
        env.set_training_step(-1)


def test_training_step_through_make_and_vector_call() -> None:
    env = gym.make("ToolEnv-Calc-v0", num_tasks=5, reward="schedule_reward", training_step=75)
    env.reset(seed=0)
    assert env.step("")[1] == pytest.approx(-1.0 - 2.5)
    envs = gym.make_vec("ToolEnv-Calc-v0", num_envs=2, vectorization_mode="sync", num_tasks=5, reward="schedule_reward")
    envs.reset(seed=0)
    assert list(envs.step(("", ""))[1]) == pytest.approx([-4.0, -4.0])  # step 0: -2 + -2
    envs.call("set_training_step", 75)
    envs.reset(seed=0)
    assert list(envs.step(("", ""))[1]) == pytest.approx([-3.5, -3.5])


def test_unscheduled_reward_ignores_the_training_step() -> None:
    env = hand_env()
    env.reset(seed=0, options={"training_step": 75})
    assert env.step(call_action(CALC_12x7))[1] == 4.0
    assert env.step(answer_action("84"))[1] == 1.0


# -- bad actions ----------------------------------------------------------------------------------------

# The lowest total of a step whose gold makes a call, from each preset's ranges at training step 0:
# format min + correctness min (schedule_reward starts at [-2, 2] for both; max1_step30_max3 divides
# correctness by 3 before step 30).
LOWEST_WITH_CALL = {
    "default": -3.0,
    "coarse": -3.0,
    "correct_max1": -1.0,
    "schedule_reward": -4.0,
    "max1_step30_max3": -1.0,
}
LOWEST_WITHOUT_CALL = {
    "default": 0.0,
    "coarse": 0.0,
    "correct_max1": 0.0,
    "schedule_reward": -2.0,
    "max1_step30_max3": 0.0,
}

# Actions with no usable call block, each with the explanation `info["parsed"]["errors"]` must give.
MALFORMED = {
    "empty": ("", "missing <think>"),
    "1 MB": ("x" * 1_000_000, "missing <think>"),
    "NUL bytes": ("\x00" * 1000, "missing <think>"),
    "NUL in tags": ("<think>\x00</think>\n<tool_call>\x00", "unclosed <tool_call>"),
    "unclosed tool_call": (THINK + "<tool_call>\n" + json.dumps(CALC_12x7), "unclosed <tool_call>"),
    "no closing think": ("<think> t\n<tool_call>\n" + json.dumps(CALC_12x7), "missing <think>"),
    "think only": ("<think> t </think>", "neither <tool_call> nor <response>"),
    "many think tags": ("<think>" * 100_000, "missing <think>"),
    "None": (None, "expected a str action, got NoneType"),
    "int": (123, "expected a str action, got int"),
    "bytes": (b"<think> t </think>", "expected a str action, got bytes"),
    "list": (["<think>"], "expected a str action, got list"),
}


@pytest.mark.parametrize("preset", sorted(LOWEST_WITH_CALL))
@pytest.mark.parametrize("mode", ["single_turn", "multi_turn"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_action_gets_the_lowest_reward_and_an_explanation(case: str, mode: str, preset: str) -> None:
    action, explanation = MALFORMED[case]
    env = hand_env(mode=mode, reward=preset)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(action)
    assert reward == pytest.approx(LOWEST_WITH_CALL[preset], abs=1e-12)
    assert reward == pytest.approx(reward_bounds(resolve_config(preset))[0], abs=1e-12)
    assert info["parsed"]["format_ok"] is False
    assert any(explanation in e for e in info["parsed"]["errors"]), info["parsed"]["errors"]
    assert info["tool_results"] == []


@pytest.mark.parametrize("preset", sorted(LOWEST_WITHOUT_CALL))
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_action_on_a_response_only_row(rlla_data: dict[str, Any], case: str, preset: str) -> None:
    action, explanation = MALFORMED[case]
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["json"]), reward=preset)
    env.reset(options={"task_id": "rlla_fixture-1"})
    _, reward, terminated, _, info = env.step(action)
    assert terminated
    assert reward == pytest.approx(LOWEST_WITHOUT_CALL[preset], abs=1e-12)
    assert info["reward_breakdown"]["correctness"] == 0.0  # the gold makes no call
    assert any(explanation in e for e in info["parsed"]["errors"])


def line_action(line: str) -> str:
    return THINK + "<tool_call>\n" + line + "\n</tool_call>"


# Well-shaped turns whose calls are wrong: ToolRL's format reward only reads the shape, so format is 1,
# and correctness follows ToolRL's matching, worked out by hand against the gold [calculate("12 * 7")]
# (S_max = 1 + (1 + 1) = 3; reward = 6 * S / 3 - 3).
WRONG_CALLS = {
    # case: (action, format, correctness, parse error or None, tool error in multi-turn or None)
    "JSON array line": (line_action("[1, 2]"), 1.0, -3.0, "expected a JSON object, got list", None),
    "null line": (line_action("null"), 1.0, -3.0, "expected a JSON object, got NoneType", None),
    "not JSON": (line_action("{name: calculate}"), 1.0, -3.0, "not JSON", None),
    "parameters not an object": (
        line_action('{"name": "calculate", "parameters": "12 * 7"}'),
        1.0,
        -3.0,
        "'parameters' must be an object",
        None,
    ),
    "name not a string": (line_action('{"name": 5, "parameters": {}}'), 1.0, -3.0, "'name'", None),
    "no parameters": (line_action('{"name": "calculate"}'), 1.0, -3.0, "missing field 'parameters'", None),
    # S = 0: no name in common, no same-name prediction.
    "unknown tool": (
        call_action({"name": "teleport", "parameters": {"expression": "12 * 7"}}),
        1.0,
        -3.0,
        None,
        "unknown tool 'teleport'",
    ),
    # S = 1 + (1/2 + 1): the names, half the parameter names, the one value.
    "extra parameter": (
        call_action({"name": "calculate", "parameters": {"expression": "12 * 7", "precision": 2}}),
        1.0,
        2.0,
        None,
        "unknown parameter 'precision'",
    ),
    # S = 1 + (1 + 0): the names and parameter names, not the value.
    "wrong value type": (
        call_action({"name": "calculate", "parameters": {"expression": 84}}),
        1.0,
        1.0,
        None,
        "should be string",
    ),
    # ToolRL reads the first block: the calls match, the shape does not.
    "repeated tool_call block": (
        call_action(CALC_12x7) + "\n<tool_call>\n" + json.dumps(CALC_12x7) + "\n</tool_call>",
        0.0,
        3.0,
        "tags out of order, repeated",
        None,
    ),
    "tags out of order": (
        "<tool_call>\n" + json.dumps(CALC_12x7) + "\n</tool_call>\n<think> t </think>",
        0.0,
        3.0,
        "tags out of order",
        None,
    ),
}


@pytest.mark.parametrize("mode", ["single_turn", "multi_turn"])
@pytest.mark.parametrize("case", sorted(WRONG_CALLS))
def test_wrong_calls_score_as_toolrl_does_and_are_explained(case: str, mode: str) -> None:
    action, fmt, correctness, parse_error, tool_error = WRONG_CALLS[case]
    env = hand_env(mode=mode)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(action)
    assert (info["reward_breakdown"]["format"], info["reward_breakdown"]["correctness"]) == (fmt, correctness)
    assert reward == fmt + correctness
    errors = info["parsed"]["errors"]
    if parse_error is not None:
        assert info["parsed"]["format_ok"] is False
        assert any(parse_error in e for e in errors), errors
    if mode == "multi_turn" and tool_error is not None:
        assert any(tool_error in r["content"]["error"] for r in info["tool_results"] if not r["ok"])


# -- arbitrary text never breaks a step -----------------------------------------------------------------

_TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "<obs>", "\n", " ", "\x00"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_PARAMETER = st.sampled_from(["expression", "value", "from_unit", "to_unit", "city", "days", "name", "x"])
_ARGUMENT = _JSON | st.sampled_from(["12 * 7", "1 / 0", "2 ** 99999", "cm", "m", "kg", "Paris"])
_CALL_LINE = st.builds(
    lambda name, params: json.dumps({"name": name, "parameters": params}),
    st.sampled_from(["calculate", "convert_units", "Get Weather", "Search Managers", "nope"]),
    st.dictionaries(_PARAMETER, _ARGUMENT, max_size=4),
)
_LINE = _CALL_LINE | _JSON.map(json.dumps) | st.text(max_size=20)
_SHAPED = st.builds(
    lambda think, lines, response: (
        f"<think>{think}</think>\n<tool_call>\n"
        + "\n".join(lines)
        + "\n</tool_call>"
        + ("" if response is None else f"\n<response>{response}</response>")
    ),
    st.text(max_size=20),
    st.lists(_LINE, min_size=1, max_size=3),
    st.none() | st.text(max_size=20),
)
ACTIONS = st.text() | st.lists(st.sampled_from(_TAGS) | _LINE, max_size=12).map("".join) | _SHAPED


def check_step(env: ToolEnv, action: str, bounds: tuple[float, float]) -> bool:
    obs, reward, terminated, truncated, info = env.step(action)
    assert bounds[0] - 1e-9 <= reward <= bounds[1] + 1e-9
    assert reward == info["reward_breakdown"]["total"]
    assert env.observation_space.contains(obs)
    assert isinstance(info["parsed"]["errors"], list)
    return terminated or truncated


_CALC_ENVS: dict[str, ToolEnv] = {}


@pytest.mark.parametrize(("preset", "step"), [("default", 0), ("with_length", 0), ("schedule_reward", 40)])
@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=9), seed=st.integers(0, 2**16))
def test_calc_multi_turn_step_never_raises(preset: str, step: int, actions: list[str], seed: int) -> None:
    if preset not in _CALC_ENVS:
        _CALC_ENVS[preset] = calc_env(num_tasks=20, reward=preset)
    env = _CALC_ENVS[preset]
    env.reset(seed=seed, options={"training_step": step})
    bounds = reward_bounds(resolve_config(preset), step)
    for action in actions:
        if check_step(env, action, bounds):
            break


@pytest.mark.parametrize(("preset", "step"), [("default", 0), ("with_length", 0), ("schedule_reward", 40)])
@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(action=ACTIONS, seed=st.integers(0, 2**16))
def test_rlla_single_turn_step_never_raises(
    rlla_data: dict[str, Any], preset: str, step: int, action: str, seed: int
) -> None:
    env = gym.make("ToolEnv-RLLA-v0", data_path=str(rlla_data["json"]), reward=preset).unwrapped
    env.reset(seed=seed, options={"training_step": step})
    assert check_step(env, action, reward_bounds(resolve_config(preset), step))


LONE_SURROGATE = call_action({"name": "calculate", "parameters": {"expression": "\ud800"}})


@pytest.mark.parametrize("mode", ["single_turn", "multi_turn"])
def test_a_call_with_a_lone_surrogate_escape_does_not_break_the_episode_end(mode: str) -> None:
    assert LONE_SURROGATE.isascii() and "\\ud800" in LONE_SURROGATE
    env = hand_env(mode=mode, max_turns=1)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(LONE_SURROGATE)
    assert terminated or truncated
    assert info["metrics"]["exact_match"] is False


@pytest.mark.parametrize("mode", ["single_turn", "multi_turn"])
def test_deeply_nested_parameters_do_not_break_the_episode_end(mode: str) -> None:
    action = line_action('{"name": "calculate", "parameters": {"expression": ' + "[" * 300 + "]" * 300 + "}}")
    env = hand_env(mode=mode, max_turns=1)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(action)
    assert terminated or truncated
    assert info["metrics"]["exact_match"] is False


def test_snapshot_and_pickle_after_a_deeply_nested_call() -> None:
    env = hand_env()
    env.reset(seed=0)
    env.step(line_action('{"name": "calculate", "parameters": {"expression": ' + "[" * 600 + "]" * 600 + "}}"))
    pickle.loads(pickle.dumps(env))
    env.set_state(env.get_state())


# -- snapshots ------------------------------------------------------------------------------------------


def test_set_state_replays_like_a_fresh_run() -> None:
    env = calc_env(reward="schedule_reward", training_step=20)
    task = next(t for t in env.tasks if len(t.turns) == 2)
    golds = gold_steps(task)
    env.reset(seed=7, options={"task_id": task.id})
    env.step(gold_action(golds[0]))
    state = env.get_state()

    # Go somewhere else first: wrong answers, a failing call, the end of the episode, another episode
    # (which draws from the RNG) at another training step.
    env.step(call_action({"name": "calculate", "parameters": {"expression": "1 / 0"}}))
    done = env.step(answer_action("no idea"))[2]
    while not done:
        done = env.step(answer_action("still no idea"))[2]
    env.reset(options={"training_step": 140})
    env.step(env.action_space.sample())

    env.set_state(state)
    replayed = [env.step(gold_action(g)) for g in golds[1:]]
    after_replay = env.reset()

    fresh = calc_env(reward="schedule_reward", training_step=20)
    fresh.reset(seed=7, options={"task_id": task.id})
    fresh.step(gold_action(golds[0]))
    expected = [fresh.step(gold_action(g)) for g in golds[1:]]
    assert replayed == expected
    assert replayed[-1][2] is True and replayed[-1][4]["metrics"]["exact_match"] is True
    assert replayed[0][1] == pytest.approx(2 - 20 / 150)  # the training step came back with the state
    # The RNG is part of the state: the next unseeded reset picks the same task.
    assert after_replay == fresh.reset()


def test_a_fresh_env_can_fork_from_a_snapshot() -> None:
    env = calc_env()
    task = next(t for t in env.tasks if len(t.turns) == 2)
    env.reset(seed=3, options={"task_id": task.id})
    env.step(gold_action(task.turns[0].steps[0]))
    state = env.get_state()
    continuations = []
    for action in [answer_action("1"), gold_action(task.turns[0].steps[1]), "garbage"]:
        env.set_state(state)
        expected = env.step(action)
        fork = calc_env()  # never reset: the snapshot alone sets it up
        fork.set_state(state)
        assert fork.step(action) == expected
        continuations.append(expected)
    assert continuations[0] != continuations[1]  # the forks did diverge


def test_state_includes_the_suite_state(counter_suite) -> None:
    add = {"name": "add", "parameters": {"amount": 2}}
    task = Task(
        id="count",
        turns=[Turn(user="Add 2 three times.", steps=[GoldStep(calls=[ToolCall(**add)]), GoldStep(answer="6")])],
    )
    env = ToolEnv([task], suite=counter_suite, mode="multi_turn")
    env.reset(seed=0)
    env.step(call_action(add))
    state = env.get_state()
    assert state["suite"] == {"count": 2}
    state["suite"]["count"] = 100  # a snapshot is a copy
    assert counter_suite.state == {"count": 2}

    state = env.get_state()
    obs, *_ = env.step(call_action({"name": "add", "parameters": {"amount": 40}}))
    assert obs[1]["content"].endswith(obs_record(("add", 42)))
    env.set_state(state)
    assert counter_suite.state == {"count": 2}
    obs, *_ = env.step(call_action(add))
    assert obs[1]["content"].endswith(obs_record(("add", 4)))
    assert obs_record(("add", 42)) not in obs[1]["content"]

    # The suite starts afresh on reset.
    env.reset(seed=0)
    obs, *_ = env.step(call_action(add))
    assert obs[1]["content"].endswith(obs_record(("add", 2)))


def test_get_state_before_reset_raises() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        hand_env().get_state()


def test_single_turn_explains_unknown_tools_and_bad_arguments_without_running_them() -> None:
    ran: list[int] = []

    def double(x: int) -> int:
        ran.append(x)
        return 2 * x

    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    task = Task(
        id="t",
        tools=[Tool(name="double", parameters=schema, executor=double)],
        turns=[Turn(user="Double 2.", steps=[GoldStep(calls=[ToolCall(name="double", parameters={"x": 2})])])],
    )
    env = ToolEnv([task], mode="single_turn")
    env.reset(seed=0)
    lines = ['{"name": "triple", "parameters": {"x": 2}}', '{"name": "double", "parameters": {"x": "two"}}']
    _, _, terminated, _, info = env.step("<think> t </think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>")
    assert terminated
    assert info["call_errors"][0] == "unknown tool 'triple'; offered: double"
    assert "'x'" in info["call_errors"][1] and "integer" in info["call_errors"][1]
    assert info["tool_results"] == [] and ran == []


def test_score_is_what_step_would_give_and_changes_nothing() -> None:
    env = gym.make("ToolEnv-Calc-v0", num_tasks=5).unwrapped
    assert isinstance(env, ToolEnv)
    with pytest.raises(RuntimeError, match="call reset"):
        env.offered_tools()
    env.reset(seed=0)
    assert [t.name for t in env.offered_tools()] == ["calculate", "convert_units"]
    gold = env.current_gold().text or ""
    wrong = call_action({"name": "calculate", "parameters": {"expression": "1 + 1"}})
    state = env.get_state()
    scores = [env.score(gold), env.score(wrong), env.score("no tags")]
    assert env.get_state() == state  # nothing ran, nothing was recorded
    assert [s.total for s in scores] == sorted((s.total for s in scores), reverse=True) and scores[0].total == 4.0
    for action, score in zip([gold, wrong, "no tags"], scores, strict=True):
        env.set_state(state)
        assert env.step(action)[4]["reward_breakdown"] == score.model_dump()


def test_calls_run_ahead_with_execute_are_not_run_again_by_step(counter_suite) -> None:
    add = {"name": "add", "parameters": {"amount": 2}}
    task = Task(id="count", turns=[Turn(user="Add 2.", steps=[GoldStep(calls=[ToolCall(**add)])])])
    env = ToolEnv([task], suite=counter_suite, mode="multi_turn")
    with pytest.raises(RuntimeError, match="call reset"):
        env.execute(ToolCall(**add))
    env.reset(seed=0)
    assert env.execute(ToolCall(**add)).content == 2  # run now, as TRL runs a call when the model makes it
    assert env.execute(ToolCall(name="add", parameters={"amount": "x"})).ok is False  # validated, not run
    info = env.step(call_action(add, add))[4]
    assert [r["content"] for r in info["tool_results"]] == [2, 4]  # the first result taken, the second call run
    assert counter_suite.state == {"count": 4}
    single = ToolEnv([task], suite=counter_suite)
    single.reset(seed=0)
    with pytest.raises(RuntimeError, match="only in multi_turn"):
        single.execute(ToolCall(**add))
