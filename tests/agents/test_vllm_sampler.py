"""`VLLMSampler` on a real vLLM engine (CI installs vLLM's CPU build): log-probs, weight sync, seeds, turn ends,
multi-turn rollouts, LoRA and the faults a user meets. No part of vLLM is mocked.

One engine serves the module (a start costs seconds); each test first syncs the weights it works with, which is
itself the sync under test. The model is a tiny random Llama over the embedded model's tokenizer, its layers
scaled up so that greedy choices win by clear margins (`make_peaky` in conftest.py), with 64-wide attention
heads, which vLLM's CPU attention supports.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch

pytest.importorskip("vllm", reason="the vLLM sampler's tests need vLLM (README: the test command installs it)")

from agents.learners.warmup import WarmupConfig, demonstrations, warm_up
from agents.policy import LoraSettings, Policy, PolicyConfig, token_logprobs
from agents.protocols import Sample, SamplingParams
from agents.rollout import rollout
from agents.sampling import HFSampler, make_sampler, nucleus
from agents.vllm_sampler import VLLMConfig, VLLMSampler, staging_dir
from tests.agents.conftest import VLLM_CONTEXT as CONTEXT
from toolrl_env.envs.calc.env import make_calc_env

# Agreement of vLLM's sampling log-probs with the policy's own teacher-forced ones, both in fp32 (different
# kernels, so not bit-equal; a weight change of the size below moves them by more than 0.1).
TOLERANCE = 1e-4


def load(vllm_model_dir: Path, **settings: Any) -> Policy:
    return Policy.load(PolicyConfig(model=str(vllm_model_dir), dtype="float32", cpu_bf16_autocast=False, **settings))


@pytest.fixture(scope="module")
def sampler(vllm_model_dir: Path) -> Iterator[VLLMSampler]:
    engine = VLLMSampler(load(vllm_model_dir), VLLMConfig(kv_cache_gib=0.25), seed=0)
    yield engine
    engine.close()


def prompts(policy: Policy) -> list[list[int]]:
    questions = ["What is 2 + 2?", "Hi", "Convert 5 km to miles, please, and show the steps."]
    return [policy.prompt_ids([{"role": "user", "content": question}]) for question in questions]


def teacher_forced(policy: Policy, prompt: list[int], sample: Sample, temperature: float = 1.0, top_p: float = 1.0):
    """Each generated token's log-prob under the policy's distribution after temperature and top-p."""
    ids = torch.tensor([prompt + sample.token_ids])
    with torch.no_grad():
        if temperature == 1.0 and top_p == 1.0:
            return token_logprobs(policy, ids, torch.ones_like(ids), len(sample.token_ids))[0][0]
        logits = policy.model(ids).logits[0, len(prompt) - 1 : -1].float()
        logprobs, candidates = nucleus(torch.log_softmax(logits / temperature, -1), top_p)
        chosen = torch.tensor(sample.token_ids).unsqueeze(1)
        return torch.where(candidates == chosen, logprobs, 0.0).sum(1)  # -inf would mean outside the nucleus


def largest_gap(policy: Policy, prompt: list[int], sample: Sample, **processing: float) -> float:
    return float((teacher_forced(policy, prompt, sample, **processing) - torch.tensor(sample.logprobs)).abs().max())


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9)])
def test_sampling_logprobs_are_the_policys_on_the_same_tokens(
    sampler: VLLMSampler, vllm_model_dir: Path, temperature: float, top_p: float
) -> None:
    policy = load(vllm_model_dir)
    sampler.sync(policy.model)
    batch = prompts(policy)
    params = SamplingParams(max_new_tokens=24, temperature=temperature, top_p=top_p, stop=(), seed=5)
    samples = sampler.generate(batch, params)
    assert [len(s.token_ids) for s in samples] == [24] * 3 and {s.finish_reason for s in samples} == {"length"}
    for prompt, sample in zip(batch, samples, strict=True):
        assert largest_gap(policy, prompt, sample, temperature=temperature, top_p=top_p) < TOLERANCE


def test_logprobs_agree_again_only_once_sync_has_run(sampler: VLLMSampler, vllm_model_dir: Path) -> None:
    policy = load(vllm_model_dir)
    sampler.sync(policy.model)
    prompt = prompts(policy)[0]
    params = SamplingParams(max_new_tokens=16, stop=(), seed=1)
    with torch.no_grad():  # the tied output layer (and so the input embeddings) and one projection
        model: Any = policy.model
        model.lm_head.weight.add_(0.5 * torch.randn_like(model.lm_head.weight))
        model.model.layers[1].mlp.down_proj.weight.mul_(-1)
    (stale,) = sampler.generate([prompt], params)
    assert largest_gap(policy, prompt, stale) > 0.1
    sampler.sync(policy.model)
    (fresh,) = sampler.generate([prompt], params)
    assert largest_gap(policy, prompt, fresh) < TOLERANCE


def test_a_groups_samples_differ_and_a_seed_repeats_them(sampler: VLLMSampler, vllm_model_dir: Path) -> None:
    policy = load(vllm_model_dir)
    sampler.sync(policy.model)
    group = [prompts(policy)[1]] * 4
    params = SamplingParams(max_new_tokens=12, stop=(), seed=7)
    first = sampler.generate(group, params)
    assert len({tuple(s.token_ids) for s in first}) == 4
    assert [s.token_ids for s in sampler.generate(group, params)] == [s.token_ids for s in first]
    unseeded = sampler.generate(group, params.model_copy(update={"seed": None}))
    assert len({tuple(s.token_ids) for s in unseeded}) == 4


def test_stop_strings_and_the_length_limit_end_a_turn_as_with_hf(sampler: VLLMSampler, vllm_model_dir: Path) -> None:
    policy = load(vllm_model_dir)
    sampler.sync(policy.model)
    batch = prompts(policy)
    free = HFSampler(policy).generate(batch, SamplingParams(temperature=0.0, max_new_tokens=24, stop=()))
    assert [s.token_ids for s in sampler.generate(batch, SamplingParams(temperature=0.0, max_new_tokens=24, stop=()))] \
        == [s.token_ids for s in free]  # fmt: skip
    # A stop string from the middle of each greedy continuation: the turn ends at the token that completes it.
    stops = tuple(sample.text[len(sample.text) // 2 :][:3] for sample in free)
    params = SamplingParams(temperature=0.0, max_new_tokens=24, stop=stops)
    ours, theirs = sampler.generate(batch, params), HFSampler(policy).generate(batch, params)
    assert [s.token_ids for s in ours] == [s.token_ids for s in theirs]
    assert [s.text for s in ours] == [s.text for s in theirs]
    assert [s.finish_reason for s in ours] == [s.finish_reason for s in theirs] == ["stop"] * 3
    assert all(len(s.token_ids) < 24 and any(stop in s.text for stop in stops) for s in ours)


def test_a_multi_turn_episode_with_tool_observations_runs_through_rollout(
    sampler: VLLMSampler, vllm_model_dir: Path
) -> None:
    # The tiny model learns two Calc tasks' first (calculator-calling) turns, then both samplers run the episodes.
    envs = [make_calc_env(num_tasks=20, seed=0) for _ in range(2)]
    tasks = [t.id for t in envs[0].tasks if len(t.turns[0].steps) > 1][:2]
    policy = load(vllm_model_dir)
    settings = WarmupConfig(epochs=20, lr=3e-3, batch_size=4, gradient_checkpointing=False)
    warm_up(policy, demonstrations(envs[0], tasks, policy) * 8, settings)
    sampler.sync(policy.model)
    params = SamplingParams(temperature=0.0)
    ours = rollout(envs, tasks, 1, policy, sampler, params)
    theirs = rollout(envs, tasks, 1, policy, HFSampler(policy), params)
    for episode, reference in zip(ours, theirs, strict=True):
        assert episode.token_ids == reference.token_ids and episode.action_mask == reference.action_mask
        assert episode.tool_calls >= 1 and len(episode.step_rewards) >= 2  # a call, its observation, a next turn
        observation = [t for t, m in zip(episode.token_ids, episode.action_mask, strict=True) if not m]
        assert "<obs>" in policy.tokenizer.decode(observation[episode.prompt_length :])
        generated = [lp for lp, m in zip(episode.sampling_logprobs, episode.action_mask, strict=True) if m]
        expected = [lp for lp, m in zip(reference.sampling_logprobs, reference.action_mask, strict=True) if m]
        torch.testing.assert_close(generated, expected, atol=TOLERANCE, rtol=0)


def test_a_lora_policy_syncs_its_merged_weights(sampler: VLLMSampler, vllm_model_dir: Path) -> None:
    pytest.importorskip("peft")
    policy = load(vllm_model_dir, lora=LoraSettings(rank=4))
    with torch.no_grad():  # adapters start as a no-op (B = 0): make them change the model
        for name, weight in policy.model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5)
    prompt = prompts(policy)[2]
    params = SamplingParams(max_new_tokens=16, stop=(), seed=3)
    sampler.sync(load(vllm_model_dir).model)
    (base,) = sampler.generate([prompt], params)
    assert largest_gap(policy, prompt, base) > 0.1
    sampler.sync(policy.model)
    (adapted,) = sampler.generate([prompt], params)
    assert largest_gap(policy, prompt, adapted) < TOLERANCE
    assert not any("merged" in str(type(m)) for m in policy.model.modules())  # adapters unmerged again
    (again,) = sampler.generate([prompt], params)
    assert largest_gap(policy, prompt, again) < TOLERANCE


def test_a_prompt_past_the_engines_context_is_a_clear_error(sampler: VLLMSampler, vllm_model_dir: Path) -> None:
    assert sampler.max_model_len == CONTEXT
    with pytest.raises(ValueError, match=r"prompt 1 has 2048 tokens.*--vllm\.max-model-len"):
        sampler.generate([[1, 2], [1] * CONTEXT], SamplingParams(max_new_tokens=4))


def test_a_model_the_cpu_backend_has_no_kernel_for_is_refused_before_the_engine_starts(tiny_model_dir: Path) -> None:
    policy = load(tiny_model_dir)  # head size 16
    with pytest.raises(ValueError, match=r"head size 16.*--sampler hf"):
        VLLMSampler(policy)
    with pytest.warns(UserWarning, match="head size 16"):
        assert isinstance(make_sampler("auto", policy), HFSampler)  # auto falls back, and says why


def test_an_engine_that_cannot_get_its_memory_says_which_setting_to_change(vllm_model_dir: Path) -> None:
    total_gib = psutil.virtual_memory().total / 2**30
    with pytest.raises(RuntimeError, match=r"did not start.*--vllm\.kv-cache-gib"):
        VLLMSampler(load(vllm_model_dir), VLLMConfig(kv_cache_gib=4 * total_gib))


def test_an_engine_that_dies_mid_run_is_an_error_not_a_hang(sampler: VLLMSampler, vllm_model_dir: Path) -> None:
    # Last in the module: it kills the shared engine.
    policy = load(vllm_model_dir)
    batch = prompts(policy)
    assert sampler.generate(batch, SamplingParams(max_new_tokens=4))
    for child in psutil.Process().children(recursive=True):
        if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name():
            os.kill(child.pid, signal.SIGKILL)
    raised: list[BaseException] = []

    def generate() -> None:
        try:
            sampler.generate(batch, SamplingParams(max_new_tokens=4))
        except BaseException as error:
            raised.append(error)

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "generate hung after the engine died"
    assert raised and isinstance(raised[0], RuntimeError)
    assert "--vllm.kv-cache-gib" in str(raised[0]) and "--resume" in str(raised[0])


@pytest.mark.slow
def test_two_steps_of_the_main_job_with_the_vllm_sampler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agents.grpo_train import main

    config = tmp_path / "config.yaml"
    config.write_text("warmup:\n  examples: 4\n")
    out = tmp_path / "run"
    main(["--env", "ToolEnv-BFCL-v0", "--sampler", "vllm", "--steps", "2", "--eval-limit", "2", "--eval-after-warmup",
          "--max-new-tokens", "96", "--config", str(config), "--output-dir", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert "sampler VLLMSampler" in printed and "| metric | before | after warm-up | after |" in printed
    lines = (out / "metrics.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r.get("kind") == "train"]
    assert [r["step"] for r in steps] == [1, 2] and all(r["rollout/completion_tokens"] > 0 for r in steps)
    assert json.loads((out / "config.json").read_text())["sampler"] == "vllm"
    assert not list(staging_dir().glob("toolrl-vllm-*/weights-*"))  # each sync's file is removed
    # Resumed, the new engine starts from the embedded model's files and must sample from the checkpoint's weights
    # (warmed up: far from the files'), so the sampler's log-probs agree with the learner's as closely as before.
    main(["--resume", str(out), "--steps", "3"])
    steps = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "train"]
    gaps = [r["rollout/logprob_diff"] for r in steps]
    print("sampler-learner log-prob gaps", gaps)
    assert [r["step"] for r in steps] == [1, 2, 3] and gaps[2] < 2 * max(gaps[:2]) + 0.01
