"""What runs inside a sandbox worker process (`tools.sandbox`): the request loop, the resource limits, the
conversion of results to JSON, and the Python tool's code runner with its audit hook.

The parent starts this file as a script (`python -s tools/sandbox_worker.py REQUEST_FD REPLY_FD`) and registers
nothing else, so it imports the standard library only: a worker is ready in a few tens of milliseconds and
spends its memory cap on the tool, not on our packages. It registers itself as `tools.sandbox_worker` in
`sys.modules`, and looks there first when unpickling, so the Python tool's runner, pickled by reference,
resolves to this module without importing the `tools` package.

Protocol: the parent sends length-prefixed pickles (first the setup, then `(callable, arguments)` per call);
the worker answers with lines of JSON: `{"ok": true, "ready": true}` once set up, then per call `{"ok": true,
"value": ...}` or `{"ok": false, "error": ...}`, with `"retire": true` when it ends after that reply. Replies
are JSON, never pickles, because the code that ran here may be hostile and unpickling its bytes in the trainer
would run whatever it wrote. With `fork_per_call` each call runs in a child forked from this worker (safe
here: the worker is single-threaded and holds nothing of the trainer's), which answers through a pipe of its
own and exits; the worker checks the answer and relays it.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import io
import json
import math
import os
import pathlib
import pickle
import resource
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

# Long tracebacks or reprs would flood the model's context; the head says what went wrong.
MAX_ERROR_CHARS = 500
# Results nested deeper than this are shown as text rather than walked.
MAX_RESULT_DEPTH = 100
_HEADER_BYTES = 8  # big-endian length before each pickled request
_MIB = 1024 * 1024
# The file name user code compiles under, so its tracebacks can be told from ours.
_CODE_NAME = "<python tool>"
# Set once the Python tool's audit hook is in: the hook cannot be removed, so such a worker serves no more calls.
_hooked = False


# -- what both sides use: results as JSON, exceptions as text, and how the suite's own failures begin ---------
# A call refused before it ran, one stopped by its timeout, and one stopped otherwise (its memory cap, its
# process dying): records tell these from a tool's own errors by the prefix, and BFCL's checker, which replays
# calls in the trainer's process, is handed none of them.
REFUSED = "refused: "
TIMED_OUT = "timed out after "
STOPPED = "stopped: "


def clip_error(text: str) -> str:
    """An error text cut to its first MAX_ERROR_CHARS characters."""
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """'Type: message' of an exception (even one whose str() raises), clipped."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    return clip_error(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def to_json(value: Any, depth: int = 0) -> Any:
    """Keep JSON values as they are; anything else (sets, objects, numpy arrays) becomes its `str`."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth < MAX_RESULT_DEPTH:
        if isinstance(value, dict):
            return {k if isinstance(k, str) else _text(k): to_json(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [to_json(v, depth + 1) for v in value]
    return _text(value)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # str can fail (a raising __str__, a structure too deep to print, an int past the digit limit)
        return f"<{type(value).__name__}>"


def call_method(cls: type, method: str, /, **arguments: Any) -> Any:
    """`method` of a new instance of `cls`: how a stateless backend's call runs in a worker that imports only the
    backend's own module."""
    return getattr(cls(), method)(**arguments)


# -- limits ------------------------------------------------------------------------------------------------------
def apply_limits(memory_mb: int | None, file_size_mb: int | None, open_files: int | None) -> None:
    """Set this process's limits: no core dumps, and the address space, file size and open-file caps that are
    given, hard as well as soft so the tool cannot raise them again (never above a hard limit already set)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for kind, value in (
        (resource.RLIMIT_AS, None if memory_mb is None else memory_mb * _MIB),
        (resource.RLIMIT_FSIZE, None if file_size_mb is None else file_size_mb * _MIB),
        (resource.RLIMIT_NOFILE, open_files),
    ):
        if value is not None:
            hard = resource.getrlimit(kind)[1]
            capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (capped, capped))


def limit_cpu(seconds: float) -> None:
    """Let this call use `seconds` more CPU time (RLIMIT_CPU counts the whole process, so it moves per call);
    past it the kernel sends SIGXCPU, which ends the worker."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used + seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the trainer dies, so a worker stuck in a call is never orphaned."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass  # best effort: the parent still kills workers it abandons, and closing its pipe ends idle ones


# -- the request loop --------------------------------------------------------------------------------------------
def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, _MIB))
        if not chunk:
            return None  # the parent closed the pipe: it is done with this worker
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> bytes | None:
    header = _read_exactly(fd, _HEADER_BYTES)
    if header is None:
        return None
    body = _read_exactly(fd, int.from_bytes(header, "big"))
    return None if body is None else body


def _encode(reply: dict[str, Any], max_reply_bytes: int) -> bytes:
    """One reply as a line of ASCII JSON (which never holds a raw newline), or an error line if it cannot be."""
    try:
        text = json.dumps(reply)
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. an integer past Python's 4,300-digit limit
        text = json.dumps({"ok": False, "error": f"the result cannot be sent as JSON ({describe_exception(exc)})"})
    if len(text) >= max_reply_bytes:
        message = f"the result is {len(text):,} bytes of JSON, more than the {max_reply_bytes:,} a call may return"
        text = json.dumps({"ok": False, "error": message})
    return text.encode("ascii") + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Unpickler(pickle.Unpickler):
    """Finds classes and functions in modules already loaded before importing anything, so references to this
    module resolve to it without importing the `tools` package (Python 3.11's pickle imports the package)."""

    def find_class(self, module_name: str, name: str) -> Any:
        module = sys.modules.get(module_name)
        if module is None:
            return super().find_class(module_name, name)
        found: Any = module
        for part in name.split("."):
            found = getattr(found, part)
        return found


def _load(request: bytes) -> tuple[Callable[..., Any], dict[str, Any]] | dict[str, Any]:
    """The pickled `(callable, arguments)` of a request, or the error reply if it cannot be loaded here."""
    try:
        func, arguments = _Unpickler(io.BytesIO(request)).load()
    except Exception as exc:
        return {
            "ok": False,
            "error": clip_error(
                f"{REFUSED}the worker could not load the tool ({describe_exception(exc)}); process isolation needs "
                "executors that pickle by reference (module-level functions, or objects of importable classes)"
            ),
        }
    return func, arguments


def _call(func: Callable[..., Any], arguments: dict[str, Any], memory_mb: int | None) -> tuple[dict[str, Any], bool]:
    """The reply to one call and whether the process must end after sending it."""
    try:
        return {"ok": True, "value": to_json(func(**arguments))}, False
    except MemoryError:
        # After a MemoryError the interpreter may be in a poor state; the process is replaced.
        cap = f" of {memory_mb} MiB" if memory_mb is not None else ""
        return {"ok": False, "error": f"{STOPPED}the tool ran past its memory cap{cap} (MemoryError)"}, True
    except BaseException as exc:  # whatever the tool raises, even SystemExit, is the caller's to report
        return {"ok": False, "error": describe_exception(exc)}, False


def death_message(code: int, cpu_s: float) -> str:
    """Why a tool's process ended without answering, from its exit status (negative: the signal)."""
    if code >= 0:
        what = f"exited with status {code} before answering"
    elif -code == signal.SIGXCPU:
        what = f"used up its CPU-time limit of {cpu_s:g} s"
    elif -code == signal.SIGKILL:
        what = "was killed (SIGKILL: the kernel's out-of-memory killer, or another process)"
    else:
        what = f"crashed ({signal.Signals(-code).name})"
    return f"{STOPPED}the tool's process {what}; a new one was started"


def _call_in_child(
    func: Callable[..., Any], arguments: dict[str, Any], setup: dict[str, Any], inherited: tuple[int, ...]
) -> dict[str, Any]:
    """The reply to one call run in a forked child with its own folder (deleted after), which this worker, still
    clean and single-threaded, outlives: whatever the call does to its interpreter ends with the child."""
    folder = tempfile.mkdtemp(prefix="call-", dir=os.getcwd())
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (read_end, write_end):
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        return {"ok": False, "error": f"{STOPPED}could not start the tool's process ({describe_exception(exc)})"}
    if pid == 0:  # the child: never returns
        status = 70
        try:
            for fd in (read_end, *inherited):  # the worker's pipes stay out of the tool's reach
                os.close(fd)
            _die_with_parent()
            os.chdir(folder)
            os.environ["TMPDIR"] = tempfile.tempdir = folder
            limit_cpu(setup["cpu_s"])
            reply, _ = _call(func, arguments, setup["memory_mb"])
            _write_all(write_end, _encode(reply, setup["max_reply_bytes"]))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    data = _read_until_end(read_end, setup["max_reply_bytes"] + 1)
    if data is None:  # more than a reply: stop it rather than read on
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.close(read_end)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    shutil.rmtree(folder, ignore_errors=True)
    if data is not None and data.endswith(b"\n") and data.count(b"\n") == 1:
        with contextlib.suppress(ValueError):
            reply = json.loads(data)
            if isinstance(reply, dict) and isinstance(reply.get("ok"), bool):
                return reply
    if data:
        return {"ok": False, "error": f"{STOPPED}the tool's process sent something other than one reply"}
    return {"ok": False, "error": death_message(code, setup["cpu_s"])}


def _read_until_end(fd: int, limit: int) -> bytes | None:
    """All a pipe gives until its writer closes it, or None past `limit` bytes."""
    chunks, size = [], 0
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


def main(argv: list[str]) -> None:
    """Serve calls until the parent closes the request pipe."""
    sys.modules.setdefault("tools.sandbox_worker", sys.modules[__name__])
    request_fd, reply_fd = int(argv[1]), int(argv[2])
    setup_bytes = _read_message(request_fd)
    if setup_bytes is None:
        return
    setup = pickle.loads(setup_bytes)
    sys.path[:] = setup["sys_path"]
    sys.dont_write_bytecode = True  # never write .pyc files into the trainer's packages
    for module in setup["preload"]:
        # The tools' own modules, imported before the limits and the first call's clock start; a failure
        # shows again, with its reason, when a call needs the module.
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    _die_with_parent()
    apply_limits(setup["memory_mb"], setup["file_size_mb"], setup["open_files"])
    _write_all(reply_fd, _encode({"ok": True, "ready": True}, setup["max_reply_bytes"]))
    while (request := _read_message(request_fd)) is not None:
        loaded = _load(request)
        fatal = False
        if isinstance(loaded, dict):
            reply = loaded
        elif setup["fork_per_call"]:
            reply = _call_in_child(*loaded, setup, (request_fd, reply_fd))
        else:
            limit_cpu(setup["cpu_s"])
            reply, fatal = _call(*loaded, setup["memory_mb"])
        fatal = fatal or _hooked
        if fatal:
            reply["retire"] = True
        _write_all(reply_fd, _encode(reply, setup["max_reply_bytes"]))
        if fatal:
            os._exit(0)


# -- the Python tool ---------------------------------------------------------------------------------------------
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def isolate_network() -> bool:
    """Move this process into a new, empty network namespace (no interface but a down loopback), if the OS
    allows it: as root, or through a user namespace; True when it worked. Must run before any thread starts."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        unshare = ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError):
        return False
    if unshare(_CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return False
    try:  # keep our own ids inside the user namespace, so files made in the working folder stay ours
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        pass
    return True


# Events refused outright, by name or by prefix: network, new processes, signals to other processes, native
# code, introspection that reaches other objects, and raising our own limits. (Not marshal or code objects:
# every import of a module loads them; crafted ones can crash only this disposable process.)
_REFUSED_PREFIXES = (
    "socket.",
    "subprocess.",
    "os.exec",
    "os.spawn",
    "os.posix_spawn",
    "os.fork",
    "os.system",
    "os.startfile",
    "os.kill",
    "os.symlink",
    "os.link",
    "signal.pthread_kill",
    "ctypes.",
    "resource.setrlimit",
    "resource.prlimit",
    "gc.get_",
    "urllib.Request",
    "http.client.",
    "ftplib.",
    "smtplib.",
    "poplib.",
    "imaplib.",
    "nntplib.",
    "telnetlib.",
    "webbrowser.",
    "sys.remote_exec",
)
# Modules whose import alone is an escape hatch (raw process creation, foreign functions).
_REFUSED_IMPORTS = frozenset({"_posixsubprocess", "ctypes", "_ctypes", "cffi", "_cffi_backend", "_testcapi"})
# Events that change the file system: event -> (indices of its path arguments, indices of its dir_fd arguments).
_WRITE_EVENTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "os.remove": ((0,), (1,)),
    "os.rmdir": ((0,), (1,)),
    "os.mkdir": ((0,), (2,)),
    "os.rename": ((0, 1), (2, 3)),
    "os.chmod": ((0,), (2,)),
    "os.chown": ((0,), (3,)),
    "os.utime": ((0,), (3,)),
    "os.truncate": ((0,), ()),
    "os.setxattr": ((0,), ()),
    "os.removexattr": ((0,), ()),
    "os.chflags": ((0,), ()),
    "shutil.copyfile": ((1,), ()),
    "shutil.copytree": ((1,), ()),
    "shutil.move": ((0, 1), ()),
    "shutil.rmtree": ((0,), (1,)),
    "shutil.chown": ((0,), ()),
    "shutil.unpack_archive": ((1,), ()),
    "sqlite3.connect": ((0,), ()),
}
_READ_EVENTS = {"os.listdir": 0, "os.scandir": 0, "os.chdir": 0, "glob.glob": 0}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _make_audit_hook(root: str, read_roots: tuple[str, ...]) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that refuses the events above, writes outside `root`, and reads outside `read_roots`.

    Everything it uses is bound here, in its closure, so code that reaches the hook's frame through a traceback
    cannot change the policy by rebinding module globals or builtins."""
    refused_prefixes, refused_imports = _REFUSED_PREFIXES, _REFUSED_IMPORTS
    write_events, read_events, write_flags = dict(_WRITE_EVENTS), dict(_READ_EVENTS), _WRITE_FLAGS
    realpath, join, isdir, getcwd, fsdecode = os.path.realpath, os.path.join, os.path.isdir, os.getcwd, os.fsdecode
    sep = os.sep
    plain_paths = (str, bytes, pathlib.PurePosixPath, pathlib.PosixPath)
    isinstance_, type_, str_, int_, any_, len_ = isinstance, type, str, int, any, len
    permission_error = PermissionError

    def refuse(event: str, why: str) -> None:
        raise permission_error(f"{event}: {why} (refused in the Python tool's sandbox)")

    def texts(event: str, path: Any) -> tuple[str, str]:
        """The path as given, and resolved (symlinks too) against the current folder."""
        # Only types whose __fspath__ we trust: a user-made path object could name one file here, another later.
        if type_(path) not in plain_paths:
            refuse(event, f"give paths as str, bytes or pathlib paths, not {type_(path).__name__}")
        raw = fsdecode(path) if isinstance_(path, (str_, bytes)) else str_(path)
        return raw, realpath(join(getcwd(), raw))

    def is_inside(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip(sep) + sep)

    def check_write(event: str, path: Any, from_dir_fd: bool = False) -> None:
        if isinstance_(path, int_):
            refuse(event, "file descriptors are refused; name the file")
        raw, text = texts(event, path)
        if ".." in raw.split(sep):
            refuse(event, f"writes are allowed only inside the working folder {root}, and without '..'")
        # Folders outside the working folder cannot be opened, so a dir_fd names one inside it, and a relative
        # path without `..` from there stays inside (links cannot be made).
        if not (from_dir_fd and not raw.startswith(sep)) and not is_inside(text, root):
            refuse(event, f"writes are allowed only inside the working folder {root}")

    def check_read(event: str, path: Any) -> str:
        if isinstance_(path, int_):
            return root  # a descriptor the code opened, so one inside the working folder or a readable file
        text = texts(event, path)[1]
        if not any_(is_inside(text, top) for top in read_roots):
            refuse(event, "only the working folder and Python's own libraries can be read")
        return text

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "import":
            if args and args[0] in refused_imports:
                refuse(event, f"module {args[0]!r} is not available")
            return
        if event == "open":
            path, mode, flags = args[0], args[1], args[2] if len_(args) > 2 else 0
            if isinstance_(path, int_):
                return  # wrapping a descriptor the code already holds (tempfile does): its own open was checked
            if (isinstance_(mode, str_) and any_(c in mode for c in "wax+")) or (flags or 0) & write_flags:
                check_write(event, path)
                return
            text = check_read(event, path)
            # A folder opened outside the working folder would give a dir_fd to write through.
            if not is_inside(text, root) and isdir(text):
                refuse(event, "folders outside the working folder cannot be opened")
            return
        if event in write_events:
            paths, dir_fds = write_events[event]
            from_dir_fd = any_(len_(args) > i and args[i] not in (None, -1) for i in dir_fds)
            for index in paths:
                if len_(args) <= index or (event == "sqlite3.connect" and args[index] == ":memory:"):
                    continue
                if not (event == "os.truncate" and isinstance_(args[index], int_)):  # ftruncate of an open file
                    check_write(event, args[index], from_dir_fd)
            return
        if event in read_events:
            if args and args[read_events[event]] is not None:
                check_read(event, args[read_events[event]])
            return
        for prefix in refused_prefixes:
            if event.startswith(prefix):
                refuse(event, "not allowed")

    return hook


class _ClippedText(io.TextIOBase):
    """A text stream that keeps its first `limit` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.dropped = limit, 0, 0
        self.parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self) -> str:
        cut = f"\n... [{self.dropped:,} more characters cut]" if self.dropped else ""
        return "".join(self.parts) + cut


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit:,} more characters cut]"


def _short_repr(value: object, limit: int) -> str:
    try:
        return _clip(repr(value), limit)
    except Exception as exc:  # a raising __repr__, an int past the digit limit
        return f"<{type(value).__name__} that cannot be shown: {describe_exception(exc)}>"


def _error_line(exc: BaseException) -> str:
    """'Type: message (line N)', N the last line of the user's code in the traceback."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == _CODE_NAME:
            line = lineno
    where = f" (line {line})" if line is not None else ""
    return describe_exception(exc) + where


def run_python(code: str, max_output_chars: int = 10_000) -> dict[str, Any]:
    """Run `code` as a script in this (disposable) worker, confined by an audit hook to its working folder,
    with no network; returns `stdout` (what it printed, clipped), `result` (the repr of a final expression, or
    None) and, when it raised, `error` ('Type: message (line N)').

    The hook cannot be removed, so the process that ran this serves no other call."""
    global _hooked
    _hooked = True
    root = os.path.realpath(os.getcwd())
    isolate_network()
    read_roots = tuple(
        dict.fromkeys(
            os.path.realpath(p or root)
            for p in (root, sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path)
            if not p or os.path.isdir(p)
        )
    )
    sys.addaudithook(_make_audit_hook(root, read_roots))
    output = _ClippedText(max_output_chars)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = output
    result: str | None = None
    error: str | None = None
    try:
        tree = ast.parse(code, filename=_CODE_NAME, mode="exec")
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            tree.body.pop()  # run like a notebook cell: the final expression's value is the result
        else:
            last = None
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(tree, _CODE_NAME, "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), _CODE_NAME, "eval"), namespace)
            result = None if value is None else _short_repr(value, max_output_chars)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            error = _error_line(exc)
    except MemoryError:
        raise  # the worker reports it and is replaced
    except BaseException as exc:  # the user's error is the observation, with what it printed before
        error = _error_line(exc)
    finally:
        sys.stdout, sys.stderr = saved
    reply: dict[str, Any] = {"stdout": output.text(), "result": result}
    if error is not None:
        reply["error"] = error
    return reply


if __name__ == "__main__":
    main(sys.argv)
