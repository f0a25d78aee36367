"""Evaluation helpers: which envs split, the fixed evaluation set, the summary and the table."""

from __future__ import annotations

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation import evaluation_ids, make_tool_env, summarise, table, takes_split
from agents.protocols import Episode


def test_takes_split_reads_the_factory_signature() -> None:
    assert takes_split("ToolEnv-BFCL-v0") and takes_split("ToolEnv-Calc-v0")
    assert not takes_split("ToolEnv-RLLA-v0") and not takes_split("ToolEnv-APIBank-v0")


def test_the_evaluation_set_is_the_first_ids_in_sorted_order() -> None:
    env = make_tool_env("ToolEnv-Calc-v0", num_tasks=30, split="all")
    ids = sorted(t.id for t in env.tasks)
    assert evaluation_ids(env, 5) == ids[:5] and evaluation_ids(env, None) == ids


def episode(reward: float, metrics: dict[str, object], calls: int) -> Episode:
    return Episode(
        task_id="t", group=0, token_ids=[1, 2], prompt_length=1, action_mask=[0, 1], sampling_logprobs=[0, 0],
        step_rewards=[reward], reward_components=[{}], metrics=metrics, tool_calls=calls,
    )  # fmt: skip


def test_summary_averages_numeric_metrics_and_the_table_shows_them() -> None:
    episodes = [episode(1.0, {"ast_match": True, "category": "x"}, 1), episode(3.0, {"ast_match": False}, 2)]
    summary = summarise(episodes)
    assert summary == {"reward": 2.0, "env/ast_match": 0.5, "tools/calls_per_episode": 1.5}
    shown = table({"before": {"reward": -3.0}, "after": summary})
    assert shown.splitlines()[0] == "| metric | before | after |"
    assert "| reward | -3.000 | 2.000 |" in shown and "| env/ast_match | — | 0.500 |" in shown
