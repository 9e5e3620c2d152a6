"""Case 6: the trainer's step as the catalog grows, for each way of updating the id tables, and
one epoch at a million items through the trainer.

* Step: synthetic data (`augkit.data.synthetic.SyntheticConfig` sizes: the same users and
  clicks at every catalog size, so only the catalog grows), SSL on with the trainer's default
  augmentation, and the trainer's step (`benchmarks.training.Step`: `build_run`, the optimizer
  of ``[optim]``, `train_step`, backward, step) for each candidate of
  `benchmarks.scale_worker.CANDIDATES` (``optim.tables`` = sparse_adam, rowwise_adagrad, adam,
  and the trainer on ``model.backend = "torchrec"`` where TorchRec is installed):
  median step time and peak memory per size, and how each grows (`benchmarks.scaling`).
* Epoch: one epoch of about 2e7 training events at 1e6 items, sparse path, SSL on, through
  `augkit.train.train` (the full profile only; it takes up to half an hour): the loop's own
  seconds of steps, with building the data and validating reported apart.

Each catalog size runs in a process of its own (`benchmarks.scale_worker`), for two reasons:
its peak memory is read from the kernel's high-water mark, which a fresh process starts clean
of an earlier size's data and allocator pools, and a size that runs out of memory ends only its
own process. Within it, the candidates run one after the other, each released before the next,
and each one's peak is the memory it adds above the data (`benchmarks.memory.peak_rss`).
Both processes run with the trainer's thread policy (`augkit.threads`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import attrs

from augkit import threads
from benchmarks.profiles import TARGET_EPOCH, TARGET_SCALE_ITEMS, Profile, ScaleEpoch
from benchmarks.report import CaseResult, Series, Target, mebibytes, ratio, seconds
from benchmarks.scale_worker import CANDIDATES, Candidate

FLAT_TARGET = 1.3
"""A sparse candidate's step at the largest catalog: at most this many times its step at the smallest."""
FLAT_CANDIDATES = ("sparse_adam", "rowwise_adagrad")
EPOCH_TARGET_MINUTES = 30.0
EPOCH_TABLES = "sparse_adam"
"""``optim.tables`` of the epoch run: the sparse path."""
RELATIVE_TARGETS = (("torchrec", "rowwise_adagrad", 1.5, 1_000_000),)
"""(candidate, reference, factor, items): the candidate's step at most `factor` times the
reference's at `items` items (at the largest size both ran, where smaller: indicative); held
only where both candidates ran."""


def missing_modules(candidate: Candidate) -> list[str]:
    """The modules `candidate` requires that are not installed."""
    return [name for name in candidate.requires if importlib.util.find_spec(name) is None]


def trainer_environment() -> dict[str, str]:
    """This process's environment with the wait policy the ``augkit`` command sets before
    torch loads (`augkit.threads.WAIT_POLICY`, unless OMP_WAIT_POLICY is set)."""
    return {"OMP_WAIT_POLICY": threads.WAIT_POLICY, **os.environ}


def run_worker(mode: str, spec: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The JSON lines `benchmarks.scale_worker` printed, and why it ended early (None when it
    finished). A worker killed by a signal (the kernel's out-of-memory killer) keeps the lines
    it printed; one that fails with an error raises `RuntimeError` (its error is on stderr)."""
    command = [sys.executable, "-m", "benchmarks.scale_worker", mode, json.dumps(spec)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=trainer_environment(), check=False)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode > 0:
        raise RuntimeError(
            f"benchmarks.scale_worker {mode} {spec} failed (exit {done.returncode}; its error is above)"
        )
    ended = (
        None
        if done.returncode == 0
        else f"its process was killed by signal {-done.returncode} (out of memory?)"
    )
    return lines, ended


def _flat_target(name: str, measured: dict[int, dict[str, Any]]) -> Target:
    smallest, largest = min(measured), max(measured)
    slow = measured[largest]
    return Target(
        name=f"scale_step_flat_{name}",
        goal=f"{name}: the step at {TARGET_SCALE_ITEMS[1]:,} items <= {FLAT_TARGET:g}x the step at "
        f"{TARGET_SCALE_ITEMS[0]:,} items",
        value=slow["timing"]["median_s"] / measured[smallest]["timing"]["median_s"],
        threshold=FLAT_TARGET,
        higher_is_better=False,
        measured_at=f"{largest:,} / {smallest:,} items",
        indicative=(smallest, largest) != TARGET_SCALE_ITEMS,
    ).with_evidence(lambda: slow["evidence"])


def relative_targets(by_candidate: dict[str, dict[int, dict[str, Any]]]) -> list[Target]:
    """The `RELATIVE_TARGETS` whose candidate and reference both ran at a common size."""
    targets = []
    for name, reference, factor, items in RELATIVE_TARGETS:
        common = set(by_candidate.get(name, {})) & set(by_candidate.get(reference, {}))
        at = [n for n in common if n <= items] or sorted(common)[:1]
        if not at:
            continue
        size = max(at)
        step = {who: by_candidate[who][size]["timing"]["median_s"] for who in (name, reference)}
        targets.append(
            Target(
                name=f"scale_{name}_vs_{reference}",
                goal=f"{name}'s step <= {factor:g}x {reference}'s at {items:,} items",
                value=step[name] / step[reference],
                threshold=factor,
                higher_is_better=False,
                measured_at=f"{size:,} items",
                indicative=size != items,
            )
        )
    return targets


def _epoch_target(result: dict[str, Any], epoch: ScaleEpoch) -> Target:
    return Target(
        name="scale_epoch",
        goal=f"one epoch of ~2e7 training events at {TARGET_EPOCH.items:,} items ({EPOCH_TABLES}, SSL on) "
        f"<= {EPOCH_TARGET_MINUTES:g} minutes of training steps",
        value=result["training_seconds"] / 60,
        threshold=EPOCH_TARGET_MINUTES,
        higher_is_better=False,
        measured_at=f"{result['train_events']:,} training events at {epoch.items:,} items, batch {epoch.batch}",
        indicative=epoch != TARGET_EPOCH,
    )


def _row(items: int, name: str, record: dict[str, Any], smallest: dict[str, Any] | None) -> tuple[str, ...]:
    if record["status"] != "measured":
        return (f"{items:,}", name, record["status"], "", "", "", "", "")
    median = record["timing"]["median_s"]
    return (
        f"{items:,}",
        name,
        seconds(median),
        str(record["timing"]["repeats"]),
        ratio(median / smallest["timing"]["median_s"]) if smallest else "",
        mebibytes(record["peak_bytes"]) if record["peak_bytes"] is not None else "n/a",
        mebibytes(record["table_bytes"] + record["optimizer_state_bytes"]),
        f"{record['build_s']:.1f} s",
    )


def _epoch(epoch: ScaleEpoch, log: Callable[[str], None]) -> dict[str, Any]:
    log(
        f"scale: one epoch at {epoch.items:,} items, {epoch.users:,} users x {epoch.events_per_user} clicks, "
        f"batch {epoch.batch}, optim.tables = {EPOCH_TABLES}"
    )
    with tempfile.TemporaryDirectory(prefix="augkit-scale-") as folder:
        spec = {**attrs.asdict(epoch), "tables": EPOCH_TABLES, "output_dir": folder}
        lines, ended = run_worker("epoch", spec)
    if ended is not None:
        log(f"scale: the epoch did not finish: {ended}")
        return {"status": "killed", "reason": ended}
    return {"status": "measured", **lines[-1]}


def _measure_size(
    items: int, profile: Profile, unavailable: dict[str, list[str]], log: Callable[[str], None]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The data record of the size's process and one record per candidate of `CANDIDATES`
    (``"status"``: measured, skipped, killed or not installed, with a ``"reason"``)."""
    sizes = profile.scale
    runnable = [name for name in CANDIDATES if name not in unavailable]
    log(f"scale: {items:,} items, {', '.join(runnable)}")
    spec = {
        "items": items,
        "users": sizes.users,
        "events_per_user": sizes.events_per_user,
        "batch": sizes.batch,
        "steps": sizes.steps,
        "slow_steps": sizes.slow_steps,
        "candidates": runnable,
        "profiled": list(FLAT_CANDIDATES) if items == max(sizes.items) else [],
        "evidence_steps": sizes.evidence_steps,
    }
    lines, ended = run_worker("steps", spec) if runnable else ([], None)
    data = next((line["data"] for line in lines if "data" in line), None)
    done = {line["candidate"]: line for line in lines if "candidate" in line}
    records = []
    for name in CANDIDATES:
        if name in unavailable:
            record = {"status": "not installed", "reason": f"no module {', '.join(unavailable[name])}"}
        else:
            record = done.get(name) or {"status": "killed", "reason": ended}
        records.append({"candidate": name, "items": items, **record})
    return data, records


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    """Measure the scale case at the sizes of `profile.scale`."""
    sizes = profile.scale
    unavailable = {name: missing for name, c in CANDIDATES.items() if (missing := missing_modules(c))}
    for name, missing in unavailable.items():
        log(f"scale: {name} not installed (no module {', '.join(missing)})")
    by_candidate: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in CANDIDATES}
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    rows: list[tuple[str, ...]] = []
    for items in sizes.items:
        data, measured_here = _measure_size(items, profile, unavailable, log)
        if data is not None:
            records.append({"data": data})
            notes.append(
                f"data at {items:,} items: {data['interactions']:,} clicks, built in {data['data_s']:.1f} s, "
                f"SSL augmentation prepared (CFM's mutual information) in {data['augmentation_s']:.1f} s"
            )
        for record in measured_here:
            name = record["candidate"]
            if record["status"] in ("skipped", "killed"):
                log(f"scale: {name} at {items:,} items {record['status']}: {record['reason']}")
                notes.append(f"{name} at {items:,} items {record['status']}: {record['reason']}")
            if record["status"] == "measured":
                by_candidate[name][items] = record
                if record["timing"]["repeats"] < sizes.steps:
                    notes.append(
                        f"{name} at {items:,} items: {record['timing']['repeats']} steps timed, not {sizes.steps} "
                        f"(its warm-up step took {record['warmup_step_s']:.1f} s)"
                    )
            records.append(record)
            measured = by_candidate[name]
            rows.append(_row(items, name, record, measured[min(measured)] if measured else None))
    targets = []
    for name in FLAT_CANDIDATES:
        measured = by_candidate.get(name, {})
        if len(measured) >= 2:
            targets.append(_flat_target(name, measured))
        else:
            notes.append(
                f"target scale_step_flat_{name} not held: {name} ran at {len(measured)} catalog size(s)"
            )
    targets += relative_targets(by_candidate)
    if sizes.epoch is not None:
        epoch = _epoch(sizes.epoch, log)
        records.append({"epoch": epoch})
        if epoch["status"] == "measured":
            targets.append(_epoch_target(epoch, sizes.epoch))
            rows.append(_epoch_row(epoch))
            notes.append(_epoch_note(epoch))
        else:
            notes.append(f"epoch at {sizes.epoch.items:,} items: not measured, {epoch['reason']}")
    threads_used = sorted({r["threads"] for r in records if "threads" in r})
    notes += [
        (
            f"step: the trainer's step (build_run, the optimizer of [optim], train_step, backward, step) at main "
            f"batch {sizes.batch}, SSL on (the trainer's defaults); synthetic data of {sizes.users:,} users x "
            f"{sizes.events_per_user} clicks at every catalog size; median of the timed steps after one warm-up step"
        ),
        (
            "peak memory: what a candidate adds above the built data at its peak (VmHWM reset before its build, "
            "minus VmRSS): its split and history, the tables, their gradients, the optimizer state and a batch; "
            "tables + state: bytes of the nn.Embedding weights and of the optimizer's state dict"
        ),
        (
            f"one process per catalog size, candidates one after the other; torch threads {threads_used} "
            "(the trainer's policy, augkit.threads)"
        ),
    ]
    series = []
    for name, measured in by_candidate.items():
        if measured:
            series.append(
                Series.of(
                    f"scale step, {name}", "items", {n: r["timing"]["median_s"] for n, r in measured.items()}
                )
            )
            peaks = {n: float(r["peak_bytes"]) for n, r in measured.items() if r["peak_bytes"] is not None}
            if peaks:
                series.append(Series.of(f"scale peak memory, {name}", "items", peaks, unit="bytes"))
    return CaseResult(
        name="scale",
        title="6. Scale: the trainer's step as the catalog grows, and one epoch",
        headers=(
            "items",
            "candidate",
            "step",
            "steps",
            "vs smallest",
            "peak memory",
            "tables + state",
            "build",
        ),
        rows=rows,
        records=records,
        targets=targets,
        notes=notes,
        series=series,
    )


def _epoch_row(epoch: dict[str, Any]) -> tuple[str, ...]:
    return (
        f"{epoch['items']:,}, one epoch",
        f"{epoch['tables']}, trainer",
        seconds(epoch["training_seconds"] / epoch["steps"]),
        f"{epoch['steps']:,}",
        "",
        mebibytes(epoch["peak_bytes"]),
        "",
        f"{epoch['data_seconds']:.1f} s",
    )


def _epoch_note(epoch: dict[str, Any]) -> str:
    validation = epoch["validation"]
    score = "n/a" if validation["score"] is None else f"{validation['score']:.4f}"
    return (
        f"epoch: {epoch['train_events']:,} training events of {epoch['interactions']:,} clicks at "
        f"{epoch['items']:,} items, main batch {epoch['batch']}, optim.tables = {epoch['tables']}: "
        f"{epoch['steps']:,} steps in {epoch['training_seconds']:.0f} s ({epoch['training_seconds'] / 60:.1f} min, "
        f"augkit.train's own count of the steps); building the run {epoch['data_seconds']:.0f} s and validating "
        f"{epoch['validation_seconds']:.0f} s apart ({validation['users']:,} seeded users, {validation['monitor']} "
        f"{score}); process peak {mebibytes(epoch['peak_bytes'])}"
    )
