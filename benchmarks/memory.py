"""Peak resident memory of one call, from the kernel's high-water mark (Linux).

Why not tracemalloc: it sees only allocations made through Python's allocator, and torch
allocates tensor storage in C (``posix_memalign``), so a 4 GB score matrix is invisible to
it. Why not torch's allocator statistics: on CPU torch keeps none (``torch.cuda`` memory
stats exist only for CUDA). So `peak_rss` resets the process's resident-set high-water mark
(``echo 5 > /proc/self/clear_refs``), runs the call, and reports ``VmHWM`` minus the
resident size before the call: the most memory the call touched at once, whatever allocated
it. Memory that the C allocator kept from earlier frees and reuses is not counted again, so
small allocations may read low; large tensors (over glibc's 32 MiB mmap threshold) are
mapped and returned on each call and always count.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"
METHOD = "Linux VmHWM after resetting it via /proc/self/clear_refs (peak RSS above the start)"


def _status_bytes(key: str) -> int:
    with open(STATUS, encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{STATUS} has no {key}")


def available() -> bool:
    """Whether this OS lets `peak_rss` reset and read the high-water mark."""
    try:
        with open(CLEAR_REFS, "w", encoding="ascii") as handle:
            handle.write("5")
        _status_bytes("VmHWM")
    except OSError:
        return False
    return True


def peak_rss(fn: Callable[[], T]) -> tuple[T, int | None]:
    """``fn()`` and the bytes of resident memory it added at its peak (None where
    `available` is False)."""
    if not available():
        return fn(), None
    gc.collect()
    before = _status_bytes("VmRSS")
    with open(CLEAR_REFS, "w", encoding="ascii") as handle:
        handle.write("5")
    result = fn()
    return result, max(0, _status_bytes("VmHWM") - before)
