"""Freed memory goes back to the OS between phases (glibc only)."""

from __future__ import annotations

import ctypes.util

import pytest
import torch

from agents.runtime.memory import configure_allocator, release_free_memory, status_kib


def rss_mib() -> float:
    return status_kib("VmRSS") / 1024


def test_status_kib_reads_the_field_and_names_a_missing_one() -> None:
    assert 0 < status_kib("VmRSS") <= status_kib("VmHWM")
    with pytest.raises(RuntimeError, match="no VmNothing in /proc/self/status"):
        status_kib("VmNothing")


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="needs a C library with malloc_trim (glibc)")
def test_freed_small_tensors_are_returned_after_release() -> None:
    configure_allocator()
    blocks = [torch.ones(256 * 1024 // 4) for _ in range(2000)]  # 500 MiB of 256 KiB tensors: heap, not mmap
    keep = torch.ones(1)  # allocated last, so the heap's top is not free and glibc's automatic trim cannot run
    held = rss_mib()
    del blocks
    before = rss_mib()
    release_free_memory()
    after = rss_mib()
    assert held - after > 300 and before - after > 0 and keep.sum() == 1
