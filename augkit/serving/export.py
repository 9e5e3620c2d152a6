"""The export writer: a trained run as files a serving stack loads without augkit.

`export_run` (`Run.export`) writes the item embeddings with their raw keys, the towers as
`torch.export` programs with a manifest of their inputs, every user's query inputs and
training items, and optionally a FAISS index calibrated on half of the test users, then
checks the programs against the trained towers (`ExportReport`). pyarrow (``items.parquet``)
is imported only for the parquet format.

An export cannot half-happen: it is written into a temporary directory beside ``out`` and
swapped in only when complete (`augkit.atomic.staged_directory`); an earlier export there is
removed only after that. An interrupted export (Ctrl-C, an error) leaves the earlier one as it
was and removes its temporary directory. Since the directory is replaced as a whole, ``out``
must be new, empty, or hold an earlier export only.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import torch

from augkit.atomic import staged_directory
from augkit.errors import UnknownNameError
from augkit.serving.errors import RunError
from augkit.serving.faiss_index import (
    ANN_K,
    ann_report,
    build_faiss_index,
    calibration_split,
    choose_index_type,
    load_faiss,
)
from augkit.serving.topk import chunked_top_k
from augkit.serving.tower_export import export_tower, flat_inputs
from augkit.train.evaluation import embed

if TYPE_CHECKING:  # the run module imports this one for Run.export
    from augkit.serving.run import Run

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "export_report.json"
EXPORT_FILES = (
    "items.parquet", "item_embeddings.npy", "item_keys.json", "query_tower.pt2", "item_tower.pt2",
    "query_inputs.npz", "user_keys.json", "seen.npz", "items.faiss", MANIFEST_NAME, REPORT_NAME,
)
"""Every file an export may write."""
FORMATS = ("parquet", "npy")


@attrs.frozen(eq=False)
class ExportReport:
    """What `Run.export` wrote to ``directory`` and what it measured.

    Files: ``items.parquet`` (columns ``key``, ``title`` when the data has titles,
    ``embedding``: a list of ``output_dim`` float32) or ``item_embeddings.npy`` +
    ``item_keys.json``; ``query_tower.pt2`` and ``item_tower.pt2`` (`torch.export` programs);
    ``query_inputs.npz`` (the query tower's inputs for every user, named as in the manifest)
    with ``user_keys.json`` (row u is user ``user_keys[u]``) and ``seen.npz`` (``indptr``,
    ``items``: each user's training items as CSR over item rows); ``items.faiss`` with
    ``index="faiss"``; ``manifest.json`` (inputs, outputs, files, index settings) and
    ``export_report.json`` (this report).

    ``report``: ``max_abs_diff`` (``{"query", "item"}``: the exported programs against the
    trained towers, on the test users and every item) and, with an index, ``index`` (its
    settings) and ``ann`` (`ann_report`): the index's settings are calibrated on a seeded half
    of the run's test users (`calibration_split`) and its recall reported on the other half.
    """

    directory: Path
    files: tuple[str, ...]
    report: dict[str, Any]


def _json_key(key: Any) -> Any:
    return key.item() if hasattr(key, "item") else key


def export_run(
    run: Run,
    out: Path,
    *,
    format: str = "parquet",
    index: str | None = None,
    index_type: str = "auto",
    overwrite: bool = False,
) -> ExportReport:
    """Write `run` for serving to directory `out`: `Run.export` describes the arguments,
    `ExportReport` the files."""
    if format not in FORMATS:
        raise UnknownNameError("export format", format, FORMATS)
    if index not in (None, "faiss"):
        raise UnknownNameError("index", index, ("faiss",))
    if index is not None:
        load_faiss()
        choose_index_type(run.dataset.num_items, index_type)
    if format == "parquet":
        try:  # pyarrow is optional (the serve extra): refuse before anything is written
            import pyarrow  # noqa: F401
        except ImportError:
            raise RunError("--format parquet needs pyarrow: pip install 'augkit[serve]', or use --format npy") from None
    if out.exists() and not out.is_dir():
        raise RunError(f"export directory {str(out)!r} is a file")
    present = sorted(path.name for path in out.iterdir()) if out.is_dir() else []
    earlier = [name for name in present if name in EXPORT_FILES]
    others = [name for name in present if name not in EXPORT_FILES]
    if earlier and not overwrite:
        raise RunError(
            f"export directory {str(out)!r} holds an earlier export ({', '.join(earlier)}); pass "
            "overwrite=True (--overwrite) to replace it"
        )
    if others:
        raise RunError(
            f"export directory {str(out)!r} holds files that are not an export's ({', '.join(others[:5])}"
            f"{', ...' if len(others) > 5 else ''}); an export replaces its directory as a whole: choose a new "
            "or empty directory"
        )
    try:
        with staged_directory(out) as staged:
            written, report = _write(run, staged, format=format, index=index, index_type=index_type)
    except OSError as error:
        raise RunError(f"cannot write the export to {str(out)!r}: {error.strerror or error}") from None
    return ExportReport(out, tuple(written), report)


def _write(run: Run, out: Path, *, format: str, index: str | None, index_type: str) -> tuple[list[str], dict[str, Any]]:
    """Write every file of the export into the (new, empty) directory `out`: the files written
    and the report."""
    written: list[str] = []
    item_vectors = run.item_vectors().detach().cpu()
    item_keys = [_json_key(key) for key in run.keys.items.keys]
    if format == "parquet":
        import pyarrow as pa  # optional heavy dependency (the serve extra), for parquet only
        import pyarrow.parquet as pq

        dim = item_vectors.shape[1]
        columns = {"key": pa.array(item_keys)}
        if run.keys.titles is not None:
            columns["title"] = pa.array(list(run.keys.titles))
        flat = pa.array(item_vectors.numpy().reshape(-1), type=pa.float32())
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim)
        pq.write_table(pa.table(columns), out / "items.parquet")
        written.append("items.parquet")
    else:
        np.save(out / "item_embeddings.npy", item_vectors.numpy())
        (out / "item_keys.json").write_text(json.dumps(item_keys), encoding="utf-8")
        written += ["item_embeddings.npy", "item_keys.json"]

    # towers
    cpu_model = run.model
    moved = run.device.type != "cpu"
    if moved:
        cpu_model = copy.deepcopy(run.model).cpu()
    queries, items = run.queries, run.served_items()
    example_rows = torch.arange(min(2, queries.batch_size))
    signatures = {
        "query": export_tower(cpu_model["query"], queries.select(example_rows), out / "query_tower.pt2"),
        "item": export_tower(cpu_model["item"], items.select(torch.arange(min(2, items.batch_size))), out / "item_tower.pt2"),
    }
    written += ["query_tower.pt2", "item_tower.pt2"]
    inputs = flat_inputs(queries)
    arrays = {entry["name"]: tensor.cpu().numpy() for entry, tensor in zip(signatures["query"], inputs, strict=True)}
    np.savez(out / "query_inputs.npz", **arrays)
    (out / "user_keys.json").write_text(json.dumps([_json_key(k) for k in run.keys.users.keys]), encoding="utf-8")
    indptr, seen = run.seen_csr()
    np.savez(out / "seen.npz", indptr=indptr.numpy(), items=seen.numpy())
    written += ["query_inputs.npz", "user_keys.json", "seen.npz"]

    # check the programs against the towers
    test_users = torch.unique(run.split.test.users)
    if test_users.numel() == 0:
        test_users = torch.arange(min(1000, queries.batch_size))
    programs = {name: torch.export.load(str(out / f"{name}_tower.pt2")).module() for name in ("query", "item")}
    diffs = {}
    for name, batch in (("query", queries.select(test_users)), ("item", items)):
        expected = embed(cpu_model[name], batch)
        with torch.no_grad():
            got = torch.cat([programs[name](*flat_inputs(batch.select(part))) for part in torch.arange(batch.batch_size).split(8192)])
        diffs[name] = float((got - expected).abs().max())
    report: dict[str, Any] = {
        "run": str(run.run_dir),
        "run_id": run.run_id,
        "checkpoint": str(run.checkpoint),
        "step": run.step,
        "items": run.dataset.num_items,
        "users": run.dataset.num_users,
        "test_users": int(test_users.numel()),
        "max_abs_diff": diffs,
    }

    index_settings = None
    if index == "faiss":
        faiss = load_faiss()
        test_vectors = run.query_vectors(test_users).cpu()
        calibrate, held_out = calibration_split(len(test_users), run.config.seed)
        kmax = min(max(ANN_K), run.dataset.num_items)
        _, exact = chunked_top_k(test_vectors[calibrate], item_vectors, kmax)
        built, index_settings = build_faiss_index(
            item_vectors.numpy(),
            index_type=index_type,
            calibration=test_vectors[calibrate].numpy(),
            exact=exact.numpy(),
            k=kmax,
            seed=run.config.seed,
        )
        faiss.write_index(built, str(out / "items.faiss"))
        written.append("items.faiss")
        report["index"] = index_settings
        report["ann"] = ann_report(built, item_vectors, test_vectors[held_out])
        report["ann"]["users"] = "the test users not used to calibrate the index"

    manifest = {
        "format": 1,
        "run": str(run.run_dir),
        "run_id": run.run_id,
        "data_set": run.dataset.name,
        "score": "inner product of the two towers' outputs (unit vectors: cosine similarity)",
        "towers": {
            name: {
                "file": f"{name}_tower.pt2",
                "load": f"torch.export.load('{name}_tower.pt2').module()(*inputs)",
                "inputs": signatures[name],
                "output": {"dtype": "float32", "shape": ["B", run.model[name].config.output_dim], "normalized": run.model[name].config.normalize},
            }
            for name in ("query", "item")
        },
        "items": {
            "file": "items.parquet" if format == "parquet" else "item_embeddings.npy",
            "keys": "the 'key' column" if format == "parquet" else "item_keys.json",
            "count": run.dataset.num_items,
            "row_order": "row i is the item of key i of the keys; the FAISS index ids are these rows",
        },
        "users": {
            "keys": "user_keys.json",
            "query_inputs": "query_inputs.npz: row u holds user_keys[u]'s query tower inputs",
            "seen": "seen.npz: items[indptr[u]:indptr[u+1]] are user u's training item rows",
            "count": run.dataset.num_users,
        },
        "index": None if index_settings is None else {"file": "items.faiss", **index_settings},
    }
    written += [MANIFEST_NAME, REPORT_NAME]
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return written, report
