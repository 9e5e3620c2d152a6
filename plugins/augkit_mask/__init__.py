"""augkit plugin ``mask``: random masking of whole features."""

from augkit import hookimpl
from augkit_mask.mask import MaskFeatures

__all__ = ["MaskFeatures"]


@hookimpl
def augkit_register_augmentations(register):
    register("mask", MaskFeatures)
