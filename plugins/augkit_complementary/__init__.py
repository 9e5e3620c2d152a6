"""augkit plugin ``complementary``: random split of the features into two disjoint halves."""

from augkit import hookimpl
from augkit_complementary.complementary import ComplementaryMasking

__all__ = ["ComplementaryMasking"]


@hookimpl
def augkit_register_augmentations(register):
    register("complementary", ComplementaryMasking)
