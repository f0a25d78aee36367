"""Learners: GRPO (`grpo`) and those built on its update (`rloo`, `ppo`), the supervised warm-up (`warmup`),
Stable-Baselines3 on the discrete tool-choice view (`sb3`); the plumbing they share: `batching` (episodes as
padded token batches and their log-prob passes), `prompt_cache` (one prompt pass per GRPO group), `optim`
(optimiser steps that skip non-finite updates, the learning-rate schedule)."""
