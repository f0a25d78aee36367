"""`app`: ToolEnv-Calc-v0 served as OpenEnv serves an env (`uvicorn toolrl_env.integrations.openenv.app:app`), the
entry openenv.yaml names. Other ids and kwargs: `python -m toolrl_env.integrations.openenv serve ENV_ID`."""

from toolrl_env.integrations.openenv import make_app

app = make_app("ToolEnv-Calc-v0", {"mode": "multi_turn"})
