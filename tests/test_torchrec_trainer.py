"""The trainer on the TorchRec backend (``model.backend = "torchrec"``): `augkit train` runs,
validates, tests and exports like a native run; its first step's loss equals the native
row-wise Adagrad's on the same seed and its weights stay within float32 rounding after an
epoch; a run killed and resumed ends bit-identical; 2 gloo processes (table-wise, row-wise)
equal 1; bad configs are named errors before any data is built.

Needs the `torchrec` extra (torchrec and fbgemm_gpu); skips without it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("fbgemm_gpu", reason="the torchrec extra is not installed (fbgemm-gpu-cpu); see the README's TorchRec section")
pytest.importorskip("torchrec", reason="the torchrec extra is not installed (torchrec); see the README's TorchRec section")

from workspaces import resume_killed, train_whole_and_kill

from augkit.cli import main
from augkit.errors import ConfigError
from augkit.serving import load_run
from augkit.testing.distributed import run_ranks
from augkit.train import build_run, config_from_dict, run_training, train
from augkit.train.backend import TorchRecStep
from augkit.train.checkpoint import load_checkpoint
from augkit.train.loop import ready
from augkit.train.step import train_step

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SMALL = {
    "epochs": 2, "progress": False, "checkpoint_every": 4, "log_every": 0,
    "data": {"synthetic": {"items": 300, "users": 200, "events_per_user": 10}},
    "main": {"batch_size": 128}, "ssl": {"batch_size": 64, "augmentation": {"name": "dropout", "params": {"rate": 0.3}}},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8, "backend": "torchrec"},
    "optim": {"tables": "rowwise_adagrad", "tables_lr": 0.05},
    "eval": {"ks": [10], "monitor": "valid/all/recall@10"},
}


def small(output_dir, name: str, *, backend: str = "torchrec", sharding: str = "auto", **changes):
    data = {**SMALL, "output_dir": str(output_dir), "name": name, **changes}
    data["model"] = {**SMALL["model"], "backend": backend, **({"sharding": sharding} if backend == "torchrec" else {})}
    return config_from_dict(data)


def toml(data: dict, prefix: str = "") -> str:
    """A flat config dict as TOML tables (enough for `SMALL`)."""
    scalars = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [toml(v, f"{prefix}{k}.") for k, v in data.items() if isinstance(v, dict)]
    head = [f"[{prefix[:-1]}]"] if prefix and scalars else []
    return "\n".join([*head, *scalars, *tables]) + "\n"


# -- train, validate, test, export --------------------------------------------------------------


def test_cli_train_validates_tests_and_exports_like_a_native_run(tmp_path):
    (tmp_path / "run.toml").write_text(toml({**SMALL, "output_dir": str(tmp_path / "runs")}))
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(tmp_path / "run.toml"), "--name", "rec"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "rec"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 2 * 13 and metrics["validation"]["epoch"] in (1, 2)
    assert 0 <= metrics["model"]["all"]["recall@10"] <= 1
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3 and "valid/all/recall@10" in history[0]  # validated every epoch
    best = load_checkpoint(run_dir / "best.pt")["model"]
    assert any(".table.weight" in name for name in best)  # native towers' keys: served as any run
    exported = runner.invoke(main, ["export", str(run_dir), "--out", str(tmp_path / "out"), "--format", "npy"])
    assert exported.exit_code == 0, exported.output
    run = load_run(run_dir)
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, best[name]), name
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "item_embeddings.npy"), run.item_embeddings().vectors.numpy())


# -- against the native backend -----------------------------------------------------------------


def test_the_first_step_equals_native_rowwise_adagrad_and_an_epoch_stays_within_float32_rounding(tmp_path):
    """Same seed, same towers: the first step's losses agree to a relative 1e-6 (float32
    rounding: the towers' outputs agree to 1e-6, measured 1.5e-7 on a loss of 13), and after
    an epoch of 11 steps (FBGEMM's row-wise Adagrad against augkit's, float32) every weight to
    1e-5, the losses to a relative 1e-5 and the validation's recall@10 to 0.01."""
    first = {b: train(small(tmp_path, f"first-{b}", backend=b), max_steps=1).last_losses for b in ("native", "torchrec")}
    for term, value in first["native"].items():
        assert first["torchrec"][term] == pytest.approx(value, rel=1e-6), term
    runs = {b: train(small(tmp_path, f"epoch-{b}", backend=b, epochs=1)) for b in ("native", "torchrec")}
    native, rec = (runs[b].parts.model.state_dict() for b in ("native", "torchrec"))
    initial = build_run(small(tmp_path, "initial")).model.state_dict()
    assert not torch.equal(rec["item.input_layer.encoders.0.table.weight"], initial["item.input_layer.encoders.0.table.weight"])
    for name, value in native.items():
        torch.testing.assert_close(rec[name], value, rtol=0, atol=1e-5, msg=name)
    for term, value in runs["native"].last_losses.items():
        assert runs["torchrec"].last_losses[term] == pytest.approx(value, rel=1e-5), term
    recall = [runs[b].best["metrics"]["all"]["recall@10"] for b in ("native", "torchrec")]
    assert recall[1] == pytest.approx(recall[0], abs=0.01)


def test_a_run_ready_to_step_makes_one_lookup_per_step(tmp_path):
    with ready(small(tmp_path, "ready")) as (parts, optimizer):
        assert isinstance(parts.towers, TorchRecStep)
        calls = []
        collection = parts.towers.sharded.module.tables
        collection.register_forward_hook(lambda module, args, out: calls.append(args[0].stride()))
        losses = train_step(parts, torch.arange(128), torch.Generator().manual_seed(0))
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
    assert calls == [128 + 2 * 64]  # the main items, then the two views: one KJT of one stride


# -- exact resume ------------------------------------------------------------------------------


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_run_bit_for_bit(tmp_path):
    (tmp_path / "run.toml").write_text(toml({**SMALL, "output_dir": str(tmp_path / "runs"), "checkpoint_every": 3}))
    command, env = train_whole_and_kill(tmp_path / "run.toml", tmp_path / "runs")
    checkpoint = tmp_path / "runs" / "killed" / "checkpoint.pt"
    saved = load_checkpoint(checkpoint)
    assert 0 < saved["step"] < 26
    accumulators = saved["optimizer"]["tables"]
    assert accumulators["tables.embedding_bags.item_item_id.weight/item_item_id.momentum1"].shape == (300,)
    whole, again = resume_killed(command, env, tmp_path / "runs")
    assert again["model"] == whole["model"] and again["validation"] == whole["validation"]
    ends = [load_checkpoint(tmp_path / "runs" / n / "checkpoint.pt") for n in ("whole", "killed")]
    for part in ("model", "main_loss"):
        for name, value in ends[0][part].items():
            assert torch.equal(ends[1][part][name], value), name
    for name, value in ends[0]["optimizer"]["tables"].items():
        assert torch.equal(ends[1]["optimizer"]["tables"][name], value), name


# -- two processes ------------------------------------------------------------------------------


STEPS = 10


def steps_alone_or_ranked(rank: int, world: int, output_dir: str, name: str, sharding: str) -> dict[str, torch.Tensor]:
    config = small(output_dir, name, sharding=sharding, epochs=1, checkpoint_every=0)
    parts = build_run(config)
    parts.model.double()  # the towers' heads in float64; the tables stay float32 (FBGEMM's)
    return train(config, parts=parts, max_steps=STEPS).parts.model.state_dict()


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> dict[str, torch.Tensor]:
    (state,) = run_ranks(steps_alone_or_ranked, 1, str(tmp_path_factory.mktemp("alone")), "alone", "table_wise")
    return state


@pytest.mark.parametrize("sharding", ["table_wise", "row_wise"])
def test_two_gloo_processes_equal_one_after_ten_steps(alone, tmp_path, sharding):
    """Gathered in-batch negatives, logQ and SSL views across the processes: 2 equal 1 up to
    the float32 rounding of the tables' gradient sums (tolerance 2e-6, as
    tests/test_torchrec_backend.py measures it)."""
    ranks = run_ranks(steps_alone_or_ranked, 2, str(tmp_path), "ranked", sharding)
    for state in ranks:
        for name, value in alone.items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=2e-6, msg=f"{sharding} {name}")


def resumed_ranked(rank: int, world: int, output_dir: str) -> dict[str, torch.Tensor]:
    config = small(output_dir, "moved", sharding="row_wise", epochs=1, checkpoint_every=5)
    return train(config, on_existing="resume", max_steps=STEPS).parts.model.state_dict()


def test_a_checkpoint_of_one_process_resumes_on_two(tmp_path):
    """The checkpoint holds whole tables and whole optimizer state, so another number of
    processes takes its shards of them: 5 steps alone, 5 more on 2 processes (row-wise: every
    table split), equal to 10 alone up to float32 rounding (2e-6). ``model.sharding`` itself
    cannot change on resume."""
    config = small(tmp_path, "moved", sharding="row_wise", epochs=1, checkpoint_every=5)
    run_ranks(steps_on, 1, config, 6)  # stopped after step 6: the checkpoint of step 5 is the last
    assert load_checkpoint(config.run_dir / "checkpoint.pt")["step"] == 5
    whole = run_ranks(steps_on, 1, small(tmp_path, "whole", epochs=1, checkpoint_every=5), STEPS)[0]
    for state in run_ranks(resumed_ranked, 2, str(tmp_path)):
        for name, value in whole.items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=2e-6, msg=name)


def steps_on(rank: int, world: int, config, steps: int) -> dict[str, torch.Tensor]:
    return train(config, max_steps=steps).parts.model.state_dict()


# -- bad configs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"backend": "torchrec"}}, r'optim.tables is "adam" \(dense\): set optim.tables = "rowwise_adagrad".*"sparse_adam" \(CUDA\)'),
        ({"model": {"sharding": "row_wise"}}, r"sharding = 'row_wise' places TorchRec tables; set backend = \"torchrec\""),
        ({"model": {"backend": "torchrec", "embedding_dim": 6}, "optim": {"tables": "rowwise_adagrad"}}, r"embedding_dim = 6: .*multiple of 4"),
        ({"model": {"backend": "tensorflow"}}, r"backend must be one of 'native', 'torchrec', got 'tensorflow'"),
        ({"model": {"backend": "torchrec", "sharding": "column_wise"}, "optim": {"tables": "rowwise_adagrad"}}, r"sharding must be one of"),
    ],
)
def test_bad_backend_configs_are_named_when_read(changes, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(changes)


def refuse_to_build(*args, **kwargs):
    raise AssertionError("the run was built before the config was refused")


def test_sparse_adam_off_cuda_is_refused_before_the_data_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr("augkit.train.loop.build_run", refuse_to_build)
    config = small(tmp_path, "adam", optim={"tables": "sparse_adam"}, device="cpu")
    with pytest.raises(ConfigError, match=r'"sparse_adam".*CUDA only, the run is on cpu; set optim.tables = "rowwise_adagrad"'):
        train(config)


def test_weight_decay_on_cpu_is_refused_before_the_data_is_built(tmp_path, monkeypatch):
    """FBGEMM's CPU row-wise Adagrad (fbgemm-gpu-cpu 1.8.0) adds the L2 term only to rows read
    more than once in a step; the trainer refuses rather than decay the tables unevenly."""
    monkeypatch.setattr("augkit.train.loop.build_run", refuse_to_build)
    config = small(tmp_path, "decay", optim={"tables": "rowwise_adagrad", "weight_decay": 1e-4}, device="cpu")
    with pytest.raises(ConfigError, match=r"optim.weight_decay = 0.0001 .*on cpu: .*read more than once.*optim.weight_decay = 0"):
        train(config)


def test_a_missing_extra_names_the_install_recipe_before_the_data_is_built(tmp_path, monkeypatch):
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchrec" else found(name, *a))
    monkeypatch.setattr("augkit.train.loop.build_run", refuse_to_build)
    with pytest.raises(ConfigError, match=r"needs the torchrec extra, and torchrec is not installed: .*docs/install.md#torchrec"):
        train(small(tmp_path, "missing"))


# -- CUDA ---------------------------------------------------------------------------------------


def cuda_build() -> None:
    import fbgemm_gpu

    if fbgemm_gpu.__variant__ == "cpu":
        pytest.skip("fbgemm_gpu is the CPU build (fbgemm-gpu-cpu): its kernels do not run on CUDA")


@CUDA
@pytest.mark.parametrize("tables", ["rowwise_adagrad", "sparse_adam"])
def test_cuda_torchrec_run_trains_validates_tests_and_resumes_exactly(tmp_path, tables):
    cuda_build()
    config = small(tmp_path, f"cuda-{tables}", device="cuda", optim={"tables": tables, "tables_lr": 0.01})
    whole = run_training(config)
    assert whole["validation"] is not None and 0 <= whole["model"]["all"]["recall@10"] <= 1
    killed = small(tmp_path, f"cuda-{tables}-killed", device="cuda", optim={"tables": tables, "tables_lr": 0.01})
    assert not train(killed, max_steps=6).finished  # last checkpoint at step 4
    resumed = train(killed, on_existing="resume")
    reference = load_checkpoint(config.run_dir / "checkpoint.pt")
    for name, value in reference["model"].items():
        torch.testing.assert_close(resumed.parts.model.state_dict()[name].cpu(), value, rtol=0, atol=1e-6, msg=name)


@CUDA
def test_cuda_torchrec_needs_the_cuda_build_of_fbgemm(tmp_path, monkeypatch):
    import fbgemm_gpu

    monkeypatch.setattr(fbgemm_gpu, "__variant__", "cpu", raising=False)
    monkeypatch.setattr("augkit.train.loop.build_run", refuse_to_build)
    with pytest.raises(ConfigError, match=r"the installed fbgemm_gpu is the CPU build"):
        train(small(tmp_path, "cpu-build", device="cuda"))
