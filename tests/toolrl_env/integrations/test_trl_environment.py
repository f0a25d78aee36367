"""TRL's multi-turn `environment_factory`: every suite's tools become typed, documented methods that run through
the suite; replayed completions get exactly the in-process env's reward; bad input gets an error or the lowest
reward; and a real `GRPOTrainer` runs the tools between turns and trains on our reward."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer
from transformers.utils import get_json_schema

from agents.embedded_model import embedded_model_dir
from tests.agents.conftest import tiny_llama
from tests.conftest import CounterSuite
from tests.fixtures.hostile_actions import STATIC
from tests.fixtures.tool_envs import env_kwargs
from tests.toolrl_env.integrations.test_trl import cpu_config
from toolrl_env.env import ToolEnv
from toolrl_env.format import parse
from toolrl_env.integrations.trl import (
    TOOL_CALLING_SYSTEM,
    ToolEnvironment,
    environment_factory,
    reward_functions,
    trl_dataset,
    with_tool_chat_template,
)
from toolrl_env.prompt import ADDITIONAL_INSTRUCTIONS
from toolrl_env.registry import make_tool_env, register_suite
from toolrl_env.rewards import reward_bounds

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="trl 1.16 needs Python >= 3.11")

CALLS: list[int] = []  # every `add` that really ran, in any env copy of the suite


class CountingSuite(CounterSuite):
    """The counter suite, with every `add` that runs counted in `CALLS`."""

    def add(self, amount: int) -> int:
        """Add to the counter and return its new value.

        Args:
            amount: How much to add.
        """
        CALLS.append(amount)
        return super().add(amount)


COUNTER = register_suite(
    "TRLCounter",
    CountingSuite(),
    [
        {
            "id": f"add-{n}",
            "user": f"Add {n} to the counter.",
            "gold_calls": [{"name": "add", "parameters": {"amount": n}}],
            "answer": str(n),
        }
        for n in (2, 5)
    ],
)
SUITES = {
    "ToolEnv-Calc-v0": {"num_tasks": 4, "seed": 0},
    "ToolEnv-BFCLMultiTurn-v0": {},
    "ToolEnv-APIBank-v0": env_kwargs("ToolEnv-APIBank-v0", ""),
    "ToolEnv-Bamboogle-v0": env_kwargs("ToolEnv-Bamboogle-v0", ""),
    COUNTER: {},
}


def factories(env_id: str) -> dict[str | None, Any]:
    made = environment_factory(env_id, **SUITES[env_id])
    return made if isinstance(made, dict) else {None: made}


def gold_message(text: str) -> dict[str, Any]:
    """A gold TIR turn as TRL's parser would hand it over."""
    parsed = parse(text)
    message: dict[str, Any] = {"role": "assistant", "content": parsed.response or ""}
    if parsed.think is not None:
        message["reasoning_content"] = parsed.think
    if parsed.tool_calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": c.parameters}} for c in parsed.tool_calls
        ]
    return message


def play_gold(environment: ToolEnvironment, reference: ToolEnv, task_id: str) -> tuple[list[Any], list[float]]:
    """Play the task's first turn's gold through the environment's tool methods as TRL would, and the same gold
    through the in-process env; the completion TRL would score and the in-process per-step totals."""
    reference.reset(options={"task_id": task_id})
    completion: list[Any] = []
    totals = []
    task = reference.task(task_id)
    for gold in task.turns[0].steps:
        text = gold.text or ""
        message = gold_message(text)
        completion.append(message)
        for call in message.get("tool_calls", []):
            try:
                content = getattr(environment, call["function"]["name"])(**call["function"]["arguments"])
            except RuntimeError as exc:  # TRL's treatment of a raising tool
                content = json.dumps({"error": str(exc)})
            completion.append({"role": "tool", "name": call["function"]["name"], "content": content})
        _, reward, terminated, truncated, _ = reference.step(text)
        totals.append(reward)
        if terminated or truncated:
            break
    return completion, totals


@pytest.mark.parametrize("env_id", list(SUITES))
def test_tools_are_the_suites_and_gold_replays_to_the_in_process_reward(env_id: str) -> None:
    kwargs = SUITES[env_id]
    made = factories(env_id)
    dataset = trl_dataset(env_id, limit=3, environment=True, **kwargs)
    reference = make_tool_env(env_id, mode="multi_turn", **kwargs)
    (total,) = reward_functions(env_id, components=False, **kwargs)
    for row in dataset:
        assert row["prompt"][0] == {"role": "system", "content": TOOL_CALLING_SYSTEM}
        assert row["prompt"][1] == reference.reset(options={"task_id": row["task_id"]})[0][1]
        factory = made[row.get("environment")]
        environment = factory()
        reference.reset(options={"task_id": row["task_id"]})
        offered = {t.name: t for t in reference.offered_tools()}
        methods = {n for n, _ in inspect.getmembers(factory, inspect.isfunction) if n != "reset" and n[0] != "_"}
        assert methods == set(offered)
        for name in methods:  # the schema TRL renders into the chat template: the tool's names and requirements
            schema = get_json_schema(getattr(environment, name))["function"]["parameters"]
            want = offered[name].parameters
            assert set(schema["properties"]) == set(want.get("properties", {}))
            assert set(schema.get("required", [])) == set(want.get("required", []))
        environment.reset(**row)
        completion, totals = play_gold(environment, reference, row["task_id"])
        assert total(prompts=[row["prompt"]], completions=[completion], environments=[environment]) == [
            pytest.approx(sum(totals))
        ]


def test_calls_run_in_the_episode_once_and_bad_input_gets_errors_or_the_lowest_reward() -> None:
    CALLS.clear()
    environment = factories(COUNTER)[None]()
    environment.reset(task_id="add-2", prompt=[])
    assert json.loads(environment.add(amount=2)) == 2
    assert json.loads(environment.add(amount=3)) == 5  # the episode's state carries over between calls
    with pytest.raises(RuntimeError, match="amount"):
        environment.add(amount="two")  # validated against the schema: an error for the model, nothing run
    with pytest.raises(RuntimeError, match=r"unknown|amount"):
        environment.add(amount=1, extra=True)
    assert CALLS == [2, 3]
    completion = [
        gold_message('<think> add </think>\n<tool_call>\n{"name": "add", "parameters": {"amount": 2}}\n</tool_call>'),
        {"role": "tool", "name": "add", "content": "2"},
    ]
    funcs = reward_functions(COUNTER)
    scores = {f.__name__: f(prompts=[[]], completions=[completion], environments=[environment])[0] for f in funcs}
    assert CALLS == [2, 3]  # scoring takes the results of the calls that ran; nothing runs again
    assert scores["correctness"] == pytest.approx(3.0)  # the gold call, once

    reference = make_tool_env(COUNTER)
    low, _ = reward_bounds(reference.reward_config, 0)
    (total,) = reward_functions(COUNTER, components=False)
    for name, action in list(STATIC.items())[:12]:
        environment.reset(task_id="add-5")
        content = action if isinstance(action, str) else repr(action)
        hostile = [{"role": "assistant", "content": content}, "not a message", None]
        assert total(prompts=[[]], completions=[hostile], environments=[environment]) == [low], name
    assert CALLS == [2, 3]

    with pytest.raises(ValueError, match=r"no 'task_id' column.*environment=True"):
        environment.reset(prompt=[])
    with pytest.raises(KeyError, match=r"unknown task_id 'nope'.*environment_factory"):
        environment.reset(task_id="nope")
    with pytest.raises(ValueError, match="same env kwargs"):
        reward_functions(COUNTER, preset="coarse")[0](prompts=[[]], completions=[[]], environments=[environment])
    with pytest.raises(TypeError, match="environment_factory"):
        total(prompts=[[]], completions=[[]], environments=[object()])


def test_a_tokenizer_without_a_tool_template_gets_trls_chatml_one() -> None:
    from trl.chat_template_utils import supports_tool_calling

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    assert not supports_tool_calling(tokenizer)
    assert supports_tool_calling(with_tool_chat_template(tokenizer))
    other = AutoTokenizer.from_pretrained(embedded_model_dir())
    other.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    vocabulary = other.get_vocab()
    del vocabulary["<|im_start|>"]
    other.get_vocab = lambda: vocabulary  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="no ChatML tokens"):
        with_tool_chat_template(other)


class ScriptedGenerate:
    """The policy's turns, scripted: the first rollout of each group makes the gold call, then answers once the
    tool's result is in the prompt; the second answers at once. TRL parses them, runs the tools, renders the
    results and trains on these tokens; only sampling is replaced, so that a model this small reaches the tools
    (and the two rollouts' rewards differ, so GRPO has a signal)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.turns = 0

    def __call__(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        rows = []
        for i, ids in enumerate(input_ids.tolist()):
            prompt = self.tokenizer.decode(ids)
            amount = 2 if "Add 2" in prompt else 5
            if "<tool_response>" in prompt:
                text = f"<think> done </think>\nThe counter is at {amount}.<|im_end|>"
            elif i % 2:
                text = "<think> no tool </think>\nI cannot do that.<|im_end|>"
            else:
                call = json.dumps({"name": "add", "arguments": {"amount": amount}})
                text = f"<think> add {amount} </think>\n<tool_call>\n{call}\n</tool_call><|im_end|>"
            rows.append(ids + self.tokenizer(text, add_special_tokens=False)["input_ids"])
        self.turns += 1
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id
        return torch.tensor([row + [pad] * (width - len(row)) for row in rows])


def test_grpo_trainer_runs_our_tools_between_turns_and_trains_on_our_reward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl import GRPOTrainer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    tokenizer = with_tool_chat_template(AutoTokenizer.from_pretrained(embedded_model_dir()))
    config = cpu_config(tmp_path / "out", max_completion_length=96, max_tool_calling_iterations=2)
    trainer = GRPOTrainer(
        model=tiny_llama(tokenizer),
        processing_class=tokenizer,
        reward_funcs=reward_functions(COUNTER),
        args=config,
        train_dataset=trl_dataset(COUNTER, environment=True),
        environment_factory=environment_factory(COUNTER),
    )
    scripted = ScriptedGenerate(tokenizer)
    monkeypatch.setattr(trainer.model, "generate", scripted)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    CALLS.clear()
    trainer.train()

    assert trainer.state.global_step == 2
    assert scripted.turns == 4  # two turns a step: the call, then the answer after its result
    assert sorted(CALLS) == [2, 2, 5, 5]  # the calling rollout of each group, 2 groups a step
    reference = make_tool_env(COUNTER)
    reference.reset(options={"task_id": "add-2"})
    call = '<think> add 2 </think>\n<tool_call>\n{"name": "add", "parameters": {"amount": 2}}\n</tool_call>'
    called = [
        reference.step(call)[4],
        reference.step("<think> done </think>\n<response> The counter is at 2. </response>")[4],
    ]
    reference.reset(options={"task_id": "add-2"})
    declined = [reference.step("<think> no tool </think>\n<response> I cannot do that. </response>")[4]]
    want = {
        k: (sum(i["reward_breakdown"][k] for i in called) + declined[0]["reward_breakdown"][k]) / 2
        for k in ("format", "correctness")
    }
    logs = [entry for entry in trainer.state.log_history if "rewards/format/mean" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert entry["rewards/format/mean"] == pytest.approx(want["format"])
        assert entry["rewards/correctness/mean"] == pytest.approx(want["correctness"])
        assert entry["tools/call_frequency"] > 0 and entry["tools/failure_frequency"] == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_rows_keep_a_tasks_own_instructions() -> None:
    kwargs = {"category": "live_simple"}
    reference = make_tool_env("ToolEnv-BFCL-v0", **kwargs)
    index = next(i for i, task in enumerate(reference.tasks) if task.system)
    row = trl_dataset("ToolEnv-BFCL-v0", limit=index + 1, environment=True, **kwargs)[index]
    own = reference.tasks[index].system.partition(ADDITIONAL_INSTRUCTIONS)[2].strip()
    assert own and row["prompt"][0]["content"] == f"{TOOL_CALLING_SYSTEM}\n\n{ADDITIONAL_INSTRUCTIONS}\n{own}"
    assert "**Available Tools**" not in row["prompt"][0]["content"]  # the chat template lists the tools
