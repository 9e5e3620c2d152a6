"""A trained run as an object: `load_run` gives a `Run` that recommends, embeds users and
items, finds similar items and embeds new items from their features, all in raw keys, and
exports the towers, the item embeddings and a FAISS index for serving.

One job per module: `run` (`load_run`, `Run`), `results` (`Embeddings`, `Recommendations`),
`encoding` (raw keys and new items' raw feature values as ids), `topk` (exact top-k),
`tower_export` (the towers as `torch.export` programs), `faiss_index` (a FAISS index and its
calibration against exact search), `export` (the export writer), `errors`.
"""

from augkit.data.keys import UnknownKeyError
from augkit.errors import DataChangedError
from augkit.serving.errors import RunError, UnknownValueError
from augkit.serving.export import ExportReport
from augkit.serving.faiss_index import ANN_TARGET_RECALL, FLAT_MAX_ITEMS, INDEX_TYPES
from augkit.serving.results import Embeddings, Recommendations
from augkit.serving.run import Run, load_run
from augkit.train.identity import RunIdentityWarning

__all__ = [
    "ANN_TARGET_RECALL",
    "DataChangedError",
    "FLAT_MAX_ITEMS",
    "INDEX_TYPES",
    "Embeddings",
    "ExportReport",
    "Recommendations",
    "Run",
    "RunError",
    "RunIdentityWarning",
    "UnknownKeyError",
    "UnknownValueError",
    "load_run",
]
