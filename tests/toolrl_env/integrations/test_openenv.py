"""The OpenEnv adapter, through openenv-core's own server and client over loopback: gold episodes and the hostile
corpus get exactly the in-process env's rewards, sessions stay apart, bad requests get errors and the server goes
on, and `python -m toolrl_env.integrations.openenv serve` shuts down cleanly."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from websockets.sync.client import connect

import toolrl_env.integrations.openenv as openenv_package
from tests.agents.runtime.test_distributed import free_port
from tests.conftest import CounterSuite
from tests.fixtures.hostile_actions import STATIC, sentinel_paths, tool_entries
from tests.fixtures.tool_envs import env_kwargs
from toolrl_env.integrations.openenv import ToolAction, ToolEnvClient, make_app
from toolrl_env.registry import make_tool_env, register_suite

COUNTER = register_suite(
    "OpenEnvCounter",
    CounterSuite(),
    [{"id": "count", "user": "Add 2.", "gold_calls": [{"name": "add", "parameters": {"amount": 2}}]}],
)
ROOT = Path(__file__).resolve().parents[3]
ENVS = {
    "ToolEnv-Calc-v0": {"num_tasks": 6, "seed": 0, "mode": "multi_turn"},
    "ToolEnv-BFCLMultiTurn-v0": {},
    "ToolEnv-APIBank-v0": {**env_kwargs("ToolEnv-APIBank-v0", ""), "mode": "multi_turn"},
}


@contextlib.contextmanager
def serving(env_id: str, kwargs: dict[str, Any]) -> Iterator[str]:
    """OpenEnv's app for `env_id` under uvicorn on a free loopback port, in a thread; its base URL."""
    server = uvicorn.Server(uvicorn.Config(make_app(env_id, kwargs), host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def plain(value: Any) -> Any:
    """A value as it comes back over the wire (JSON)."""
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize("env_id", list(ENVS))
def test_gold_episodes_and_the_hostile_corpus_get_the_in_process_rewards(
    env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    kwargs = ENVS[env_id]
    reference = make_tool_env(env_id, **kwargs)
    with serving(env_id, kwargs) as url, ToolEnvClient(base_url=url).sync() as client:
        for task in reference.tasks[:2]:
            result = client.reset(task_id=task.id)
            messages, info = reference.reset(options={"task_id": task.id})
            assert result.observation.messages == messages and result.observation.info == plain(info)
            assert (result.reward, result.done) == (None, False)
            done = False
            while not done:
                gold = reference.current_gold().text or ""
                result = client.step(ToolAction(completion=gold))
                _, reward, terminated, truncated, info = reference.step(gold)
                assert (result.reward, result.done) == (reward, terminated or truncated)
                assert result.observation.info == plain(info)
                assert (result.observation.terminated, result.observation.truncated) == (terminated, truncated)
                done = result.done
        task = reference.tasks[0]
        reference.reset(options={"task_id": task.id})
        corpus = {**STATIC, **tool_entries(reference.offered_tools())}
        for name, action in corpus.items():
            if not isinstance(action, str):
                continue  # not an action OpenEnv can carry: the bad-request test sends those
            client.reset(task_id=task.id)
            reference.reset(options={"task_id": task.id})
            result = client.step(ToolAction(completion=action))
            assert result.reward == reference.step(action)[1], name
    assert [p for p in sentinel_paths(tmp_path) if p.exists()] == [], "a hostile action ran"


def test_sessions_stay_apart_and_bad_requests_get_errors_while_the_server_goes_on() -> None:
    call = '<think> add </think>\n<tool_call>\n{"name": "add", "parameters": {"amount": 2}}\n</tool_call>'
    with serving(COUNTER, {}) as url:
        with ToolEnvClient(base_url=url).sync() as first, ToolEnvClient(base_url=url).sync() as second:
            first.reset(task_id="count")
            second.reset(task_id="count")
            results = [first.step(ToolAction(completion=call)) for _ in range(2)]
            other = second.step(ToolAction(completion=call))
            counts = [r.observation.info["tool_results"][0]["content"] for r in [*results, other]]
            assert counts == [2, 4, 2]  # each session's counter is its own
            assert first.state().step_count == 2 and second.state().step_count == 1

        ws_url = url.replace("http", "ws") + "/ws"
        with connect(ws_url) as raw:
            bad = [
                {"type": "step", "data": {"completion": call}},  # before any reset
                {"type": "reset", "data": {"task_id": "nope"}},
                {"type": "reset", "data": {"task_id": "count", "colour": "red"}},
                {"type": "step", "data": {"completion": 42}},
                {"type": "step", "data": {"action": "x"}},
                {"type": "teleport", "data": {}},
            ]
            for message in bad:
                if message["data"].get("completion") == 42:
                    raw.send(json.dumps({"type": "reset", "data": {"task_id": "count"}}))
                    assert json.loads(raw.recv(timeout=30))["type"] == "observation"
                raw.send(json.dumps(message))
                reply = json.loads(raw.recv(timeout=30))
                assert reply["type"] == "error" and reply["data"]["message"], (message, reply)
            raw.send("not json at all")
            assert json.loads(raw.recv(timeout=30))["type"] == "error"
            raw.send(json.dumps({"type": "reset", "data": {"task_id": "count"}}))
            assert json.loads(raw.recv(timeout=30))["type"] == "observation"
            raw.send(json.dumps({"type": "step", "data": {"completion": call}}))
            reply = json.loads(raw.recv(timeout=30))
            assert reply["type"] == "observation" and reply["data"]["reward"] == 4.0  # gold: format 1 + correctness 3


def test_the_serve_command_closes_open_sessions_envs_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "toolrl_env.integrations.openenv", "serve"]
    with subprocess.Popen(  # closes its pipe: an unclosed one warns when collected, later, in another test
        [*command, "closing_suite:ToolEnv-OpenEnvClosing-v0", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests" / "fixtures")},  # `tests` may name another package
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        client = ToolEnvClient(base_url=f"http://127.0.0.1:{port}").sync()
        try:
            assert process.stdout is not None
            assert "serving closing_suite:ToolEnv-OpenEnvClosing-v0" in process.stdout.readline()
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.connect()
                    break
                except (ConnectionError, OSError):
                    assert time.monotonic() < deadline and process.poll() is None, "the server did not come up"
                    time.sleep(0.2)
            assert client.reset(task_id="say").observation.info["task_id"] == "say"
            closed = len(list(tmp_path.glob("closed-*")))  # the envs the server made to check the id, closed
            process.send_signal(signal.SIGTERM)  # with the session still open
            assert process.wait(timeout=30) == 0
            assert len(list(tmp_path.glob("closed-*"))) == closed + 1  # the session's env was closed
            assert "stopped: every session's env is closed" in process.stdout.read()
        finally:
            with contextlib.suppress(Exception):  # the server is gone: only the client's own thread is left
                client.close()
            process.kill()
    failed = subprocess.run(
        [*command, "ToolEnv-Calc-v0", "--env-kwargs", '{"colour": "red"}'], capture_output=True, text=True, timeout=120
    )
    assert failed.returncode != 0 and "colour" in failed.stderr


def test_the_manifest_names_an_app_that_serves() -> None:
    from fastapi.testclient import TestClient

    manifest = yaml.safe_load((Path(openenv_package.__file__).parent / "openenv.yaml").read_text())
    module, _, name = manifest["app"].partition(":")
    app = getattr(importlib.import_module(module), name)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.post("/reset", json={"seed": 0}).json()["observation"]["messages"][0]["role"] == "system"
