"""The built-in benchmark envs, one folder each: its tasks, metrics, env factory and backends together.

A new benchmark is a new folder here plus one line in `BUILTIN_ENVS`.
"""

# Gymnasium id -> entry point of its factory (`toolrl_env.registry.register_builtin_envs` registers them).
BUILTIN_ENVS = {
    "ToolEnv-RLLA-v0": "toolrl_env.envs.rlla.env:make_rlla_env",
    "ToolEnv-Calc-v0": "toolrl_env.envs.calc.env:make_calc_env",
    "ToolEnv-BFCL-v0": "toolrl_env.envs.bfcl.env:make_bfcl_env",
    "ToolEnv-BFCLMultiTurn-v0": "toolrl_env.envs.bfcl.multi_turn_env:make_bfcl_multi_turn_env",
    "ToolEnv-APIBank-v0": "toolrl_env.envs.api_bank.env:make_api_bank_env",
    "ToolEnv-Bamboogle-v0": "toolrl_env.envs.bamboogle.env:make_bamboogle_env",
}
