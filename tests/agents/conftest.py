"""A tiny random-weight Llama with the embedded model's real tokenizer: seconds, not minutes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from agents.embedded_model import embedded_model_dir
from agents.policy import Policy


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(embedded_model_dir())


def tiny_policy(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> Policy:
    """A 2-layer, 64-wide Llama over the real vocabulary (about 3M parameters, most in the embeddings)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Policy(LlamaForCausalLM(config), tokenizer)


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
