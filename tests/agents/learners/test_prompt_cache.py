"""The shared prompt pass: a prompt pass under activation checkpointing keeps little for backward, and its
`PrefillCache` tolerates the replayed writes."""

from __future__ import annotations

import torch

from agents.learners.prompt_cache import PrefillCache, cache_argument
from agents.policy import Policy, recomputing_layers

PROMPT = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"


def test_recomputed_layers_keep_only_their_inputs_and_repeat_cache_writes_harmlessly(policy: Policy) -> None:
    """Inside `recomputing_layers` a prompt pass keeps far fewer bytes for backward, its backward replays the
    layers (their cache writes included) and gives the same gradient, and the PrefillCache is unchanged."""
    ids = torch.tensor([policy.text_ids(PROMPT * 3)])

    def prompt_pass(recompute: bool) -> tuple[int, list[torch.Tensor], list[torch.Tensor]]:
        saved: list[int] = []
        weights = {p.data_ptr() for p in policy.model.parameters()}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.data_ptr() not in weights:  # weights are referenced, not copied
                saved.append(tensor.numel() * tensor.element_size())
            return tensor

        policy.model.zero_grad(set_to_none=True)
        cache = PrefillCache()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), recomputing_layers(policy.model, recompute):
            out = policy.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_argument(policy.model): cache})
        keys = [layer.keys for layer in cache.layers]
        (out.logits.sum() + sum(k.sum() for k in keys)).backward()
        for layer, before in zip(cache.layers, keys, strict=True):  # the replay's writes replaced, not appended
            torch.testing.assert_close(layer.keys, before)
        return sum(saved), keys, [p.grad.clone() for p in policy.model.parameters()]

    kept, keys, grads = prompt_pass(False)
    kept_recomputing, keys_recomputing, grads_recomputing = prompt_pass(True)
    assert kept_recomputing < kept / 4
    assert [k.shape for k in keys_recomputing] == [k.shape for k in keys] == [keys[0].shape] * 2
    for plain, recomputed in zip(grads, grads_recomputing, strict=True):
        torch.testing.assert_close(recomputed, plain)
