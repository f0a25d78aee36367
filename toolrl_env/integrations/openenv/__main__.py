"""`python -m toolrl_env.integrations.openenv serve ENV_ID [--env-kwargs JSON] [--host H] [--port N]`: serve a ToolEnv
id with openenv-core's server until SIGINT or SIGTERM, which close every session's env before the process exits."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from types import FrameType

from toolrl_env.cli import add_argument, json_object


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toolrl_env.integrations.openenv", description="Serve a ToolEnv id as an OpenEnv environment."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Serve one env id over HTTP and WebSocket (OpenEnv's protocol).")
    serve.add_argument("env", metavar="ENV_ID", help="A registered ToolEnv id, as gymnasium.make takes it.")
    add_argument(serve, "env_kwargs", type=json_object, default={}, metavar="JSON")
    serve.add_argument("--host", default="127.0.0.1", help="The address to listen on (0.0.0.0: every interface).")
    serve.add_argument("--port", type=int, default=8000, help="The TCP port to listen on.")
    serve.add_argument(
        "--max-sessions", type=int, default=64, help="Client sessions served at once, each with its own env."
    )
    return parser


def _stop(signum: int, frame: FrameType | None) -> None:
    """Uvicorn shuts down gracefully on SIGINT and SIGTERM (closing each session, and so its env), then re-raises
    the signal: end with status 0."""
    print("stopped: every session's env is closed", flush=True)
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    import uvicorn

    from toolrl_env.integrations.openenv import make_app

    app = make_app(args.env, args.env_kwargs, max_sessions=args.max_sessions)
    print(f"serving {args.env} on http://{args.host}:{args.port} (WebSocket /ws, one env per session)", flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
