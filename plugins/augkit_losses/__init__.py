"""augkit plugin: built-in losses."""

from augkit import hookimpl


@hookimpl
def augkit_register_losses(register):
    pass
