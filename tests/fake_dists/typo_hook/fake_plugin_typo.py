"""A plugin whose hook name is misspelled (augmentation, not augmentations)."""

from augkit import hookimpl


def _factory():
    return None


@hookimpl
def augkit_register_augmentation(register):
    register("typo_aug", _factory)
