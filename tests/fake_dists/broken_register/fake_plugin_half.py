"""A plugin that registers an augmentation, then fails in its loss hook."""

from augkit import hookimpl


def _factory():
    return None


@hookimpl
def augkit_register_augmentations(register):
    register("half_aug", _factory)


@hookimpl
def augkit_register_losses(register):
    raise RuntimeError("fake_plugin_half breaks while registering losses (test fixture)")
