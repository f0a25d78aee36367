"""Process isolation for tool calls: a worker process that runs picklable callables under resource limits.

A thread can only stop *waiting* for a tool that runs too long: the thread itself keeps running, and a
single C-level computation that holds the GIL (`10 ** 10 ** 9`) blocks even the waiting. A `Sandbox` runs
calls in a separate interpreter instead, started fresh with `subprocess` (the trainer is never forked, which
would copy its torch threads and locks into the child; a worker, single-threaded and holding nothing of the
trainer's, may fork a child per call), with an address-space cap (RLIMIT_AS: allocations past it raise
MemoryError), CPU time, file size and open files capped, and core dumps off. A call that runs past
`timeout_s`, kills its process, or exhausts its memory gets an error result; its worker is killed (with
everything it started) and a fresh one takes its place at once, so the next call does not wait.

Calls go to the worker as pickles, so executors must pickle by reference (module-level functions, objects
of importable classes); results come back as JSON only (see `tools.sandbox_worker`). POSIX only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools import sandbox_worker
from tools.sandbox_worker import REFUSED, STOPPED, TIMED_OUT, clip_error, death_message, describe_exception

# A reply is one JSON line; larger ones are refused rather than read into the trainer's memory.
MAX_REPLY_BYTES = 4 * 1024 * 1024
# Seconds a worker that closed its end of the pipe gets to finish exiting, so its exit status can be reported.
_EXIT_GRACE_S = 0.5
# Seconds a new worker may take to start (its interpreter and preloaded modules) on a busy machine.
_STARTUP_TIMEOUT_S = 60.0
# Tool processes need no BLAS or OpenMP thread pools; each pool thread would also count against the memory cap.
_SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Variables that would change what the worker runs before it is set up.
_DROPPED_VARIABLES = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONINSPECT")


class SandboxLimits(BaseModel):
    """What one tool call in a worker process may use. Core dumps are always off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(
        default=5.0, gt=0, description="Wall-clock seconds a call may run before its worker is killed."
    )
    memory_mb: int | None = Field(
        default=1024,
        gt=0,
        description="Address-space cap of the worker process in MiB (RLIMIT_AS): allocations past it raise "
        "MemoryError in the tool, and the worker is replaced. None: no cap.",
    )
    cpu_s: float | None = Field(
        default=None,
        gt=0,
        description="CPU seconds one call may use (RLIMIT_CPU, moved before each call); past it the kernel ends "
        "the worker. None: the timeout rounded up plus one second, a backstop should the trainer be too busy "
        "to kill the worker on time.",
    )
    file_size_mb: int | None = Field(
        default=64, gt=0, description="Largest file the worker may write, in MiB (RLIMIT_FSIZE). None: no cap."
    )
    open_files: int | None = Field(
        default=256,
        ge=16,
        description="Most file descriptors the worker may hold (RLIMIT_NOFILE); the interpreter needs a few itself. "
        "None: no cap.",
    )

    def cpu_seconds(self) -> float:
        """The CPU-time allowance per call, `cpu_s` or its default."""
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1.0


class SandboxResult(BaseModel):
    """What one call in a worker process gave."""

    ok: bool = Field(
        description="True when the callable returned; False when it raised, ran out of time or memory, or its "
        "process died."
    )
    value: Any = Field(default=None, description="The return value as JSON (non-JSON values as their str), when ok.")
    error: str = Field(default="", description="What went wrong, 'Type: message' for an exception, when not ok.")


class _WorkerGone(Exception):
    """The worker closed its reply pipe: it exited or was killed."""


class _BadReply(Exception):
    """The worker sent something that is not one JSON reply of bounded size."""


class _SlowStart(Exception):
    """The worker did not finish starting in time."""


class _Worker:
    """One worker process, its two pipes and its private working folder."""

    def __init__(
        self,
        limits: SandboxLimits,
        environment: Mapping[str, str] | None,
        preload: tuple[str, ...],
        fork_per_call: bool,
    ) -> None:
        self.workdir = tempfile.mkdtemp(prefix="toolrl-sandbox-")
        self.ready = False
        request_read, self.request_fd = os.pipe()
        self.reply_fd, reply_write = os.pipe()
        env = dict(os.environ if environment is None else environment)
        if "PYTHONHASHSEED" in os.environ:  # so sets and dicts of strings come back in the trainer's order
            env.setdefault("PYTHONHASHSEED", os.environ["PYTHONHASHSEED"])
        for name in _DROPPED_VARIABLES:
            env.pop(name, None)
        env.update(_SINGLE_THREADED, TMPDIR=self.workdir)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-s", "-B", sandbox_worker.__file__, str(request_read), str(reply_write)],
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.workdir,
                env=env,
                # Its own process group: Ctrl-C in the trainer's terminal does not reach it, and killing the
                # group ends whatever it started.
                start_new_session=True,
            )
        except BaseException:
            for fd in (self.request_fd, self.reply_fd):
                os.close(fd)
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._poller = select.poll()
        self._poller.register(self.reply_fd, select.POLLIN)
        # Sent now and read when the interpreter is up, so the caller goes on while the worker starts; a worker
        # that dies at once shows it when its start-up line is awaited.
        setup = {
            "sys_path": [p or os.getcwd() for p in sys.path],
            "preload": list(preload),
            "fork_per_call": fork_per_call,
            "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb,
            "open_files": limits.open_files,
            "cpu_s": limits.cpu_seconds(),
            "max_reply_bytes": MAX_REPLY_BYTES,
        }
        with contextlib.suppress(_WorkerGone):
            self.send(pickle.dumps(setup))

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, payload: bytes) -> None:
        """Write one length-prefixed message; _WorkerGone if the worker is no longer reading."""
        view = memoryview(len(payload).to_bytes(8, "big") + payload)
        try:
            while view:
                view = view[os.write(self.request_fd, view) :]
        except OSError as exc:
            raise _WorkerGone from exc

    def wait_ready(self) -> None:
        """Wait for the worker to finish starting (its interpreter, the preloaded modules), up to a minute;
        _SlowStart past it."""
        if not self.ready:
            try:
                line = self.read_line(time.monotonic() + _STARTUP_TIMEOUT_S)
            except TimeoutError:
                raise _SlowStart from None
            if json.loads(line) != {"ok": True, "ready": True}:
                raise _BadReply("something other than its start-up line")
            self.ready = True

    def read_line(self, deadline: float) -> bytes:
        """One reply line, read until `deadline` (time.monotonic); TimeoutError, _WorkerGone or _BadReply."""
        received = bytearray()
        while True:
            remaining_ms = math.ceil((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self._poller.poll(remaining_ms):
                raise TimeoutError
            chunk = os.read(self.reply_fd, 1 << 16)
            if not chunk:
                raise _WorkerGone
            end = chunk.find(b"\n")
            if end >= 0:
                if end != len(chunk) - 1:
                    raise _BadReply("more than one reply to one call")
                received += chunk[:end]
                return bytes(received)
            received += chunk
            if len(received) > MAX_REPLY_BYTES:
                raise _BadReply(f"a reply of more than {MAX_REPLY_BYTES:,} bytes")

    def stop(self, grace_s: float = 0.0) -> int:
        """Kill the worker's process group, wait for it, delete its folder; its exit status (negative: signal)."""
        for fd in (self.request_fd, self.reply_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        if grace_s:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return code


class Sandbox:
    """A worker process that runs picklable callables under `SandboxLimits`; `run` never raises.

    The worker starts on the first call and is replaced after a timeout, a crash, a MemoryError or a bad
    reply; each replacement starts at once, so its start-up overlaps whatever the caller does next. With
    `fork_per_call` every call runs in a child forked from the (clean, single-threaded) worker, in a folder of
    its own deleted afterwards, so nothing one call does to its interpreter reaches the next; a fork costs a
    millisecond or two where a new interpreter costs tens. `environment` is what the worker sees (None: the
    trainer's), with `TMPDIR` its own folder; `preload` names modules it imports before its limits apply and
    before the first call's clock starts (the tools' own modules).
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        environment: Mapping[str, str] | None = None,
        preload: tuple[str, ...] = (),
        fork_per_call: bool = False,
    ) -> None:
        if os.name != "posix":
            raise RuntimeError(
                "process isolation needs a POSIX system (resource limits, pipes); use isolation='thread'"
            )
        self.limits = limits or SandboxLimits()
        self.environment = None if environment is None else dict(environment)
        self.preload = tuple(preload)
        self.fork_per_call = fork_per_call
        self._worker: _Worker | None = None
        self._stop: weakref.finalize[..., Sandbox] | None = None

    @property
    def pid(self) -> int | None:
        """The current worker's process id, or None when none is running."""
        return self._worker.process.pid if self._worker is not None else None

    def run(self, func: Callable[..., Any], arguments: Mapping[str, Any]) -> SandboxResult:
        """`func(**arguments)` in the worker process, within the limits."""
        try:
            payload = pickle.dumps((func, dict(arguments)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            return _failure(
                f"{REFUSED}the call cannot be sent to a worker process ({describe_exception(exc)}); process isolation "
                "needs executors that pickle by reference (module-level functions, objects of importable classes)"
            )
        try:
            if self._worker is None or not self._worker.alive():
                self._retire()
                self._start()
            worker = self._worker
            assert worker is not None
            worker.wait_ready()
            worker.send(payload)
            reply = json.loads(worker.read_line(time.monotonic() + self.limits.timeout_s))
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                raise _BadReply("a reply without a boolean 'ok'")
        except TimeoutError:
            self._replace()
            return _failure(f"{TIMED_OUT}{self.limits.timeout_s:g} s; its process was killed")
        except _SlowStart:
            self._replace()
            return _failure(f"{STOPPED}the tool's process did not start within {_STARTUP_TIMEOUT_S:g} s")
        except _WorkerGone:
            code = self._retire(_EXIT_GRACE_S)
            assert code is not None  # there was a worker to lose
            self._replace()
            return _failure(death_message(code, self.limits.cpu_seconds()))
        except (_BadReply, ValueError) as exc:
            self._replace()
            return _failure(f"{STOPPED}the tool's process sent {exc}; it was replaced")
        except OSError as exc:  # no worker could be started (no memory for a process, no executable)
            self._retire()
            return _failure(f"{STOPPED}could not start a worker process ({describe_exception(exc)})")
        if reply.get("retire"):
            self._replace()
        if reply["ok"]:
            return SandboxResult(ok=True, value=reply.get("value"))
        return _failure(str(reply.get("error", "")))

    def close(self) -> None:
        """Stop the worker; a later call starts a new one."""
        self._retire()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A process cannot be pickled; the copy starts its own worker on its first call.
        return {**self.__dict__, "_worker": None, "_stop": None}

    def _start(self) -> None:
        worker = _Worker(self.limits, self.environment, self.preload, self.fork_per_call)
        self._worker = worker
        # Stops the worker when the Sandbox is collected or the interpreter exits, should close() be forgotten.
        self._stop = weakref.finalize(self, worker.stop)

    def _retire(self, grace_s: float = 0.0) -> int | None:
        """Stop the current worker, if any; its exit status."""
        worker, stop = self._worker, self._stop
        self._worker = self._stop = None
        if worker is None or stop is None:
            return None
        stop.detach()
        return worker.stop(grace_s)

    def _replace(self) -> None:
        """Retire the current worker and start the next one now; a failed start is reported by the next call."""
        self._retire()
        with contextlib.suppress(OSError):
            self._start()


def _failure(message: str) -> SandboxResult:
    return SandboxResult(ok=False, error=clip_error(message))
