"""Data sets: item tables read from files, and MovieLens-100K (loaded from your copy)."""

from augkit.data.items import ItemTable, read_item_table
from augkit.data.movielens import load_movielens_items, load_movielens_rating_counts

__all__ = ["ItemTable", "load_movielens_items", "load_movielens_rating_counts", "read_item_table"]
