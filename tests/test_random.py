"""augkit.random.generator_for: one reproducible, independent stream per key."""

from __future__ import annotations

import torch

from augkit.random import generator_for


def draws(*key: int) -> torch.Tensor:
    return torch.rand(8, generator=generator_for(*key))


def test_the_same_key_gives_the_same_draws() -> None:
    assert torch.equal(draws(0, 3), draws(0, 3))


def test_neighbouring_keys_of_one_length_give_different_streams() -> None:
    for keys in ([(0,), (1,), (2,)], [(0, 0), (0, 1), (1, 0), (1, 1)], [(0, 4, 0), (0, 4, 1), (0, 3, 0)]):
        streams = [draws(*key) for key in keys]
        assert all(not torch.equal(a, b) for i, a in enumerate(streams) for b in streams[i + 1 :]), keys


def test_trailing_zeros_do_not_change_the_stream_as_documented() -> None:
    assert torch.equal(draws(1), draws(1, 0))
