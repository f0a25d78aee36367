"""BFCL, from the pinned bfcl-eval wheel (`package`).

Single-turn: `tasks`, `metrics` (the official AST checker), `env` (ToolEnv-BFCL-v0). Multi-turn:
`multi_turn_tasks`, `multi_turn_metrics` (the official multi-turn checker), `backends` (bfcl-eval's stateful
classes as a tool suite), `multi_turn_env` (ToolEnv-BFCLMultiTurn-v0).
"""
