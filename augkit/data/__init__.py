"""Data sets: item tables read from files, MovieLens-100K (loaded from your copy), and your
own interaction and feature tables."""

from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.items import ItemTable, read_item_table
from augkit.data.movielens import load_movielens_100k, load_movielens_items, load_movielens_rating_counts
from augkit.data.tables import LoadedTables, load_tables, read_tables
from augkit.data.tables_config import TablesConfig

__all__ = [
    "InteractionLog",
    "ItemTable",
    "LoadedTables",
    "RecDataset",
    "TablesConfig",
    "load_movielens_100k",
    "load_movielens_items",
    "load_movielens_rating_counts",
    "load_tables",
    "read_item_table",
    "read_tables",
]
