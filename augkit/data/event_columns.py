"""The columns of an examples dataset, as ``augkit data examples`` writes it
(`augkit.data.history.build_examples`) and a reader of streamed examples reads it.

One row per event, in Parquet files ``part-NNNNN.parquet`` (or ``train/part-NNNNN.parquet`` and
``after/part-NNNNN.parquet`` with a time cut) beside a manifest `MANIFEST`:

* `USER`, `ITEM`: the event's user and item keys, canonical (`augkit.data.arrow_keys`):
  ``string`` with ``key_type = "str"``, ``int64`` with ``key_type = "int"``;
* `TIMESTAMP`: ``int64`` Unix seconds;
* `WEIGHT`: ``float32`` (1.0 when the log has no weight column);
* `HISTORY`: ``list<item key>``, the items of the user's events with a strictly earlier
  timestamp, the last ``history`` of them, oldest first (events at one time in the log's order).

Each file holds the users whose key hashes to it (``fnv1a64(user) % partitions``), every user's
events together and in time order; a reader shuffles them.
"""

USER = "user"
ITEM = "item"
TIMESTAMP = "timestamp"
WEIGHT = "weight"
HISTORY = "history"
COLUMNS: tuple[str, ...] = (USER, ITEM, TIMESTAMP, WEIGHT, HISTORY)
"""The columns of every examples file, in order."""

MANIFEST = "_examples.json"
"""The dataset's manifest (JSON): ``format``, ``columns``, ``key_type``, ``history``,
``partitions``, ``cut``, ``rows`` per part, ``sources``. Its leading underscore keeps it out of a
pyarrow dataset's files."""
FORMAT = "augkit.examples/1"
"""The manifest's ``format``: the layout above."""
