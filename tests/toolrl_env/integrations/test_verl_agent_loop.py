"""The `toolrl` agent loop against verl 0.9.1's own classes: built as veRL's worker builds it (its registry, hydra),
given rows of our parquet exporter, it plays ToolEnv episodes through a server manager (scripted gold, or our HF
sampler on a tiny model behind veRL's interface), masks the env's tokens and returns the env's per-turn rewards.
Ray, the vLLM/SGLang servers and veRL's trainer need GPUs and are not run here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytest.importorskip("verl", reason="verl goes in without its dependencies: pip install --no-deps verl==0.9.1")
import hydra
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, _agent_loop_registry
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.workers.rollout.replica import TokenOutput

from agents.embedded_model import embedded_model_dir
from agents.protocols import SamplingParams
from agents.sampling import HFSampler
from tests.agents.conftest import tiny_policy
from tests.fixtures.hostile_actions import STATIC, sentinel_paths, tool_entries
from toolrl_env.integrations.verl import export_parquet
from toolrl_env.integrations.verl_agent_loop import ToolEnvAgentLoop
from toolrl_env.registry import make_tool_env

CALC = {"num_tasks": 6, "seed": 0, "mode": "multi_turn"}
TOKENIZER = AutoTokenizer.from_pretrained(embedded_model_dir())
ANSWER = "<think> done </think>\n<response> done </response>"


MADE: list[Any] = []


@pytest.fixture(autouse=True)
def close_event_loops() -> Iterator[None]:
    """Close the event loop each agent loop made: outside a running loop veRL makes one per object, and an unclosed
    one warns when it is collected, later, in another test."""
    yield
    while MADE:
        MADE.pop().loop.close()


def make_loop(server: Any, response_length: int = 512) -> Any:
    """The loop as veRL's AgentLoopWorker makes it: from the registry entry, with hydra."""
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {"rollout": {"prompt_length": 4096, "response_length": response_length}},
            "data": {"apply_chat_template_kwargs": {}},
        }
    )
    loop = hydra.utils.instantiate(
        _agent_loop_registry["toolrl"],
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=TOKENIZER,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
    )
    MADE.append(loop)
    return loop


class GoldServer:
    """veRL's server-manager interface, answering each turn with the task's next gold step."""

    def __init__(self, golds: list[str]) -> None:
        self.golds = list(golds)
        self.prompts: list[list[int]] = []

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any
    ) -> TokenOutput:
        self.prompts.append(list(prompt_ids))
        ids = TOKENIZER(self.golds.pop(0) + "<|im_end|>", add_special_tokens=False).input_ids
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))


class SamplerServer:
    """Our HF sampler (a tiny random model) behind veRL's server-manager interface."""

    def __init__(self) -> None:
        self.sampler = HFSampler(tiny_policy(TOKENIZER))

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any
    ) -> TokenOutput:
        params = SamplingParams(max_new_tokens=12, temperature=sampling_params.get("temperature", 1.0), seed=0)
        sample = self.sampler.generate([prompt_ids], params)[0]
        return TokenOutput(token_ids=sample.token_ids, log_probs=sample.logprobs)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("verl") / "calc.parquet"
    export_parquet("ToolEnv-Calc-v0", path, env_kwargs=CALC, agent_loop=True)
    return pq.read_table(path).to_pylist()


def run(loop: Any, row: dict[str, Any], logprobs: bool = True) -> Any:
    fields = {k: v for k, v in row.items() if k != "agent_name"}  # the worker consumes agent_name
    return asyncio.run(loop.run({"temperature": 1.0, "logprobs": logprobs}, raw_prompt=row["prompt"], **fields))


def test_the_loop_is_registered_and_the_rows_name_it(rows: list[dict[str, Any]]) -> None:
    assert _agent_loop_registry["toolrl"] == {"_target_": f"{ToolEnvAgentLoop.__module__}.ToolEnvAgentLoop"}
    assert {row["agent_name"] for row in rows} == {"toolrl"}
    assert isinstance(make_loop(None), ToolEnvAgentLoop)


def test_gold_episodes_get_the_envs_per_turn_rewards_and_the_env_tokens_are_masked(rows: list[dict[str, Any]]) -> None:
    reference = make_tool_env("ToolEnv-Calc-v0", **CALC)
    two_step = [r for r in rows if len(reference.task(r["extra_info"]["task_id"]).turns[0].steps) == 2]
    assert two_step, "Calc has tasks whose gold calls a tool, then answers"
    for row in two_step[:2]:
        messages, _ = reference.reset(options={"task_id": row["extra_info"]["task_id"]})
        golds, rewards = [], []
        done = False
        while not done:
            golds.append(reference.current_gold().text or "")
            _, reward, terminated, truncated, _ = reference.step(golds[-1])
            rewards.append(reward)
            done = terminated or truncated
        server = GoldServer(golds)
        output = run(make_loop(server), row)

        assert output.extra_fields["turn_scores"] == rewards and output.reward_score == sum(rewards)
        rendered = TOKENIZER.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert output.prompt_ids == TOKENIZER(rendered, add_special_tokens=False).input_ids
        model = [t for t, m in zip(output.response_ids, output.response_mask, strict=True) if m == 1]
        env = [t for t, m in zip(output.response_ids, output.response_mask, strict=True) if m == 0]
        assert TOKENIZER.decode(model) == "<|im_end|>".join(golds) + "<|im_end|>"
        assert "<obs>" in TOKENIZER.decode(env) and "<obs>" not in TOKENIZER.decode(model)  # the tool really ran
        assert output.response_logprobs == [-0.5 if m else 0.0 for m in output.response_mask]
        assert (
            server.prompts[1]
            == output.prompt_ids + output.response_ids[: len(server.prompts[1]) - len(output.prompt_ids)]
        )


def test_the_response_budget_cuts_the_episode(rows: list[dict[str, Any]]) -> None:
    reference = make_tool_env("ToolEnv-Calc-v0", **CALC)
    reference.reset(options={"task_id": rows[0]["extra_info"]["task_id"]})
    gold = reference.current_gold().text or ""
    output = run(make_loop(GoldServer([gold] * 8), response_length=8), rows[0], logprobs=False)
    assert len(output.response_ids) == len(output.response_mask) == 8 and output.response_logprobs is None


def test_a_real_model_behind_the_server_interface_is_scored_by_the_env(rows: list[dict[str, Any]]) -> None:
    row = rows[0]
    output = run(make_loop(SamplerServer()), row)
    text = TOKENIZER.decode(
        output.response_ids[: output.response_mask.index(0) if 0 in output.response_mask else None],
        skip_special_tokens=True,
    )
    reference = make_tool_env("ToolEnv-Calc-v0", **CALC)
    reference.reset(options={"task_id": row["extra_info"]["task_id"]})
    assert output.extra_fields["turn_scores"][0] == reference.step(text)[1]
    assert len(output.response_logprobs) == len(output.response_ids)


def test_rows_without_what_the_loop_needs_get_clear_errors(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    loop = make_loop(GoldServer([]))
    with pytest.raises(ValueError, match=r"extra_info lacks \['env_id', 'task_id'\].*toolrl_env.integrations.verl"):
        asyncio.run(loop.run({}, raw_prompt=[], extra_info={}))
    bad = {**rows[0], "extra_info": {**rows[0]["extra_info"], "task_id": "calc-nope"}}
    with pytest.raises(KeyError, match="unknown task_id 'calc-nope'"):
        run(loop, bad)
    bad = {**rows[0], "extra_info": {**rows[0]["extra_info"], "env_kwargs": json.dumps({"colour": "red"})}}
    with pytest.raises(Exception, match="colour"):
        run(loop, bad)


def test_hostile_turns_get_the_envs_reward(
    rows: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    row = rows[0]
    reference = make_tool_env("ToolEnv-Calc-v0", **CALC)
    reference.reset(options={"task_id": row["extra_info"]["task_id"]})
    corpus = {**STATIC, **tool_entries(reference.offered_tools())}
    texts = {name: action for name, action in corpus.items() if isinstance(action, str) and len(action) < 20_000}
    for name, action in texts.items():
        text = action.encode("utf-8", "replace").decode("utf-8")  # what a tokenizer can carry
        output = run(make_loop(GoldServer([text] + [ANSWER] * 8)), row)  # answers after a call that ran
        ids = TOKENIZER(text + "<|im_end|>", add_special_tokens=False).input_ids
        reference.reset(options={"task_id": row["extra_info"]["task_id"]})
        expected = reference.step(TOKENIZER.decode(ids, skip_special_tokens=True))[1]
        assert output.extra_fields["turn_scores"][0] == expected, name
    assert [p for p in sentinel_paths(tmp_path) if p.exists()] == [], "a hostile action ran"
