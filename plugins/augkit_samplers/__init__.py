"""augkit plugin: built-in samplers."""

from augkit import hookimpl


@hookimpl
def augkit_register_samplers(register):
    pass
