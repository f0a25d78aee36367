"""The learner side: an LLM policy, samplers, rollouts, learners (GRPO, RLOO, PPO), evaluation and the run's
plumbing. The scripts are `grpo_train.py` (the main job), `evaluate.py` and `sb3_train.py`."""
