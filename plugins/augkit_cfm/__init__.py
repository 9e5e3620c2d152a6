"""augkit plugin ``cfm``: correlated feature masking from a mutual-information matrix."""

from augkit import hookimpl


@hookimpl
def augkit_register_augmentations(register):
    pass
