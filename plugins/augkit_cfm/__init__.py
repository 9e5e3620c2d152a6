"""augkit plugin ``cfm``: correlated feature masking from a mutual-information matrix."""

from collections.abc import Callable
from typing import Any

from augkit import hookimpl
from augkit_cfm.cfm import CorrelatedFeatureMasking
from augkit_cfm.mutual_information import MutualInformation, compute_mutual_information

__all__ = ["CorrelatedFeatureMasking", "MutualInformation", "compute_mutual_information"]


@hookimpl
def augkit_register_augmentations(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("cfm", CorrelatedFeatureMasking)
