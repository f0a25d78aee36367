"""What isolation costs per tool call: in the calling thread, on a worker thread, in a worker process; a new
worker's start; the `python` tool (a forked child per call); BFCL's MathAPI (worker process) beside its file
system (thread).

    python benchmarks/bench_sandbox.py [--calls 2000] [--python-calls 30]

Medians of wall time per call, the tool itself being trivial (`calculate("2 + 2")`, `os.getpid`, `add(1, 2)`,
`pwd()`, the code `sum(range(100))`), so the figures are the isolation's overhead.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from toolrl_env.envs.bfcl.backends import BFCLBackendSuite
from tools.calculator import CALCULATE
from tools.call import ToolCall
from tools.python_tool import PythonSuite
from tools.sandbox import Sandbox
from tools.suite import ToolSuite


def median_s(work: Callable[[], Any], repeats: int, pause_s: float = 0.0) -> float:
    """Median seconds of `work()` over `repeats` runs, `pause_s` apart."""
    times = []
    for _ in range(repeats):
        time.sleep(pause_s)
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--calls", type=int, default=2000, help="Calls per in-process and worker-process figure (default 2,000)."
    )
    parser.add_argument("--python-calls", type=int, default=30, help="Calls per python-tool figure (default 30).")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    calculate = ToolCall(name="calculate", parameters={"expression": "2 + 2"})
    for label, settings in (
        ("calling thread (timeout_s=None)", {"timeout_s": None}),
        ("worker thread (timeout_s=5)", {"timeout_s": 5.0}),
        ("worker process (isolation='process')", {"timeout_s": 5.0, "isolation": "process", "memory_mb": 512}),
    ):
        with ToolSuite("calc", [CALCULATE], **settings) as suite:
            suite.call(calculate)  # starts its worker
            print(f"calculate, {label}: {median_s(lambda s=suite: s.call(calculate), args.calls) * 1e6:.1f} µs")

    def first_call() -> None:
        with Sandbox() as box:
            box.run(os.getpid, {})

    print(f"a new worker's first call (start-up included): {median_s(first_call, 10) * 1e3:.1f} ms")
    code = ToolCall(name="python", parameters={"code": "sum(range(100))"})
    with PythonSuite() as python:
        python.call(code)
        print(f"python tool, calls back to back: {median_s(lambda: python.call(code), args.python_calls) * 1e3:.1f} ms")
    with BFCLBackendSuite() as bfcl:
        bfcl.reset(seed=0, options={"involved_classes": ["MathAPI", "GorillaFileSystem"]})
        add, pwd = ToolCall(name="add", parameters={"a": 1, "b": 2}), ToolCall(name="pwd", parameters={})
        bfcl.call(add)
        math_us = median_s(lambda: bfcl.call(add), args.calls) * 1e6
        files_us = median_s(lambda: bfcl.call(pwd), args.calls) * 1e6
        print(f"BFCL MathAPI.add (worker process): {math_us:.1f} µs; GorillaFileSystem.pwd (thread): {files_us:.1f} µs")


if __name__ == "__main__":
    main()
