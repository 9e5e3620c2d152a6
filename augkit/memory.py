"""Memory a device has free, and a size estimate checked against it before anything large is
allocated (`check_fits`), so that an absurd model size is a one-line `ConfigError` instead of
a process that grows until the machine swaps or the OOM killer ends it.

Free memory is, on the host (``cpu``): ``MemAvailable`` of ``/proc/meminfo`` on Linux, else the
available physical pages of ``os.sysconf``; on CUDA: ``torch.cuda.mem_get_info``. Where it is
unknown (another OS or device, ``meta``) the check is skipped with a debug log. A container's
cgroup limit is not read: the host's free memory is an upper bound on it.
"""

from __future__ import annotations

import logging
import os

import torch

from augkit.errors import ConfigError

log = logging.getLogger("augkit")

_UNITS = (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3))


def available_bytes(device: torch.device | str) -> int | None:
    """Bytes free for new tensors on `device`, or None where that is unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        return _host_available()
    return None


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf, or no such name on this OS
        return None


def format_bytes(count: float) -> str:
    """``12.0 GB``: decimal units, one decimal."""
    for unit, size in _UNITS:
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} bytes"


def check_fits(needed: int, device: torch.device | str, *, what: str, fix: str) -> None:
    """`ConfigError` ``"<what> need about <needed>, <free> are available on <device>; <fix>"``
    when `needed` bytes exceed what `device` has free; nothing when they fit or the free memory
    is unknown. `what` says what the bytes are for and which sizes drive them."""
    free = available_bytes(device)
    if free is None:
        log.debug("no estimate of the free memory on %s: %s (about %s) is not checked", device, what, format_bytes(needed))
        return
    if needed > free:
        raise ConfigError(
            f"{what} need about {format_bytes(needed)}, {format_bytes(free)} are available on {device}; {fix}"
        )
