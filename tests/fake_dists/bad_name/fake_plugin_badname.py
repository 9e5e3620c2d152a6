"""A plugin that registers a name that is not an identifier."""

from augkit import hookimpl


def _factory():
    return None


@hookimpl
def augkit_register_augmentations(register):
    register("bad-name", _factory)
