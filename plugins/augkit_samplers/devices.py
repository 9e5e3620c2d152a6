"""Where index tensors live: the device argument of samplers and the move onto it."""

from __future__ import annotations

import torch


def device(who: str, value: object) -> torch.device:
    """A `torch.device` from a device or a string such as ``"cpu"`` or ``"cuda:0"``."""
    if isinstance(value, torch.device):
        return value
    if isinstance(value, str):
        try:
            return torch.device(value)
        except RuntimeError:
            pass
    raise ValueError(
        f"{who}: device must be a torch.device or a string like 'cpu' or 'cuda:0', got {value!r}"
    )


def move(draws: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`draws` on `device`; asynchronously unless into host memory (which is read at once)."""
    return draws.to(device, non_blocking=device.type != "cpu")
