"""augkit plugin ``swap``: feature swap between the items of a batch, with a main loss and a
logQ estimator.

An example of a third-party plugin: this module is the entry point ``swap`` in the ``augkit``
group of the ``augkit-plugin-example`` distribution, and holds the hook implementations: the
augmentation ``swap``, the loss ``margin_softmax`` and the frequency estimator
``decayed_count``, each usable by name in augkit's trainer config.
"""

from augkit import hookimpl
from augkit.hookspecs import Register

from augkit_swap.decayed import DecayedCountFrequency
from augkit_swap.margin import MarginSoftmaxLoss
from augkit_swap.swap import FeatureSwap, SwapParameters

__all__ = ["DecayedCountFrequency", "FeatureSwap", "MarginSoftmaxLoss", "SwapParameters"]


@hookimpl
def augkit_register_augmentations(register: Register) -> None:
    register("swap", FeatureSwap)


@hookimpl
def augkit_register_losses(register: Register) -> None:
    register(MarginSoftmaxLoss.name, MarginSoftmaxLoss)


@hookimpl
def augkit_register_samplers(register: Register) -> None:
    register(DecayedCountFrequency.name, DecayedCountFrequency)
