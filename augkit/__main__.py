"""``python -m augkit`` (and ``torchrun -m augkit``): the ``augkit`` command line."""

from augkit.cli import main

main(prog_name="augkit")
