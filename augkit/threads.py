"""augkit's thread policy: OpenMP workers that sleep when idle, and one core left free.

torch runs one OpenMP thread per core and its workers spin-wait between parallel regions. When
another process is busy, a worker loses its core and every parallel region waits for it, so a
training step gets several times slower. augkit's policy, measured in ``docs/performance.md``:

* ``OMP_WAIT_POLICY=PASSIVE``, set by `apply` before torch loads unless the variable is set
  (yours wins; set ``OMP_WAIT_POLICY=ACTIVE`` to keep torch's). Importing augkit sets nothing:
  the ``augkit`` command calls `apply` before a command loads torch; in your own training loop,
  call it before the first ``import torch`` (or set the variable yourself);
* the trainer's ``threads = 0`` (the default) runs `default_threads` threads: ``OMP_NUM_THREADS``
  when set, else one fewer than the cores (at least 1), so one busy process does not stall it.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a positive integer, else cores − 1 (at least 1)."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def apply() -> bool:
    """Set the policy if torch is not loaded yet and the user has not chosen; True if set."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True
