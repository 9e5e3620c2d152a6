"""Mutual information of two item-feature columns, counting bag values as fractional pairs.

For items i with weights w_i, value bags U_i (feature X) and V_i (feature Y)::

    p(x, y) ∝ Σ_i w_i Σ_{u ∈ U_i, v ∈ V_i} [x = u, y = v] / (|U_i| · |V_i|)

over the items where both bags are non-empty; the marginals are the joint's. Cells are
counted on pair codes ``x * V_y + y``: with a dense ``np.bincount`` table while it has at
most `DENSE_CELLS` cells and at most `DENSE_PER_PAIR` cells per value pair counted, else
sparsely (``np.unique``), so vocabularies of millions of values never allocate a
``[V_x, V_y]`` table and few items never pay for scanning a large one. Two single-valued
features take a direct path: one code per item, no broadcasting.

Estimators (``estimator``): ``"plugin"`` reads MI off the empirical joint. For independent
features it is biased upward by about ``(K_x - 1)(K_y - 1) / (2N)`` nats (``K``: values
seen, ``N``: items; the chi-square degrees of freedom of the G-test over 2N), so a sparse
feature of many values (tags on few items) looks correlated with anything of many values.
``"miller_madow"`` subtracts that bias, with ``K`` the values of each feature seen among the
items that have both and ``N`` those items (with item weights, Kish's effective size
``(Σw)² / Σw²``), clipped at 0. It is for pairs of two features: `compute_mutual_information`
keeps the plug-in diagonal (the entropies).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from augkit_cfm.columns import Column

DENSE_CELLS = 1 << 24
"""Largest joint table (``V_x * V_y`` cells) counted densely."""

DENSE_PER_PAIR = 8
"""Most joint-table cells per counted value pair for the dense count (else sparse)."""

CHUNK_TRIPLES = 1 << 22
"""Most (item, x-slot, y-slot) triples broadcast at once, to bound memory."""


ESTIMATORS: tuple[str, ...] = ("plugin", "miller_madow")
"""How a pair's MI is estimated from the counts (see the module docstring)."""


def pair_mutual_information(x: Column, y: Column, weights: np.ndarray, estimator: str = "plugin") -> float:
    """MI of `x` and `y` in nats (float64), ``>= 0``; 0.0 when no item has both features
    or those items weigh nothing. `weights`: float64 ``[N]``, non-negative; `estimator`: one
    of `ESTIMATORS`."""
    codes, mass = _joint_cells(x, y, weights)
    total = mass.sum()
    if codes.size == 0 or total <= 0.0:
        return 0.0
    joint = mass / total
    xs, ys = np.divmod(codes, y.num_values)
    px = np.bincount(xs, joint, minlength=x.num_values)
    py = np.bincount(ys, joint, minlength=y.num_values)
    value = float(np.sum(joint * (np.log(joint) - np.log(px[xs]) - np.log(py[ys]))))
    if estimator == "miller_madow":
        cells = (np.count_nonzero(px) - 1) * (np.count_nonzero(py) - 1)
        value -= cells / (2.0 * _effective_items(x, y, weights))
    return max(value, 0.0)


def _effective_items(x: Column, y: Column, weights: np.ndarray) -> float:
    """Kish's effective number of the items that have both features: ``(Σw)² / Σw²``."""
    both = weights[(x.sizes > 0) & (y.sizes > 0)]
    return float(both.sum() ** 2 / np.square(both).sum())


def _joint_cells(x: Column, y: Column, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint's non-empty cells: (pair codes int64, unnormalised mass float64)."""
    cells = x.num_values * y.num_values
    slots = x.ids.shape[0] * x.ids.shape[1] * y.ids.shape[1]  # value pairs, at most
    if cells <= min(DENSE_CELLS, DENSE_PER_PAIR * slots):
        table = np.zeros(cells)
        for codes, mass in _triples(x, y, weights):
            table += np.bincount(codes, mass, minlength=cells)
        codes = np.flatnonzero(table)
        return codes, table[codes]
    parts = [_sum_by_code(codes, mass) for codes, mass in _triples(x, y, weights)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0)
    codes, mass = _sum_by_code(
        np.concatenate([codes for codes, _ in parts]), np.concatenate([mass for _, mass in parts])
    )
    weighed = mass > 0  # cells of zero-weight items only are empty, as in the dense count
    return codes[weighed], mass[weighed]


def _sum_by_code(codes: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(codes, return_inverse=True)
    return unique, np.bincount(inverse, mass, minlength=unique.size)


def _triples(x: Column, y: Column, weights: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pair codes and masses of every valid (item, x-slot, y-slot), in chunks of items."""
    if x.ids.shape[1] == 1 and y.ids.shape[1] == 1:  # single-valued: one pair per item
        for start in range(0, x.ids.shape[0], CHUNK_TRIPLES):
            rows = slice(start, start + CHUNK_TRIPLES)
            both = x.valid[rows, 0] & y.valid[rows, 0]
            yield (x.ids[rows, 0] * y.num_values + y.ids[rows, 0])[both], weights[rows][both]
        return
    x_sizes, y_sizes = x.sizes, y.sizes
    items = np.flatnonzero((x_sizes > 0) & (y_sizes > 0))
    share = weights[items] / (x_sizes[items] * y_sizes[items])
    width = x.ids.shape[1] * y.ids.shape[1]
    step = max(1, CHUNK_TRIPLES // width)
    for start in range(0, items.size, step):
        rows = items[start : start + step]
        valid = x.valid[rows][:, :, None] & y.valid[rows][:, None, :]
        codes = x.ids[rows][:, :, None] * y.num_values + y.ids[rows][:, None, :]
        mass = np.broadcast_to(share[start : start + step, None, None], valid.shape)
        yield codes[valid], mass[valid]
