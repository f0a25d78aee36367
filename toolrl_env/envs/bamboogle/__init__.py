"""Bamboogle: `tasks`, `metrics` (EM, F1) and `env` (ToolEnv-Bamboogle-v0, a `Search` tool over a pluggable
backend)."""
