"""The built-in losses against loop-based references, plus their contracts and the registry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augkit
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit_losses import BatchSoftmaxLoss, InfoNCELoss, SpreadOutLoss, Temperature

SETTINGS = settings(max_examples=40, deadline=None)


# --- loop-based references (float64 Python numbers, one pair at a time) -------------------


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def unit(a: list[float]) -> list[float]:
    norm = math.sqrt(dot(a, a))
    return [x / max(norm, 1e-12) for x in a]


def cross_entropy_rows(logits: list[list[float]]) -> list[float]:
    """-log softmax(row i)[i] for every row i."""
    losses = []
    for i, row in enumerate(logits):
        top = max(row)
        log_sum = top + math.log(sum(math.exp(v - top) for v in row if v != -math.inf))
        losses.append(log_sum - row[i])
    return losses


def reduce_ref(losses: list[float], reduction: str) -> list[float] | float:
    if reduction == "none":
        return losses
    return sum(losses) / len(losses) if reduction == "mean" else sum(losses)


def batch_softmax_ref(query, item, *, tau, item_ids, log_q, training, remove_hits, reduction):
    q, c = query.tolist(), item.tolist()
    n = len(q)
    logits = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            value = dot(q[i], c[j]) / tau
            if log_q is not None and training:
                value -= float(log_q[j])
            if remove_hits and item_ids is not None and j != i and int(item_ids[j]) == int(item_ids[i]):
                value = -math.inf
            logits[i][j] = value
    return reduce_ref(cross_entropy_rows(logits), reduction)


def info_nce_ref(z1, z2, *, tau, symmetric, item_ids, reduction):
    a = [unit(row) for row in z1.tolist()]
    b = [unit(row) for row in z2.tolist()]
    n = len(a)
    forward = [[0.0] * n for _ in range(n)]
    backward = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            hit = item_ids is not None and j != i and int(item_ids[j]) == int(item_ids[i])
            forward[i][j] = -math.inf if hit else dot(a[i], b[j]) / tau
            backward[i][j] = -math.inf if hit else dot(b[i], a[j]) / tau
    losses = cross_entropy_rows(forward)
    if symmetric:
        losses = [0.5 * (x + y) for x, y in zip(losses, cross_entropy_rows(backward), strict=True)]
    return reduce_ref(losses, reduction)


def spread_out_ref(x, item_ids) -> float:
    rows = [unit(row) for row in x.tolist()]
    n, d = len(rows), len(rows[0])
    first = second = 0.0
    count = 0
    for i in range(n):
        for j in range(n):
            if i == j or (item_ids is not None and int(item_ids[i]) == int(item_ids[j])):
                continue
            inner = dot(rows[i], rows[j])
            first += inner
            second += inner * inner
            count += 1
    if count == 0:
        return 0.0
    return (first / count) ** 2 + max(0.0, second / count - 1.0 / d)


def assert_matches(got: torch.Tensor, expected: list[float] | float) -> None:
    torch.testing.assert_close(got, torch.tensor(expected, dtype=got.dtype), rtol=1e-9, atol=1e-9)


# --- random inputs ------------------------------------------------------------------------


@st.composite
def embedding_inputs(draw, min_rows: int = 1):
    """(a, b, item_ids, log_q): float64 [n, d] pairs, ids with repeats, log-probabilities."""
    n = draw(st.integers(min_rows, 6))
    d = draw(st.integers(1, 5))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    a = torch.randn(n, d, generator=generator, dtype=torch.float64)
    b = torch.randn(n, d, generator=generator, dtype=torch.float64)
    item_ids = draw(st.none() | st.just(torch.randint(0, 3, (n,), generator=generator)))
    log_q = torch.rand(n, generator=generator, dtype=torch.float64).clamp_min(1e-3).log()
    return a, b, item_ids, draw(st.none() | st.just(log_q))


reductions = st.sampled_from(["mean", "sum", "none"])
temperatures = st.floats(0.05, 2.0)


# --- batch softmax ------------------------------------------------------------------------


@SETTINGS
@given(embedding_inputs(), temperatures, st.booleans(), st.booleans(), reductions)
def test_batch_softmax_matches_reference(inputs, tau, training, remove_hits, reduction) -> None:
    query, item, item_ids, log_q = inputs
    loss = BatchSoftmaxLoss(tau, remove_accidental_hits=remove_hits, reduction=reduction)
    loss.train(training)
    got = loss(query, item, item_ids=item_ids, log_q=log_q)
    expected = batch_softmax_ref(
        query,
        item,
        tau=tau,
        item_ids=item_ids,
        log_q=log_q,
        training=training,
        remove_hits=remove_hits,
        reduction=reduction,
    )
    assert_matches(got, expected)


def test_log_q_lowers_the_logit_of_a_popular_item() -> None:
    # Both items score the same for every query; item 0 is 9 times as likely to be sampled.
    query = torch.ones(2, 3, dtype=torch.float64)
    item = torch.ones(2, 3, dtype=torch.float64)
    log_q = torch.tensor([0.9, 0.1], dtype=torch.float64).log()
    loss = BatchSoftmaxLoss(1.0, reduction="none")
    # logits of each row: [s - log 0.9, s - log 0.1] -> softmax [0.1, 0.9]: popular item LOWER.
    torch.testing.assert_close(
        loss(query, item, log_q=log_q), torch.tensor([0.1, 0.9], dtype=torch.float64).log().neg()
    )


def test_eval_mode_ignores_log_q() -> None:
    generator = torch.Generator().manual_seed(0)
    query, item = torch.randn(2, 5, 4, generator=generator)
    log_q = torch.rand(5, generator=generator).log()
    loss = BatchSoftmaxLoss().eval()
    torch.testing.assert_close(loss(query, item, log_q=log_q), loss(query, item))
    assert not torch.allclose(loss.train()(query, item, log_q=log_q), loss(query, item))


def test_accidental_hits_leave_the_softmax() -> None:
    # All logits equal: each row's loss is log(number of candidates in its softmax).
    query = item = torch.zeros(3, 2)
    ids = torch.tensor([7, 7, 8])
    expected = torch.tensor([math.log(2), math.log(2), math.log(3)])
    torch.testing.assert_close(BatchSoftmaxLoss(reduction="none")(query, item, item_ids=ids), expected)
    kept = BatchSoftmaxLoss(remove_accidental_hits=False, reduction="none")
    torch.testing.assert_close(kept(query, item, item_ids=ids), torch.full((3,), math.log(3)))


def test_batch_softmax_gradients_reach_both_towers() -> None:
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(4, 3, generator=generator, requires_grad=True)
    item = torch.randn(4, 3, generator=generator, requires_grad=True)
    BatchSoftmaxLoss()(
        query, item, torch.tensor([0, 1, 0, 2]), torch.rand(4, generator=generator).log()
    ).backward()
    for grad in (query.grad, item.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_learnable_temperature_is_a_positive_trained_parameter() -> None:
    loss = BatchSoftmaxLoss(0.5, learn_temperature=True)
    (parameter,) = loss.parameters()
    torch.testing.assert_close(loss.temperature.value, torch.tensor(0.5))
    generator = torch.Generator().manual_seed(2)
    query, item = torch.randn(2, 8, 4, generator=generator)
    optimiser = torch.optim.SGD(loss.parameters(), lr=100.0)  # a step far past tau = 0
    loss(query, item).backward()
    assert parameter.grad is not None and parameter.grad != 0
    optimiser.step()
    assert loss.temperature.value != 0.5 and loss.temperature.value > 0
    assert "temperature.log_value" in loss.state_dict()


def test_fixed_temperature_has_no_parameter() -> None:
    loss = BatchSoftmaxLoss(0.2)
    assert list(loss.parameters()) == [] and dict(loss.state_dict()) == {}
    assert loss.temperature.value == pytest.approx(0.2)


def test_loss_keeps_the_input_dtype() -> None:
    query = torch.randn(4, 3, dtype=torch.bfloat16)
    assert BatchSoftmaxLoss(learn_temperature=True)(query, query).dtype == torch.bfloat16
    assert InfoNCELoss()(query, query).dtype == torch.bfloat16
    assert SpreadOutLoss()(query).dtype == torch.bfloat16


# --- InfoNCE ------------------------------------------------------------------------------


@SETTINGS
@given(embedding_inputs(), temperatures, st.booleans(), reductions)
def test_info_nce_matches_reference(inputs, tau, symmetric, reduction) -> None:
    z1, z2, item_ids, _ = inputs
    got = InfoNCELoss(tau, symmetric=symmetric, reduction=reduction)(z1, z2, item_ids=item_ids)
    expected = info_nce_ref(z1, z2, tau=tau, symmetric=symmetric, item_ids=item_ids, reduction=reduction)
    assert_matches(got, expected)


def test_info_nce_uses_cosine_similarity() -> None:
    generator = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(2, 6, 4, generator=generator)
    scale = torch.rand(6, 1, generator=generator) * 10 + 0.1
    loss = InfoNCELoss(symmetric=True)
    torch.testing.assert_close(loss(z1 * scale, z2), loss(z1, z2))


def test_info_nce_gradients_reach_both_views() -> None:
    generator = torch.Generator().manual_seed(4)
    z1 = torch.randn(5, 3, generator=generator, requires_grad=True)
    z2 = torch.randn(5, 3, generator=generator, requires_grad=True)
    InfoNCELoss(symmetric=True)(z1, z2).backward()
    for grad in (z1.grad, z2.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


# --- spread-out ---------------------------------------------------------------------------


@SETTINGS
@given(embedding_inputs(min_rows=2))
def test_spread_out_matches_reference(inputs) -> None:
    x, _, item_ids, _ = inputs
    assert_matches(SpreadOutLoss()(x, item_ids=item_ids), spread_out_ref(x, item_ids))


def test_spread_out_known_values() -> None:
    loss = SpreadOutLoss()
    assert loss(torch.eye(4) * 3) == 0  # orthogonal: M1 = M2 = 0
    # Identical unit vectors: M1 = M2 = 1, so L = 1 + (1 - 1/d).
    torch.testing.assert_close(loss(torch.ones(5, 4)), torch.tensor(1 + 1 - 1 / 4))
    # Copies of one item are matching pairs; with ids, no pair is left.
    assert loss(torch.ones(3, 4), item_ids=torch.zeros(3, dtype=torch.long)) == 0


def test_spread_out_gradient_flows() -> None:
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(5), requires_grad=True)
    SpreadOutLoss()(x).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --- devices, host syncs, registry, validation --------------------------------------------


def test_losses_run_on_the_meta_device_without_reading_values() -> None:
    # Meta tensors have no data: any host sync (.item(), bool(tensor)) would raise here.
    x = torch.empty(5, 4, device="meta")
    ids = torch.empty(5, dtype=torch.long, device="meta")
    log_q = torch.empty(5, device="meta")
    for loss in (BatchSoftmaxLoss(learn_temperature=True).to("meta"), BatchSoftmaxLoss()):
        assert loss(x, x, ids, log_q).device.type == "meta"
    assert InfoNCELoss(symmetric=True)(x, x, ids).device.type == "meta"
    assert SpreadOutLoss()(x, ids).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_losses_run_where_the_embeddings_live() -> None:
    generator = torch.Generator().manual_seed(6)
    query, item = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    ids, log_q = (
        torch.tensor([0, 1, 0, 2, 3, 1]),
        torch.rand(6, generator=generator, dtype=torch.float64).log(),
    )
    cases = [
        (BatchSoftmaxLoss(learn_temperature=True), (query, item, ids, log_q)),
        (InfoNCELoss(symmetric=True), (query, item, ids)),
        (SpreadOutLoss(), (query, ids)),
    ]
    for loss, args in cases:
        on_gpu = loss.to("cuda")(*(a.cuda() for a in args))
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), loss.to("cpu")(*args))


def test_registry_builds_the_losses() -> None:
    registry = augkit.get_registry()
    assert {"batch_softmax", "info_nce", "spread_out"} <= set(registry.names("loss"))
    assert registry.get("loss", "batch_softmax").distribution == "augkit"
    loss = registry.create("loss", "batch_softmax", {"temperature": 0.1, "learn_temperature": True})
    assert isinstance(loss, BatchSoftmaxLoss) and loss.temperature.learnable
    assert isinstance(registry.create("loss", "info_nce", {"symmetric": True}), InfoNCELoss)
    assert isinstance(registry.create("loss", "spread_out"), SpreadOutLoss)
    with pytest.raises(UnknownNameError, match="'temprature'; did you mean 'temperature'"):
        registry.create("loss", "info_nce", {"temprature": 0.1})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BatchSoftmaxLoss(0.0), "batch_softmax: temperature must be a finite number > 0, got 0.0"),
        (lambda: BatchSoftmaxLoss(math.inf), "temperature must be a finite number > 0, got inf"),
        (lambda: BatchSoftmaxLoss(math.nan, learn_temperature=True), "got nan"),
        (lambda: InfoNCELoss(-0.1), "info_nce: temperature must be a finite number > 0, got -0.1"),
        (lambda: InfoNCELoss("0.1"), "got '0.1'"),
        (lambda: InfoNCELoss(True), "got True"),
        (lambda: BatchSoftmaxLoss(learn_temperature=1), "learn_temperature must be True or False, got 1"),
        (
            lambda: BatchSoftmaxLoss(remove_accidental_hits="yes"),
            "remove_accidental_hits must be True or False",
        ),
        (lambda: InfoNCELoss(symmetric=None), "info_nce: symmetric must be True or False, got None"),
        (lambda: BatchSoftmaxLoss(reduction="avg"), "reduction must be one of mean, sum, none, got 'avg'"),
        (lambda: Temperature(0.0, who="mine"), "mine: temperature must be"),
    ],
)
def test_bad_options_are_named(build, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


X = torch.zeros(4, 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: BatchSoftmaxLoss()(X[0], X),
            r"query must be a floating-point tensor \[n, d\] with n >= 1 and d >= 1, got shape \(3,\)",
        ),
        (
            lambda: BatchSoftmaxLoss()(X, X.long()),
            r"item must be a floating-point tensor .* dtype torch.int64",
        ),
        (lambda: BatchSoftmaxLoss()(X, [[0.0]]), r"item must be .* got list"),
        (lambda: BatchSoftmaxLoss()(X[:0], X[:0]), r"query must be .* got shape \(0, 3\)"),
        (
            lambda: BatchSoftmaxLoss()(X, X[:3]),
            r"query and item must have the same shape \[n, d\], got \(4, 3\) and \(3, 3\)",
        ),
        (lambda: BatchSoftmaxLoss()(X, X[:, :2]), r"got \(4, 3\) and \(4, 2\)"),
        (
            lambda: BatchSoftmaxLoss()(X, X.double()),
            r"query and item must share dtype and device, got torch.float32 on cpu and torch.float64 on cpu",
        ),
        (
            lambda: BatchSoftmaxLoss()(X, X, torch.zeros(3, dtype=torch.long)),
            r"item_ids must be an integer tensor \[4\] on cpu, got shape \(3,\)",
        ),
        (
            lambda: BatchSoftmaxLoss()(X, X, torch.zeros(4)),
            r"item_ids must be an integer tensor .* dtype torch.float32",
        ),
        (
            lambda: BatchSoftmaxLoss()(X, X, torch.zeros(4, dtype=torch.bool)),
            r"item_ids must be an integer tensor .* dtype torch.bool",
        ),
        (
            lambda: BatchSoftmaxLoss()(X, X, log_q=torch.zeros(4, dtype=torch.long)),
            r"log_q must be a floating-point tensor \[4\] on cpu, got .* torch.int64",
        ),
        (lambda: BatchSoftmaxLoss()(X, X, log_q=torch.zeros(4, 1)), r"log_q must be .* got shape \(4, 1\)"),
        (
            lambda: BatchSoftmaxLoss()(X, X, log_q=torch.zeros(4, device="meta")),
            r"log_q must be .* on cpu, got .* device meta",
        ),
        (lambda: InfoNCELoss()(X, X[:2]), r"info_nce: z1 and z2 must have the same shape"),
        (
            lambda: InfoNCELoss()(X, X, torch.zeros(5, dtype=torch.long)),
            r"info_nce: item_ids must be an integer tensor \[4\]",
        ),
        (
            lambda: SpreadOutLoss()(X[:1]),
            r"spread_out: x must be a floating-point tensor \[n, d\] with n >= 2 .* got shape \(1, 3\)",
        ),
        (
            lambda: SpreadOutLoss()(X, torch.zeros(4, 1, dtype=torch.long)),
            r"spread_out: item_ids must be an integer tensor \[4\]",
        ),
    ],
)
def test_bad_inputs_are_named(call, message) -> None:
    with pytest.raises(BatchValidationError, match=message):
        call()
