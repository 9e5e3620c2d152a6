"""augkit plugin ``dropout``: value dropout inside multi-valued features."""

from augkit import hookimpl
from augkit_dropout.dropout import ValueDropout

__all__ = ["ValueDropout"]


@hookimpl
def augkit_register_augmentations(register):
    register("dropout", ValueDropout)
