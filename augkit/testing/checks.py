"""Conformance checks for augmentations, for plugin authors and for augkit's built-ins.

Every check has the signature ``check(aug, batch_or_schema, *, generator_seed=0,
registry=None) -> None`` and raises `AssertionError` naming the check and the augmentation.
A schema in place of a batch stands for `random_batch` of it (64 items, seeded by
`generator_seed`). `check_augmentation` runs every check that applies; `parametrize_with_checks`
turns them into pytest cases.

Two declarations of the augmentation steer the checks:

* ``granularity`` (``"batch"`` or ``"example"``): one random pattern per batch, or per example.
* ``changes_values`` (class attribute, False when absent): an augmentation that leaves it False
  promises to rewrite masks only (``present`` and ``kept``), sharing the value tensors.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import attrs
import numpy as np
import torch

from augkit.augmentation import Augmentation, PairAugmentation
from augkit.batch import FeatureBatch
from augkit.compose import TwoViews, from_config
from augkit.errors import AugkitError, UnknownNameError
from augkit.registry import Registry
from augkit.schema import Dense, FeatureSchema, MultiCategorical
from augkit.testing.strategies import EXAMPLE_SCHEMA, random_batch

if TYPE_CHECKING:
    import pytest

AnyAugmentation = Augmentation | PairAugmentation | TwoViews
"""What the checks accept: single-view and pair augmentations and their compositions."""

Views = tuple[FeatureBatch, ...]

CHECK_BATCH_SIZE = 64
"""Items in the batch drawn when a check is given a schema."""

IDENTICAL_ITEMS = 256
"""Copies of one item in the batch `check_granularity` augments."""

GRANULARITY_SEEDS = 8
"""Generator seeds `check_granularity` tries."""

GLOBAL_RNG_SEED = 0x5EED
"""Seed of the global RNGs while `check_global_rngs_untouched` watches them."""


class Check(Protocol):
    """The signature every check shares."""

    __name__: str

    def __call__(
        self,
        aug: AnyAugmentation,
        batch_or_schema: FeatureBatch | FeatureSchema,
        *,
        generator_seed: int = 0,
        registry: Registry | None = None,
    ) -> None: ...


# -- declarations -----------------------------------------------------------------------------


def is_pair(aug: AnyAugmentation) -> bool:
    """Whether `aug` returns two views (a `PairAugmentation` or a `TwoViews`)."""
    return isinstance(aug, (PairAugmentation, TwoViews))


def declares_value_changes(aug: AnyAugmentation) -> bool:
    """Whether `aug` (or a step of a composition) sets ``changes_values = True``."""
    return bool(getattr(aug, "changes_values", False))


def declared_granularity(aug: AnyAugmentation) -> object:
    """``aug.granularity`` (a composition's is "batch" when all its steps are)."""
    return getattr(aug, "granularity", None)


def describe(aug: object) -> str:
    """A short label: the registry name and the parameters, long values elided."""
    try:
        config = aug.to_config()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a broken augmentation still needs a label
        return type(aug).__name__
    return _short(config)


def _short(value: object) -> str:
    if isinstance(value, Mapping) and "name" in value:
        params = value.get("params", {})
        inner = (
            ", ".join(f"{k}={_short(v)}" for k, v in params.items()) if isinstance(params, Mapping) else "..."
        )
        return f"{value['name']}({inner})"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    text = repr(value)
    return text if len(text) <= 24 else "..."


# -- helpers ----------------------------------------------------------------------------------


def _fail(check: str, aug: object, message: str) -> NoReturn:
    raise AssertionError(f"{check} failed for {describe(aug)}: {message}")


def _batch(batch_or_schema: FeatureBatch | FeatureSchema, seed: int) -> FeatureBatch:
    """A fresh copy of the batch (so an augmentation that writes into its input cannot spoil
    the next check), or a `random_batch` of the schema."""
    if isinstance(batch_or_schema, FeatureBatch):
        return FeatureBatch(
            batch_or_schema.schema,
            {n: v.clone() for n, v in batch_or_schema.values.items()},
            batch_or_schema.present.clone(),
            {n: k.clone() for n, k in batch_or_schema.kept.items()},
        )
    if isinstance(batch_or_schema, FeatureSchema):
        generator = torch.Generator().manual_seed(seed)
        return random_batch(batch_or_schema, CHECK_BATCH_SIZE, generator=generator)
    raise TypeError(
        f"batch_or_schema must be a FeatureBatch or a FeatureSchema, got {type(batch_or_schema).__name__}"
    )


def _view_name(index: int, count: int) -> str:
    return "the view" if count == 1 else f"view {index + 1}"


def _run(check: str, aug: AnyAugmentation, batch: FeatureBatch, seed: int) -> Views:
    """Call `aug` with a CPU generator seeded `seed`; its views as a tuple of the right arity."""
    out = aug(batch, generator=torch.Generator().manual_seed(seed))
    if is_pair(aug):
        if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(v, FeatureBatch) for v in out)):
            _fail(
                check,
                aug,
                f"a pair augmentation must return two FeatureBatch views, got {_kind(out)}",
            )
        return out
    if not isinstance(out, FeatureBatch):
        _fail(check, aug, f"an augmentation must return a FeatureBatch, got {_kind(out)}")
    return (out,)


@attrs.frozen
class _CheckCall:
    """One call of a check, as `_conformance_check` hands it to the check's body: the check's
    `name`, its arguments, and `batch`, the batch it checks on (see `_batch`)."""

    name: str
    aug: AnyAugmentation
    batch: FeatureBatch
    generator_seed: int
    registry: Registry | None

    def run(self, batch: FeatureBatch | None = None, seed: int | None = None) -> Views:
        """`_run` of `aug` on `batch` (default: the call's) with `seed` (default: generator_seed)."""
        return _run(
            self.name,
            self.aug,
            self.batch if batch is None else batch,
            self.generator_seed if seed is None else seed,
        )

    def fail(self, message: str) -> NoReturn:
        """Raise the AssertionError naming the check and the augmentation."""
        _fail(self.name, self.aug, message)


def _conformance_check(body: Callable[[_CheckCall], None]) -> Check:
    """Every public check is its body under this decorator, which gives it the shared signature.

    ``check(aug, batch_or_schema, *, generator_seed=0, registry=None)`` builds the batch (a
    fresh copy, or a `random_batch` of a schema: `_batch`) and calls ``body(_CheckCall(...))``.
    The check takes the body's name and docstring; `inspect.signature` shows the signature above
    (no ``__wrapped__`` leads it to the body's), and so does the API reference
    (docs/griffe_checks.py).
    """

    def check(
        aug: AnyAugmentation,
        batch_or_schema: FeatureBatch | FeatureSchema,
        *,
        generator_seed: int = 0,
        registry: Registry | None = None,
    ) -> None:
        batch = _batch(batch_or_schema, generator_seed)
        body(_CheckCall(body.__name__, aug, batch, generator_seed, registry))

    check.__name__ = check.__qualname__ = body.__name__
    check.__doc__ = body.__doc__
    return check


def _kind(value: object) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    return type(value).__name__


def _tensors(batch: FeatureBatch) -> dict[str, torch.Tensor]:
    """Every tensor of `batch`, keyed by a readable name."""
    return {
        "present": batch.present,
        **{f"values[{n!r}]": v for n, v in batch.values.items()},
        **{f"kept[{n!r}]": k for n, k in batch.kept.items()},
    }


def _first_difference(first: Views, second: Views) -> str | None:
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        ta, tb = _tensors(a), _tensors(b)
        for key, tensor in ta.items():
            if not torch.equal(tensor, tb[key]):
                return f"{key} of {_view_name(index, len(first))}"
    return None


@contextmanager
def _perturbed_global_rngs(seed: int, device: torch.device) -> Iterator[None]:
    """Reseed the global torch, NumPy and `random` RNGs with `seed`; restore them afterwards."""
    devices = []
    if device.type == "cuda":
        devices.append(torch.cuda.current_device() if device.index is None else device.index)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


# -- the checks -------------------------------------------------------------------------------


@_conformance_check
def check_views_structure(call: _CheckCall) -> None:
    """Each view has the input's schema, and every tensor its shape, dtype and device."""
    batch = call.batch
    views = call.run()
    expected = _tensors(batch)
    for index, view in enumerate(views):
        where = _view_name(index, len(views))
        if view.schema != batch.schema:
            call.fail(f"{where} has schema {view.schema.names}, the input {batch.schema.names}")
        for key, tensor in _tensors(view).items():
            want = expected[key]
            got = (tensor.dtype, tuple(tensor.shape), tensor.device)
            if got != (want.dtype, tuple(want.shape), want.device):
                call.fail(
                    f"{key} of {where} is {tensor.dtype} {list(tensor.shape)} on {tensor.device}; "
                    f"the input's is {want.dtype} {list(want.shape)} on {want.device}",
                )


@_conformance_check
def check_ids_in_range(call: _CheckCall) -> None:
    """Ids are real (``0 .. num_values-1``) wherever a view reads them, dense values finite.

    A view reads a feature where it is present, and a bag's ids where they are also kept.
    """
    views = call.run()
    for index, view in enumerate(views):
        where = _view_name(index, len(views))
        for column, spec in enumerate(view.schema):
            value = view.values[spec.name]
            if isinstance(spec, Dense):
                bad = ~torch.isfinite(value) & view.present[:, column].unsqueeze(1)
                expected = "finite values"
            else:
                read = view.present[:, column]
                if isinstance(spec, MultiCategorical):
                    read = read.unsqueeze(1) & view.kept[spec.name]
                bad = read & ((value < 0) | (value >= spec.num_values))
                expected = f"ids 0..{spec.num_values - 1}"
            if bool(bad.any()):
                position = tuple(int(i) for i in bad.nonzero()[0])
                call.fail(
                    f"values[{spec.name!r}] of {where} holds {value[position].item()!r} at "
                    f"{position}, where it is read; expected {expected}",
                )


@_conformance_check
def check_input_not_mutated(call: _CheckCall) -> None:
    """The input batch's values, ``present`` and ``kept`` are unchanged after the call."""
    batch = call.batch
    before = {key: tensor.clone() for key, tensor in _tensors(batch).items()}
    call.run()
    for key, tensor in _tensors(batch).items():
        if not torch.equal(tensor, before[key]):
            call.fail(f"the input batch's {key} changed in place")


@_conformance_check
def check_reproducible(call: _CheckCall) -> None:
    """Two calls with generators seeded alike give identical views.

    The global torch, NumPy and `random` RNGs are reseeded differently before each call (and
    restored after), so an augmentation that draws from them instead of ``generator`` fails.
    """
    runs = []
    for global_seed in (1, 2):
        with _perturbed_global_rngs(global_seed, call.batch.device):
            runs.append(call.run())
    difference = _first_difference(*runs)
    if difference is not None:
        call.fail(
            f"two calls with generators seeded {call.generator_seed} gave different {difference} "
            "(does it draw from a global RNG instead of `generator`?)",
        )


@_conformance_check
def check_global_rngs_untouched(call: _CheckCall) -> None:
    """The call leaves the global RNG states as they were: torch's (on the CPU, and on the
    batch's CUDA device), NumPy's (``np.random``) and Python's `random`. An augmentation draws
    from the ``generator`` it is given, never from a global RNG, nor reseeds one.

    The global RNGs are seeded afresh for the call (so an augmentation that reseeds one cannot
    happen to leave the state it found) and restored afterwards.
    """
    batch = call.batch
    with _perturbed_global_rngs(GLOBAL_RNG_SEED, batch.device):
        before = _global_rng_states(batch.device)
        call.run()
        after = _global_rng_states(batch.device)
    touched = [label for label, state in before.items() if after[label] != state]
    if touched:
        call.fail(
            f"the call changed the state of the global {' and '.join(touched)} RNG; draw from "
            "`generator` only (e.g. torch.rand(..., generator=generator))",
        )


def _global_rng_states(device: torch.device) -> dict[str, object]:
    """Comparable snapshots of the global RNGs, by the name a failure gives them."""
    kind, keys, *rest = np.random.get_state()
    states: dict[str, object] = {"torch": torch.get_rng_state().numpy().tobytes()}
    if device.type == "cuda":
        states[f"torch {device.type}"] = torch.cuda.get_rng_state(device).numpy().tobytes()
    states["NumPy (np.random)"] = (kind, keys.tobytes(), *rest)
    states["Python `random`"] = random.getstate()
    return states


@_conformance_check
def check_rejects_missing_generator(call: _CheckCall) -> None:
    """``aug(batch, generator=None)`` raises TypeError rather than falling back to a global RNG."""
    try:
        call.aug(call.batch, generator=None)  # type: ignore[arg-type]
    except TypeError:
        return
    except Exception as error:  # noqa: BLE001 - any other error is the finding
        call.fail(f"generator=None raised {type(error).__name__}: {error}; expected TypeError")
    call.fail("generator=None was accepted; it must raise TypeError")


@_conformance_check
def check_no_host_sync(call: _CheckCall) -> None:
    """The augmentation runs on a batch on the "meta" device, whose tensors hold no data.

    Any host sync (``.item()``, ``bool(tensor)``, ``.cpu()``, ``.tolist()``) fails there, and
    so does work on a hard-coded device: the views must stay on the batch's device.
    """
    batch = call.batch.to("meta")
    try:
        views = call.run(batch)
    except (RuntimeError, NotImplementedError) as error:
        call.fail(
            f"it fails on a 'meta' batch ({type(error).__name__}: {error}); does it read tensor "
            "data on the host (.item(), bool(tensor), .cpu(), .tolist()) or assume a device?",
        )
    for index, view in enumerate(views):
        for key, tensor in _tensors(view).items():
            if tensor.device != batch.device:
                call.fail(
                    f"{key} of {_view_name(index, len(views))} is on {tensor.device}, the batch on "
                    f"{batch.device}",
                )


@_conformance_check
def check_generate_then_apply(call: _CheckCall) -> None:
    """``apply(batch, generate_parameters(batch, generator=g))`` equals ``aug(batch, generator=g)``,
    and applying the same parameters twice gives the same views (apply is deterministic)."""
    aug, batch = call.aug, call.batch
    if not isinstance(aug, (Augmentation, PairAugmentation)):
        call.fail(f"{type(aug).__name__} has no generate_parameters/apply")
    params = aug.generate_parameters(batch, generator=torch.Generator().manual_seed(call.generator_seed))
    applied = [aug.apply(batch, params) for _ in range(2)]
    as_views = [v if isinstance(v, tuple) else (v,) for v in applied]
    called = call.run()
    if len(as_views[0]) != len(called):
        call.fail(f"apply returned {_kind(applied[0])}, calling it {len(called)} view(s)")
    for label, other in (
        ("applying the same parameters again", as_views[1]),
        ("calling it", called),
    ):
        difference = _first_difference(as_views[0], other)
        if difference is not None:
            call.fail(f"apply(generate_parameters(...)) and {label} differ in {difference}")


@_conformance_check
def check_config_round_trip(call: _CheckCall) -> None:
    """``to_config()`` is JSON-able, and ``from_config`` of it (through `registry`, the
    process-wide plugin registry by default) rebuilds an augmentation with the same config that
    gives identical views for the same seed."""
    config = call.aug.to_config()
    try:
        loaded = json.loads(json.dumps(config))
    except (TypeError, ValueError) as error:
        call.fail(f"to_config() is not JSON-able ({error}): {config!r}")
    try:
        rebuilt = from_config(loaded, registry=call.registry)
    except (AugkitError, TypeError, ValueError) as error:
        call.fail(
            f"from_config(to_config()) raised {type(error).__name__}: {error} "
            "(is it registered under its name, and are its params its constructor's arguments?)",
        )
    if rebuilt.to_config() != config:
        call.fail(
            f"from_config(to_config()) has config {rebuilt.to_config()!r}, not {config!r}",
        )
    difference = _first_difference(call.run(), _run(call.name, rebuilt, call.batch, call.generator_seed))
    if difference is not None:
        call.fail(f"the augmentation rebuilt from its config gives a different {difference}")


@_conformance_check
def check_mask_contract(call: _CheckCall) -> None:
    """An augmentation that does not declare ``changes_values`` rewrites masks only.

    Its views share the input's value tensors; ``present`` and ``kept`` only go from True to
    False; and a bag that had kept values keeps one unless the feature becomes not present.
    Augmentations that declare ``changes_values = True`` are exempt.
    """
    if declares_value_changes(call.aug):
        return
    batch = call.batch
    views = call.run()
    for index, view in enumerate(views):
        where = _view_name(index, len(views))
        for feature, value in view.values.items():
            original = batch.values[feature]
            if value is not original and value.data_ptr() != original.data_ptr():
                call.fail(
                    f"values[{feature!r}] of {where} is a new tensor; an augmentation that does "
                    "not declare changes_values = True must share the input's value tensors",
                )
        _check_only_drops(call, "present", batch.present, view.present, where)
        for column, spec in enumerate(view.schema):
            if not isinstance(spec, MultiCategorical):
                continue
            before, after = batch.kept[spec.name], view.kept[spec.name]
            _check_only_drops(call, f"kept[{spec.name!r}]", before, after, where)
            emptied = before.any(dim=1) & ~after.any(dim=1) & view.present[:, column]
            if bool(emptied.any()):
                row = int(emptied.nonzero()[0, 0])
                call.fail(
                    f"{where} empties the bag {spec.name!r} of item {row} (kept "
                    f"{before[row].tolist()} -> {after[row].tolist()}) while the feature stays present",
                )


def _check_only_drops(
    call: _CheckCall, key: str, before: torch.Tensor, after: torch.Tensor, where: str
) -> None:
    raised = after & ~before
    if bool(raised.any()):
        position = tuple(int(i) for i in raised.nonzero()[0])
        call.fail(
            f"{key} of {where} goes from False to True at {position}; masks may only drop",
        )


@_conformance_check
def check_granularity(call: _CheckCall) -> None:
    """Granularity "batch" gives every example one pattern; "example" draws per example.

    The augmentation runs on `IDENTICAL_ITEMS` copies of the input's richest item (most
    features present, most values kept) under `GRANULARITY_SEEDS` seeds. With "batch" every
    copy must come out alike. With "example", an augmentation whose output varies between
    seeds must vary between the copies of one batch too.
    """
    grain = declared_granularity(call.aug)
    if grain not in ("batch", "example"):
        call.fail(f"granularity is {grain!r}; expected 'batch' or 'example'")
    batch = call.batch
    if batch.batch_size == 0:
        call.fail("needs a batch with at least one item")
    richness = batch.present.sum(dim=1) + sum(k.sum(dim=1) for k in batch.kept.values())
    index = torch.full((IDENTICAL_ITEMS,), int(richness.argmax()), device=batch.device)
    copies = batch.select(index)
    runs = [call.run(copies, call.generator_seed + s) for s in range(GRANULARITY_SEEDS)]
    varying = [_first_varying_row(views) for views in runs]
    if grain == "batch":
        for seed, found in enumerate(varying):
            if found is not None:
                call.fail(
                    f"declares granularity 'batch', but with seed {call.generator_seed + seed} copies "
                    f"of one item differ in {found}",
                )
        return
    if all(found is None for found in varying):
        first_rows = [tuple(t[:1] for view in views for t in _tensors(view).values()) for views in runs]
        if any(not all(map(torch.equal, first_rows[0], rows)) for rows in first_rows[1:]):
            call.fail(
                f"declares granularity 'example', but all {IDENTICAL_ITEMS} copies of one item "
                "got one pattern per batch (while patterns vary between seeds)",
            )


def _first_varying_row(views: Views) -> str | None:
    for index, view in enumerate(views):
        for key, tensor in _tensors(view).items():
            differs = (tensor != tensor[:1]).reshape(tensor.shape[0], -1).any(dim=1)
            if bool(differs.any()):
                return f"{key} of {_view_name(index, len(views))} (item {int(differs.nonzero()[0, 0])})"
    return None


# -- running them -----------------------------------------------------------------------------

CHECKS: Mapping[str, Check] = {
    check.__name__: check
    for check in (
        check_views_structure,
        check_ids_in_range,
        check_input_not_mutated,
        check_reproducible,
        check_global_rngs_untouched,
        check_rejects_missing_generator,
        check_no_host_sync,
        check_generate_then_apply,
        check_config_round_trip,
        check_mask_contract,
        check_granularity,
    )
}
"""Every check by name, in the order `check_augmentation` runs them."""


def applicable_checks(aug: AnyAugmentation) -> tuple[Check, ...]:
    """The checks that apply to `aug`: all but `check_generate_then_apply` for compositions
    without parameters (`TwoViews`) and `check_mask_contract` for ``changes_values``."""
    skip = set()
    if not isinstance(aug, (Augmentation, PairAugmentation)):
        skip.add("check_generate_then_apply")
    if declares_value_changes(aug):
        skip.add("check_mask_contract")
    return tuple(check for name, check in CHECKS.items() if name not in skip)


def check_augmentation(
    aug: AnyAugmentation,
    batch_or_schema: FeatureBatch | FeatureSchema = EXAMPLE_SCHEMA,
    *,
    generator_seed: int = 0,
    registry: Registry | None = None,
) -> None:
    """Run every applicable check on `aug` (single-view or pair); the first failure raises
    `AssertionError` naming the check and the augmentation."""
    batch = _batch(batch_or_schema, generator_seed)
    for check in applicable_checks(aug):
        check(aug, batch, generator_seed=generator_seed, registry=registry)


def check_pair_augmentation(
    aug: AnyAugmentation,
    batch_or_schema: FeatureBatch | FeatureSchema = EXAMPLE_SCHEMA,
    *,
    generator_seed: int = 0,
    registry: Registry | None = None,
) -> None:
    """`check_augmentation` for an augmentation that must return two views."""
    if not is_pair(aug):
        _fail(
            "check_pair_augmentation",
            aug,
            f"{type(aug).__name__} is not a PairAugmentation (nor a TwoViews)",
        )
    check_augmentation(aug, batch_or_schema, generator_seed=generator_seed, registry=registry)


def parametrize_with_checks(
    augmentations: Iterable[AnyAugmentation | tuple[AnyAugmentation, FeatureBatch | FeatureSchema]],
    *,
    batch_or_schema: FeatureBatch | FeatureSchema = EXAMPLE_SCHEMA,
    expected_failures: Mapping[str, str] | None = None,
    generator_seed: int = 0,
    registry: Registry | None = None,
) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize`` over ``(aug, check)``: one case per applicable check.

    Each item of `augmentations` is an augmentation (checked on `batch_or_schema`) or an
    ``(augmentation, batch_or_schema)`` pair. The test calls ``check(aug)``. Checks named in
    `expected_failures` (check name to reason) are marked ``xfail(strict=True)``: they must
    fail with AssertionError. Case ids read ``<augmentation>-<check name>``::

        @parametrize_with_checks([MyAugmentation(p=0.2)])
        def test_my_augmentation(aug, check):
            check(aug)
    """
    import pytest  # pytest is in the `test` extra, not a base dependency: only this function needs it

    expected = dict(expected_failures or {})
    for key in expected:
        if key not in CHECKS:
            raise UnknownNameError("check in expected_failures", key, CHECKS)
    cases = []
    for item in augmentations:
        aug, data = item if isinstance(item, tuple) else (item, batch_or_schema)
        batch = _batch(data, generator_seed)
        for check in applicable_checks(aug):
            bound: Callable[[AnyAugmentation], None] = functools.partial(
                check, batch_or_schema=batch, generator_seed=generator_seed, registry=registry
            )
            marks: list[Any] = []
            if check.__name__ in expected:
                reason = expected[check.__name__]
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason))
            cases.append(pytest.param(aug, bound, id=f"{describe(aug)}-{check.__name__}", marks=marks))
    return pytest.mark.parametrize(("aug", "check"), cases)
