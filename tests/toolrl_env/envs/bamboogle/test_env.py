"""ToolEnv-Bamboogle-v0: the loader, episodes with BM25 search over the fixture corpus, EM/F1 metrics, the QA
normalisation, and the optional answer component of the reward (hand-computed values and bounds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import toolrl_env  # noqa: F401  (registers the ToolEnv ids)
from toolrl_env import ToolEnv
from toolrl_env.envs.bamboogle.tasks import INSTRUCTION, load_bamboogle
from toolrl_env.qa import exact_match, f1_score, normalize_answer
from toolrl_env.rewards import PRESETS, RewardConfig, compute_score, reward_bounds
from tools.call import ToolCall
from tools.search import WebSearchBackend

FIXTURES = Path(__file__).parents[3] / "fixtures"
DATA = FIXTURES / "bamboogle.json"
CORPUS = FIXTURES / "bamboogle_corpus.jsonl"
CITIBANK = "Who was president of the United States in the year that Citibank was founded?"


def make(**kwargs: Any) -> ToolEnv:
    env = gym.make("ToolEnv-Bamboogle-v0", **{"data_path": str(DATA), "corpus_path": str(CORPUS), **kwargs})
    assert isinstance(env.unwrapped, ToolEnv)
    return env.unwrapped


def search(query: Any) -> str:
    call = json.dumps({"name": "Search", "parameters": {"query": query}})
    return f"<think> look it up </think>\n<tool_call>\n{call}\n</tool_call>"


def answer(text: str) -> str:
    return f"<think> done </think>\n<response> {text} </response>"


# -- the loader -----------------------------------------------------------------------------------------


def test_loader_reads_the_fixture() -> None:
    rows = json.loads(DATA.read_text())
    tasks = load_bamboogle(DATA)
    assert [t.id for t in tasks] == [f"bamboogle-{i}" for i in range(len(rows))] and len(tasks) == 6
    first = tasks[0]
    assert first.turns[0].user == f"{CITIBANK}\n{INSTRUCTION}"
    call, reply = first.turns[0].steps
    assert call.calls == [ToolCall(name="Search", parameters={"query": CITIBANK})] and call.answer is None
    assert reply.answer == "james madison" and reply.calls == []
    assert [t.metadata["answer"] for t in tasks] == [r["Answer"] for r in rows]
    assert load_bamboogle(DATA, instruction=None)[0].turns[0].user == CITIBANK


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, FileNotFoundError, r"qiancheng0/ToolRL benchmarks/Bamboogle/data\.json"),
        ("{bad", ValueError, r"not JSON"),
        ('{"Question": "q", "Answer": "a"}', ValueError, r"non-empty JSON list"),
        ("[]", ValueError, r"non-empty JSON list"),
        ('[{"Question": "q", "Answer": "a"}, {"Question": "q2"}]', ValueError, r"item 1: expected string"),
        ('[{"Question": "q", "Answer": 5}]', ValueError, r"item 0: expected string"),
        ('[{"Question": " ", "Answer": "a"}]', ValueError, r"item 0: empty Question"),
    ],
)
def test_loader_errors_name_the_problem(tmp_path: Path, content: str | None, error: type, message: str) -> None:
    path = tmp_path / "data.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message):
        load_bamboogle(path)


def test_env_without_data_or_backend_says_how_to_provide_them() -> None:
    with pytest.raises(ValueError, match=r"data_path=.*qiancheng0/ToolRL benchmarks/Bamboogle/data\.json"):
        gym.make("ToolEnv-Bamboogle-v0", corpus_path=str(CORPUS))
    with pytest.raises(ValueError, match=r"corpus_path=<file\.jsonl>.*search=<backend>"):
        gym.make("ToolEnv-Bamboogle-v0", data_path=str(DATA))
    with pytest.raises(ValueError, match="got both"):
        make(search=WebSearchBackend(lambda q, k: []))
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        make(corpus_path=str(FIXTURES / "missing.jsonl"))


# -- episodes -------------------------------------------------------------------------------------------


def test_two_searches_then_the_right_answer() -> None:
    env = make()
    obs, info = env.reset(options={"task_id": "bamboogle-0"})
    assert "1. Name: Search" in obs[0]["content"] and CITIBANK in obs[1]["content"]

    obs, reward, terminated, truncated, info = env.step(search("In what year was Citibank founded?"))
    # Right tool and parameter name, another query: S = 1 (name) + 1 (keys) + 0 (value) of 3 -> 6 * 2/3 - 3 = 1.
    assert info["reward_breakdown"] == {"format": 1.0, "correctness": 1.0, "length": 0.0, "answer": 0.0, "total": 2.0}
    assert (reward, terminated, truncated) == (2.0, False, False)
    (result,) = info["tool_results"]
    assert result["ok"] is True and result["content"][0]["title"] == "Citibank"
    assert "founded in 1812" in obs[1]["content"].rpartition("<obs>")[2]

    obs, reward, *_, info = env.step(search("president of the United States 1812"))
    assert reward == 2.0 and info["tool_results"][0]["content"][0]["title"] == "James Madison"

    _, reward, terminated, truncated, info = env.step(answer("James Madison."))
    assert info["reward_breakdown"] == {"format": 1.0, "correctness": 0.0, "length": 0.0, "answer": 1.0, "total": 2.0}
    assert (terminated, truncated) == (True, False)
    assert info["metrics"] == {
        "em": 1.0,
        "f1": 1.0,
        "answered": True,
        "tool_calls": 2,
        "tool_errors": 0,
        "format_ok": 1.0,
        "steps": 3,
    }


@pytest.mark.parametrize(
    ("query", "correctness"),
    [
        (CITIBANK, 3.0),
        ("who was PRESIDENT of the united states in year that citibank was founded", 3.0),  # equal once normalised
        ("Citibank founding year", 1.0),
    ],
)
def test_the_question_as_query_earns_full_correctness(query: str, correctness: float) -> None:
    env = make()
    env.reset(options={"task_id": "bamboogle-0"})
    _, reward, *_, info = env.step(search(query))
    assert info["reward_breakdown"]["correctness"] == correctness and reward == 1.0 + correctness


@pytest.mark.parametrize(
    ("response", "em", "f1"),
    [
        ("Thomas Jefferson", 0.0, 0.0),
        ("Madison", 0.0, 2 / 3),  # precision 1, recall 1/2
        ("It was James Madison", 0.0, 2 / 3),  # "it was james madison": precision 1/2, recall 1
        ("the JAMES madison!", 1.0, 1.0),
    ],
)
def test_answers_are_scored_with_em_and_f1(response: str, em: float, f1: float) -> None:
    env = make()
    env.reset(options={"task_id": "bamboogle-0"})
    env.step(search(CITIBANK))
    _, reward, terminated, _, info = env.step(answer(response))
    assert terminated
    assert info["metrics"]["em"] == em and info["metrics"]["f1"] == pytest.approx(f1, abs=1e-12)
    assert info["reward_breakdown"]["answer"] == pytest.approx(f1, abs=1e-12)
    assert reward == pytest.approx(1.0 + f1, abs=1e-12)


def test_an_answer_without_search_is_scored_against_the_answer_step() -> None:
    env = make()
    env.reset(options={"task_id": "bamboogle-5"})
    _, reward, terminated, _, info = env.step(answer("Saturn V"))
    assert terminated and reward == 2.0
    assert info["reward_breakdown"]["correctness"] == 0.0 and info["reward_breakdown"]["answer"] == 1.0
    assert info["metrics"]["em"] == 1.0 and info["metrics"]["tool_calls"] == 0


def test_four_searches_without_an_answer_truncate_with_em_0() -> None:
    env = make()
    env.reset(options={"task_id": "bamboogle-4"})
    for n in range(1, 5):
        _, _, terminated, truncated, info = env.step(search("Harvard University"))
        assert not terminated and truncated is (n == 4)
    assert info["metrics"]["em"] == 0.0 and info["metrics"]["f1"] == 0.0
    assert info["metrics"]["answered"] is False and info["metrics"]["tool_calls"] == 4


def test_reward_presets_get_the_answer_component_and_configs_are_kept() -> None:
    assert make().reward_config == RewardConfig(answer="f1")
    assert make(reward="coarse").reward_config == RewardConfig(coarse=True, answer="f1")
    env = make(reward=RewardConfig())  # ToolRL's reward alone
    env.reset(options={"task_id": "bamboogle-5"})
    _, reward, *_, info = env.step(answer("Saturn V"))
    assert info["reward_breakdown"]["answer"] == 0.0 and reward == 1.0
    env = make(reward=RewardConfig(answer="em", answer_max=2.0))
    env.reset(options={"task_id": "bamboogle-5"})
    assert env.step(answer("Saturn V"))[1] == 3.0


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (search("x" * 200_000), "characters long"),
        (search("\x00\x00"), "query is empty"),
        (search(12), "should be string"),
        (search({"$ne": 1}), "should be string"),
        ('<think> t </think>\n<tool_call>\n{"name": "Google", "parameters": {"query": "q"}}\n</tool_call>', "unknown"),
    ],
)
def test_hostile_calls_become_error_observations(action: str, error: str) -> None:
    env = make()
    env.reset(options={"task_id": "bamboogle-1"})
    obs, _, terminated, truncated, info = env.step(action)
    assert not (terminated or truncated)
    assert info["tool_results"][0]["ok"] is False and error in info["tool_results"][0]["content"]["error"]
    assert error in obs[1]["content"].rpartition("<obs>")[2]
    _, _, terminated, _, info = env.step(answer("David Dinkins"))
    assert terminated and info["metrics"]["em"] == 1.0 and info["metrics"]["tool_errors"] == 1


@pytest.mark.parametrize("action", ["", "\x00" * 100, "<response>" * 10_000, 42, None, "<think> a </think>"])
def test_malformed_actions_end_the_episode_with_em_0(action: Any) -> None:
    env = make()
    env.reset(options={"task_id": "bamboogle-1"})
    _, reward, terminated, _, info = env.step(action)
    assert terminated and info["metrics"]["em"] == 0.0 and info["metrics"]["answered"] is False
    assert info["reward_breakdown"]["answer"] == 0.0 and reward == info["reward_breakdown"]["format"]


def canned_search(query: str, k: int) -> list[dict[str, str]]:
    return [{"title": "Apollo 11", "snippet": "Apollo 11 launched on a Saturn V."}]


def test_a_web_backend_plugs_in_without_a_corpus() -> None:
    env = gym.make("ToolEnv-Bamboogle-v0", data_path=str(DATA), search=WebSearchBackend(canned_search)).unwrapped
    env.reset(options={"task_id": "bamboogle-5"})
    _, _, _, _, info = env.step(search("Apollo 11 rocket"))
    assert info["tool_results"][0]["content"] == [
        {"title": "Apollo 11", "snippet": "Apollo 11 launched on a Saturn V."}
    ]


# -- QA normalisation, EM and F1 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The  Titan IIIE.", "titan iiie"),
        ("An apple, a day!", "apple day"),
        ("April 30, 1789", "april 30 1789"),
        ("theory of the atom", "theory of atom"),  # articles only as whole words
        ("", ""),
    ],
)
def test_normalize_answer(text: str, normal: str) -> None:
    assert normalize_answer(text) == normal


def test_em_and_f1_by_hand() -> None:
    assert exact_match("James Madison", "james madison") == 1.0
    assert exact_match("Madison", "james madison") == 0.0
    # "20 june 1837" vs "june 20 1837": all 3 tokens shared, order ignored by F1
    assert f1_score("June 20, 1837", "20 June 1837") == 1.0 and exact_match("June 20, 1837", "20 June 1837") == 0
    # common {titanium} = 1; precision 1/3 ("mostly titanium alloy"), recall 1 -> 2 * (1/3) / (4/3) = 1/2
    assert f1_score("mostly titanium alloy", "Titanium") == 0.5
    assert f1_score("the", "a") == 1.0 and f1_score("the", "Boston") == 0.0  # nothing left after normalising
    assert exact_match(None, "x") == 0.0 and f1_score(None, "x") == 0.0
    assert f1_score(3, "3") == 0.0  # type: ignore[arg-type]


# -- the answer component of the reward -------------------------------------------------------------------

GOLD_ANSWER = "<think> I should directly respond to the user's need. </think>\n<response> james madison </response>"
GOLD_CALL = '<think> t </think>\n<tool_call>\n{"name": "Search", "parameters": {"query": "q"}}\n</tool_call>'


@pytest.mark.parametrize(
    ("config", "response", "expected"),
    [
        (RewardConfig(answer="f1"), answer("The James Madison!"), (1.0, 0.0, 1.0, 2.0)),
        (RewardConfig(answer="f1"), answer("Madison"), (1.0, 0.0, 2 / 3, 5 / 3)),
        (RewardConfig(answer="em"), answer("Madison"), (1.0, 0.0, 0.0, 1.0)),
        # [-1, 2]: F1 2/3 -> -1 + 3 * 2/3 = 1
        (RewardConfig(answer="f1", answer_min=-1.0, answer_max=2.0), answer("Madison"), (1.0, 0.0, 1.0, 2.0)),
        (RewardConfig(answer="f1", answer_min=-1.0), "<think> t </think>", (0.0, 0.0, -1.0, -1.0)),  # no <response>
        (RewardConfig(answer="f1"), "<response> james madison", (0.0, 0.0, 0.0, 0.0)),  # unclosed
        (RewardConfig(answer="f1"), "<think>t</think>\n<response>james madison</response>", (1.0, 0.0, 1.0, 2.0)),
        (RewardConfig(), answer("james madison"), (1.0, 0.0, 0.0, 1.0)),  # off by default
    ],
)
def test_answer_component_by_hand(config: RewardConfig, response: str, expected: tuple[float, ...]) -> None:
    result = compute_score(response, GOLD_ANSWER, preset=config)
    got = (result.format, result.correctness, result.answer, result.total)
    assert got == pytest.approx(expected, rel=0, abs=1e-12)


def test_answer_component_is_0_when_the_gold_makes_only_calls() -> None:
    response = GOLD_CALL.replace("</tool_call>", "</tool_call>\n<response> q </response>")
    result = compute_score(response, GOLD_CALL, preset=RewardConfig(answer="em", answer_min=-2.0))
    assert result.answer == 0.0 and result.correctness == 3.0


def test_presets_leave_the_answer_off() -> None:
    for name, config in PRESETS.items():
        assert config.answer is None, name
        assert compute_score(answer("james madison"), GOLD_ANSWER, preset=name).answer == 0.0


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (RewardConfig(), (-3.0, 4.0)),
        (RewardConfig(answer="f1"), (-3.0, 5.0)),
        (RewardConfig(answer="em", answer_min=-1.0, answer_max=2.0), (-4.0, 6.0)),
        (RewardConfig(answer="f1", answer_min=0.5, answer_max=2.0), (-3.0, 6.0)),  # 0 when the gold has no <response>
    ],
)
def test_reward_bounds_include_the_answer(config: RewardConfig, expected: tuple[float, float]) -> None:
    assert reward_bounds(config) == expected


ANSWER_CONFIGS = [
    RewardConfig(answer="f1"),
    RewardConfig(answer="em", answer_min=-1.0, answer_max=2.0),
    RewardConfig(answer="f1", answer_min=0.5, schedule_steps=150),
]


@settings(max_examples=200, deadline=None)
@given(
    response=st.one_of(
        st.text(),
        st.builds(answer, st.text()),
        st.lists(st.sampled_from(["<think>", "</think>", "<response>", "</response>", "\n", "james", "madison"])).map(
            "".join
        ),
    ),
    gold=st.sampled_from([GOLD_ANSWER, GOLD_CALL, GOLD_CALL + "\n<response> james madison </response>"]),
    config=st.sampled_from(ANSWER_CONFIGS),
    step=st.integers(0, 300),
)
def test_scores_with_the_answer_stay_within_bounds(response: str, gold: str, config: RewardConfig, step: int) -> None:
    result = compute_score(response, gold, step=step, preset=config)
    low, high = reward_bounds(config, step)
    assert low - 1e-9 <= result.total <= high + 1e-9
    assert result.total == result.format + result.correctness + result.length + result.answer
