"""API-Bank in ToolRL's processed format: `tasks`, `metrics` (`api_match`), `apis` (the offline APIs as a
tool suite) and `env` (ToolEnv-APIBank-v0)."""
