"""One of two distributions that register the augmentation name 'clash'."""

from augkit import hookimpl


def _factory():
    return None


@hookimpl
def augkit_register_augmentations(register):
    register("clash", _factory)
