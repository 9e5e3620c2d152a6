"""A softmax temperature, fixed or learned."""

from __future__ import annotations

import math

import torch
from torch import nn

from augkit_losses import _checks


class Temperature(nn.Module):
    """Divide logits by a temperature tau > 0.

    Fixed (default): tau is a constant and the module has no parameter. Learnable: the module
    holds the parameter ``log_value`` = log(tau), so tau = exp(log_value) stays positive
    whatever the optimiser does.
    """

    def __init__(self, value: float, *, learnable: bool = False, who: str = "temperature") -> None:
        super().__init__()
        initial = _checks.temperature(who, value)
        self.learnable = _checks.flag(who, "learn_temperature", learnable)
        if self.learnable:
            self.log_value = nn.Parameter(torch.tensor(math.log(initial)))
        else:
            self.fixed = initial

    @property
    def value(self) -> torch.Tensor:
        """tau as a 0-dim tensor (on the parameter's device when learnable)."""
        if self.learnable:
            return self.log_value.exp()
        return torch.tensor(self.fixed)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits / tau``, same shape and dtype as `logits`."""
        if self.learnable:
            return logits / self.log_value.exp().to(logits.dtype)
        return logits / self.fixed

    def extra_repr(self) -> str:
        if self.learnable:
            return "learnable=True"
        return f"value={self.fixed}"
