"""The generated calculator and unit-conversion tasks."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import pytest

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from toolrl_env.envs.calc.tasks import generate_calc_tasks
from tools.calculator import CalculatorSuite


def user_texts(tasks: list[Any]) -> set[str]:
    return {turn.user for task in tasks for turn in task.turns}


def test_generate_calc_tasks_is_deterministic_for_a_seed() -> None:
    first = generate_calc_tasks(num_tasks=50, seed=3)
    assert first == generate_calc_tasks(num_tasks=50, seed=3)
    assert user_texts(first) != user_texts(generate_calc_tasks(num_tasks=50, seed=4))
    # A longer list starts with the shorter one: one stream per seed.
    assert generate_calc_tasks(num_tasks=80, seed=3)[:50] == first


@pytest.mark.parametrize("split", ["train", "test", "all"])
@pytest.mark.parametrize("num_tasks", [1, 7, 120])
def test_generate_calc_tasks_gives_exactly_num_tasks_with_unique_ids(split: str, num_tasks: int) -> None:
    tasks = generate_calc_tasks(num_tasks=num_tasks, seed=0, split=split)
    assert len(tasks) == num_tasks
    assert len({t.id for t in tasks}) == num_tasks
    assert len({"\n".join(turn.user for turn in t.turns) for t in tasks}) == num_tasks  # no task twice


@pytest.mark.slow
def test_no_task_twice_even_where_the_stream_repeats_one() -> None:
    # Seed 0's stream draws the same train question more than once within its first 3000 train tasks.
    tasks = generate_calc_tasks(num_tasks=3000, seed=0, split="train")
    assert len({"\n".join(turn.user for turn in t.turns) for t in tasks}) == 3000


@pytest.mark.slow
def test_train_and_test_tasks_are_disjoint() -> None:
    train = generate_calc_tasks(num_tasks=300, seed=0, split="train")
    test = generate_calc_tasks(num_tasks=300, seed=0, split="test")
    assert not {t.id for t in train} & {t.id for t in test}
    assert not {"\n".join(u.user for u in t.turns) for t in train} & {"\n".join(u.user for u in t.turns) for t in test}
    assert not user_texts(train) & user_texts(test)
    # Both splits are drawn from the one stream of the seed: each task is the stream's task of that id.
    stream = {t.id: t for t in generate_calc_tasks(num_tasks=2000, seed=0, split="all")}
    assert all(stream[t.id] == t for t in train + test)


@pytest.mark.slow
def test_no_user_question_is_in_both_splits_at_the_default_size() -> None:
    train = generate_calc_tasks(num_tasks=1000, seed=0, split="train")
    test = generate_calc_tasks(num_tasks=1000, seed=0, split="test")
    assert user_texts(train) & user_texts(test) == set()


def test_every_gold_answer_is_what_the_calculator_returns() -> None:
    suite = CalculatorSuite()
    tasks = generate_calc_tasks(num_tasks=200, seed=1, split="all")
    shapes = set()
    for task in tasks:
        assert [t.name for t in task.tools] == ["calculate", "convert_units"]
        for turn in task.turns:
            call_step, answer_step = turn.steps
            assert call_step.answer is None and answer_step.calls == []
            results = [suite.call(c) for c in call_step.calls]
            assert all(r.ok for r in results), results
            parts = answer_step.answer.split(" and ")
            assert len(parts) == len(results)
            for part, result in zip(parts, results, strict=True):
                value = result.content
                if float(value).is_integer():
                    assert part == str(int(value))
                else:
                    assert math.isclose(float(part), value, rel_tol=5e-6), (part, value)
            shapes.add((len(task.turns), tuple(c.name for c in call_step.calls)))
    # Every kind of turn is there: a calculation, a conversion, two conversions, and two-turn tasks.
    assert {names for _, names in shapes} == {
        ("calculate",),
        ("convert_units",),
        ("convert_units", "convert_units"),
    }
    assert {turns for turns, _ in shapes} == {1, 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_tasks": 0}, "num_tasks must be a positive integer, got 0"),
        ({"num_tasks": -5}, "num_tasks must be a positive integer, got -5"),
        ({"split": "dev"}, "unknown split 'dev'; use 'train', 'test' or 'all'"),
        ({"test_fraction": 0}, r"test_fraction must be in \(0, 1\), got 0"),
        ({"test_fraction": 1}, r"test_fraction must be in \(0, 1\), got 1"),
        ({"test_fraction": 1.5}, r"test_fraction must be in \(0, 1\)"),
        ({"test_fraction": -0.2}, r"test_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_calc_tasks(**kwargs)


def test_fractional_num_tasks_is_refused() -> None:
    with pytest.raises((TypeError, ValueError), match="num_tasks"):
        generate_calc_tasks(num_tasks=2.5)


def test_calc_env_kwargs_reach_the_generator() -> None:
    env = gym.make("ToolEnv-Calc-v0", num_tasks=12, seed=5, split="test").unwrapped
    assert env.tasks == generate_calc_tasks(num_tasks=12, seed=5, split="test")
