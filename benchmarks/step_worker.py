"""A separate process that times training steps, for `benchmarks.distributed`.

``python -m benchmarks.step_worker STEPS BATCH torch-first|augkit-first`` prints one JSON line
``{"seconds", "threads", "omp_wait_policy"}``: `STEPS` steps (after 3 untimed) of the
reference model on the synthetic data (`benchmarks.training.Step`, the trainer's step).
``torch-first`` imports torch before augkit, so OpenMP starts with torch's own settings and
thread count; ``augkit-first`` applies augkit's
thread policy (`augkit.threads`: OMP_WAIT_POLICY=PASSIVE unless set, cores − 1 threads), as
``augkit train`` does.
"""

from __future__ import annotations

import sys


def main() -> None:
    steps, batch, order = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if order == "torch-first":
        import torch  # noqa: F401  (OpenMP initialises here, before augkit's policy)
    import json
    import os
    import time

    import torch

    from augkit.train import build_run, config_from_dict
    from benchmarks.training import Step

    if order == "augkit-first":
        from augkit.threads import default_threads

        torch.set_num_threads(default_threads())  # as the trainer's threads = 0 does
    parts = build_run(config_from_dict({"progress": False, "main": {"batch_size": batch}, "ssl": {"batch_size": batch}}))
    step = Step.build(parts)
    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}))


if __name__ == "__main__":
    main()
