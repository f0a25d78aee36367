"""RLLA: ToolRL's training rows (`tasks`) and ToolEnv-RLLA-v0 (`env`)."""
