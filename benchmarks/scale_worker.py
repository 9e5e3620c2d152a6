"""The processes of the scale case (`benchmarks.scale`): the trainer's step at one catalog size
for each candidate, or one epoch through the trainer.

``python -m benchmarks.scale_worker steps SPEC`` (SPEC: JSON with ``items``, ``users``,
``events_per_user``, ``batch``, ``steps``, ``slow_steps``, ``candidates``, names of
`CANDIDATES`, and ``profiled``, those cProfiled over ``evidence_steps`` more steps) builds the
synthetic data of that size once, as the trainer loads it, and prepares the SSL augmentation
once (its mutual information; each candidate's run then checks it against the corpus instead of
computing it again). Then, one candidate after the other, it builds the candidate's ready step,
takes one warm-up step (which allocates the optimizer state), times ``steps`` steps
(``slow_steps`` when the warm-up took over `SLOW_STEP_S`) and releases the candidate before the
next. It prints one JSON line per candidate as soon as it is done (`measure`), so that the
lines of the candidates measured before a crash or an out-of-memory kill still reach the parent.

``python -m benchmarks.scale_worker epoch SPEC`` (SPEC: ``items``, ``users``,
``events_per_user``, ``batch``, ``tables``, ``validation_users``, ``output_dir``) trains one
epoch with `augkit.train.train` and prints one JSON line (`epoch`).

The thread policy is the trainer's: OMP_WAIT_POLICY comes from the parent's environment
(`benchmarks.scale` sets it as the ``augkit`` command does) and `augkit.train.loop.prepare`
sets the thread count of ``threads = 0``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import nn

from augkit.data.dataset import RecDataset
from augkit.errors import ConfigError
from augkit.train import TrainConfig, build_run, config_from_dict, train
from augkit.train.loop import joined, prepare
from augkit.train.run import build_augmentation, load_dataset
from benchmarks.memory import _status_bytes, peak_rss
from benchmarks.timing import profile_top, time_side_by_side
from benchmarks.training import Step

SLOW_STEP_S = 1.0
"""A candidate whose warm-up step takes longer is timed for ``slow_steps`` steps only."""
WARM_UP_DATA = {"items": 1_000, "users": 200, "events_per_user": 10}
"""The small data every candidate takes two steps on before anything is measured (`warm_up`)."""


@attrs.frozen
class Candidate:
    """One way of training at scale: `build` makes a ready step (`benchmarks.training.Step`:
    the trainer's run, optimizer and step) from the size's config and data, inside
    `context(config)` (what the run needs held while it steps, such as a process group),
    which ends before the next candidate. `requires`: the modules it imports; where one is
    missing the candidate reads "not installed"."""

    name: str
    build: Callable[[TrainConfig, RecDataset], Step]
    requires: tuple[str, ...] = ()
    context: Callable[[TrainConfig], contextlib.AbstractContextManager[Any]] = lambda config: contextlib.nullcontext()


def trainer_with(tables: str) -> Callable[[TrainConfig, RecDataset], Step]:
    """The build of the trainer's own run (`augkit.train.loop.prepare` of `build_run`) with
    ``optim.tables = tables``."""

    def build(config: TrainConfig, dataset: RecDataset) -> Step:
        config = attrs.evolve(config, optim=attrs.evolve(config.optim, tables=tables))
        return Step.build(prepare(config, build_run(config, dataset)))

    return build


def with_torchrec(config: TrainConfig) -> TrainConfig:
    """`config` on the TorchRec backend: its tables in FBGEMM's fused row-wise Adagrad (the
    kernel FBGEMM has on CPU), the rest dense Adam."""
    return attrs.evolve(
        config,
        model=attrs.evolve(config.model, backend="torchrec"),
        optim=attrs.evolve(config.optim, tables="rowwise_adagrad"),
    )


def torchrec_trainer(config: TrainConfig, dataset: RecDataset) -> Step:
    """The trainer's own run on ``model.backend = "torchrec"`` (`with_torchrec`), sharded in a
    process group of this one process (held by the candidate's context, `torchrec_group`)."""
    config = with_torchrec(config)
    return Step.build(prepare(config, build_run(config, dataset)))


def torchrec_group(config: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    """The one-process group TorchRec's sharding needs (`augkit.train.loop.joined`)."""
    return joined(with_torchrec(config))


CANDIDATES = {
    candidate.name: candidate
    for candidate in (
        Candidate("sparse_adam", trainer_with("sparse_adam")),
        Candidate("rowwise_adagrad", trainer_with("rowwise_adagrad")),
        Candidate("torchrec", torchrec_trainer, requires=("torchrec", "fbgemm_gpu"), context=torchrec_group),
        Candidate("adam", trainer_with("adam")),
    )
}
"""The candidates in the order they run at each size (dense Adam, the largest, last)."""


def base_config(spec: dict[str, Any], **settings: Any) -> TrainConfig:
    """The trainer's defaults (SSL on, its default augmentation) on CPU, with the synthetic
    data and main batch of `spec`, and `settings` on top."""
    synthetic = {"items": spec["items"], "users": spec["users"], "events_per_user": spec["events_per_user"]}
    return config_from_dict(
        {
            "progress": False,
            "device": "cpu",
            "data": {"synthetic": synthetic},
            "main": {"batch_size": spec["batch"]},
            **settings,
        }
    )


def tensor_bytes(state: Any) -> int:
    """Bytes of every tensor in a nested dict / list / tuple (an optimizer's state dict)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(tensor_bytes(value) for value in state.values())
    if isinstance(state, list | tuple):
        return sum(tensor_bytes(value) for value in state)
    return 0


def resident_sizes(step: Step) -> dict[str, int]:
    """Bytes of the id tables (every ``nn.Embedding`` weight), of all parameters, and of the
    optimizer's state."""
    modules = [m for m in (step.parts.model, step.parts.main_loss, step.parts.ssl_loss) if m is not None]
    parameters = {id(p): p for m in modules for p in m.parameters()}
    tables = {id(e.weight): e.weight for m in modules for e in m.modules() if isinstance(e, nn.Embedding)}
    return {
        "table_bytes": sum(tensor_bytes(t) for t in tables.values()),
        "parameter_bytes": sum(tensor_bytes(p) for p in parameters.values()),
        "optimizer_state_bytes": tensor_bytes(step.optimizer.state_dict()),
    }


def measure(
    candidate: Candidate, config: TrainConfig, dataset: RecDataset, spec: dict[str, Any]
) -> dict[str, Any]:
    """Build, warm up and time `candidate`, under `peak_rss`: the peak is the resident memory
    the candidate adds above the data (its run's split and history, tables, gradients, optimizer
    state, a batch's activations). A `ConfigError` of the build (the trainer's memory check)
    or a `MemoryError` skips the candidate with that reason."""
    record: dict[str, Any] = {"candidate": candidate.name, "items": spec["items"]}

    def run() -> dict[str, Any]:
        started = time.perf_counter()
        step = candidate.build(config, dataset)
        built = time.perf_counter()
        step()
        warm = time.perf_counter() - built
        count = spec["steps"] if warm <= SLOW_STEP_S else spec["slow_steps"]
        timing = time_side_by_side({candidate.name: step}, repeats=count, warmup=0, min_sample_s=0)[
            candidate.name
        ]
        profiled = candidate.name in spec["profiled"]
        evidence = profile_top(lambda: [step() for _ in range(spec["evidence_steps"])]) if profiled else []
        return {
            "build_s": built - started,
            "warmup_step_s": warm,
            "timing": timing.as_dict(),
            "train_events": len(step.parts.split.train),
            "threads": torch.get_num_threads(),
            "evidence": evidence,
            **resident_sizes(step),
        }

    try:
        with candidate.context(config):
            measured, peak = peak_rss(run)
    except (ConfigError, MemoryError) as error:
        return {**record, "status": "skipped", "reason": f"{type(error).__name__}: {error}"}
    finally:
        gc.collect()
    return {**record, "status": "measured", "peak_bytes": peak, **measured}


def warm_up(spec: dict[str, Any]) -> None:
    """Two steps of every candidate of `spec` on `WARM_UP_DATA`: the modules, plugins and code
    paths their runs load are then loaded, and not charged to the first measured candidate's
    time and memory."""
    config = base_config({**spec, **WARM_UP_DATA})
    dataset = load_dataset(config)
    for name in spec["candidates"]:
        candidate = CANDIDATES[name]
        with candidate.context(config):
            step = candidate.build(config, dataset)
            step()
            step()
            del step
    gc.collect()


def steps(spec: dict[str, Any]) -> None:
    """Print the data's record, then one `measure` line per candidate of `spec` (after
    `warm_up`)."""
    warm_up(spec)
    config = base_config(spec)
    started = time.perf_counter()
    dataset = load_dataset(config)
    data_s = time.perf_counter() - started
    resolved, _ = build_augmentation(config, dataset.items)
    config = attrs.evolve(config, ssl=attrs.evolve(config.ssl, augmentation=resolved))
    _emit(
        {
            "data": {
                "items": spec["items"],
                "interactions": len(dataset.interactions),
                "data_s": data_s,
                "augmentation_s": time.perf_counter() - started - data_s,
                "resident_bytes": _status_bytes("VmRSS"),
            }
        }
    )
    for name in spec["candidates"]:
        _emit(measure(CANDIDATES[name], config, dataset, spec))


def epoch(spec: dict[str, Any]) -> None:
    """One epoch of the trainer (`augkit.train.train`, validation on ``validation_users``
    seeded users) with ``optim.tables`` of `spec`; prints its seconds and peak memory. The
    checkpoint is written at the epoch's end only (``checkpoint_every = 0``), outside the
    loop's seconds of steps."""
    config = base_config(
        spec,
        name="scale-epoch",
        output_dir=spec["output_dir"],
        epochs=1,
        checkpoint_every=0,
        optim={"tables": spec["tables"]},
        eval={"max_users": spec["validation_users"]},
    )
    result = train(config, on_existing="overwrite")
    best = result.best or {}
    _emit(
        {
            "items": spec["items"],
            "tables": spec["tables"],
            "batch": spec["batch"],
            "interactions": len(result.parts.dataset.interactions),
            "train_events": len(result.parts.split.train),
            "steps": result.steps,
            "training_seconds": result.seconds,
            **result.timing,
            "validation": {
                "monitor": best.get("monitor"),
                "score": best.get("score"),
                "users": best["metrics"]["all"]["n"] if best else 0,
            },
            "threads": torch.get_num_threads(),
            "peak_bytes": _status_bytes("VmHWM"),
        }
    )


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    {"steps": steps, "epoch": epoch}[sys.argv[1]](json.loads(sys.argv[2]))
