"""augkit's thread policy: OpenMP workers that sleep when idle instead of spinning.

torch's OpenMP threads spin-wait between parallel regions by default. On a machine where
another process is busy, a spinning worker steals the core its peer needs, and a training step
gets many times slower (measured here: 12-14x with one busy process on 2 cores). augkit sets
``OMP_WAIT_POLICY=PASSIVE`` when it is imported before torch, unless the variable is already
set (yours wins). ``docs/performance.md`` has the measurements, idle and under load; set
``OMP_WAIT_POLICY=ACTIVE`` (or import torch first) to keep torch's default.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def apply() -> bool:
    """Set the policy if torch is not loaded yet and the user has not chosen; True if set."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True
