"""Adapters that hand ToolEnv tasks and ToolRL's reward to other training frameworks."""
