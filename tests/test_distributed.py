"""Global in-batch negatives across ranks: 2 gloo processes give one process's loss and
gradients on the concatenated batch (float64, 1e-9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from augkit import distributed
from augkit.testing.distributed import run_ranks
from augkit_losses import BatchSoftmaxLoss, InfoNCELoss, SpreadOutLoss

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")


class Pair(nn.Module):
    """Two linear towers, one forward (as DDP wants)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.query = nn.Linear(5, 4, dtype=torch.float64)
        self.item = nn.Linear(5, 4, dtype=torch.float64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))

    def forward(self, xq: torch.Tensor, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query(xq), self.item(xi)


def global_batch(n: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "xq": torch.randn(n, 5, generator=generator, dtype=torch.float64),
        "xi": torch.randn(n, 5, generator=generator, dtype=torch.float64),
        # item 2 and item 0 repeat across the two halves: accidental hits across ranks
        "ids": torch.tensor([0, 1, 2, 3, 2, 5, 0, 7, 8, 2][:n]),
        "log_q": -torch.rand(n, generator=generator, dtype=torch.float64) * 3,
    }


def loss_of(kind: str, model: nn.Module, batch: dict[str, torch.Tensor], sizes=None, gather=False) -> torch.Tensor:
    q, i = model(batch["xq"], batch["xi"])
    if kind == "batch_softmax":
        return BatchSoftmaxLoss(gather=gather)(q, i, item_ids=batch["ids"], log_q=batch["log_q"], sizes=sizes)
    if kind == "info_nce":
        return InfoNCELoss(symmetric=True, gather=gather)(q, i, item_ids=batch["ids"], sizes=sizes)
    # + 0 * q: the query tower takes part (with zero gradients), as DDP wants of every parameter
    return SpreadOutLoss(gather=gather)(i, item_ids=batch["ids"], sizes=sizes) + 0.0 * q.sum()


def single(kind: str, n: int) -> tuple[float, dict[str, torch.Tensor]]:
    model = Pair()
    loss = loss_of(kind, model, global_batch(n))
    loss.backward()
    return float(loss.detach()), {name: p.grad.clone() for name, p in model.named_parameters()}


KINDS = ("batch_softmax", "info_nce", "spread_out")


def ranked(rank: int, world: int, sizes: list[int]) -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    batch = global_batch(sum(sizes))
    start = sum(sizes[:rank])
    local = {key: value[start : start + sizes[rank]] for key, value in batch.items()}
    out = {}
    for kind in KINDS:
        model = nn.parallel.DistributedDataParallel(Pair())
        loss = loss_of(kind, model, local, sizes=sizes, gather=True)
        loss.backward()
        out[kind] = float(loss.detach()), {name.removeprefix("module."): p.grad.clone() for name, p in model.named_parameters()}
    return out


@pytest.mark.parametrize("sizes", [[4, 4], [5, 3]], ids=["equal", "unequal"])
def test_two_ranks_with_gather_equal_one_process_on_the_concatenated_batch(sizes):
    results = run_ranks(ranked, 2, sizes)
    for kind in KINDS:
        expected_loss, expected_grads = single(kind, sum(sizes))
        # each rank's loss is its share of the global value times the world size
        assert sum(r[kind][0] for r in results) / 2 == pytest.approx(expected_loss, abs=1e-9), kind
        for rank_result in results:  # after DDP's all-reduce every rank holds the same gradients
            for name, grad in expected_grads.items():
                torch.testing.assert_close(rank_result[kind][1][name], grad, rtol=0, atol=1e-9, msg=f"{kind} {name}")


def ungathered(rank: int, world: int) -> float:
    batch = global_batch(8)
    local = {key: value[rank * 4 : rank * 4 + 4] for key, value in batch.items()}
    with torch.no_grad():
        q, i = Pair()(local["xq"], local["xi"])
        return float(BatchSoftmaxLoss()(q, i, item_ids=local["ids"]))


def test_without_gather_each_rank_keeps_its_local_negatives():
    results = run_ranks(ungathered, 2)
    batch = global_batch(8)
    with torch.no_grad():
        q, i = Pair()(batch["xq"][:4], batch["xi"][:4])
        expected = float(BatchSoftmaxLoss()(q, i, item_ids=batch["ids"][:4]))
    assert results[0] == pytest.approx(expected, abs=1e-12)


def test_helpers_without_a_process_group():
    x = torch.arange(6.0).reshape(3, 2)
    assert distributed.rank() == 0 and distributed.world_size() == 1 and not distributed.is_distributed()
    assert distributed.all_gather(x) is x and distributed.offset(None, 3) == 0
    rows, sizes = distributed.shard(torch.arange(5))
    assert rows.tolist() == [0, 1, 2, 3, 4] and sizes == [5]
    assert float(distributed.global_mean(torch.tensor([1.0, 3.0]))) == 2.0


def shards(rank: int, world: int) -> tuple[list[int], list[int], list[float]]:
    rows, sizes = distributed.shard(torch.arange(7))
    gathered = distributed.all_gather(rows.double().unsqueeze(1), sizes)
    return rows.tolist(), sizes, gathered.squeeze(1).tolist()


def test_shard_and_gather_of_unequal_parts_restore_the_order():
    results = run_ranks(shards, 2)
    assert [r[0] for r in results] == [[0, 1, 2, 3], [4, 5, 6]]
    assert all(r[1] == [4, 3] and r[2] == [0, 1, 2, 3, 4, 5, 6] for r in results)


def tiny_config(output_dir: str, name: str, logq: str) -> object:
    from augkit.train import config_from_dict

    return config_from_dict({
        "output_dir": output_dir, "name": name, "epochs": 1, "progress": False, "checkpoint_every": 0,
        "main": {"batch_size": 256, "logq": logq}, "ssl": {"batch_size": 64},
        "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
    })


def train_in_float64(config: object) -> object:
    """20 trainer steps with the towers (and so the losses) in float64. In float32, Adam turns
    the rounding of a gradient that nearly cancels (a row whose examples pull both ways) into a
    visible step: 8.5e-5 on one user's row of 2,000 on the synthetic data, where float64 runs
    of 1 and 2 processes agree to 4e-14."""
    from augkit.train import build_run, train

    parts = build_run(config)
    parts.model.double()
    return train(config, parts=parts, max_steps=20)


def trained(rank: int, world: int, output_dir: str, logq: str) -> dict[str, torch.Tensor]:
    result = train_in_float64(tiny_config(output_dir, "ranks", logq))
    state = {f"model.{k}": v for k, v in result.parts.model.state_dict().items()}
    if result.parts.frequency is not None:
        state.update({f"frequency.{k}": v for k, v in result.parts.frequency.state_dict().items()})
    return state


@pytest.mark.parametrize("logq", ["count", "streaming"])
def test_twenty_trainer_steps_on_two_ranks_end_with_one_process_parameters(tmp_path, logq):
    alone = train_in_float64(tiny_config(str(tmp_path), "alone", logq))
    assert next(alone.parts.model.parameters()).dtype == torch.float64
    expected = {f"model.{k}": v for k, v in alone.parts.model.state_dict().items()}
    if alone.parts.frequency is not None:
        expected.update({f"frequency.{k}": v for k, v in alone.parts.frequency.state_dict().items()})
    ranks = run_ranks(trained, 2, str(tmp_path), logq)
    for name, value in expected.items():
        for state in ranks:
            torch.testing.assert_close(state[name], value, rtol=0, atol=1e-9, msg=name)


def test_cli_nproc_trains_on_two_processes_and_reports_a_held_directory_once_per_process(tmp_path):
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "run.toml").write_text(
        f'output_dir = "{tmp_path / "runs"}"\nepochs = 1\nprogress = false\n'
        "[main]\nbatch_size = 1024\n[model]\nhidden = [16]\noutput_dim = 8\nembedding_dim = 8\n[ssl]\nbatch_size = 128\n"
    )
    command = [sys.executable, "-m", "augkit", "train", str(tmp_path / "run.toml"), "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("test Recall@50") == 1  # the first process speaks for all
    metrics = json.loads((tmp_path / "runs" / "default" / "metrics.json").read_text())
    assert metrics["model"]["all"]["n"] > 0
    again = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    errors = [line for line in (again.stdout + again.stderr).splitlines() if line.startswith("Error:")]
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert len(errors) == 3 and all("holds another run's results" in e or "rank 0, rank 1 failed" in e for e in errors)


def evaluated(rank: int, world: int, output_dir: str) -> dict:
    from augkit.train import build_run, evaluate_run

    return evaluate_run(build_run(tiny_config(output_dir, "evaluated", "count")), on="test")


def test_evaluation_on_two_ranks_equals_one_process(tmp_path):
    from augkit.train import build_run, evaluate_run

    alone = evaluate_run(build_run(tiny_config(str(tmp_path), "alone", "count")), on="test")
    for metrics in run_ranks(evaluated, 2, str(tmp_path)):  # items and queries embedded half per rank
        assert metrics == alone


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE must be a positive integer \\(set by torchrun\\), got 'abc'"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be a positive integer"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT not set: launch the processes with torchrun"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "but MASTER_ADDR, MASTER_PORT not set"),
    ],
)
def test_a_stray_world_size_is_a_named_error(monkeypatch, env, message):
    from augkit.errors import ConfigError

    for name in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        distributed.join_from_environment("cpu")


def test_an_unset_or_empty_world_size_means_alone(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "")
    assert distributed.join_from_environment("cpu") is False
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.join_from_environment("cpu") is False
