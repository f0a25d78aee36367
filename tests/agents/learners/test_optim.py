"""The optimiser plumbing: learning-rate schedules by hand, and a step skipped when its loss is not finite."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from agents.learners.grpo import GRPOConfig
from agents.learners.optim import finite_step, lr_factor


def test_learning_rate_schedules_by_hand() -> None:
    constant = GRPOConfig()
    assert [lr_factor(constant, k) for k in range(3)] == [1.0, 1.0, 1.0]
    warm = GRPOConfig(lr_warmup_steps=4)
    assert [lr_factor(warm, k) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = GRPOConfig(lr_warmup_steps=2, lr_schedule="cosine", lr_decay_steps=4)
    expected = [0.5, 1.0, 1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0, 0.0]
    assert [lr_factor(cosine, k) for k in range(8)] == pytest.approx(expected)
    with pytest.raises(ValidationError, match="lr_schedule='cosine' needs lr_decay_steps"):
        GRPOConfig(lr_schedule="cosine")
    with pytest.raises(ValidationError, match="only applies to lr_schedule='cosine'"):
        GRPOConfig(lr_decay_steps=10)


def test_finite_step_takes_finite_steps_and_skips_a_nonfinite_loss_even_with_finite_gradients() -> None:
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    params = list(layer.parameters())
    before = [p.detach().clone() for p in params]
    layer(torch.ones(1, 2)).sum().backward()
    with pytest.warns(RuntimeWarning):
        assert math.isnan(finite_step(optimizer, params, 1.0, loss_finite=False, average=False))
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    layer(torch.ones(1, 2)).sum().backward()
    assert finite_step(optimizer, params, 1.0) == pytest.approx(math.sqrt(3))  # grads 1, 1 and 1
    assert all(not torch.equal(p, b) for p, b in zip(params, before, strict=True))
    assert all(p.grad is None for p in params)
