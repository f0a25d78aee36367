"""Evaluation helpers: which envs split, the fixed evaluation set, the summary and the table."""

from __future__ import annotations

import toolrl_env  # noqa: F401  (registers the env ids)
from agents.evaluation.episodes import evaluation_ids, make_tool_env, summarise, table, takes_split
from agents.policy import Policy
from agents.protocols import Episode, Sample, SamplingParams
from agents.rollout import rollout


def test_takes_split_reads_the_factory_signature() -> None:
    assert takes_split("ToolEnv-BFCL-v0") and takes_split("ToolEnv-Calc-v0")
    assert not takes_split("ToolEnv-RLLA-v0") and not takes_split("ToolEnv-APIBank-v0")


def test_the_evaluation_set_is_the_first_ids_in_sorted_order() -> None:
    env = make_tool_env("ToolEnv-Calc-v0", num_tasks=30, split="all")
    ids = sorted(t.id for t in env.tasks)
    assert evaluation_ids(env, 5) == ids[:5] and evaluation_ids(env, None) == ids


def test_the_evaluation_set_spreads_over_the_categories() -> None:
    env = make_tool_env("ToolEnv-BFCL-v0", category=["simple_python", "irrelevance", "parallel"], split="test")
    ids = evaluation_ids(env, 7)
    firsts = {
        c: sorted(t.id for t in env.tasks if t.metadata["category"] == c)
        for c in ("simple_python", "irrelevance", "parallel")
    }
    # Three of the first category in id order, two of each other: the first of each, the second of each, ...
    assert ids == sorted(firsts["irrelevance"][:3] + firsts["parallel"][:2] + firsts["simple_python"][:2])
    assert len(evaluation_ids(env, None)) == len(env.tasks)


def episode(reward: float, metrics: dict[str, object], calls: int, failures: int = 0) -> Episode:
    return Episode(
        task_id="t", group=0, token_ids=[1, 2], prompt_length=1, action_mask=[0, 1], sampling_logprobs=[0, 0],
        step_rewards=[reward], reward_components=[{}], metrics=metrics, tool_calls=calls, tool_failures=failures,
    )  # fmt: skip


def test_summary_averages_numeric_metrics_and_the_table_shows_them() -> None:
    episodes = [episode(1.0, {"ast_match": True, "category": "x"}, 1), episode(3.0, {"ast_match": False}, 2)]
    summary = summarise(episodes)
    assert summary == {
        "reward": 2.0,
        "env/ast_match": 0.5,
        "tools/calls_per_episode": 1.5,
        "tools/failure_frequency": 0.0,
    }
    shown = table({"before": {"reward": -3.0}, "after": summary})
    assert shown.splitlines()[0] == "| metric | before | after |"
    assert "| reward | -3.000 | 2.000 |" in shown and "| env/ast_match | — | 0.500 |" in shown


def test_failure_frequency_is_failed_calls_over_calls_as_trl_counts_it() -> None:
    # 4 calls, 1 failed, over 3 episodes (one with no calls): TRL's 1 / 4, not the share of episodes with a failure
    episodes = [episode(0.0, {}, 3, failures=1), episode(0.0, {}, 1), episode(0.0, {}, 0)]
    assert summarise(episodes)["tools/failure_frequency"] == 0.25
    assert summarise([episode(0.0, {}, 0)])["tools/failure_frequency"] == 0.0  # no calls: TRL's 0


def test_rollout_counts_the_calls_the_env_reports_failed(policy: Policy) -> None:
    """A multi-turn Calc episode whose first step calls an unknown tool and a valid one: 2 calls, 1 failure."""
    env = make_tool_env("ToolEnv-Calc-v0", num_tasks=2)
    task_id = env.tasks[0].id
    turns = [
        '<think> t </think>\n<tool_call>\n{"name": "nope", "parameters": {}}\n'
        '{"name": "calculate", "parameters": {"expression": "1 + 1"}}\n</tool_call>',
        "<think> t </think>\n<response> done </response>",
    ]

    class Scripted:  # plays fixed turns, so that the env's verdicts are known: the counting is what is tested
        def __init__(self) -> None:
            self.turn = 0

        def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
            text = turns[min(self.turn, len(turns) - 1)]
            self.turn += 1
            ids = policy.text_ids(text)
            return [Sample(token_ids=ids, logprobs=[0.0] * len(ids), text=text, finish_reason="stop") for _ in prompts]

        def sync(self, model: object) -> None: ...

    (done,) = rollout([env], [task_id], 1, policy, Scripted(), SamplingParams())
    assert done.tool_calls >= 2 and done.tool_failures == 1
    assert summarise([done])["tools/failure_frequency"] == 1 / done.tool_calls
