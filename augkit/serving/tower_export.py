"""A tower as a `torch.export` program over plain tensors, loadable without augkit.

`FlatTower` takes the tensors of a `FeatureBatch` positionally (`tower_inputs` describes
them, `flat_inputs` lists them for a batch); `export_tower` saves it with a dynamic batch
size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from augkit.batch import FeatureBatch
from augkit.schema import Dense, FeatureSchema, MultiCategorical
from augkit.towers import Tower


class FlatTower(nn.Module):
    """A `Tower` over plain tensors, for `torch.export`: ``forward(*inputs)`` takes, in order,
    each feature's value tensor (schema order), the ``present`` mask ``bool [B, k]``, then the
    ``kept`` mask ``bool [B, max_len]`` of each multi-valued feature (schema order); see
    `tower_inputs`."""

    def __init__(self, tower: Tower) -> None:
        super().__init__()
        self.tower = tower
        self.schema = tower.schema
        self.multi = tuple(tower.schema.multi_valued)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = self.schema.names
        values = dict(zip(names, inputs[: len(names)], strict=True))
        present = inputs[len(names)]
        kept = dict(zip(self.multi, inputs[len(names) + 1 :], strict=True))
        return self.tower(FeatureBatch(self.schema, values, present, kept))


def tower_inputs(schema: FeatureSchema) -> list[dict[str, Any]]:
    """The input signature of a `FlatTower` over `schema`: one entry per positional input with
    its ``name``, ``feature``, ``kind`` (``values``, ``present`` or ``kept``), ``dtype`` and
    ``shape`` (``"B"`` the batch size)."""
    out: list[dict[str, Any]] = []
    for spec in schema:
        if isinstance(spec, Dense):
            dtype, shape, note = "float32", ["B", spec.dim], "the vector; zeros where missing"
        elif isinstance(spec, MultiCategorical):
            dtype, shape = "int64", ["B", spec.max_len]
            note = f"ids 0..{spec.num_values - 1}, any id (e.g. 0) where not kept"
        else:
            dtype, shape, note = "int64", ["B"], f"id 0..{spec.num_values - 1}, any id (e.g. 0) where not present"
        out.append({"name": f"{spec.name}", "feature": spec.name, "kind": "values", "dtype": dtype, "shape": shape, "note": note})
    out.append({
        "name": "present", "feature": None, "kind": "present", "dtype": "bool", "shape": ["B", len(schema)],
        "note": "column j: feature j is present (False reads as its default embedding)",
    })
    for name in schema.multi_valued:
        spec = schema[name]
        out.append({
            "name": f"{name}.kept", "feature": name, "kind": "kept", "dtype": "bool", "shape": ["B", spec.max_len],
            "note": "False for padding; a bag with nothing kept reads as the default embedding",
        })
    return out


def flat_inputs(batch: FeatureBatch) -> list[torch.Tensor]:
    """The positional inputs of a `FlatTower` for `batch` (see `tower_inputs`)."""
    schema = batch.schema
    return [
        *(batch.values[name] for name in schema.names),
        batch.present,
        *(batch.kept[name] for name in schema.multi_valued),
    ]


def export_tower(tower: Tower, example: FeatureBatch, path: Path) -> list[dict[str, Any]]:
    """Export `tower` (in eval mode, on the CPU) with a dynamic batch size to `path` with
    `torch.export`; returns its input signature (`tower_inputs`). `example` needs 2+ rows."""
    flat = FlatTower(tower).eval()
    args = tuple(t.cpu() for t in flat_inputs(example))
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in args)
    with torch.no_grad():
        program = torch.export.export(flat, args, dynamic_shapes=(dynamic,))
    torch.export.save(program, str(path))
    return tower_inputs(tower.schema)
