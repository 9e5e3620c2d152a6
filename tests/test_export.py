"""`Run.export`: item embeddings with keys, the towers as `torch.export` programs that run in a
process that never imports augkit, and a FAISS index with its recall against exact search."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from augkit.serving import ANN_TARGET_RECALL, FLAT_MAX_ITEMS, RunError, load_run
from augkit.serving.faiss_index import build_faiss_index, choose_index_type
from augkit.serving.topk import chunked_top_k
from augkit.serving.tower_export import flat_inputs

faiss = pytest.importorskip("faiss", reason="the FAISS index needs faiss-cpu (pip install 'augkit[serve]')")

TINY = {
    "name": "tiny", "epochs": 1, "progress": False, "log_every": 0,
    "model": {"embedding_dim": 8, "hidden": [16], "output_dim": 8},
    "main": {"batch_size": 1024}, "ssl": {"batch_size": 128}, "eval": {"max_users": 200},
}


def train_tiny(directory):
    """A one-epoch run of a tiny model on the synthetic data, in `directory`/runs/tiny."""
    from augkit.train import config_from_dict, run_training

    config = config_from_dict({**TINY, "output_dir": str(directory / "runs")})
    run_training(config)
    return config.run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(train_tiny(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny"
    return run.export(out, index="faiss")


def test_export_writes_keyed_embeddings_and_a_manifest(run, exported):
    pq = pytest.importorskip("pyarrow.parquet")
    out = exported.directory
    assert set(exported.files) == {
        "items.parquet", "query_tower.pt2", "item_tower.pt2", "query_inputs.npz", "user_keys.json",
        "seen.npz", "items.faiss", "manifest.json", "export_report.json",
    }
    table = pq.read_table(out / "items.parquet")
    assert table.column_names == ["key", "embedding"]
    assert table.column("key").to_pylist() == list(range(3000))
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(vectors, run.item_embeddings().vectors.numpy())
    manifest = json.loads((out / "manifest.json").read_text())
    inputs = manifest["towers"]["query"]["inputs"]
    assert [entry["name"] for entry in inputs] == ["user_id", "segment", "age", "history", "present", "history.kept"]
    assert inputs[3]["shape"] == ["B", 20] and inputs[4] == {**inputs[4], "dtype": "bool", "shape": ["B", 4]}
    assert manifest["index"]["type"] == "flat"
    assert json.loads((out / "user_keys.json").read_text()) == list(range(2000))
    seen = np.load(out / "seen.npz")
    assert seen["indptr"].shape == (2001,)
    assert seen["items"][seen["indptr"][42] : seen["indptr"][43]].tolist() == sorted(run.seen_items(42)[0])
    report = json.loads((out / "export_report.json").read_text())
    assert report["max_abs_diff"]["query"] <= 1e-6 and report["max_abs_diff"]["item"] <= 1e-6
    # flat is exact up to float32 summation order (FAISS's BLAS and torch's matmul sum the
    # inner products in different orders), which can swap two near-tied items at rank 10
    assert report["ann"]["recall@10"] >= 0.999 and report["ann"]["same_top10"] >= 0.998
    assert report["ann"]["latency_ms"]["ann_one_query"] > 0


FRESH = textwrap.dedent(
    """
    import importlib.abc, json, sys
    class NoAugkit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "augkit" or name.startswith("augkit.") or name.startswith("augkit_"):
                raise ImportError("augkit must not be imported here")
    sys.meta_path.insert(0, NoAugkit())
    import faiss, numpy as np, torch
    out = sys.argv[1]
    manifest = json.load(open(f"{out}/manifest.json"))
    tower = torch.export.load(f"{out}/query_tower.pt2").module()
    arrays = np.load(f"{out}/query_inputs.npz")
    rows = np.array([0, 42, 1999])
    inputs = [torch.from_numpy(arrays[entry["name"]][rows]) for entry in manifest["towers"]["query"]["inputs"]]
    with torch.no_grad():
        vectors = tower(*inputs).numpy()
    np.save(f"{out}/fresh.npy", vectors)
    index = faiss.read_index(f"{out}/items.faiss")
    _, top = index.search(vectors, 10)
    np.save(f"{out}/fresh_top.npy", top)
    item_tower = torch.export.load(f"{out}/item_tower.pt2").module()
    assert not [m for m in sys.modules if m == "augkit" or m.startswith(("augkit.", "augkit_"))]
    print("ok")
    """
)


def test_exported_towers_run_without_augkit(run, exported):
    out = exported.directory
    done = subprocess.run(
        [sys.executable, "-c", FRESH, str(out)], check=False, capture_output=True, text=True, timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    expected = run.query_embeddings([0, 42, 1999]).vectors.numpy()
    got = np.load(out / "fresh.npy")
    assert np.abs(got - expected).max() <= 1e-6
    _, exact = chunked_top_k(torch.from_numpy(expected), run.item_embeddings().vectors, 10)
    assert (np.load(out / "fresh_top.npy") == exact.numpy()).all()


def test_exported_program_has_a_dynamic_batch(run, exported):
    program = torch.export.load(str(exported.directory / "item_tower.pt2")).module()
    items = run.served_items()
    for size in (1, 5, 300):
        batch = items.select(torch.arange(size))
        with torch.no_grad():
            got = program(*flat_inputs(batch))
        torch.testing.assert_close(got, run.item_embeddings().vectors[:size], atol=1e-6, rtol=0)


def test_npy_format_and_overwrite(run, tmp_path):
    out = tmp_path / "npy"
    written = run.export(out, format="npy")
    assert {"item_embeddings.npy", "item_keys.json"} <= set(written.files) and "items.faiss" not in written.files
    np.testing.assert_array_equal(np.load(out / "item_embeddings.npy"), run.item_embeddings().vectors.numpy())
    assert json.loads((out / "item_keys.json").read_text())[:3] == [0, 1, 2]
    with pytest.raises(RunError, match=r"holds an earlier export \(export_report.json, item_embeddings.npy"):
        run.export(out, format="npy")
    run.export(out, format="npy", overwrite=True)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_are_calibrated_to_the_target_recall(kind):
    generator = torch.Generator().manual_seed(1)
    centers = torch.randn(50, 16, generator=generator)
    items = torch.nn.functional.normalize(
        centers[torch.randint(50, (6000,), generator=generator)] + 0.3 * torch.randn(6000, 16, generator=generator), dim=1
    )
    queries = torch.nn.functional.normalize(centers[:40] + 0.3 * torch.randn(40, 16, generator=generator), dim=1)
    _, exact = chunked_top_k(queries, items, 50)
    index, settings = build_faiss_index(
        items.numpy(), index_type=kind, calibration=queries.numpy(), exact=exact.numpy(), k=50, seed=3
    )
    assert settings["type"] == kind
    _, found = index.search(queries.numpy(), 50)
    hits = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(found.tolist(), exact.tolist(), strict=True)])
    knob = settings.get("nprobe", settings.get("ef_search"))
    assert hits >= ANN_TARGET_RECALL or knob >= settings.get("nlist", 6000)
    if kind == "ivf":  # seeded: the same settings build the same index
        again, _ = build_faiss_index(items.numpy(), index_type=kind, calibration=queries.numpy(), exact=exact.numpy(), k=50, seed=3)
        assert (again.search(queries.numpy(), 50)[1] == found).all()


def test_index_type_threshold():
    assert choose_index_type(FLAT_MAX_ITEMS) == "flat"
    assert choose_index_type(FLAT_MAX_ITEMS + 1) == "ivf"
    assert choose_index_type(10, "hnsw") == "hnsw"
    with pytest.raises(Exception, match="unknown FAISS index type 'annoy'"):
        choose_index_type(10, "annoy")
