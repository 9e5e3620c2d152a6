"""The ``samplers`` plugin: uniform item and interaction samplers, count and streaming
frequency estimators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augkit
from augkit.errors import UnknownNameError
from augkit_samplers import (
    CountFrequency,
    InteractionSampler,
    StreamingFrequency,
    UniformItemSampler,
    mixture_log_q,
)

SETTINGS = settings(max_examples=40, deadline=None)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def take(sampler: UniformItemSampler, seed: int, n: int) -> list[torch.Tensor]:
    stream = sampler.batches(torch.Generator().manual_seed(seed))
    return [next(stream) for _ in range(n)]


def zipf(num_items: int) -> torch.Tensor:
    """Per-draw probabilities ``q_k ∝ 1/k`` of ids ``0 .. num_items-1`` (float64)."""
    weights = 1.0 / torch.arange(1, num_items + 1, dtype=torch.float64)
    return weights / weights.sum()


# -- uniform_items ---------------------------------------------------------------------------


@pytest.mark.parametrize("replacement", [False, True])
def test_uniform_items_is_reproducible_and_seed_dependent(replacement: bool) -> None:
    sampler = UniformItemSampler(50, 8, replacement=replacement)
    first, again, other = take(sampler, 3, 20), take(sampler, 3, 20), take(sampler, 4, 20)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert all(b.dtype == torch.long and b.shape == (8,) and b.device.type == "cpu" for b in first)


@given(
    num_items=st.integers(1, 60),
    batch_size=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
@SETTINGS
def test_uniform_items_without_replacement_walks_permutations(
    num_items: int, batch_size: int, seed: int
) -> None:
    if batch_size > num_items:
        with pytest.raises(ValueError, match=r"batch_size=\d+ exceeds num_items"):
            UniformItemSampler(num_items, batch_size)
        return
    per_permutation = num_items // batch_size
    batches = take(UniformItemSampler(num_items, batch_size), seed, 3 * per_permutation)
    for start in range(0, len(batches), per_permutation):
        ids = torch.cat(batches[start : start + per_permutation])
        assert len(ids) == per_permutation * batch_size
        assert ids.unique().numel() == ids.numel()  # distinct within a permutation
        assert int(ids.min()) >= 0 and int(ids.max()) < num_items


@pytest.mark.parametrize(("batch_size", "replacement"), [(100, False), (128, False), (128, True)])
def test_uniform_items_have_uniform_frequencies(batch_size: int, replacement: bool) -> None:
    """Pearson's statistic of the id counts against the uniform expectation.

    With independent draws it follows chi-square(999): mean 999, sd sqrt(2 * 999) ~ 44.7; we
    allow 6 sd either side. Permutation epochs spread ids more evenly than independent draws,
    so there only the upper bound applies (and a divisible batch size gives exactly equal
    counts).
    """
    num_items, num_batches = 1000, 2000
    ids = torch.cat(take(UniformItemSampler(num_items, batch_size, replacement=replacement), 0, num_batches))
    counts = torch.bincount(ids, minlength=num_items).double()
    expected = ids.numel() / num_items
    statistic = float(((counts - expected) ** 2 / expected).sum())
    dof = num_items - 1
    assert statistic < dof + 6 * math.sqrt(2 * dof)
    if replacement:
        assert statistic > dof - 6 * math.sqrt(2 * dof)
    elif num_items % batch_size == 0:
        assert statistic == 0.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_items": 0, "batch_size": 1}, "uniform_items: num_items must be a positive int, got 0"),
        ({"num_items": 5, "batch_size": 2.0}, "uniform_items: batch_size must be a positive int"),
        ({"num_items": 5, "batch_size": True}, "uniform_items: batch_size must be a positive int"),
        (
            {"num_items": 5, "batch_size": 2, "replacement": 1},
            "uniform_items: replacement must be True or False",
        ),
        ({"num_items": 5, "batch_size": 2, "device": "gpu7"}, "uniform_items: device must be"),
        ({"num_items": 5, "batch_size": 6}, r"batch_size=6 exceeds num_items=5.*replacement=True"),
    ],
)
def test_uniform_items_reject_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UniformItemSampler(**params)


def test_uniform_items_with_replacement_allow_batches_beyond_the_corpus() -> None:
    (batch,) = take(UniformItemSampler(3, 10, replacement=True), 0, 1)
    assert batch.shape == (10,) and set(batch.tolist()) <= {0, 1, 2}


# -- interactions ----------------------------------------------------------------------------


@given(
    num_interactions=st.integers(1, 200),
    batch_size=st.integers(1, 64),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@SETTINGS
def test_interactions_visit_every_row_once_per_epoch(
    num_interactions: int, batch_size: int, drop_last: bool, seed: int
) -> None:
    if drop_last and batch_size > num_interactions:
        with pytest.raises(ValueError, match="would give empty epochs"):
            InteractionSampler(num_interactions, batch_size, drop_last=drop_last)
        return
    sampler = InteractionSampler(num_interactions, batch_size, drop_last=drop_last)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):  # two epochs from one generator
        batches = list(sampler.batches(generator))
        assert len(batches) == len(sampler)
        assert all(len(b) == batch_size for b in batches[:-1])
        rows = torch.cat(batches)
        assert rows.dtype == torch.long
        assert rows.unique().numel() == rows.numel()
        assert rows.min() >= 0 and rows.max() < num_interactions
        if drop_last:
            assert len(batches[-1]) == batch_size
            assert rows.numel() == num_interactions // batch_size * batch_size
        else:
            assert rows.numel() == num_interactions


def test_interactions_shuffle_each_epoch_reproducibly() -> None:
    sampler = InteractionSampler(100, 32)
    one, two = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    epochs = [torch.cat(list(sampler.batches(one))) for _ in range(2)]
    assert torch.equal(epochs[0], torch.cat(list(sampler.batches(two))))
    assert not torch.equal(epochs[0], epochs[1])
    assert [len(b) for b in sampler.batches(one)] == [32, 32, 32, 4]


def test_samplers_require_a_generator() -> None:
    with pytest.raises(TypeError, match=r"interactions: generator must be a torch\.Generator"):
        InteractionSampler(10, 2).batches(0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"uniform_items: generator must be a torch\.Generator"):
        UniformItemSampler(10, 2).batches(None)  # type: ignore[arg-type]


# -- count -----------------------------------------------------------------------------------


@given(
    num_items=st.integers(1, 30),
    smoothing=st.floats(0.01, 5.0),
    data=st.data(),
)
@SETTINGS
def test_count_matches_counts_exactly(num_items: int, smoothing: float, data: st.DataObject) -> None:
    batches = data.draw(
        st.lists(st.lists(st.integers(0, num_items - 1), max_size=20), max_size=6), label="batches"
    )
    estimator = CountFrequency(num_items, smoothing)
    for batch in batches:
        estimator.update(torch.tensor(batch, dtype=torch.long))
    seen = [i for batch in batches for i in batch]
    counts = np.bincount(np.asarray(seen, dtype=np.int64), minlength=num_items)
    assert estimator.counts.tolist() == counts.tolist()
    assert int(estimator.total) == len(seen)
    expected = np.log((counts + smoothing) / (len(seen) + smoothing * num_items))
    got = estimator.log_prob(torch.arange(num_items).view(1, -1))
    assert got.shape == (1, num_items) and got.dtype == torch.float32
    np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(got).all()


def test_count_fit_replaces_state_and_update_adds() -> None:
    estimator = CountFrequency(4, smoothing=0.5).fit(np.array([3, 0, 1, 0]))
    estimator.update(torch.tensor([[1, 1], [3, 1]]))
    assert estimator.counts.tolist() == [3, 3, 1, 1] and int(estimator.total) == 8
    log_prob = estimator.log_prob(torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(log_prob.exp(), torch.tensor([3.5, 3.5, 1.5, 1.5]) / 10)
    estimator.fit(torch.zeros(4, dtype=torch.int32))
    torch.testing.assert_close(estimator.log_prob(torch.tensor([2])), torch.tensor([math.log(0.25)]))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda e: e.update(torch.tensor([1, 7, 2])),
            ValueError,
            r"count: id 7 at position \(1,\) is out of range; expected 0..4",
        ),
        (lambda e: e.log_prob(torch.tensor([[0], [-1]])), ValueError, r"count: id -1 at position \(1, 0\)"),
        (
            lambda e: e.update(torch.tensor([1.0])),
            TypeError,
            "count: ids must be an integer tensor .* torch.float32",
        ),
        (lambda e: e.log_prob([1, 2]), TypeError, "count: ids must be a torch.Tensor"),
        (lambda e: e.fit(torch.tensor([1, 2])), ValueError, r"count: counts must have shape \[5\]"),
        (
            lambda e: e.fit(torch.tensor([1, 2, -3, 0, 0])),
            ValueError,
            "count: counts must be >= 0, got -3 for id 2",
        ),
        (lambda e: e.fit(torch.ones(5)), TypeError, "count: counts must be an integer tensor"),
    ],
)
def test_count_rejects_bad_ids_and_counts(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(CountFrequency(5))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_items": -2}, "count: num_items must be a positive int, got -2"),
        ({"num_items": 3, "smoothing": 0.0}, "count: smoothing must be a finite number > 0, got 0.0"),
        ({"num_items": 3, "smoothing": math.inf}, "count: smoothing must be a finite number > 0"),
        ({"num_items": 3, "check_ids": "yes"}, "count: check_ids must be True or False"),
    ],
)
def test_count_rejects_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CountFrequency(**params)


# -- streaming -------------------------------------------------------------------------------


def reference_streaming(
    batches: list[list[int]], hash_size: int, learning_rate: float
) -> tuple[list[int], list[float]]:
    """Algorithm 2 of Yi et al. one slot at a time, each slot of a batch updated once."""
    last_seen, gap = [0] * hash_size, [0.0] * hash_size
    for step, batch in enumerate(batches, start=1):
        for slot in {i % hash_size for i in batch}:
            elapsed = step - last_seen[slot]
            gap[slot] = (
                elapsed if gap[slot] == 0 else (1 - learning_rate) * gap[slot] + learning_rate * elapsed
            )
            last_seen[slot] = step
    return last_seen, gap


@given(
    hash_size=st.integers(1, 12),
    learning_rate=st.floats(0.01, 1.0),
    batches=st.lists(st.lists(st.integers(0, 40), max_size=10), max_size=25),
)
@SETTINGS
def test_streaming_matches_the_sequential_algorithm(
    hash_size: int, learning_rate: float, batches: list[list[int]]
) -> None:
    estimator = StreamingFrequency(hash_size, learning_rate)
    for batch in batches:
        estimator.update(torch.tensor(batch, dtype=torch.long))
    last_seen, gap = reference_streaming(batches, hash_size, learning_rate)
    assert int(estimator.step) == len(batches)
    assert estimator.last_seen.tolist() == last_seen
    np.testing.assert_allclose(estimator.gap.numpy(), gap, rtol=1e-5)
    ids = torch.arange(2 * hash_size)
    expected = [-math.log(g) if g > 0 else -math.log(len(batches) + 1) for g in gap]
    np.testing.assert_allclose(estimator.log_prob(ids).numpy(), expected * 2, rtol=1e-5, atol=1e-6)
    assert (estimator.log_prob(ids) <= 0).all()


@given(
    batches=st.lists(st.lists(st.integers(0, 60), max_size=12), min_size=1, max_size=20),
    learning_rate=st.floats(0.01, 1.0),
)
@SETTINGS
def test_streaming_collisions_merge_the_ids_of_a_slot(batches: list[list[int]], learning_rate: float) -> None:
    """With hash size 4, ids congruent mod 4 share one estimate: that of their union, which a
    collision-free estimator sees when fed the ids mod 4."""
    tiny = StreamingFrequency(hash_size=4, learning_rate=learning_rate)
    merged = StreamingFrequency(hash_size=1024, learning_rate=learning_rate)
    for batch in batches:
        ids = torch.tensor(batch, dtype=torch.long)
        tiny.update(ids)
        merged.update(ids % 4)
    ids = torch.arange(61)
    torch.testing.assert_close(tiny.log_prob(ids), merged.log_prob(ids % 4))


def test_streaming_collision_of_alternating_ids() -> None:
    """Ids 0 and 4 alternate: apart, each is in every second batch; in one slot, every batch."""
    apart, together = StreamingFrequency(8, learning_rate=1.0), StreamingFrequency(4, learning_rate=1.0)
    for step in range(10):
        ids = torch.tensor([4 * (step % 2)] * 3)  # repeats within a batch count once
        apart.update(ids)
        together.update(ids)
    torch.testing.assert_close(apart.log_prob(torch.tensor([0, 4])), torch.full((2,), -math.log(2)))
    torch.testing.assert_close(together.log_prob(torch.tensor([0, 4])), torch.zeros(2))


def test_streaming_initial_estimates() -> None:
    estimator = StreamingFrequency(16)
    torch.testing.assert_close(
        estimator.log_prob(torch.tensor([3])), torch.zeros(1)
    )  # constant: cancels in logQ
    for _ in range(4):
        estimator.update(torch.tensor([], dtype=torch.long))  # an empty batch is still a step
    estimator.update(torch.tensor([3]))
    # first sighting at step 5: gap 5; unseen after 5 steps: gap 6
    torch.testing.assert_close(estimator.log_prob(torch.tensor([3, 7])), -torch.tensor([5.0, 6.0]).log())
    assert int(estimator.step) == 5


def zipf_stream(num_items: int, batch_size: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``LongTensor[steps, batch_size]`` of Zipf draws and each id's per-step probability
    ``1 - (1 - q)^batch_size`` of being in a batch (what the estimator estimates)."""
    q = zipf(num_items)
    draws = torch.multinomial(
        q.float(), steps * batch_size, replacement=True, generator=torch.Generator().manual_seed(seed)
    )
    return draws.view(steps, batch_size), 1 - (1 - q) ** batch_size


def test_streaming_converges_on_a_stationary_stream() -> None:
    """Zipf(1) over 1000 ids, batches of 256, 3000 steps, learning rate 0.01.

    Ids with per-step probability p >= 0.25 (118 of them) are seen >= 750 times, so the
    initial values weigh (1 - 0.01)^750 < 1e-3. After that the gap estimate is an exponential
    average of geometric gaps (mean 1/p, variance (1-p)/p^2) whose relative sd is
    sqrt(lr / (2 - lr) * (1 - p)) <= 6.1%. We allow 25% (4 sd at worst) for each id, and 5%
    for the median: over 20 seeds the worst id was off by 20% and the worst median by 3.1%.
    """
    stream, p = zipf_stream(1000, 256, 3000, seed=0)
    estimator = StreamingFrequency(hash_size=4096, learning_rate=0.01)
    for batch in stream:
        estimator.update(batch)
    frequent = p >= 0.25
    assert int(frequent.sum()) == 118
    estimate = estimator.log_prob(torch.arange(1000)).exp().double()
    relative_error = (estimate / p - 1).abs()[frequent]
    assert relative_error.max() < 0.25, relative_error.max()
    assert relative_error.median() < 0.05, relative_error.median()


def reference_occurrences(
    batches: list[list[int]], hash_size: int, learning_rate: float
) -> tuple[list[int], list[float]]:
    """Algorithm 1 of Yi et al. one occurrence at a time (a repeat within a step sees a gap of
    0); a slot's first step sets gap = steps / occurrences."""
    last_seen, gap = [0] * hash_size, [0.0] * hash_size
    for step, batch in enumerate(batches, start=1):
        slots = [i % hash_size for i in batch]
        first = {slot for slot in slots if gap[slot] == 0}
        for slot in first:
            gap[slot] = (step - last_seen[slot]) / slots.count(slot)
            last_seen[slot] = step
        for slot in slots:
            if slot in first:
                continue
            gap[slot] = (1 - learning_rate) * gap[slot] + learning_rate * (step - last_seen[slot])
            last_seen[slot] = step
    return last_seen, gap


@given(
    hash_size=st.integers(1, 12),
    learning_rate=st.floats(0.01, 0.99),
    batches=st.lists(st.lists(st.integers(0, 40), max_size=10), max_size=25),
)
@SETTINGS
def test_streaming_occurrences_match_the_sequential_algorithm(
    hash_size: int, learning_rate: float, batches: list[list[int]]
) -> None:
    estimator = StreamingFrequency(hash_size, learning_rate, count="occurrences")
    for batch in batches:
        estimator.update(torch.tensor(batch, dtype=torch.long))
    last_seen, gap = reference_occurrences(batches, hash_size, learning_rate)
    assert int(estimator.step) == len(batches)
    assert estimator.last_seen.tolist() == last_seen
    gap = np.array(gap)
    np.testing.assert_allclose(
        estimator.gap.numpy(), np.where(gap > 0, np.maximum(gap, np.finfo(np.float32).tiny), 0.0), rtol=1e-4
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_occurrences_converge_to_the_expected_count_per_step(seed: int) -> None:
    """Zipf(1) over 200 ids, batches of 64, 3000 steps, learning rate 0.01: the estimate of
    the expected occurrences per step, ``64 q``, over the 43 ids with ``64 q >= 0.25``.

    The average is over per-occurrence gaps, zeros for repeats within a step, so it is noisier
    than the distinct count's for frequent ids (for ``64 q = 10`` the relative sd of one gap
    is about sqrt(64 q - 1) = 3, about 21% after the exponential average). Bounds: 40% for
    each id, 8% at the median, and a mean signed error within 4% (no systematic bias); over
    seeds 0-2 the worst id was off by 25%, the worst median 6.1%, the worst mean 1.6%. The
    distinct count saturates at 1 for id 0 (drawn about 11 times per batch)."""
    stream, _ = zipf_stream(200, 64, 3000, seed=seed)
    expected = 64 * zipf(200)
    occurrences = StreamingFrequency(hash_size=256, learning_rate=0.01, count="occurrences")
    distinct = StreamingFrequency(hash_size=256, learning_rate=0.01)
    for batch in stream:
        occurrences.update(batch)
        distinct.update(batch)
    frequent = expected >= 0.25
    assert int(frequent.sum()) == 43
    estimate = occurrences.log_prob(torch.arange(200)).exp().double()
    signed = (estimate / expected - 1)[frequent]
    assert signed.abs().max() < 0.40, signed.abs().max()
    assert signed.abs().median() < 0.08, signed.abs().median()
    assert signed.mean().abs() < 0.04, signed.mean()
    assert float(estimate[0]) > 5
    assert float(distinct.log_prob(torch.tensor([0])).exp()) <= 1.0


def test_streaming_follows_a_drift() -> None:
    """Ids 0 and 99 swap frequencies at step 1000 (per-step probability 1.0 and 0.29).

    With learning rate 0.02, 600 steps later the rarer id has been seen about 174 times, so
    the pre-swap value weighs 0.98^174 ~ 3%, and the relative sd is sqrt(0.02/1.98*0.71) ~ 8.5%;
    we allow 30% (3.5 sd) either side of the new probability (the old one is off by > 70%).
    Over 20 seeds the worst error was 17.5%.
    """
    stream, p = zipf_stream(1000, 256, 1600, seed=1)
    swap = torch.arange(1000)
    swap[0], swap[99] = 99, 0
    stream[1000:] = swap[stream[1000:]]
    estimator = StreamingFrequency(hash_size=1000, learning_rate=0.02)
    pair = torch.tensor([0, 99])
    for batch in stream[:1000]:
        estimator.update(batch)
    before = estimator.log_prob(pair).exp().double()
    assert ((before / p[pair] - 1).abs() < 0.3).all(), before
    for batch in stream[1000:]:
        estimator.update(batch)
    after = estimator.log_prob(pair).exp().double()
    assert ((after / p[pair.flip(0)] - 1).abs() < 0.3).all(), after


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda e: e.update(torch.tensor([3, -1])),
            ValueError,
            r"streaming: id -1 at position \(1,\) is out of range; expected 0 or more",
        ),
        (lambda e: e.log_prob(torch.tensor([True])), TypeError, "streaming: ids must be an integer tensor"),
    ],
)
def test_streaming_rejects_bad_ids(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(StreamingFrequency(8))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hash_size": 0}, "streaming: hash_size must be a positive int, got 0"),
        ({"learning_rate": 0.0}, r"streaming: learning_rate must be a number in \(0, 1\], got 0.0"),
        ({"learning_rate": 1.5}, "streaming: learning_rate must be a number in"),
        ({"check_ids": None}, "streaming: check_ids must be True or False"),
        ({"count": "all"}, "streaming: count must be one of distinct, occurrences, got 'all'"),
    ],
)
def test_streaming_rejects_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamingFrequency(**params)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CountFrequency(20),
        lambda: StreamingFrequency(8, 0.3),
        lambda: StreamingFrequency(8, 0.3, count="occurrences"),
    ],
)
def test_estimators_checkpoint_through_state_dict(make) -> None:
    stream, _ = zipf_stream(20, 6, 30, seed=2)
    trained, restored = make(), make()
    for batch in stream[:20]:
        trained.update(batch)
    restored.load_state_dict(trained.state_dict())
    for batch in stream[20:]:
        trained.update(batch)
        restored.update(batch)
    ids = torch.arange(20)
    assert torch.equal(trained.log_prob(ids), restored.log_prob(ids))


def test_unchecked_ids_still_check_dtype_and_never_index_silently() -> None:
    streaming = StreamingFrequency(8, check_ids=False)
    streaming.update(torch.tensor([1, 9], dtype=torch.int32))
    assert streaming.last_seen[1] == 1
    with pytest.raises(TypeError, match="streaming: ids must be an integer tensor"):
        streaming.update(torch.tensor([0.5]))
    with pytest.raises(IndexError, match="out of bounds"):
        CountFrequency(5, check_ids=False).log_prob(torch.tensor([5]))


# -- registry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "kind"),
    [
        ("uniform_items", {"num_items": 10, "batch_size": 4, "replacement": True}, UniformItemSampler),
        ("interactions", {"num_interactions": 10, "batch_size": 4, "drop_last": True}, InteractionSampler),
        ("count", {"num_items": 10, "smoothing": 0.5}, CountFrequency),
        ("streaming", {"hash_size": 64, "learning_rate": 0.1}, StreamingFrequency),
        ("streaming", {"hash_size": 64, "count": "occurrences"}, StreamingFrequency),
    ],
)
def test_registry_builds_samplers_by_name(name: str, params: dict, kind: type) -> None:
    registry = augkit.get_registry()
    assert registry.get("sampler", name).distribution == "augkit"
    built = registry.create("sampler", name, params)
    assert isinstance(built, kind)
    for key, value in params.items():
        assert getattr(built, key) == value


def test_registry_rejects_unknown_sampler_parameters() -> None:
    with pytest.raises(
        UnknownNameError,
        match="unknown parameter of sampler 'streaming' 'hashsize'; did you mean 'hash_size'",
    ):
        augkit.get_registry().create("sampler", "streaming", {"hashsize": 8})


# -- devices ---------------------------------------------------------------------------------


@cuda
def test_samplers_place_indices_on_the_device_without_host_syncs() -> None:
    generator = torch.Generator("cuda").manual_seed(0)
    uniform = UniformItemSampler(100, 10, device="cuda")
    interactions = InteractionSampler(100, 30, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stream = uniform.batches(generator)
        batches = [next(stream) for _ in range(25)] + list(interactions.batches(generator))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(b.device.type == "cuda" and b.dtype == torch.long for b in batches)
    # a CPU generator gives the CPU stream, moved
    cpu = take(UniformItemSampler(100, 10), 7, 3)
    moved = UniformItemSampler(100, 10, device="cuda").batches(torch.Generator().manual_seed(7))
    assert all(torch.equal(a, next(moved).cpu()) for a in cpu)


@cuda
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: CountFrequency(50, **kw),
        lambda **kw: StreamingFrequency(64, 0.2, **kw),
        lambda **kw: StreamingFrequency(64, 0.2, count="occurrences", **kw),
    ],
)
def test_estimators_agree_across_devices_without_host_syncs(make) -> None:
    """Unchecked ids (``check_ids=False``) never read back from the device."""
    stream, _ = zipf_stream(50, 16, 40, seed=3)
    cpu, gpu = make(), make(check_ids=False, device="cuda")
    ids = torch.arange(50)
    stream_gpu, ids_gpu = stream.cuda(), ids.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in stream_gpu:
            gpu.update(batch)
        result = gpu.log_prob(ids_gpu)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for batch in stream:
        cpu.update(batch)
    torch.testing.assert_close(result.cpu(), cpu.log_prob(ids))
    with pytest.raises(ValueError, match="ids are on cpu but the estimator's state is on cuda:0"):
        gpu.log_prob(ids)


# -- mixture_log_q ---------------------------------------------------------------------------


@given(
    q=st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=8),
    batch_size=st.integers(1, 512),
    num_uniform=st.integers(0, 512),
    num_items=st.integers(1, 10**6),
)
@SETTINGS
def test_mixture_log_q_is_the_expected_count_among_the_candidates(q, batch_size, num_uniform, num_items) -> None:
    per_draw = torch.tensor(q, dtype=torch.float64)
    got = mixture_log_q(per_draw.log(), batch_size=batch_size, num_uniform=num_uniform, num_items=num_items)
    expected = (batch_size * per_draw + num_uniform / num_items).log()
    torch.testing.assert_close(got, expected)
    per_batch = mixture_log_q(
        (batch_size * per_draw).log(), batch_size=batch_size, num_uniform=num_uniform, num_items=num_items,
        per="batch",
    )
    torch.testing.assert_close(per_batch, expected)
    assert got.dtype == torch.float64 and got.shape == per_draw.shape


def test_mixture_log_q_matches_a_simulated_mixture() -> None:
    """Batches of 32 Zipf draws plus 16 distinct uniform ids from 50: the mean count of each id
    among the 48 candidates over 20,000 steps is within 3% of exp(mixture_log_q)."""
    generator = torch.Generator().manual_seed(0)
    q = zipf(50)
    steps = 20000
    in_batch = torch.multinomial(q.float(), steps * 32, replacement=True, generator=generator)
    uniform = torch.rand(steps, 50, generator=generator).argsort(1)[:, :16].reshape(-1)
    counts = torch.bincount(torch.cat([in_batch, uniform]), minlength=50).double() / steps
    expected = mixture_log_q(q.log(), batch_size=32, num_uniform=16, num_items=50).exp()
    assert ((counts / expected - 1).abs() < 0.03).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "mixture_log_q: batch_size must be a positive int"),
        ({"num_uniform": -1}, ValueError, "mixture_log_q: num_uniform must be an int >= 0"),
        ({"num_items": True}, ValueError, "mixture_log_q: num_items must be a positive int"),
        ({"per": "step"}, ValueError, "mixture_log_q: per must be one of draw, batch"),
        ({"batch_log_q": torch.zeros(2, dtype=torch.long)}, TypeError, "batch_log_q must be a floating-point"),
    ],
)
def test_mixture_log_q_rejects_bad_arguments(kwargs, error, message) -> None:
    arguments = {"batch_log_q": torch.zeros(2), "batch_size": 4, "num_uniform": 2, "num_items": 10, **kwargs}
    log_q = arguments.pop("batch_log_q")
    with pytest.raises(error, match=message):
        mixture_log_q(log_q, **arguments)
