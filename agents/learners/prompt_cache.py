"""One prompt pass for a whole GRPO group: the prompt's key/value cache is computed once and expanded to each
micro-batch of the continuations that share it, with gradients flowing back through the prompt pass once.

Exact: each continuation attends over the same keys and values as in a full pass; they are only not recomputed
per episode. The prompt pass may be recomputed in backward (activation checkpointing), so its cache is a
`PrefillCache`, whose writes replace rather than append.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer

from agents.policy import recomputing_layers


class SharedPrompt:
    """A prompt run once; `logits` continues it for a micro-batch, `backward` finishes its gradient.

    The prompt's keys, values and last logits enter each micro-batch as leaves that collect gradients; once the
    caller has called backward on every micro-batch's loss, `backward` sends those gradients through the prompt
    pass in one go.
    """

    def __init__(self, model: torch.nn.Module, prompt: list[int], device: torch.device, recompute: bool) -> None:
        self.model = model
        self.length = len(prompt)
        self.cache_kwarg = cache_argument(model)
        with recomputing_layers(model, recompute):
            out = model(
                input_ids=torch.tensor([prompt], device=device),
                use_cache=True,
                logits_to_keep=1,
                **{self.cache_kwarg: PrefillCache()},
            )
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        self.roots = [t for layer in cache.layers for t in (layer.keys, layer.values)] + [out.logits]
        self.leaves = [t.detach().requires_grad_(t.requires_grad) for t in self.roots]

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits predicting each token of `input_ids[:, prompt length:]` ([B, T - prompt length, V]); the rows
        are the prompt followed by their continuation, `attention_mask` covers both."""
        size = input_ids.shape[0]
        expanded = DynamicCache()
        for layer in range(len(self.leaves) // 2):
            keys, values = self.leaves[2 * layer], self.leaves[2 * layer + 1]
            expanded.update(keys.expand(size, -1, -1, -1), values.expand(size, -1, -1, -1), layer)
        tail = input_ids[:, self.length :]
        logits = self.model(
            input_ids=tail, attention_mask=attention_mask, use_cache=True, **{self.cache_kwarg: expanded}
        ).logits
        # The first continuation token is predicted by the prompt's last position.
        return torch.cat([self.leaves[-1].expand(size, -1, -1).to(logits.dtype), logits[:, :-1]], dim=1)

    def backward(self) -> None:
        """Send the gradients the leaves collected back through the prompt pass (nothing if none did)."""
        grads = [(root, leaf.grad) for root, leaf in zip(self.roots, self.leaves, strict=True) if leaf.grad is not None]
        if grads:
            torch.autograd.backward([root for root, _ in grads], [grad for _, grad in grads])


class _PrefillLayer(DynamicLayer):
    """A cache layer written by one pass over an empty cache: a write replaces what it holds, so the same write
    repeated (a layer recomputed in backward) leaves it unchanged."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return self.keys, self.values


class PrefillCache(DynamicCache):
    """A key/value cache for one prompt pass that tolerates activation checkpointing (see `_PrefillLayer`)."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=_PrefillLayer)


def cache_argument(model: torch.nn.Module) -> str:
    """The forward argument that takes a key/value cache: `cache` in newer transformers, else `past_key_values`."""
    return "cache" if "cache" in inspect.signature(type(base_model(model)).forward).parameters else "past_key_values"


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
