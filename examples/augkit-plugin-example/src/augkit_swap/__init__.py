"""augkit plugin ``swap``: feature swap between the items of a batch.

An example of a third-party plugin: this module is the entry point ``swap`` in the ``augkit``
group of the ``augkit-plugin-example`` distribution, and holds the hook implementation.
"""

from augkit import hookimpl
from augkit.hookspecs import Register

from augkit_swap.swap import FeatureSwap, SwapParameters

__all__ = ["FeatureSwap", "SwapParameters"]


@hookimpl
def augkit_register_augmentations(register: Register) -> None:
    register("swap", FeatureSwap)
