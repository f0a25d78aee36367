"""A tiny random-weight Llama with the embedded model's real tokenizer: seconds, not minutes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from agents.embedded_model import embedded_model_dir
from agents.policy import Policy

VLLM_CONTEXT = 2048


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(embedded_model_dir())


def tiny_llama(
    tokenizer: PreTrainedTokenizerBase, seed: int = 0, width: int = 64, heads: int = 4, context: int = 4096
) -> LlamaForCausalLM:
    """A 2-layer random Llama over the real vocabulary, `width` wide with `heads` query heads (half as many
    key/value heads) and an MLP twice as wide."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def make_peaky(model: torch.nn.Module) -> None:
    """Scale a tiny random Llama's layers and final norm up in place, so that it does not just echo its input token
    and its greedy choices win by clear margins (robust to batching and kernel round-off)."""
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "layers" in name and weight.dim() == 2:
                weight.mul_(10)
        model.model.norm.weight.mul_(5)


def tiny_policy(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> Policy:
    """A 2-layer, 64-wide Llama over the real vocabulary (about 3M parameters, most in the embeddings)."""
    return Policy(tiny_llama(tokenizer, seed), tokenizer)


@pytest.fixture
def policy(tokenizer: PreTrainedTokenizerBase) -> Policy:
    return tiny_policy(tokenizer)


@pytest.fixture
def tiny_model_dir(tmp_path: Path, tokenizer: PreTrainedTokenizerBase) -> Path:
    """The tiny model saved as a Hugging Face folder, for scripts that take --model."""
    folder = tmp_path / "tiny"
    policy = tiny_policy(tokenizer)
    policy.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerBase) -> Path:
    """A tiny Llama vLLM's CPU backend can run (head size 64; the one above has 16), its layers and final norm
    scaled up so that its greedy choices win by clear margins and it does not just echo its input."""
    model = tiny_llama(tokenizer, width=128, heads=2, context=VLLM_CONTEXT)
    make_peaky(model)
    folder = tmp_path_factory.mktemp("tiny-vllm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
