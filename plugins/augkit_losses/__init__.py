"""augkit plugin ``losses``: batch softmax with logQ correction, InfoNCE and spread-out.

Each loss is a `torch.nn.Module` registered under its ``name``; build one with
``augkit.get_registry().create("loss", "batch_softmax", {"temperature": 0.05})``.
"""

from augkit import hookimpl
from augkit_losses.batch_softmax import BatchSoftmaxLoss
from augkit_losses.info_nce import InfoNCELoss
from augkit_losses.spread_out import SpreadOutLoss
from augkit_losses.temperature import Temperature

__all__ = ["BatchSoftmaxLoss", "InfoNCELoss", "SpreadOutLoss", "Temperature"]


@hookimpl
def augkit_register_losses(register):
    for loss in (BatchSoftmaxLoss, InfoNCELoss, SpreadOutLoss):
        register(loss.name, loss)
