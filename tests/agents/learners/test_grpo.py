"""GRPO's maths by hand (advantages, surrogate, clipping, aggregation) and its learner on a tiny real Llama,
which follows its learning-rate schedule and skips any step whose loss or gradient is not finite."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from pydantic import ValidationError

from agents.learners.grpo import (
    GRPOConfig,
    GRPOLearner,
    PolicyGradientLearner,
    decomposed_advantages,
    episode_components,
    frac_zero_std_groups,
    group_advantages,
    policy_gradient_step,
    policy_loss,
)
from agents.policy import Policy
from agents.protocols import Episode

PROMPT = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"


def episode(policy: Policy, parts: list[tuple[str, bool]], reward: float = 0.0, group: int = 0) -> Episode:
    """An episode from (text, is_action) parts; the first part is the prompt."""
    ids: list[int] = []
    mask: list[int] = []
    for text, is_action in parts:
        part = policy.text_ids(text)
        ids += part
        mask += [int(is_action)] * len(part)
    return Episode(
        task_id=f"task-{group}",
        group=group,
        token_ids=ids,
        prompt_length=len(policy.text_ids(parts[0][0])),
        action_mask=mask,
        sampling_logprobs=[0.0] * len(ids),
        step_rewards=[reward],
        reward_components=[{"total": reward}],
    )


def sequence_logprob(policy: Policy, ep: Episode) -> float:
    """Sum of the action tokens' log-probs, from a plain unpadded forward pass."""
    with torch.no_grad():
        return float(action_logprobs(policy, ep).sum())


def action_logprobs(policy: Policy, ep: Episode) -> torch.Tensor:
    ids = torch.tensor([ep.token_ids])
    logprobs = torch.log_softmax(policy.model(input_ids=ids).logits[0, :-1].float(), -1)
    chosen = logprobs.gather(-1, ids[0, 1:, None]).squeeze(-1)
    return chosen[torch.tensor(ep.action_mask[1:], dtype=torch.bool)]


def batch(policy: Policy) -> list[Episode]:
    """Two groups of different prompts; one multi-turn episode with an observation between its turns."""
    other = "<|im_start|>user\nName a colour, please, and say why you like it.<|im_end|>\n<|im_start|>assistant\n"
    return [
        episode(policy, [(PROMPT, False), ("<response>5</response>", True)], 1.0, 0),
        episode(policy, [(PROMPT, False), ("<response>6</response>", True)], 0.0, 0),
        episode(
            policy,
            [
                (PROMPT, False),
                ('<tool_call>{"name": "add"}</tool_call>', True),
                ("<|im_start|>user\n<obs>5</obs><|im_end|>\n<|im_start|>assistant\n", False),
                ("<response>5</response>", True),
            ],
            2.0,
            0,
        ),
        episode(policy, [(other, False), ("<response>blue</response>", True)], 1.0, 1),
        episode(policy, [(other, False), ("red", True)], 0.5, 1),
    ]


# --- advantages -------------------------------------------------------------------------------------------------


def test_group_advantages_by_hand() -> None:
    rewards = [1.0, 3.0, 0.0, 2.0, 5.0, 4.0, 4.0]
    groups = [0, 1, 0, 2, 0, 3, 3]  # group 0 interleaved; 1 and 2 alone; 3 all equal
    std0 = math.sqrt(((1 - 2) ** 2 + (0 - 2) ** 2 + (5 - 2) ** 2) / 2)  # n - 1
    expected = [-1 / (std0 + 1e-6), 0, -2 / (std0 + 1e-6), 0, 3 / (std0 + 1e-6), 0, 0]
    torch.testing.assert_close(group_advantages(rewards, groups), torch.tensor(expected))
    centred = group_advantages(rewards, groups, normalize_std=False)
    torch.testing.assert_close(centred, torch.tensor([-1.0, 0, -2, 0, 3, 0, 0]))
    assert frac_zero_std_groups(rewards, groups) == 3 / 4


def test_equal_rewards_give_zero_advantage_even_with_a_tiny_eps() -> None:
    assert group_advantages([0.7] * 4, [0] * 4, eps=1e-12).tolist() == [0.0] * 4


def test_gdpo_normalises_each_component_in_its_group_then_the_sum_over_the_batch() -> None:
    # One group whose totals are [1, 1, 3]: GRPO cannot tell the first two apart; their components differ.
    components = [
        {"format": 1.0, "correctness": 0.0},
        {"format": 0.0, "correctness": 1.0},
        {"format": 1.0, "correctness": 2.0},
    ]
    fmt = [1 / 3 / math.sqrt(1 / 3), -2 / 3 / math.sqrt(1 / 3), 1 / 3 / math.sqrt(1 / 3)]  # mean 2/3, std sqrt(1/3)
    correctness = [-1.0, 0.0, 1.0]  # mean 1, std 1
    summed = torch.tensor([f + c for f, c in zip(fmt, correctness, strict=True)], dtype=torch.float64)
    expected = (summed - summed.mean()) / summed.std()
    torch.testing.assert_close(decomposed_advantages(components, [0, 0, 0], eps=0.0), expected.float())
    grpo = group_advantages([1.0, 1.0, 3.0], [0, 0, 0])
    assert (
        grpo[0] == grpo[1]
        and decomposed_advantages(components, [0, 0, 0])[0] > decomposed_advantages(components, [0, 0, 0])[1]
    )


def test_gdpo_reads_the_envs_components_summed_over_steps(policy: Policy) -> None:
    ep = episode(policy, [(PROMPT, False), ("<response>5</response>", True)])
    ep.reward_components = [
        {"format": 1.0, "correctness": -1.0, "total": 0.0},
        {"format": 1.0, "correctness": 3.0, "total": 4.0},
    ]
    assert episode_components(ep) == {"format": 2.0, "correctness": 2.0}  # the total is not a component
    episodes = [ep, ep.model_copy(update={"reward_components": [{"format": 0.0, "correctness": 1.0}]})]
    learner = GRPOLearner(policy, GRPOConfig(multi_objective_aggregation="normalize_then_sum"))
    expected = decomposed_advantages([episode_components(e) for e in episodes], [0, 0])
    torch.testing.assert_close(learner.advantages(episodes), expected)
    assert not torch.equal(learner.advantages(episodes), GRPOLearner(policy).advantages(episodes))


# --- the surrogate and its aggregation ---------------------------------------------------------------------------


def test_each_loss_aggregation_by_hand() -> None:
    # ratio 1; per-token loss is -A: row 0 has 2 action tokens with A=1, row 1 has 1 with A=-3.
    logprobs = torch.tensor([[-1.0, -2.0, 100.0], [-0.5, 100.0, 100.0]])  # 100: padding garbage, masked out
    old = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    advantages = torch.tensor([1.0, -3.0])
    expected = {
        "token-mean": (-1 - 1 + 3) / 3,
        "seq-mean-token-mean": ((-1 - 1) / 2 + 3 / 1) / 2,
        "seq-mean-token-sum-norm": ((-1 - 1) / 4 + 3 / 4) / 2,
    }
    for mode, value in expected.items():
        config = GRPOConfig(loss_aggregation=mode, max_completion_length=4)  # type: ignore[arg-type]
        loss, stats = policy_loss(logprobs, old, advantages, mask, config)
        assert loss.item() == pytest.approx(value), mode
        assert stats["policy"].item() == pytest.approx(value)
        assert stats["clip_frac"].item() == 0.0
        assert stats["approx_kl"].item() == pytest.approx(0.0)


def test_clipping_on_each_side_with_separate_bounds() -> None:
    ratios = torch.tensor([[1.5, 0.5, 1.1, 0.9, 1.5, 0.5]])
    advantages = torch.tensor([[1.0, -1.0, 1.0, -1.0, -1.0, 1.0]])
    logprobs = ratios.log().requires_grad_()
    config = GRPOConfig(clip_low=0.3, clip_high=0.2)
    loss, stats = policy_loss(logprobs, torch.zeros(1, 6), advantages, torch.ones(1, 6, dtype=torch.bool), config)
    # Clipped: 1.5 -> 1.2 with A > 0, 0.5 -> 0.7 with A < 0. Inside the bounds, or clipping on the side that
    # would only make the loss smaller, the ratio stays.
    per_token = torch.tensor([-1.2, 0.7, -1.1, 0.9, 1.5, -0.5])
    assert loss.item() == pytest.approx(per_token.mean().item())
    assert stats["clip_frac"].item() == pytest.approx(2 / 6)
    assert stats["approx_kl"].item() == pytest.approx(((ratios - 1) - ratios.log()).mean().item())
    loss.backward()
    assert logprobs.grad is not None
    grad = logprobs.grad[0]
    assert grad[0] == 0 and grad[1] == 0  # a clipped token gets no gradient
    torch.testing.assert_close(grad[2:], -advantages[0, 2:] * ratios[0, 2:] / 6)


def test_kl_and_entropy_terms() -> None:
    logprobs = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -2.0]])
    entropy = torch.tensor([[3.0, 1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    config = GRPOConfig(kl_coef=0.5, entropy_coef=0.1)
    loss, stats = policy_loss(logprobs, logprobs, torch.zeros(1), mask, config, ref_logprobs=ref, entropy=entropy)
    kl = (math.exp(-0.5) + 0.5 - 1) / 2  # k3 of the first token; the second matches the reference
    assert stats["kl"].item() == pytest.approx(kl)
    assert stats["entropy"].item() == pytest.approx(2.0)
    assert loss.item() == pytest.approx(0.5 * kl - 0.1 * 2.0)


def test_config_errors_say_what_to_change() -> None:
    with pytest.raises(ValidationError, match=r"clip_low=1.0 must be in \[0, 1\)"):
        GRPOConfig(clip_low=1.0)
    with pytest.raises(ValidationError, match="token-mean"):
        GRPOConfig(loss_aggregation="sum")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="micro_batch_size"):
        GRPOConfig(micro_batch_size=0)


# --- the learner on a tiny Llama ---------------------------------------------------------------------------------


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("shared_prompt", [False, True])
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_gradient_is_the_hand_computed_policy_gradient_of_action_tokens_only(
    policy: Policy, mode: str, shared_prompt: bool, checkpointing: bool
) -> None:
    """SGD with lr 1 makes the weight change the negative gradient. It must equal the gradient of
    -sum A_i logp(action tokens) aggregated by hand from plain unpadded forwards: prompt and observation tokens
    add nothing, padding and the trained span line up, micro-batches add up to the whole batch, one prompt
    pass per group (its cache expanded to the group's episodes) gives the same gradient as a pass per episode,
    and recomputing layers in backward changes nothing."""
    episodes = batch(policy)
    advantages = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.25])
    config = GRPOConfig(
        loss_aggregation=mode,  # type: ignore[arg-type]
        micro_batch_size=2,
        max_grad_norm=1e9,
        max_completion_length=32,
        shared_prompt=shared_prompt,
        gradient_checkpointing=checkpointing,
    )
    expected_model = copy.deepcopy(policy.model)
    hand = Policy(expected_model, policy.tokenizer)
    terms = []
    for adv, ep in zip(advantages, episodes, strict=True):
        logprobs = action_logprobs(hand, ep)
        if mode == "token-mean":
            terms.append(-adv * logprobs.sum() / sum(sum(e.action_mask) for e in episodes))
        elif mode == "seq-mean-token-mean":
            terms.append(-adv * logprobs.mean() / len(episodes))
        else:
            terms.append(-adv * logprobs.sum() / 32 / len(episodes))
    torch.stack(terms).sum().backward()

    before = copy.deepcopy(policy.model.state_dict())
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=1.0)
    policy_gradient_step(policy, optimizer, episodes, advantages, config)
    for name, param in expected_model.named_parameters():
        assert param.grad is not None
        change = before[name] - policy.model.state_dict()[name]
        torch.testing.assert_close(change, param.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert float(param.grad.abs().sum()) > 0


def test_an_update_raises_the_better_completion(policy: Policy) -> None:
    good = episode(policy, [(PROMPT, False), ("<response>5</response>", True)], 1.0)
    bad = episode(policy, [(PROMPT, False), ("<response>6</response>", True)], 0.0)
    before = [sequence_logprob(policy, e) for e in (good, bad)]
    metrics = GRPOLearner(policy, GRPOConfig(lr=1e-3)).update([good, bad])
    after = [sequence_logprob(policy, e) for e in (good, bad)]
    assert after[0] > before[0] and after[1] < before[1]
    assert metrics["rollout/advantage_mean"] == pytest.approx(0.0)
    assert metrics["rollout/frac_zero_std_groups"] == 0.0
    assert metrics["losses/clip_frac"] == 0.0  # one update: the ratio is exactly 1
    assert metrics["losses/grad_norm"] > 0 and metrics["losses/entropy"] > 0


def test_kl_is_zero_at_the_start_and_positive_after_an_update(policy: Policy) -> None:
    learner = GRPOLearner(policy, GRPOConfig(lr=1e-3, kl_coef=0.1))
    episodes = batch(policy)
    first = learner.update(episodes)
    assert first["losses/kl"] == pytest.approx(0.0, abs=1e-7)
    assert learner.update(episodes)["losses/kl"] > 1e-6
    assert "losses/kl" not in GRPOLearner(policy, GRPOConfig()).update(episodes)  # no reference without kl_coef


def test_several_updates_per_batch_use_the_old_policy_and_log_its_gap_to_the_sampler(policy: Policy) -> None:
    episodes = batch(policy)
    for ep in episodes:  # the sampler's log-probs, 0.25 off the learner's on every action token
        with torch.no_grad():
            values = iter((action_logprobs(policy, ep) + 0.25).tolist())
        ep.sampling_logprobs = [next(values) if m else 0.0 for m in ep.action_mask]
    config = GRPOConfig(lr=1e-2, epochs=2, mini_batches=2, clip_low=0.01, clip_high=0.01)
    metrics = GRPOLearner(policy, config).update(episodes)
    assert metrics["rollout/logprob_diff"] == pytest.approx(0.25, abs=1e-4)
    assert metrics["losses/clip_frac"] > 0 and metrics["losses/approx_kl"] > 0  # later steps moved off the old policy
    with pytest.raises(ValueError, match="lower mini_batches"):
        GRPOLearner(policy, GRPOConfig(mini_batches=6)).update(episodes)


def test_shared_prompt_gives_the_same_update_and_metrics(policy: Policy) -> None:
    twin = Policy(copy.deepcopy(policy.model), policy.tokenizer)
    config = GRPOConfig(lr=1e-3, kl_coef=0.1, entropy_coef=0.01, epochs=2, mini_batches=2, micro_batch_size=2)
    assert config.shared_prompt  # the default
    plain = GRPOLearner(policy, config.model_copy(update={"shared_prompt": False})).update(batch(policy))
    shared = GRPOLearner(twin, config).update(batch(twin))
    # Four steps' metrics agree (exactness of the gradient itself is tested above; Adam's normalisation blows
    # float-rounding differences of near-zero gradients up to lr-sized weight differences, so weights are not).
    assert shared == pytest.approx(plain, rel=1e-4, abs=1e-6)


def assert_resumes_identically(
    make_learner: Callable[[Policy], PolicyGradientLearner], policy: Policy, episodes: list[Episode]
) -> tuple[PolicyGradientLearner, PolicyGradientLearner]:
    """One update, then a second learner built over a copy and loaded from the first's state: both take the next
    update identically (metrics and weights). Returns (original, resumed) for learner-specific checks."""
    fresh = Policy(copy.deepcopy(policy.model), policy.tokenizer)
    learner = make_learner(policy)
    learner.update(episodes[:3])
    weights, state = copy.deepcopy(policy.model.state_dict()), copy.deepcopy(learner.state_dict())

    resumed = make_learner(fresh)
    fresh.model.load_state_dict(weights)
    resumed.load_state_dict(state)
    assert resumed.update(episodes) == learner.update(episodes)
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, fresh.model.state_dict()[name]), name
    return learner, resumed


def test_state_dict_round_trip_continues_identically(policy: Policy) -> None:
    config = GRPOConfig(lr=1e-3, kl_coef=0.05, epochs=2)
    assert_resumes_identically(lambda p: GRPOLearner(p, config), policy, batch(policy))


# --- the learning-rate schedule ----------------------------------------------------------------------------------


def test_the_learner_follows_its_schedule_and_a_resumed_one_continues_on_it(policy: Policy) -> None:
    config = GRPOConfig(lr=1e-3, lr_warmup_steps=2, lr_schedule="cosine", lr_decay_steps=2)
    learner = GRPOLearner(policy, config)
    episodes = batch(policy)
    rates = [learner.update(episodes)["optim/lr"] for _ in range(2)]
    assert rates == pytest.approx([5e-4, 1e-3]) and learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    learner, resumed = assert_resumes_identically(lambda p: GRPOLearner(p, config), policy, episodes)
    assert resumed.schedule.updates == learner.schedule.updates == 2


# --- non-finite losses -------------------------------------------------------------------------------------------


def optimiser_state(optimizer: torch.optim.Optimizer) -> dict[str, list[torch.Tensor]]:
    return {str(i): [v.clone() for v in s.values()] for i, s in enumerate(optimizer.state.values())}


def assert_same_state(first: dict[str, list[torch.Tensor]], second: dict[str, list[torch.Tensor]]) -> None:
    assert first.keys() == second.keys() and len(first) > 0
    for key, values in first.items():
        assert all(torch.equal(a, b) for a, b in zip(values, second[key], strict=True)), key


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_nonfinite_loss_skips_the_step_leaving_weights_and_optimiser_bit_identical(
    policy: Policy, bad: float
) -> None:
    episodes = batch(policy)
    config = GRPOConfig(lr=1e-3, micro_batch_size=2)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.lr)
    good = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.25])
    policy_gradient_step(policy, optimizer, episodes, good, config)  # the optimiser now has moments to keep
    weights, moments = copy.deepcopy(policy.model.state_dict()), optimiser_state(optimizer)

    advantages = good.clone()
    advantages[3] = bad
    with pytest.warns(RuntimeWarning, match="skipped an optimiser step whose loss or gradient norm was NaN or inf"):
        metrics = policy_gradient_step(policy, optimizer, episodes, advantages, config)
    assert metrics["losses/nonfinite_skipped"] == 1
    assert "losses/policy" not in metrics and "losses/grad_norm" not in metrics  # no step, no step statistics
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert_same_state(optimiser_state(optimizer), moments)
    assert all(p.grad is None for p in policy.model.parameters())


def test_only_the_mini_batch_with_the_nonfinite_loss_is_skipped(policy: Policy) -> None:
    episodes = batch(policy)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
    before = copy.deepcopy(policy.model.state_dict())
    advantages = torch.tensor([1.0, -0.5, 2.0, math.nan, 0.25])  # mini-batches [0, 2) and [2, 5)
    with pytest.warns(RuntimeWarning):
        metrics = policy_gradient_step(policy, optimizer, episodes, advantages, GRPOConfig(mini_batches=2))
    assert metrics["losses/nonfinite_skipped"] == 1 and math.isfinite(metrics["losses/policy"])
    assert all(int(s["step"]) == 1 for s in optimizer.state.values())  # one of the two steps taken
    assert any(not torch.equal(v, before[k]) for k, v in policy.model.state_dict().items())


def test_a_nan_reward_through_the_learner_is_skipped_and_counted(policy: Policy) -> None:
    episodes = batch(policy)
    episodes[0] = episodes[0].model_copy(update={"step_rewards": [math.nan]})
    learner = GRPOLearner(policy, GRPOConfig(lr=1e-3))
    before = copy.deepcopy(policy.model.state_dict())
    with pytest.warns(RuntimeWarning):
        metrics = learner.update(episodes)
    assert metrics["losses/nonfinite_skipped"] == 1 and math.isnan(metrics["rollout/advantage_mean"])
    assert all(torch.equal(v, before[k]) for k, v in policy.model.state_dict().items())
    assert learner.optimizer.state_dict()["state"] == {}  # AdamW never stepped: no moments, no step count
    assert learner.update(batch(policy))["losses/nonfinite_skipped"] == 0  # and the next batch trains as usual
