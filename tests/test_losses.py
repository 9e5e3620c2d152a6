"""The built-in losses against loop-based references, plus their contracts and the registry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augkit
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit.testing.distributed import run_ranks
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


# --- batch softmax: corrected logQ and extra (mixed) negatives -----------------------------


def batch_softmax_mixed_ref(query, item, negatives, *, tau, item_ids, negative_ids, log_q, negative_log_q,
                            correction, remove_hits):
    """Per-row losses by explicit loops: in-batch columns then extra negatives; with
    ``correction == "corrected"`` the positive column keeps its plain logit."""
    q, c = query.tolist(), item.tolist()
    extra = negatives.tolist() if negatives is not None else []
    n = len(q)
    rows = []
    for i in range(n):
        row = []
        for j, vector in enumerate(c + extra):
            in_batch = j < n
            value = dot(q[i], vector) / tau
            if log_q is not None and not (correction == "corrected" and j == i):
                value -= float(log_q[j]) if in_batch else float(negative_log_q[j - n])
            if remove_hits and item_ids is not None and j != i:
                other = item_ids[j] if in_batch else (negative_ids[j - n] if negative_ids is not None else None)
                if other is not None and int(other) == int(item_ids[i]):
                    value = -math.inf
            row.append(value)
        rows.append(row)
    return [lse(row) - row[i] for i, row in enumerate(rows)]


def lse(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values if v != -math.inf))


@st.composite
def mixed_inputs(draw):
    query, item, item_ids, log_q = draw(embedding_inputs())
    m = draw(st.integers(0, 4))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    negatives = torch.randn(m, query.shape[1], generator=generator, dtype=torch.float64) if m else None
    negative_ids = torch.randint(0, 3, (m,), generator=generator) if m and draw(st.booleans()) else None
    negative_log_q = (
        torch.rand(m, generator=generator, dtype=torch.float64).clamp_min(1e-3).log()
        if m and log_q is not None
        else None
    )
    return query, item, item_ids, log_q, negatives, negative_ids, negative_log_q


@SETTINGS
@given(mixed_inputs(), temperatures, st.sampled_from(["standard", "corrected"]), st.booleans())
def test_batch_softmax_with_negatives_and_corrections_matches_reference(inputs, tau, correction, remove_hits):
    query, item, item_ids, log_q, negatives, negative_ids, negative_log_q = inputs
    loss = BatchSoftmaxLoss(tau, remove_accidental_hits=remove_hits, reduction="none", logq_correction=correction)
    got = loss(query, item, item_ids, log_q, negatives=negatives, negative_ids=negative_ids,
               negative_log_q=negative_log_q)
    expected = batch_softmax_mixed_ref(
        query, item, negatives, tau=tau, item_ids=item_ids, negative_ids=negative_ids, log_q=log_q,
        negative_log_q=negative_log_q, correction=correction, remove_hits=remove_hits,
    )
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


@SETTINGS
@given(embedding_inputs(), temperatures, st.booleans())
def test_standard_correction_is_the_default_bit_for_bit(inputs, tau, training):
    query, item, item_ids, log_q = inputs
    default, standard = BatchSoftmaxLoss(tau), BatchSoftmaxLoss(tau, logq_correction="standard")
    default.train(training), standard.train(training)
    assert torch.equal(default(query, item, item_ids, log_q), standard(query, item, item_ids, log_q))


@SETTINGS
@given(embedding_inputs(min_rows=2), temperatures)
def test_corrected_logq_has_the_gradient_of_the_papers_weighted_loss(inputs, tau):
    """Khrylchenko et al.: sg(1 - P_i) * (logsumexp over negatives - s_ii / tau) has the
    gradient of this loss's cross entropy with an uncorrected positive."""
    query, item, _, log_q = inputs
    log_q = torch.rand(query.shape[0], dtype=torch.float64).clamp_min(1e-3).log() if log_q is None else log_q
    q1, q2 = query.clone().requires_grad_(), query.clone().requires_grad_()
    ours = BatchSoftmaxLoss(tau, logq_correction="corrected", reduction="sum")(q1, item, log_q=log_q)
    ours.backward()
    scores = q2 @ item.T / tau
    n = scores.shape[0]
    own = torch.eye(n, dtype=torch.bool)
    logits = torch.where(own, scores, scores - log_q.unsqueeze(0))
    weight = (1 - logits.softmax(1).diagonal()).detach()
    negatives = logits.masked_fill(own, -math.inf).logsumexp(1)
    (weight * (negatives - scores.diagonal())).sum().backward()
    torch.testing.assert_close(q1.grad, q2.grad)


def test_corrected_logq_leaves_the_positive_uncorrected_and_eval_mode_ignores_it():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    log_q = torch.tensor([0.9, 0.1], dtype=torch.float64).log()
    corrected = BatchSoftmaxLoss(1.0, logq_correction="corrected", reduction="none")
    # Row 0: positive logit 1 (plain), negative 0 - log 0.1; row 1: positive 1, negative 0 - log 0.9.
    expected = torch.tensor(
        [math.log(math.exp(1) + 1 / 0.1) - 1, math.log(math.exp(1) + 1 / 0.9) - 1], dtype=torch.float64
    )
    torch.testing.assert_close(corrected(query, query, log_q=log_q), expected)
    corrected.eval()
    torch.testing.assert_close(corrected(query, query, log_q=log_q), BatchSoftmaxLoss(1.0, reduction="none")(query, query))


def test_an_extra_negative_equal_to_the_positive_is_an_accidental_hit():
    query = torch.eye(3, dtype=torch.float64)
    ids = torch.tensor([10, 11, 12])
    negatives = torch.eye(3, dtype=torch.float64)[:2]
    loss = BatchSoftmaxLoss(1.0, reduction="none")
    masked = loss(query, query, ids, negatives=negatives, negative_ids=torch.tensor([10, 99]))
    unmasked = loss(query, query, ids, negatives=negatives, negative_ids=torch.tensor([98, 99]))
    # Row 0: its copy (id 10) is masked, so only the other two columns and the second extra remain.
    torch.testing.assert_close(masked[0], torch.tensor(math.log(math.e + 3) - 1, dtype=torch.float64))
    torch.testing.assert_close(unmasked[0], torch.tensor(math.log(2 * math.e + 3) - 1, dtype=torch.float64))
    torch.testing.assert_close(masked[1:], unmasked[1:])
    assert not BatchSoftmaxLoss(1.0, remove_accidental_hits=False, reduction="none")(
        query, query, ids, negatives=negatives, negative_ids=torch.tensor([10, 99])
    ).equal(masked)


def test_extra_negatives_receive_gradients():
    generator = torch.Generator().manual_seed(0)
    query, item = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    negatives = torch.randn(5, 3, generator=generator, requires_grad=True)
    BatchSoftmaxLoss()(query, item, negatives=negatives).backward()
    assert negatives.grad is not None and bool((negatives.grad.abs().sum(1) > 0).all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"negative_ids": torch.zeros(2, dtype=torch.long)}, "batch_softmax: negative_ids needs negatives"),
        ({"negative_log_q": torch.zeros(2)}, "batch_softmax: negative_log_q needs negatives"),
        ({"negatives": torch.zeros(2, 4)}, r"batch_softmax: negatives must be \[m, 3\]"),
        ({"negatives": torch.zeros(2, 3, dtype=torch.float64)}, r"negatives must be .* torch.float32"),
        ({"negatives": torch.zeros(2, 3), "negative_ids": torch.zeros(3, dtype=torch.long)}, r"negative_ids must be"),
        ({"negatives": torch.zeros(2, 3), "negative_log_q": torch.zeros(2)}, "log_q and negative_log_q go together"),
        (
            {"negatives": torch.zeros(2, 3), "log_q": torch.zeros(4)},
            "log_q and negative_log_q go together",
        ),
    ],
)
def test_bad_negatives_are_named(kwargs, message):
    x = torch.zeros(4, 3)
    with pytest.raises(BatchValidationError, match=message):
        BatchSoftmaxLoss()(x, x, **kwargs)


def test_bad_logq_correction_is_named():
    with pytest.raises(ConfigError, match="batch_softmax: logq_correction must be one of standard, corrected, got 'new'"):
        BatchSoftmaxLoss(logq_correction="new")


def _gathered_corrected(rank, world, query, item, ids, log_q, negatives, negative_log_q):
    half = query.shape[0] // world
    rows = slice(rank * half, (rank + 1) * half)
    q = query[rows].clone().requires_grad_()
    loss = BatchSoftmaxLoss(0.5, gather=True, logq_correction="corrected")
    value = loss(q, item[rows], ids[rows], log_q[rows], negatives=negatives, negative_ids=ids[:2] + 100,
                 negative_log_q=negative_log_q)
    value.backward()
    return value.detach(), q.grad


def test_corrected_logq_and_negatives_under_gather_equal_one_process():
    generator = torch.Generator().manual_seed(3)
    query, item = torch.randn(6, 3, generator=generator), torch.randn(6, 3, generator=generator)
    ids = torch.tensor([0, 1, 2, 0, 3, 1])
    log_q = torch.rand(6, generator=generator).log()
    negatives, negative_log_q = torch.randn(2, 3, generator=generator), torch.rand(2, generator=generator).log()
    results = run_ranks(
        _gathered_corrected, 2, query, item, ids, log_q, negatives, negative_log_q
    )
    q = query.clone().requires_grad_()
    loss = BatchSoftmaxLoss(0.5, logq_correction="corrected")
    whole = loss(q, item, ids, log_q, negatives=negatives, negative_ids=ids[:2] + 100, negative_log_q=negative_log_q)
    whole.backward()
    # Each rank's scalar is its share of the global mean times the world size.
    torch.testing.assert_close(sum(value for value, _ in results) / 2, whole.detach())
    torch.testing.assert_close(torch.cat([grad for _, grad in results]) / 2, q.grad)
