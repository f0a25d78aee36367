"""The `python` tool: the model's code runs in a fresh sandboxed process; whatever it does, the trainer gets an
observation and is unaffected."""

from __future__ import annotations

import os
import pathlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest

import toolrl_env
from tools.call import ToolCall, ToolResult
from tools.python_tool import PythonSuite
from tools.sandbox import SandboxLimits

TIMEOUT_S = 2.0  # for the calls meant to time out; the others get one no ordinary call reaches
# Names that hostile code tries to create outside its folder; none may ever appear.
ESCAPE = f"toolrl-hostile-{uuid.uuid4().hex}"
OUTSIDE = os.path.join(tempfile.gettempdir(), ESCAPE)
# Where `../..` and `a/b/../../..` lead from a worker's folder (a folder in the temporary folder).
ESCAPED = [os.path.join("/", ESCAPE), OUTSIDE, os.path.join(tempfile.gettempdir(), "toolrl-copy")]


def limited(timeout_s: float) -> Iterator[PythonSuite]:
    suite = PythonSuite(SandboxLimits(timeout_s=timeout_s, memory_mb=512, file_size_mb=1, open_files=64))
    yield suite
    suite.close()


@pytest.fixture(scope="module")
def suite() -> Iterator[PythonSuite]:
    yield from limited(60.0)


@pytest.fixture(scope="module")
def quick() -> Iterator[PythonSuite]:
    yield from limited(TIMEOUT_S)


def run(suite: PythonSuite, code: Any, **extra: Any) -> ToolResult:
    return suite.call(ToolCall(name="python", parameters={"code": code, **extra}))


def test_plain_code_returns_its_output_and_its_last_expression(suite: PythonSuite) -> None:
    assert run(suite, "print(2 + 3)").content == {"stdout": "5\n", "result": None}
    assert run(suite, "import math\nx = math.sqrt(16)\nprint('root', x)\nx * 2").content == {
        "stdout": "root 4.0\n",
        "result": "8.0",
    }
    assert run(suite, "import json, collections, re\njson.dumps(collections.Counter('aab'))").content["result"] == (
        '\'{"a": 2, "b": 1}\''
    )


def test_each_call_starts_afresh_in_its_own_folder_which_is_deleted(suite: PythonSuite) -> None:
    first = run(suite, "import os\nopen('notes.txt', 'w').write('hi')\nx = 1\nos.getcwd()").content["result"]
    folder = first.strip("'")
    assert not os.path.exists(folder)
    second = run(suite, "import os\n(os.listdir('.'), 'x' in globals())").content["result"]
    assert second == "([], False)"
    assert run(suite, "import tempfile\nwith tempfile.TemporaryFile() as f:\n    f.write(b'ok')").ok


def test_errors_name_the_line_and_keep_what_was_printed(suite: PythonSuite) -> None:
    result = run(suite, "print('before')\n1 / 0")
    assert result == ToolResult(
        name="python", ok=False, content={"error": "ZeroDivisionError: division by zero (line 2); it printed: before\n"}
    )
    assert run(suite, "import sys\nprint('done')\nsys.exit(0)").content == {"stdout": "done\n", "result": None}
    assert run(suite, "import sys\nsys.exit(2)").content == {"error": "SystemExit: 2 (line 2)"}


# Hostile code and a piece of the error it must get.
HOSTILE = [
    ("import socket\nsocket.socket()", "socket.__new__: not allowed"),
    ("import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)", "not allowed"),
    ("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)", "not allowed"),
    ("import subprocess\nsubprocess.run(['true'])", "refused in the Python tool's sandbox"),
    ("import os\nos.system('true')", "os.system: not allowed"),
    ("import os\nos.fork()", "os.fork: not allowed"),
    ("import os\nos.execv('/bin/true', ['true'])", "os.exec: not allowed"),
    ("__import__('os').popen('id').read()", "refused in the Python tool's sandbox"),
    ("import os\nos.kill(os.getppid(), 0)", "os.kill: not allowed"),
    ("import ctypes\nctypes.CDLL(None).system(b'true')", "refused in the Python tool's sandbox"),
    ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))", "resource.setrlimit: not allowed"),
    ("import gc\ngc.get_objects()", "gc.get_objects: not allowed"),
    (f"open({OUTSIDE!r}, 'w').write('x')", "writes are allowed only inside the working folder"),
    (f"open('../../{ESCAPE}', 'w')", "writes are allowed only inside the working folder"),
    (f"import os\nos.makedirs('a/b')\nopen('a/b/../../../{ESCAPE}', 'w')", "writes are allowed only inside"),
    ("import os\nos.symlink('/etc/passwd', 'link')", "os.symlink: not allowed"),
    ("import os\nos.remove('/tmp')", "writes are allowed only inside the working folder"),
    (f"import shutil\nshutil.copyfile('/etc/hostname', {ESCAPED[2]!r})", "writes are allowed only inside"),
    ("open('/etc/passwd').read()", "only the working folder and Python's own libraries can be read"),
    ("import os\nopen(f'/proc/{os.getppid()}/environ').read()", "can be read"),
    ("import os\nos.listdir('/root')", "can be read"),
    ("import os, sys\nos.open(sys.prefix, os.O_RDONLY)", "folders outside the working folder cannot be opened"),
    ("open('x', 'w').write('y' * 2_000_000)", "File too large"),
    ("while True:\n    pass", f"timed out after {TIMEOUT_S:g} s"),
    ("9**9**9", "timed out"),
    ("x = bytearray(10 * 1024**3)", "stopped: the tool ran past its memory cap of 512 MiB (MemoryError)"),
    ("import os\nos._exit(3)", "the tool's process exited with status 3 before answering"),
    ("import os, signal\nos.abort()", "crashed (SIGABRT)"),
    ("(" * 1_000 + ")" * 1_000, "too many nested parentheses"),
    ("print(1)\x00", "null bytes"),
    ("def f():\n    return f()\nf()", "RecursionError"),
]


@pytest.mark.parametrize(("code", "error"), HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
def test_hostile_code_gets_an_error_observation_and_the_trainer_is_untouched(
    suite: PythonSuite,
    quick: PythonSuite,
    code: str,
    error: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    result = run(quick if "timed out" in error else suite, code)
    assert not result.ok and error in result.content["error"], result.content
    if "timed out" in error:
        assert time.perf_counter() - start < TIMEOUT_S + 10  # slack for a busy machine
    assert not list(tmp_path.iterdir()) and not any(map(os.path.exists, ESCAPED))
    assert run(suite, "6 * 7").content == {"stdout": "", "result": "42"}  # and the next call is served


def test_megabytes_of_output_are_clipped(suite: PythonSuite) -> None:
    result = run(suite, "print('x' * 1_000_000)\nfor i in range(20_000):\n    print(i)")
    stdout = result.content["stdout"]
    assert result.ok and stdout.startswith("xxx") and len(stdout) < 10_100
    written = 1_000_001 + sum(len(str(i)) + 1 for i in range(20_000))
    assert stdout.endswith(f"... [{written - 10_000:,} more characters cut]")


def test_the_trainers_environment_does_not_reach_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLRL_SECRET_TOKEN", "hunter2")
    with PythonSuite() as suite:
        names = run(suite, "import os\nsorted(os.environ)").content["result"]
    assert "TOOLRL_SECRET_TOKEN" not in names and "'PATH'" in names and "'TMPDIR'" in names


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"code": "x" * 1_000_000}, "refused: the arguments are over 100,000 characters long"),
        ({"code": 5}, "parameter 'code' should be string, got integer"),
        ({"code": "1", "timeout_s": 60}, "unknown parameter 'timeout_s'"),
        ({}, "missing required parameter: 'code'"),
    ],
)
def test_bad_arguments_are_refused_before_any_process_runs(
    suite: PythonSuite, parameters: dict[str, Any], error: str
) -> None:
    result = suite.call(ToolCall(name="python", parameters=parameters))
    assert not result.ok and result.content["error"].startswith(error)


def test_the_suite_plugs_into_a_registered_env() -> None:
    env_id = toolrl_env.register_suite(
        "PythonTest",
        PythonSuite(),
        tasks=[
            {
                "id": "p1",
                "user": "What is 2 ** 100?",
                "gold_calls": [{"name": "python", "parameters": {"code": "2 ** 100"}}],
                "answer": str(2**100),
            }
        ],
    )
    env = gym.make(env_id)
    env.reset(seed=0)
    call = '{"name": "python", "parameters": {"code": "2 ** 100"}}'
    action = f"<think> compute </think>\n<tool_call>\n{call}\n</tool_call>"
    obs, reward, _, _, info = env.step(action)
    assert info["tool_results"][0]["content"]["result"] == str(2**100) and str(2**100) in obs[1]["content"]
    assert reward == 4.0
    env.close()
