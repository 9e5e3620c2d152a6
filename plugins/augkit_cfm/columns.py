"""Item-feature columns as numpy arrays for offline statistics (mutual information).

A column holds, for each of the N items, the ids of one categorical feature that count:
present and (for bags) kept. Single-valued features become bags of width 1.
"""

from __future__ import annotations

import hashlib

import attrs
import numpy as np

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError
from augkit.schema import Categorical, MultiCategorical


@attrs.frozen(eq=False)
class Column:
    """``ids``: int64 ``[N, L]``; ``valid``: bool ``[N, L]``, True for the values that count;
    ids are in ``0 .. num_values-1`` wherever ``valid``."""

    ids: np.ndarray
    valid: np.ndarray
    num_values: int

    @property
    def sizes(self) -> np.ndarray:
        """int64 ``[N]``: how many values each item has (0: missing or masked)."""
        return self.valid.sum(axis=1)

    def fingerprint(self) -> str:
        """sha256 hex digest of the ids that count, their positions and the vocabulary size."""
        digest = hashlib.sha256()
        digest.update(f"{self.num_values}:{self.ids.shape}".encode())
        digest.update(np.where(self.valid, self.ids, -1).astype("<i8").tobytes())
        digest.update(np.packbits(self.valid).tobytes())
        return digest.hexdigest()


def column(corpus: FeatureBatch, name: str) -> Column:
    """The `Column` of categorical or multi-categorical feature `name` of `corpus` (any device).

    Raises `BatchValidationError` for a dense feature, or for an id outside
    ``0 .. num_values-1`` where the value counts (a batch built without validation).
    """
    spec = corpus.schema[name]
    present = corpus.is_present(name).cpu().numpy()
    values = corpus.values[name].cpu().numpy().astype(np.int64, copy=False)
    if isinstance(spec, Categorical):
        ids, valid = values[:, None], present[:, None]
    elif isinstance(spec, MultiCategorical):
        ids, valid = values, corpus.kept[name].cpu().numpy() & present[:, None]
    else:
        raise BatchValidationError(
            f"feature {name!r} is Dense; mutual information takes Categorical and MultiCategorical features"
        )
    bad = valid & ((ids < 0) | (ids >= spec.num_values))
    if bad.any():
        row, slot = np.argwhere(bad)[0]
        raise BatchValidationError(
            f"feature {name!r}: id {ids[row, slot]} of item {row} (slot {slot}) is out of range; "
            f"expected 0..{spec.num_values - 1}"
        )
    return Column(ids=ids, valid=valid, num_values=spec.num_values)
