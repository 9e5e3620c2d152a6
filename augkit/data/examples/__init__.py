"""Training examples streamed from Parquet: one row per event (user key, item key, optional
timestamp, weight and query features), read in a bounded shuffle buffer, sharded by rank and
DataLoader worker, with an exact position for resuming. pyarrow is needed to open the files
(``pip install augkit[parquet]``), not to import this package. The format and the reader's
contract: docs/reference/examples-format.md.
"""

from augkit.data.examples.config import ExamplesConfig, QueryFeature
from augkit.data.examples.encoder import KeyEncoder
from augkit.data.examples.files import ExampleFiles, open_examples
from augkit.data.examples.loader import ExampleLoader
from augkit.data.examples.stream import ExampleBatch, ExampleStream, Position

__all__ = [
    "ExampleBatch",
    "ExampleFiles",
    "ExampleLoader",
    "ExampleStream",
    "ExamplesConfig",
    "KeyEncoder",
    "Position",
    "QueryFeature",
    "open_examples",
]
