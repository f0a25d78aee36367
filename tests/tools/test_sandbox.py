"""Sandbox: calls in a worker process under resource limits; every failure is a result, and the worker is
replaced after it."""

from __future__ import annotations

import functools
import os
import pathlib
import pickle
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from tools.sandbox import MAX_REPLY_BYTES, Sandbox, SandboxLimits
from tools.sandbox_worker import isolate_network

MIB = 1024 * 1024
# Seconds of slack for bounds on wall time: a busy 2-core machine delays everything, and the bounds are there
# to tell "returns at its timeout" from "hangs".
SLACK_S = 10.0


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # A timeout no ordinary call reaches even on a busy machine; the timeout tests set their own.
    with Sandbox(SandboxLimits(timeout_s=30.0, memory_mb=256, file_size_mb=1, open_files=64)) as box:
        yield box


@pytest.fixture
def quick() -> Iterator[Sandbox]:
    with Sandbox(SandboxLimits(timeout_s=1.0, memory_mb=256)) as box:
        yield box


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: a container's init may never reap it)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def test_limits_are_validated() -> None:
    for bad in ({"timeout_s": 0}, {"memory_mb": 0}, {"open_files": 3}, {"wall": 1}):
        with pytest.raises(ValidationError):
            SandboxLimits(**bad)  # type: ignore[arg-type]
    assert SandboxLimits(timeout_s=2.5).cpu_seconds() == 4.0
    assert SandboxLimits(cpu_s=0.5).cpu_seconds() == 0.5


def test_a_call_runs_in_another_process_and_comes_back_as_json(sandbox: Sandbox) -> None:
    result = sandbox.run(os.getpid, {})
    assert result.ok and result.value == sandbox.pid and result.value != os.getpid()
    assert sandbox.run(functools.partial(divmod, 7, 2), {}).value == [3, 1]  # tuples are JSON lists
    assert sandbox.run(functools.partial(frozenset, [1]), {}).value == "frozenset({1})"  # non-JSON: its str
    assert sandbox.run(dict, {"a": float("inf")}).value == {"a": float("inf")}


def test_exceptions_are_type_and_message_as_in_a_thread(sandbox: Sandbox) -> None:
    result = sandbox.run(functools.partial(int, "x"), {})
    assert not result.ok and result.error == "ValueError: invalid literal for int() with base 10: 'x'"
    assert sandbox.run(sys.exit, {}).error == "SystemExit"
    assert sandbox.run(os.getpid, {}).ok  # the same worker goes on


def test_the_limits_are_set_in_the_worker(sandbox: Sandbox) -> None:
    def limit(kind: int) -> list[int]:
        value = sandbox.run(functools.partial(resource.getrlimit, kind), {}).value
        assert isinstance(value, list)
        return value

    assert limit(resource.RLIMIT_AS) == [256 * MIB] * 2
    assert limit(resource.RLIMIT_FSIZE) == [MIB] * 2
    assert limit(resource.RLIMIT_NOFILE) == [64, 64]
    assert limit(resource.RLIMIT_CORE) == [0, 0]
    cwd = sandbox.run(os.getcwd, {}).value
    assert cwd != os.getcwd() and sandbox.run(functools.partial(os.getenv, "TMPDIR"), {}).value == cwd


def test_a_hanging_call_is_killed_and_the_next_call_is_fast(quick: Sandbox) -> None:
    sandbox = quick
    first = sandbox.run(os.getpid, {}).value
    start = time.perf_counter()
    result = sandbox.run(functools.partial(time.sleep, 60), {})
    assert time.perf_counter() - start < SLACK_S
    assert result.error == "timed out after 1 s; its process was killed"
    assert isinstance(first, int) and gone(first)
    start = time.perf_counter()
    assert sandbox.run(os.getpid, {}).value not in (first, None)
    assert time.perf_counter() - start < SLACK_S  # the replacement started while the caller went on


def test_a_computation_that_holds_the_gil_is_stopped_too(quick: Sandbox) -> None:
    # One C-level power: a thread could not even stop waiting for it.
    assert quick.run(os.getpid, {}).ok  # the worker is up
    start = time.perf_counter()
    result = quick.run(functools.partial(pow, 10, 10**9), {})
    assert not result.ok and ("timed out" in result.error or "MemoryError" in result.error)
    assert time.perf_counter() - start < SLACK_S


def test_memory_past_the_cap_is_a_memory_error_and_the_worker_is_replaced(sandbox: Sandbox) -> None:
    first = sandbox.run(os.getpid, {}).value
    result = sandbox.run(functools.partial(bytearray, 10 * 1024 * MIB), {})
    assert result.error == "stopped: the tool ran past its memory cap of 256 MiB (MemoryError)"
    assert sandbox.run(os.getpid, {}).value != first


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (functools.partial(os._exit, 3), "stopped: the tool's process exited with status 3 before answering"),
        (os.abort, "stopped: the tool's process crashed (SIGABRT)"),
        (functools.partial(signal.raise_signal, signal.SIGKILL), "stopped: the tool's process was killed (SIGKILL"),
    ],
)
def test_a_worker_that_dies_is_reported_and_replaced(sandbox: Sandbox, func: object, message: str) -> None:
    result = sandbox.run(func, {})  # type: ignore[arg-type]
    assert not result.ok and result.error.startswith(message) and result.error.endswith("a new one was started")
    assert sandbox.run(os.getpid, {}).ok


def test_cpu_time_past_its_limit_ends_the_worker() -> None:
    # The kernel counts CPU time, not wall time: on a busy machine the second of CPU may take far longer.
    with Sandbox(SandboxLimits(timeout_s=300, cpu_s=0.5)) as box:
        result = box.run(functools.partial(sum, range(10**15)), {})
        assert result.error.startswith("stopped: the tool's process used up its CPU-time limit of 0.5 s")


def test_files_past_the_size_cap_are_refused(sandbox: Sandbox) -> None:
    result = sandbox.run(functools.partial(pathlib.Path("big").write_bytes, b"x" * 2 * MIB), {})
    assert not result.ok and "File too large" in result.error


def test_a_reply_past_the_size_cap_is_refused_and_the_worker_kept(sandbox: Sandbox) -> None:
    pid = sandbox.run(os.getpid, {}).value
    result = sandbox.run(functools.partial(str.__mul__, "x", MAX_REPLY_BYTES), {})
    assert not result.ok and "a call may return" in result.error
    assert sandbox.run(os.getpid, {}).value == pid


def test_what_cannot_be_pickled_is_an_error_result(sandbox: Sandbox) -> None:
    result = sandbox.run(lambda: 1, {})
    assert not result.ok and result.error.startswith("refused: the call cannot be sent to a worker process")
    assert sandbox.pid is None  # nothing was started for it


def test_close_stops_the_worker_and_deletes_its_folder() -> None:
    box = Sandbox()
    pid = box.run(os.getpid, {}).value
    folder = box.run(os.getcwd, {}).value
    assert isinstance(pid, int) and isinstance(folder, str) and os.path.isdir(folder)
    box.close()
    assert gone(pid) and not os.path.exists(folder) and box.pid is None
    assert box.run(os.getpid, {}).ok  # a later call starts a new worker
    box.close()


def test_fork_per_call_gives_each_call_a_fresh_process_and_folder_under_one_worker() -> None:
    with Sandbox(SandboxLimits(timeout_s=2.0, memory_mb=256), fork_per_call=True) as box:
        pids = [box.run(os.getpid, {}).value for _ in range(3)]
        folders = [box.run(os.getcwd, {}).value for _ in range(3)]
        worker = box.pid
        assert len(set(pids)) == 3 and worker not in pids
        assert len(set(folders)) == 3 and not any(os.path.exists(str(f)) for f in folders)
        assert len({os.path.dirname(str(f)) for f in folders}) == 1  # each inside the worker's own folder
        assert os.path.basename(str(box.run(tempfile.gettempdir, {}).value)).startswith("call-")
        # A child that dies, exhausts its memory or raises leaves the worker serving.
        exited = box.run(functools.partial(os._exit, 4), {}).error
        assert exited.startswith("stopped: the tool's process exited with status 4")
        assert "memory cap of 256 MiB" in box.run(functools.partial(bytearray, 10 * 1024 * MIB), {}).error
        assert box.run(functools.partial(int, "x"), {}).error.startswith("ValueError")
        assert box.pid == worker


def test_the_environment_is_the_one_given() -> None:
    with Sandbox(environment={"ONLY": "this"}) as box:
        assert box.run(functools.partial(os.getenv, "ONLY"), {}).value == "this"
        assert box.run(functools.partial(os.getenv, "HOME"), {}).value is None  # the trainer's is not passed on
        assert box.run(functools.partial(os.getenv, "TMPDIR"), {}).value == box.run(os.getcwd, {}).value


def test_a_copy_has_no_worker_of_its_own_until_its_first_call(sandbox: Sandbox) -> None:
    pid = sandbox.run(os.getpid, {}).value
    clone = pickle.loads(pickle.dumps(sandbox))
    assert clone.pid is None and clone.run(os.getpid, {}).value != pid
    clone.close()


def test_a_worker_dies_with_its_parent(tmp_path: pathlib.Path) -> None:
    # The parent is killed outright (no finalizers run) while its worker sleeps in a call.
    script = textwrap.dedent(
        """
        import functools, os, sys, threading, time
        from tools.sandbox import Sandbox, SandboxLimits
        box = Sandbox(SandboxLimits(timeout_s=60))
        print(box.run(os.getpid, {}).value, box.run(os.getcwd, {}).value, flush=True)
        threading.Thread(target=box.run, args=(functools.partial(time.sleep, 60), {})).start()
        time.sleep(0.5)
        os.kill(os.getpid(), 9)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    pid, folder = done.stdout.split()
    deadline = time.monotonic() + 30
    while not gone(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(int(pid))
    os.rmdir(folder)  # nobody was left to delete the killed worker's (empty) folder


def test_network_isolation_works_where_the_os_allows_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        connect = functools.partial(socket.create_connection, server.getsockname(), 2)
        with Sandbox() as plain:
            assert plain.run(connect, {}).ok  # the check can fail: a worker outside a namespace connects
        with Sandbox() as box:
            if not box.run(isolate_network, {}).value:
                pytest.skip("this machine allows neither network nor user namespaces")
            result = box.run(connect, {})
    assert not result.ok and "Network is unreachable" in result.error
