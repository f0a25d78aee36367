"""The learner side (LLM policy, samplers, GRPO and other learners): arrives with issue #4."""
