"""The worker side of `VLLMSampler.sync`: a vLLM weight transfer engine that works on stock vLLM, on any device
(the CPU included) and with no pickling.

vLLM updates an engine's weights in place through a *weight transfer engine* that each worker builds from
`weight_transfer_config`: the trainer calls `LLM.init_weight_transfer_engine`, `start_weight_update`,
`update_weights` and `finish_weight_update`, each a `collective_rpc` by method name with plain-dict arguments,
which vLLM's serialiser accepts. vLLM's own engines move CUDA tensors (NCCL, CUDA IPC). This one, named
`safetensors`, reads a safetensors file the trainer wrote (to shared memory where the machine has it) and hands
its tensors to the model's own `load_weights`, inside vLLM's layerwise reload as vLLM's engines do.

vLLM runs `register` in each of its processes through the `vllm.general_plugins` entry point in
pyproject.toml, so the engine is there wherever toolrl is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from vllm.distributed.weight_transfer import WeightTransferEngineFactory
from vllm.distributed.weight_transfer.base import (
    WeightTransferEngine,
    WeightTransferInitInfo,
    WeightTransferUpdateInfo,
)
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

BACKEND = "safetensors"


def register() -> None:
    """vLLM's plugin hook: make the `safetensors` backend available to `weight_transfer_config`."""
    if BACKEND not in WeightTransferEngineFactory._registry:
        WeightTransferEngineFactory.register_engine(BACKEND, SafetensorsWeightEngine)


@dataclass
class SafetensorsInitInfo(WeightTransferInitInfo):
    """Nothing to agree on at the start: each update names its own file."""


@dataclass
class SafetensorsUpdateInfo(WeightTransferUpdateInfo):
    """One update: the safetensors file holding the weights, under Hugging Face names."""

    path: str


class SafetensorsWeightEngine(WeightTransferEngine[SafetensorsInitInfo, SafetensorsUpdateInfo]):
    """Loads each update from a safetensors file (memory-mapped, so a worker copies each tensor once)."""

    init_info_cls = SafetensorsInitInfo
    update_info_cls = SafetensorsUpdateInfo

    def init_transfer_engine(self, init_info: SafetensorsInitInfo) -> None:
        """No rendezvous: the file system is the channel."""

    def start_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

        initialize_layerwise_reload(self.model)

    def finish_weight_update(self) -> None:
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        finalize_layerwise_reload(self.model, self.model_config)
        # An output layer tied to the input embeddings loads no weight of its own, so the reload leaves what
        # vLLM derived from it stale (on a CPU, a prepacked copy for the matrix product): derive it again.
        if getattr(self.model_config.hf_text_config, "tie_word_embeddings", False):
            for module in self.model.modules():
                if isinstance(module, ParallelLMHead):
                    module.quant_method.process_weights_after_loading(module)

    def update_weights(self, update_info: dict[str, Any]) -> None:
        self.receive_weights(self.parse_update_info(update_info))
        if self.device.type != "cpu":  # loads may be asynchronous on an accelerator
            torch.accelerator.synchronize()

    def receive_weights(self, update_info: SafetensorsUpdateInfo) -> None:
        from safetensors import safe_open

        with safe_open(update_info.path, framework="pt", device="cpu") as weights:
            names = list(weights.keys())
            model: Any = self.model
            model.load_weights((name, weights.get_tensor(name)) for name in names)

    def shutdown(self) -> None:
        """Nothing is held between updates."""
