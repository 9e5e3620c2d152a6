"""Case: training beyond one process, and on a shared machine.

* Thread policy: training steps of the reference model in a fresh process, idle and with
  one other CPU-bound process, under torch's default OpenMP settings, under augkit's policy
  (``OMP_WAIT_POLICY=PASSIVE``, `augkit.threads`) and with one thread.
* Processes: 1 and 2 gloo processes at the same global batch: items/s, the share of a step
  spent gathering the candidates, peak memory per process.

The trainer at growing catalog sizes is the scale case (`benchmarks.scale`).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import attrs

from benchmarks.profiles import Profile
from benchmarks.report import CaseResult, Target, ratio, seconds

LOADED_TARGET = 2.0
"""augkit's default under one busy process: at most this many times its idle step."""
IDLE_COST_TARGET = 1.10
"""augkit's default, idle: at most this many times torch's default idle step."""


@attrs.frozen
class Sizes:
    policy_steps: int
    policy_repeats: int
    rank_steps: int


SIZES = {
    "tiny": Sizes(policy_steps=5, policy_repeats=1, rank_steps=3),
    "quick": Sizes(policy_steps=60, policy_repeats=3, rank_steps=30),
    "full": Sizes(policy_steps=200, policy_repeats=5, rank_steps=60),
}

POLICIES = {
    "torch default": ("torch-first", {}),
    "augkit default (PASSIVE, cores - 1 threads)": ("augkit-first", {}),
    "PASSIVE, every core": ("augkit-first", {"OMP_NUM_THREADS": str(os.cpu_count() or 1)}),
}


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    return {**env, **extra}


@contextlib.contextmanager
def _busy(on: bool) -> Iterator[None]:
    """One CPU-bound process while inside, when `on`."""
    if not on:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def _policy_step(policy: str, busy: bool, steps: int, batch: int = 512) -> float:
    order, extra = POLICIES[policy]
    with _busy(busy):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.step_worker", str(steps), str(batch), order],
            capture_output=True, text=True, check=True, env=_clean_env(extra),
        )
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"] / steps


def _ranks_worker(rank: int, world: int, steps: int, batch: int) -> dict[str, float]:
    import torch

    from augkit import distributed
    from augkit.train import config_from_dict, train
    from benchmarks.memory import _status_bytes

    torch.set_num_threads(1)
    config = config_from_dict({
        "progress": False, "output_dir": os.environ["AUGKIT_BENCH_DIR"], "name": f"w{world}",
        "checkpoint_every": 0, "main": {"batch_size": batch}, "ssl": {"batch_size": batch},
    })
    result = train(config, on_existing="overwrite", max_steps=steps)
    local = torch.randn(batch // world, 64)
    started = time.perf_counter()
    for _ in range(steps):
        for _ in range(4):  # a step gathers the items, their ids and log q, and one SSL view
            distributed.all_gather(local)
    gather = (time.perf_counter() - started) / steps
    return {"step_s": result.seconds / steps, "gather_s": gather, "peak_rss": _status_bytes("VmHWM")}


def _processes(steps: int, batch: int = 1024) -> dict[int, dict[str, float]]:
    import tempfile

    from augkit.testing.distributed import run_ranks

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AUGKIT_BENCH_DIR"] = tmp
        return {world: run_ranks(_ranks_worker, world, steps, batch)[0] for world in (1, 2)}


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    sizes = SIZES[profile.name]
    samples: dict[tuple[str, bool], list[float]] = {(name, busy): [] for name in POLICIES for busy in (False, True)}
    for repeat in range(sizes.policy_repeats):  # interleaved, so drifts of the machine hit every policy
        for name, busy in samples:
            log(f"distributed: {name}, {'one busy process' if busy else 'idle'} ({repeat + 1}/{sizes.policy_repeats})")
            samples[name, busy].append(_policy_step(name, busy, sizes.policy_steps))
    policy = {key: statistics.median(values) for key, values in samples.items()}
    log("distributed: 1 and 2 gloo processes")
    ranks = _processes(sizes.rank_steps)
    chosen = "augkit default (PASSIVE, cores - 1 threads)"
    loaded = policy[chosen, True] / policy[chosen, False]
    idle_cost = policy[chosen, False] / policy["torch default", False]
    rows = [
        (f"policy: {name}", seconds(policy[name, False]), seconds(policy[name, True]), ratio(policy[name, True] / policy[name, False]), "")
        for name in POLICIES
    ]
    for world, r in ranks.items():
        rows.append((
            f"{world} gloo process{'es' if world > 1 else ''}, global batch 1024",
            seconds(r["step_s"]), f"{1024 / r['step_s']:.0f} items/s", f"gather {r['gather_s'] / r['step_s']:.1%} of a step",
            f"{r['peak_rss'] / 2**20:.0f} MiB per process",
        ))
    return CaseResult(
        name="distributed",
        title="Distribution and shared machines: thread policy, 1 vs 2 processes",
        headers=("configuration", "step (idle)", "step (loaded) / rate", "ratio / share", "memory"),
        rows=rows,
        records=[
            {"policy": {f"{n} | {'busy' if b else 'idle'}": s for (n, b), s in samples.items()}},
            {"processes": ranks},
        ],
        targets=[
            Target(
                name="shared_machine_loaded", goal=f"augkit's default under one busy process <= {LOADED_TARGET:g}x its idle step",
                value=loaded, threshold=LOADED_TARGET, higher_is_better=False, measured_at=f"{sizes.policy_steps} steps",
                indicative=profile.name != "full",
            ),
            Target(
                name="shared_machine_idle_cost", goal=f"augkit's default idle <= {IDLE_COST_TARGET:g}x torch's default idle step",
                value=idle_cost, threshold=IDLE_COST_TARGET, higher_is_better=False, measured_at=f"{sizes.policy_steps} steps",
                indicative=profile.name != "full",
            ),
        ],
        notes=[
            "policy rows: the reference model (synthetic data, batch 512, SSL on) in a fresh process; loaded = "
            "with one `while True: pass` process running; ratio = loaded / idle; the median of "
            f"{sizes.policy_repeats} interleaved runs each",
            "processes: torch threads 1 per process; the step is the trainer's (train(max_steps=...)); gather = four "
            "all-gathers of a [batch/world, 64] tensor per step, timed apart",
        ],
    )
