"""``python -m benchmarks [--tiny | --quick] [--output PATH] [--only CASE ...] [--threads N]``."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from collections.abc import Sequence

from augkit import threads

threads.apply()  # before torch loads: the trainer's OpenMP wait policy (augkit.threads), as `augkit` sets it

import torch

from benchmarks import (
    ann,
    augmentation,
    distributed,
    evaluation,
    mutual_information,
    scale,
    scaling,
    training,
)
from benchmarks.machine import load_average, machine_info
from benchmarks.profiles import PROFILES
from benchmarks.report import CaseResult, format_case, format_table, write_json

CASES = {
    "augmentation": augmentation.run,
    "mutual_information": mutual_information.run,
    "training": training.run,
    "evaluation": evaluation.run,
    "ann": ann.run,
    "distributed": distributed.run,
    "scale": scale.run,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Speed and memory of augkit against its references, measured side by side.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--tiny", action="store_const", dest="profile", const="tiny", help="seconds: the smoke test's profile"
    )
    size.add_argument("--quick", action="store_const", dest="profile", const="quick", help="a few minutes")
    parser.set_defaults(profile="full")
    parser.add_argument(
        "--output", default=None, help="JSON file to write (default: .benchmarks/<profile>.json)"
    )
    parser.add_argument("--only", nargs="+", choices=list(CASES), help="run only these cases")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: the trainer's, augkit.threads.default_threads)",
    )
    return parser


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(cases: Sequence[CaseResult]) -> str:
    """One row per target: case, target, value, threshold, met, indicative."""
    rows = [
        (
            case.name,
            t.name,
            f"{t.value:.3g}",
            f"{t.threshold:.3g}",
            "yes" if t.met else "NO",
            t.measured_at + (" (indicative)" if t.indicative else ""),
        )
        for case in cases
        for t in case.targets
    ]
    return format_table(("case", "target", "measured", "threshold", "met", "at"), rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    profile = PROFILES[args.profile]
    output = args.output or f".benchmarks/{profile.name}.json"
    torch.set_num_threads(args.threads if args.threads is not None else threads.default_threads())
    started, clock = datetime.datetime.now(datetime.UTC), time.perf_counter()
    machine = machine_info()
    results = []
    for name in args.only or CASES:
        results.append(CASES[name](profile, _log))
        print(format_case(results[-1]) + "\n", flush=True)
    results.append(scaling.run(results))
    print(format_case(results[-1]) + "\n")
    print("Targets\n=======\n" + summary(results))
    document = {
        "profile": profile.name,
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - clock,
        "machine": {**machine, "load_average_at_end": load_average()},
        "cases": {case.name: case.as_dict() for case in results},
        "targets": [{"case": case.name, **t.as_dict()} for case in results for t in case.targets],
    }
    write_json(output, document)
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
