"""The veRL adapter: the parquet round trip, the reward function's dict, its agreement with our reward, and
hostile input. veRL itself is not installed; its loading of a custom reward function is reproduced instead."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest

import toolrl_env.integrations.verl as verl
from toolrl_env.env import ToolEnv
from toolrl_env.envs.rlla.tasks import load_rlla
from toolrl_env.format import parse, render_turn
from toolrl_env.integrations.verl import compute_score, export_parquet, main, verl_rows
from toolrl_env.rewards import PRESETS, RewardConfig, reward_bounds
from toolrl_env.rewards import compute_score as toolrl_score

CALC: dict[str, Any] = {"num_tasks": 6, "seed": 3, "split": "test"}
KEYS = ["score", "format", "correctness", "length", "answer"]
CALL_GOLD = render_turn("t", [{"name": "f", "parameters": {"a": 1, "b": "x"}}])


def _calc_env(**kwargs: Any) -> ToolEnv:
    env = gym.make("ToolEnv-Calc-v0", **CALC, **kwargs).unwrapped
    assert isinstance(env, ToolEnv)
    return env


def _read(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def _gold(row: dict[str, Any]) -> str:
    return row["reward_model"]["ground_truth"]


def _score(row: dict[str, Any], solution: Any) -> dict[str, float]:
    return compute_score(row["data_source"], solution, _gold(row), row["extra_info"])


def _wrong_value(gold: str) -> str:
    """The gold with its first call's first parameter value changed."""
    parsed = parse(gold)
    calls = [c.model_dump() for c in parsed.tool_calls]
    key = next(iter(calls[0]["parameters"]))
    calls[0]["parameters"][key] = "definitely wrong"
    return render_turn(parsed.think, calls, parsed.response)


@pytest.fixture(scope="module")
def calc_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("verl") / "calc.parquet"
    assert export_parquet("ToolEnv-Calc-v0", path, split="test", env_kwargs=CALC) == 6
    return _read(path)


def test_rows_have_verls_layout_and_the_envs_first_observation(calc_rows: list[dict[str, Any]]) -> None:
    env = _calc_env()
    assert list(calc_rows[0]) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert [r["extra_info"]["task_id"] for r in calc_rows] == [t.id for t in env.tasks]
    for i, row in enumerate(calc_rows):
        obs, _ = env.reset(options={"task_id": row["extra_info"]["task_id"]})
        assert row["prompt"] == obs
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["data_source"] == "ToolEnv-Calc-v0" and row["ability"] == "tool_use"
        assert row["reward_model"] == {"style": "rule", "ground_truth": env.current_gold().text}
        assert row["extra_info"] == {
            "split": "test",
            "index": i,
            "task_id": env.tasks[i].id,
            "turn": 0,
            "turn_step": 0,
            "reward_preset": "default",
            "env_id": "ToolEnv-Calc-v0",
            "env_kwargs": json.dumps(CALC, sort_keys=True),
        }


def test_agent_loop_rows_name_the_loop_one_per_task(tmp_path: Path) -> None:
    path = tmp_path / "loop.parquet"
    assert export_parquet("ToolEnv-Calc-v0", path, env_kwargs=CALC, agent_loop=True) == 6
    rows = _read(path)
    assert list(rows[0]) == ["data_source", "prompt", "ability", "agent_name", "reward_model", "extra_info"]
    assert {r["agent_name"] for r in rows} == {"toolrl"}
    with pytest.raises(ValueError, match="one per task"):
        export_parquet("ToolEnv-Calc-v0", path, env_kwargs={**CALC, "mode": "multi_turn"}, steps="all", agent_loop=True)
    with pytest.raises(ValueError, match="pass env_kwargs"):
        export_parquet(_calc_env(), path, agent_loop=True)


def test_gold_scores_the_maximum_and_a_wrong_call_less(calc_rows: list[dict[str, Any]]) -> None:
    for row in calc_rows:
        gold = _gold(row)
        best = _score(row, gold)
        assert best == {"score": 4.0, "format": 1.0, "correctness": 3.0, "length": 0.0, "answer": 0.0}
        wrong = _wrong_value(gold)
        result = _score(row, wrong)
        expected = toolrl_score(wrong, gold)
        assert result["score"] == expected.total < best["score"]
        assert [result[k] for k in KEYS[1:]] == [expected.format, expected.correctness, expected.length, 0.0]
        coarse = compute_score(row["data_source"], wrong, gold, {**row["extra_info"], "reward_preset": "coarse"})
        assert coarse["correctness"] == -3.0


def test_all_steps_replay_the_gold_through_the_tools() -> None:
    env = _calc_env()
    rows = verl_rows(env, steps="all")
    tasks = env.tasks
    assert len(rows) == sum(len(turn.steps) for t in tasks for turn in t.turns)
    assert [r["extra_info"]["index"] for r in rows] == list(range(len(rows)))
    answers = [r for r in rows if r["extra_info"]["turn_step"] == 1]
    assert answers
    for row in answers:
        earlier = next(
            r
            for r in rows
            if r["extra_info"]["task_id"] == row["extra_info"]["task_id"]
            and r["extra_info"]["turn"] == row["extra_info"]["turn"]
            and r["extra_info"]["turn_step"] == 0
        )
        history = row["prompt"][1]["content"]
        # The calls of the step before, then the calculator's real result as an <obs>.
        assert history.startswith(earlier["prompt"][1]["content"] + "\n\n" + _gold(earlier) + "\n<obs> ")
    for row in rows:
        has_call = "<tool_call>" in _gold(row)
        assert _score(row, _gold(row))["score"] == (4.0 if has_call else 1.0)
    with pytest.raises(ValueError, match="mode='multi_turn'"):
        verl_rows(_calc_env(mode="single_turn"), steps="all")


def test_rlla_rows_round_trip_through_toolrls_parquet_layout(rlla_data: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "rlla.parquet"
    export_parquet("ToolEnv-RLLA-v0", path, env_kwargs={"data_path": str(rlla_data["json"])})
    rows = _read(path)
    source_tasks, exported_tasks = load_rlla(rlla_data["json"]), load_rlla(path)
    assert len(rows) == len(rlla_data["rows"]) == len(exported_tasks)
    for row, raw, task, back in zip(rows, rlla_data["rows"], source_tasks, exported_tasks, strict=True):
        assert row["prompt"] == [
            {"role": "system", "content": raw["instruction"]},
            {"role": "user", "content": raw["input"]},
        ]
        assert _gold(row) == task.turns[0].steps[0].text
        assert (back.system, back.history, back.turns) == (task.system, task.history, task.turns)
        assert _score(row, _gold(row))["score"] == (4.0 if "<tool_call>" in _gold(row) else 1.0)


def test_reward_config_env_exports_its_config(tmp_path: Path) -> None:
    config = RewardConfig(correctness_max=1.0, correctness_min=-1.0, length_words=8)
    path = tmp_path / "calc.parquet"
    export_parquet("ToolEnv-Calc-v0", path, env_kwargs={**CALC, "reward": config})
    row = _read(path)[0]
    assert RewardConfig.model_validate_json(row["extra_info"]["reward_preset"]) == config
    solution = _wrong_value(_gold(row))
    expected = toolrl_score(solution, _gold(row), preset=config)
    assert _score(row, solution) == {
        "score": expected.total,
        "format": expected.format,
        "correctness": expected.correctness,
        "length": expected.length,
        "answer": 0.0,
    }
    assert expected.length > 0


def test_step_and_preset_from_extra_info_and_reward_kwargs() -> None:
    wrong = _wrong_value(CALL_GOLD)
    scheduled = compute_score("s", wrong, CALL_GOLD, {"reward_preset": "schedule_reward", "step": np.int64(75)})
    assert scheduled["score"] == toolrl_score(wrong, CALL_GOLD, 75, "schedule_reward").total
    assert scheduled["score"] != compute_score("s", wrong, CALL_GOLD, {"reward_preset": "schedule_reward"})["score"]
    # veRL's reward_kwargs arrive as keyword arguments and win over the row.
    override = compute_score("s", wrong, CALL_GOLD, {"reward_preset": "default", "step": 3}, reward_preset="coarse")
    assert override["correctness"] == -3.0
    # Two-stage at step 30: the format range is halved, correctness back to [-3, 3]; at the row's step 0 it is 2.
    two_stage = compute_score("s", CALL_GOLD, CALL_GOLD, {"reward_preset": "max1_step30_max3", "step": 0}, step=30)
    assert two_stage["score"] == toolrl_score(CALL_GOLD, CALL_GOLD, 30, "max1_step30_max3").total == 3.5


@pytest.mark.parametrize("preset", [*PRESETS, '{"answer": "f1", "length_words": 4}'])
def test_dict_shape(preset: str) -> None:
    gold = render_turn("t", [{"name": "f", "parameters": {"a": 1}}], "forty two")
    for solution in (gold, _wrong_value(gold), "<think> nothing </think>\n<response> 42 </response>", None):
        result = compute_score("src", solution, gold, {"reward_preset": preset, "step": 40})
        assert list(result) == KEYS
        assert all(type(v) is float for v in result.values())
        assert result["score"] == pytest.approx(sum(result[k] for k in KEYS[1:]))


def test_veRL_loads_it_by_path_and_calls_it_with_keywords() -> None:
    # What verl.trainer.ppo.reward.get_custom_reward_fn does with custom_reward_function.path / name.
    spec = importlib.util.spec_from_file_location("custom_module", verl.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = module.compute_score
    result = fn(
        data_source="ToolEnv-Calc-v0",
        solution_str=CALL_GOLD,
        ground_truth=CALL_GOLD,
        extra_info={"index": 0, "num_turns": None, "reward_preset": None, "step": None},
        reward_router_address=None,
    )
    assert result == {"score": 4.0, "format": 1.0, "correctness": 3.0, "length": 0.0, "answer": 0.0}


HOSTILE_COMPLETIONS = [
    "",
    "\x00" * 1000,
    "<think>" * 100_000,
    "<think> x </think>\n<tool_call>\n" + "[" * 100_000 + "\n</tool_call>",
    "<think> x </think>\n<tool_call>\n" + '{"name": "f", "parameters": {}}\n' * 2000 + "</tool_call>",
    '<think> x </think>\n<tool_call>\n{"name": ["f"], "parameters": {"a": 1}}\n</tool_call>',
    '<think> x </think>\n<tool_call>\n{"name": "f", "parameters": [1]}\n</tool_call>',
    "<tool_call>\n</tool_call>\n</tool_call><response>",
    "x" * 2_000_000,
]


@pytest.mark.parametrize("solution", HOSTILE_COMPLETIONS, ids=range(len(HOSTILE_COMPLETIONS)))
def test_hostile_completions_are_scored_like_our_reward(solution: str) -> None:
    assert compute_score("src", solution, CALL_GOLD)["score"] == toolrl_score(solution, CALL_GOLD).total


@pytest.mark.parametrize("solution", [None, 42, b"<think>", ["<think>"], {"a": 1}])
def test_non_string_completions_get_the_lowest_reward(solution: Any) -> None:
    assert compute_score("src", solution, CALL_GOLD)["score"] == reward_bounds(RewardConfig())[0] == -3.0


BAD_GOLDS = [
    None,
    7,
    b"<tool_call>",
    "<tool_call>\nnot json\n</tool_call>",
    '<tool_call>\n{"name": "f"}\n</tool_call>',
    "<tool_call>\n" + "[" * 100_000 + "\n</tool_call>",
]


@pytest.mark.parametrize("preset", [*PRESETS, '{"answer": "em"}'])
@pytest.mark.parametrize("step", [0, 30, 200])
def test_bad_ground_truth_gets_the_lowest_reward(preset: str, step: int) -> None:
    config = verl._config(preset)
    for gold in BAD_GOLDS:
        result = compute_score("src", CALL_GOLD, gold, {"reward_preset": preset, "step": step})
        assert result["score"] == pytest.approx(reward_bounds(config, step)[0])
        assert result["score"] == pytest.approx(sum(result[k] for k in KEYS[1:]))


@pytest.mark.parametrize("extra_info", [None, "x", [1], {}, {"reward_preset": None, "step": None}])
def test_missing_or_odd_extra_info_means_the_default_reward(extra_info: Any) -> None:
    wrong = _wrong_value(CALL_GOLD)
    assert compute_score("src", wrong, CALL_GOLD, extra_info)["score"] == toolrl_score(wrong, CALL_GOLD).total


@pytest.mark.parametrize(
    ("extra_info", "message"),
    [
        ({"reward_preset": "coars"}, "unknown reward preset 'coars'"),
        ({"reward_preset": '{"corse": true}'}, r"unknown RewardConfig fields \['corse'\]"),
        ({"reward_preset": "[1]"}, "unknown reward preset"),
        ({"reward_preset": '{"coarse": tru'}, "is not a JSON object of RewardConfig fields"),
        ({"reward_preset": '{"coarse": "often"}'}, "coarse"),
        ({"step": -1}, "training step must be an integer >= 0, got -1"),
        ({"step": 1.5}, "training step must be an integer >= 0, got 1.5"),
        ({"step": "5"}, "training step must be an integer >= 0, got '5'"),
    ],
)
def test_configuration_errors_name_the_value(extra_info: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_score("src", CALL_GOLD, CALL_GOLD, extra_info)


def test_export_errors(tmp_path: Path) -> None:
    env = gym.make("ToolEnv-Calc-v0", **CALC)
    with pytest.raises(ValueError, match="apply to an env id"):
        export_parquet(env, tmp_path / "x.parquet", env_kwargs={"seed": 1})
    with pytest.raises(ValueError, match="unknown steps 'every'"):
        export_parquet(env, tmp_path / "x.parquet", steps="every")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a ToolEnv"):
        export_parquet(gym.make("CartPole-v1"), tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "calc.parquet"
    main(
        [
            "--env",
            "ToolEnv-Calc-v0",
            str(path),
            "--split-label",
            "val",
            "--gold-steps",
            "all",
            "--env-kwargs",
            '{"num_tasks": 2}',
        ]
    )
    rows = _read(path)
    assert capsys.readouterr().out == f"wrote {len(rows)} rows to {path}\n"
    assert len(rows) >= 4 and {r["extra_info"]["split"] for r in rows} == {"val"}


@pytest.mark.parametrize(("value", "message"), [("[1]", "expected a JSON object"), ("{bad", "not JSON")])
def test_cli_rejects_bad_env_kwargs(
    tmp_path: Path, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--env", "ToolEnv-Calc-v0", str(tmp_path / "x.parquet"), "--env-kwargs", value])
    assert message in capsys.readouterr().err
