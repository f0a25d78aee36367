"""The TRL adapter: dataset rows are the env's first observations; the reward functions score exactly as
`compute_score` does (the gold at the top, bad completions at the bottom, scheduled presets at TRL's
step); and a real `GRPOTrainer` trains on both, logging our components."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer, TrainerState

from agents.embedded_model import embedded_model_dir
from tests.agents.conftest import tiny_policy
from toolrl_env.integrations.trl import reward_functions, trl_dataset
from toolrl_env.registry import make_tool_env
from toolrl_env.rewards import PRESETS, compute_score, resolve_config, reward_bounds

ENV = "ToolEnv-Calc-v0"
ENV_KWARGS: dict[str, Any] = {"num_tasks": 4}
BAD = [
    "",
    "no tags at all",
    "<tool_call>\n{not json\n</tool_call>",
    None,
    42,
    [{"role": "user", "content": "not the assistant's"}],
    [{"role": "assistant", "content": None}],
    {"role": "assistant", "content": "a message, not a list"},
]


def first_golds(limit: int) -> dict[str, str]:
    """Task id -> gold text of its first step, for the first `limit` tasks."""
    env = make_tool_env(ENV, **ENV_KWARGS)
    golds = {}
    for task in env.tasks[:limit]:
        env.reset(options={"task_id": task.id})
        golds[task.id] = env.current_gold().text or ""
    return golds


def test_dataset_rows_are_the_envs_first_observations() -> None:
    dataset = trl_dataset(ENV, split="test", limit=3, **ENV_KWARGS)
    env = make_tool_env(ENV, split="test", **ENV_KWARGS)
    assert dataset.column_names == ["prompt", "task_id"]
    assert dataset["task_id"] == [t.id for t in env.tasks[:3]]
    for row in dataset:
        assert row["prompt"] == env.reset(options={"task_id": row["task_id"]})[0]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_rewards_match_compute_score_gold_at_max_bad_at_min(preset: str) -> None:
    config, step = resolve_config(preset), 75  # mid-schedule, past the two-stage switch
    golds = first_golds(2)
    task_ids = list(golds)
    gold_completions: list[Any] = [golds[task_ids[0]], [{"role": "assistant", "content": golds[task_ids[1]]}]]
    completions = gold_completions + BAD
    column = task_ids + [task_ids[0]] * len(BAD)
    state = TrainerState(global_step=step)
    funcs = reward_functions(ENV, preset=preset, **ENV_KWARGS)
    (total,) = reward_functions(ENV, preset=preset, components=False, **ENV_KWARGS)
    scores = {f.__name__: f(prompts=[], completions=completions, task_id=column, trainer_state=state) for f in funcs}
    totals = total(prompts=[], completions=completions, task_id=column, trainer_state=state)

    expected_names = ["format", "correctness"] + (["length"] if config.length_words is not None else [])
    assert list(scores) == expected_names
    texts = [golds[task_ids[0]], golds[task_ids[1]]] + [""] * len(BAD)  # the bad ones all read as ""
    for i, (text, task_id) in enumerate(zip(texts, column, strict=True)):
        want = compute_score(text, golds[task_id], step=step, preset=preset)
        assert {name: values[i] for name, values in scores.items()} == {n: getattr(want, n) for n in scores}
        assert totals[i] == want.total == pytest.approx(sum(values[i] for values in scores.values()))
    low, high = reward_bounds(config, step)
    assert totals[len(gold_completions) :] == [low] * len(BAD)
    if config.length_words is None:  # the gold's short think text earns little length reward
        assert totals[: len(gold_completions)] == [high] * len(gold_completions)


def test_without_trainer_state_the_envs_training_step_is_used() -> None:
    golds = first_golds(1)
    (task_id, gold), step = next(iter(golds.items())), 40
    (total,) = reward_functions(ENV, preset="schedule_reward", components=False, training_step=step, **ENV_KWARGS)
    assert total(prompts=[], completions=["junk"], task_id=[task_id]) == [
        compute_score("junk", gold, step=step, preset="schedule_reward").total
    ]


def test_bad_setups_name_the_fix() -> None:
    (total,) = reward_functions(ENV, components=False, **ENV_KWARGS)
    with pytest.raises(ValueError, match=r"no 'task_id' column.*trl_dataset"):
        total(prompts=[], completions=["x"])
    with pytest.raises(KeyError, match=r"unknown task_id .calc-999.*env id and kwargs of the dataset"):
        total(prompts=[], completions=["x"], task_id=["calc-999"])
    with pytest.raises(ValueError, match="preset='coarse', not reward="):
        reward_functions(ENV, reward="coarse")
    with pytest.raises(ValueError, match="unknown reward preset 'nope'"):
        reward_functions(ENV, preset="nope", **ENV_KWARGS)
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        trl_dataset(ENV, limit=0, **ENV_KWARGS)
    with pytest.raises(TypeError, match="'CartPole-v1' is not a ToolEnv id"):
        trl_dataset("CartPole-v1")


def short_rlla_file(folder: Path) -> Path:
    """Two RLLA rows with a one-line system prompt: TRL scores every prompt position over the whole
    vocabulary, so short prompts keep a CPU step to seconds (the Calc prompt is ~600 tokens)."""
    rows = [
        {
            "instruction": "Answer with one tool call.",
            "input": f"<user> Add {a} and {b}. </user>",
            "output": f'<think> add </think>\n<tool_call>\n{{"name": "add", "parameters": {{"a": {a}, "b": {b}}}}}\n'
            "</tool_call>",
        }
        for a, b in [(2, 3), (4, 5)]
    ]
    path = folder / "rows.json"
    path.write_text(json.dumps(rows))
    return path


def cpu_config(output_dir: Path, **fields: Any) -> Any:
    """TRL's GRPOConfig for 2 quick steps on a CPU (4 rollouts a step, 2 per prompt), with `fields` on top."""
    from trl import GRPOConfig

    settings: dict[str, Any] = {
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 8,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "seed": 0,
    }
    return GRPOConfig(output_dir=str(output_dir), **{**settings, **fields})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="trl 1.16 needs Python >= 3.11")
def test_grpo_trainer_trains_on_our_rewards(tmp_path: Path) -> None:
    from trl import GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    model_dir = tmp_path / "tiny"
    tiny_policy(tokenizer).model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data_path = short_rlla_file(tmp_path)
    config = cpu_config(tmp_path / "out")
    trainer = GRPOTrainer(
        model=str(model_dir),
        reward_funcs=reward_functions("ToolEnv-RLLA-v0", preset="schedule_reward", data_path=data_path),
        args=config,
        train_dataset=trl_dataset("ToolEnv-RLLA-v0", data_path=data_path),
    )
    trainer.train()

    assert trainer.state.global_step == 2
    logs = [entry for entry in trainer.state.log_history if "rewards/format/mean" in entry]
    assert len(logs) == 2
    gold = json.loads(data_path.read_text())[0]["output"]
    for step, entry in enumerate(logs):
        # Eight tokens of a random model are never a tool call: the lowest reward, which under this
        # scheduled preset moves with the step TRL passes in trainer_state.
        lowest = compute_score("", gold, step=step, preset="schedule_reward")
        assert entry["rewards/format/mean"] == pytest.approx(lowest.format)
        assert entry["rewards/correctness/mean"] == pytest.approx(lowest.correctness)
        assert entry["reward"] == pytest.approx(lowest.total)
