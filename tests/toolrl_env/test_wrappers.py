"""DiscreteToolChoice: both libraries' env checkers, seeded determinism, the gold as the one best candidate,
the distractor kinds, and the featuriser's documented values."""

from __future__ import annotations

import copy
import pickle
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from pydantic import ValidationError
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import toolrl_env  # noqa: F401  (registers the env ids)
from toolrl_env.rewards import RewardConfig, compute_score
from toolrl_env.task import GoldStep
from toolrl_env.wrappers import ChoiceFeaturiser, DiscreteToolChoice, build_candidates
from toolrl_env.wrappers.features import CANDIDATE_FEATURES
from tools.calculator import CALCULATE, CONVERT_UNITS
from tools.call import ToolCall
from tools.tool import Tool, tool

R, B = 64, 8  # the default request and tool buckets


def calc(num_candidates: int = 4, **kwargs: Any) -> DiscreteToolChoice:
    return DiscreteToolChoice(gym.make("ToolEnv-Calc-v0", num_tasks=40, **kwargs), num_candidates=num_candidates)


def decisions(env: DiscreteToolChoice, seed: int, count: int) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """`count` decisions of seeded episodes, each followed by a random choice (gold half the time)."""
    rng = np.random.default_rng(seed)
    observation, info = env.reset(seed=seed)
    for _ in range(count):
        yield observation, info
        action = info["gold_index"] if rng.random() < 0.5 else int(rng.integers(env.config.num_candidates))
        observation, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            observation, info = env.reset()


# -- the checkers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "num_candidates"), [("multi_turn", 4), ("single_turn", 4), ("multi_turn", 6)])
def test_gymnasium_check_env_passes(mode: str, num_candidates: int) -> None:
    env = calc(num_candidates, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The one warning check_env gives every wrapper: that it checks a wrapped env.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        gymnasium_check_env(env)


@pytest.mark.parametrize(("mode", "num_candidates"), [("multi_turn", 4), ("single_turn", 4), ("multi_turn", 6)])
def test_stable_baselines3_check_env_passes_without_warnings(mode: str, num_candidates: int) -> None:
    env = calc(num_candidates, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


def test_spaces_and_observation_bounds() -> None:
    env = calc(5)
    dim = R + 1 + 5 * (CANDIDATE_FEATURES + B)
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
    observations = [obs for obs, _ in decisions(env, seed=0, count=200)]
    for obs in observations:
        assert obs.shape == (dim,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    # Every candidate slot is filled while there is a choice, and the request bag is a unit vector.
    stacked = np.stack(observations)
    blocks = stacked[:, R + 1 :].reshape(len(stacked), 5, -1)
    assert (blocks[:, :, 0] == 1).all()
    np.testing.assert_allclose(np.linalg.norm(stacked[:, :R], axis=1), 1.0, rtol=1e-5)
    wide = DiscreteToolChoice(gym.make("ToolEnv-Calc-v0", num_tasks=5), 3, request_buckets=16, tool_buckets=2)
    assert wide.reset(seed=0)[0].shape == (16 + 1 + 3 * (CANDIDATE_FEATURES + 2),)


def test_the_last_observation_of_an_episode_has_no_candidates() -> None:
    env = calc(4)
    _, info = env.reset(seed=3)
    done = False
    while not done:
        observation, _, terminated, truncated, info = env.step(info["gold_index"])
        done = terminated or truncated
    assert terminated and info["gold_index"] == -1 and info["candidate_kinds"] == []
    assert not observation[R + 1 :].any() and observation[:R].any()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


# -- determinism ----------------------------------------------------------------------------------------


def trace(env: DiscreteToolChoice, seed: int) -> list[Any]:
    env.action_space.seed(seed)
    out: list[Any] = [env.reset(seed=seed)]
    for _ in range(30):
        step = env.step(env.action_space.sample())
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset())
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def test_seeded_episodes_are_deterministic_and_seeds_matter() -> None:
    first = trace(calc(), seed=7)
    assert same(first, trace(calc(), seed=7))
    assert not same(first, trace(calc(), seed=8))


def test_the_same_task_gets_other_candidates_and_orders_under_other_seeds() -> None:
    env = calc()
    task_id = env.unwrapped.tasks[0].id
    seen = {tuple(env.reset(seed=s, options={"task_id": task_id})[1]["candidate_kinds"]) for s in range(20)}
    assert len(seen) > 3


def test_a_pickled_env_continues_identically() -> None:
    env = calc()
    env.reset(seed=5)
    env.step(1)
    copy_ = pickle.loads(pickle.dumps(env))
    for action in (0, 2, 1):
        a, b = env.step(action), copy_.step(action)
        assert same(list(a), list(b))
        if a[2] or a[3]:
            break


# -- the candidates -------------------------------------------------------------------------------------


def test_the_gold_is_always_offered_once_and_is_the_one_best_choice() -> None:
    env = calc(4)
    for _, info in decisions(env, seed=1, count=80):
        kinds = info["candidate_kinds"]
        assert kinds.count("gold") == 1 and kinds[info["gold_index"]] == "gold"
        # Step every candidate from a copy of this very state: the reward is what the env gives.
        rewards = [copy.deepcopy(env).step(k)[1] for k in range(4)]
        assert rewards == [c.reward for c in env.candidates]
        best = rewards[info["gold_index"]]
        assert all(r < best for k, r in enumerate(rewards) if k != info["gold_index"])
        gold = env.unwrapped.current_gold()
        assert best == (4.0 if gold.calls else 1.0)  # format max + correctness max (0 for an answer)
        assert env.candidates[info["gold_index"]].text == gold.text


def test_the_chosen_completion_is_scored_by_the_wrapped_env_unchanged() -> None:
    env, bare = calc(4), gym.make("ToolEnv-Calc-v0", num_tasks=40)
    _, info = env.reset(seed=2)
    bare.reset(seed=2)
    for action in (0, 3, 1, 2):
        chosen = env.candidates[action]
        _, reward, terminated, truncated, info = env.step(action)
        _, bare_reward, *_, bare_info = bare.step(chosen.text)
        assert reward == bare_reward == chosen.reward
        assert info["reward_breakdown"] == bare_info["reward_breakdown"]
        assert info["chosen_kind"] == chosen.kind and info["chose_gold"] == (chosen.kind == "gold")
        if terminated or truncated:
            break


def test_the_golds_position_is_spread_over_all_indices() -> None:
    counts = Counter(info["gold_index"] for _, info in decisions(calc(4), seed=4, count=400))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 60


def test_every_distractor_kind_appears_on_calc() -> None:
    kinds = Counter(k for _, info in decisions(calc(6), seed=6, count=400) for k in info["candidate_kinds"])
    call_kinds = {"other_tool", "wrong_name", "missing_param", "wrong_value", "extra_call", "no_call", "missing_call"}
    assert call_kinds | {"gold", "needless_call"} == set(kinds)  # wrong answers tie under ToolRL's reward


def test_wrong_answers_are_offered_when_the_reward_grades_the_answer() -> None:
    env = DiscreteToolChoice(gym.make("ToolEnv-Calc-v0", num_tasks=40, reward=RewardConfig(answer="em")), 4)
    kinds = Counter(k for _, info in decisions(env, seed=0, count=100) for k in info["candidate_kinds"])
    assert kinds["wrong_answer"] > 0


@tool
def book_room(room: str, nights: int, breakfast: bool, floor: str, guests: list[str]) -> str:
    """Book a hotel room.

    Args:
        room: Room type.
        nights: Number of nights.
        breakfast: Whether breakfast is included.
        floor: Preferred floor.
        guests: Names of the guests.
    """
    return "booked"


ROOM = Tool(
    name="book_room",
    description=book_room.description,
    parameters={
        **book_room.parameters,
        "properties": {
            **book_room.parameters["properties"],
            "room": {"type": "string", "enum": ["single", "double", "suite"]},
        },
    },
)
WEATHER = Tool(
    name="get_weather",
    description="Current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_wrong_values_keep_the_json_type_of_each_parameter() -> None:
    gold_call = ToolCall(
        name="book_room",
        parameters={"room": "double", "nights": 3, "breakfast": True, "floor": "top", "guests": ["Ann", "Bo"]},
    )
    gold = GoldStep(calls=[gold_call])
    rng = np.random.default_rng(0)
    changed: dict[str, set[Any]] = {key: set() for key in gold_call.parameters}
    for _ in range(60):
        for c in build_candidates(gold, [ROOM, WEATHER], "Book a double for 3 nights", _score_calls(gold), 4, rng):
            if c.kind == "wrong_value":
                (call,) = c.calls
                for key, value in call.parameters.items():
                    if value != gold_call.parameters[key]:
                        changed[key].add(repr(value))
                        assert type(value) is type(gold_call.parameters[key])
                assert ROOM.validate_arguments(call.parameters) is None
    assert changed["room"] <= {"'single'", "'suite'"} and changed["room"]  # another enum member
    assert changed["breakfast"] == {"False"}
    assert changed["guests"] == {"['Ann']"}
    assert changed["nights"] and changed["floor"]


def _score_calls(gold: GoldStep) -> Any:
    """The env's reward without an env: ToolRL's reward against this gold."""
    return lambda text: compute_score(text, gold.text or "").total


def test_other_tool_distractors_take_their_arguments_from_the_request() -> None:
    gold = GoldStep(calls=[ToolCall(name="book_room", parameters={"room": "single", "nights": 2})])
    rng = np.random.default_rng(1)
    others = [
        c
        for _ in range(40)
        for c in build_candidates(gold, [ROOM, WEATHER], "Book one room in Paris", _score_calls(gold), 4, rng)
        if c.kind == "other_tool"
    ]
    assert len(others) > 20 and all(c.calls[0].name == "get_weather" for c in others)
    cities = [c.calls[0].parameters["city"] for c in others]
    from_request = sum(city in {"book", "one", "room", "in", "paris"} for city in cities)
    assert 0.6 < from_request / len(cities) < 1  # three in four, the rest sampled from the schema


def test_a_step_too_small_for_k_candidates_says_how_many_it_allows() -> None:
    ping = Tool(name="ping", description="Ping.", parameters={"type": "object", "properties": {}})
    gold = GoldStep(calls=[ToolCall(name="ping", parameters={})])
    with pytest.raises(ValueError, match=r"use num_candidates <= 3"):
        build_candidates(gold, [ping], "ping", _score_calls(gold), 6, np.random.default_rng(0))


def test_bad_settings_and_actions_are_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="wraps a ToolEnv, got CartPoleEnv"):
        DiscreteToolChoice(gym.make("CartPole-v1"))
    with pytest.raises(ValidationError, match="num_candidates"):
        calc(1)
    env = calc(4)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="choose a candidate index from 0 to 3"):
        env.step(4)
    with pytest.raises(TypeError, match="integer candidate index"):
        env.step(1.5)  # type: ignore[arg-type]
    assert env.step(np.int64(2))[4]["chosen_kind"]


# -- the featuriser ---------------------------------------------------------------------------------------


def features(request: str, candidates: list[tuple[list[ToolCall], str | None]], results: str = "") -> np.ndarray:
    featuriser = ChoiceFeaturiser(len(candidates), request_buckets=R, tool_buckets=B)
    conversation = [
        {"role": "system", "content": "tools"},
        {"role": "user", "content": f"<user> {request} </user>\n{results}"},
    ]
    out = featuriser(conversation, candidates, [CALCULATE, CONVERT_UNITS])
    assert out.shape == (featuriser.dim,)
    return out[R + 1 :].reshape(len(candidates), -1)


def convert(value: float, source: str, target: str) -> ToolCall:
    return ToolCall(name="convert_units", parameters={"value": value, "from_unit": source, "to_unit": target})


def test_candidate_features_are_the_documented_values() -> None:
    request = "Convert 12 km to mi, and also 3.0 kg to lb."
    gold = [convert(12, "km", "mi"), convert(3, "kg", "lb")]
    rows = features(
        request,
        [
            (gold, None),
            ([convert(12, "mi", "km"), gold[1]], None),  # units swapped in the first call
            ([convert(13, "km", "mi"), gold[1]], None),  # a wrong value
            (gold[:1], None),  # a call missing
            ([*gold, gold[0]], None),  # a call repeated
            ([ToolCall(name="calculate", parameters={"expr": "12"})], None),  # wrong parameter name
            ([], "I cannot."),
        ],
    )
    gold_row, swapped, wrong, missing, repeated, misnamed, answer = rows
    # present, no call, response, calls/4, offered, schema-valid, declared names, precision, recall, order
    np.testing.assert_allclose(gold_row[:10], [1, 0, 0, 0.5, 1, 1, 1, 1, 1, 1])
    assert swapped[9] == 0.75 and swapped[7] == 1 and swapped[8] == 1  # 3 of the 4 value pairs in order
    assert wrong[7] == pytest.approx(5 / 6) and wrong[8] == pytest.approx(1 / 2)  # 13 not asked; 12 not used
    assert missing[8] == pytest.approx(1 / 2) and missing[3] == 0.25
    assert repeated[11] == pytest.approx(1 / 3) and gold_row[11] == 0
    assert misnamed[5] == 0 and misnamed[6] == 0 and misnamed[4] == 1
    # Letter tokens of the request found in convert_units' name and description, and none for `calculate`.
    assert gold_row[10] > misnamed[10] == 0
    np.testing.assert_allclose(answer[:6], [1, 1, 1, 0, 0, 0])
    bucket = CANDIDATE_FEATURES + np.flatnonzero(gold_row[CANDIDATE_FEATURES:])
    assert len(bucket) == 1 and gold_row[bucket[0]] == 1


def test_a_response_is_grounded_in_the_tool_results_of_this_turn() -> None:
    results = '<obs> [{"name": "calculate", "results": -548}] </obs>'
    right, wrong = features("What is 2 - 550?", [([], "-548"), ([], "-549 or 548")], results)
    assert right[12] == 1 and wrong[12] == pytest.approx(2 / 4)  # "-" and "548" are there, "549" and "or" not


def test_the_request_part_is_the_last_user_record_and_whether_tools_ran() -> None:
    featuriser = ChoiceFeaturiser(2, request_buckets=R, tool_buckets=B)
    first = featuriser([{"role": "user", "content": "<user> Convert 5 km to mi. </user>"}], [], [])
    dialogue = "<user> What is 2 + 2? </user>\n<obs> 4 </obs>\n<user> Convert 7 km to mi. </user>"
    later = featuriser([{"role": "user", "content": dialogue}], [], [])
    np.testing.assert_array_equal(first[:R], later[:R])  # numbers hash as one token
    assert first[R] == 0 == later[R]
    ran = featuriser([{"role": "user", "content": "<user> Convert 5 km to mi. </user>\n<obs> 3.1 </obs>"}], [], [])
    assert ran[R] == 1
