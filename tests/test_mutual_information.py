"""Mutual information between item features (augkit_cfm.mutual_information)."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import defaultdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mutual_info_score

import augkit_cfm.mutual_information as mi_module
from augkit import (
    BatchValidationError,
    Categorical,
    ConfigError,
    Dense,
    FeatureBatch,
    FeatureSchema,
    MultiCategorical,
    UnknownNameError,
)
from augkit_cfm import MutualInformation, compute_mutual_information

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def tables(draw, *, multi: bool = True, missing: bool = True, weighted: bool = True):
    """(schema, raw user data per feature, weights or None) of a small random item table."""
    size = draw(st.integers(1, 12))
    count = draw(st.integers(1, 4))
    specs, raw = [], {}
    low = -1 if missing else 0
    for f in range(count):
        num_values = draw(st.integers(1, 4))
        if multi and draw(st.booleans()):
            max_len = draw(st.integers(1, 3))
            rows = draw(
                st.lists(
                    st.lists(st.integers(low, num_values - 1), min_size=max_len, max_size=max_len),
                    min_size=size,
                    max_size=size,
                )
            )
            specs.append(MultiCategorical(name=f"f{f}", num_values=num_values, max_len=max_len))
        else:
            rows = draw(st.lists(st.integers(low, num_values - 1), min_size=size, max_size=size))
            specs.append(Categorical(name=f"f{f}", num_values=num_values))
        raw[f"f{f}"] = rows
    weights = None
    if weighted and draw(st.booleans()):
        weights = draw(
            st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.0]), min_size=size, max_size=size).filter(
                lambda w: sum(w) > 0
            )
        )
    return FeatureSchema(specs), raw, weights


def bag(row) -> list[int]:
    """The values of one item's raw cell: a single id or a list of ids, -1 dropped."""
    cells = row if isinstance(row, list) else [row]
    return [v for v in cells if v != -1]


def brute_force_mi(first, second, weights) -> float:
    """Reference: explicit loops over items and value pairs into a dict joint distribution."""
    joint: dict[tuple[int, int], float] = defaultdict(float)
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        us, vs = bag(a), bag(b)
        for u in us:
            for v in vs:
                joint[(u, v)] += weights[i] / (len(us) * len(vs))
    total = sum(joint.values())
    if total == 0:
        return 0.0
    px: dict[int, float] = defaultdict(float)
    py: dict[int, float] = defaultdict(float)
    for (u, v), mass in joint.items():
        px[u] += mass / total
        py[v] += mass / total
    return sum((m / total) * math.log((m / total) / (px[u] * py[v])) for (u, v), m in joint.items() if m > 0)


def entropy(values, weights=None) -> float:
    weights = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    mass = np.bincount(np.asarray(values), weights)
    p = mass[mass > 0] / mass.sum()
    return float(-(p * np.log(p)).sum())


@given(tables())
@SETTINGS
def test_matches_brute_force_reference(table):
    schema, raw, weights = table
    corpus = FeatureBatch.from_tensors(schema, raw)
    mi = compute_mutual_information(corpus, weights=None if weights is None else torch.tensor(weights))
    w = [1.0] * corpus.batch_size if weights is None else weights
    assert mi.names == schema.names
    assert mi.weighting == "uniform" if weights is None else mi.weighting.startswith("weights:")
    for a, b in itertools.product(schema.names, repeat=2):
        assert mi[a, b] == pytest.approx(brute_force_mi(raw[a], raw[b], w), abs=1e-9)
    assert np.array_equal(mi.matrix, mi.matrix.T)
    assert (mi.matrix >= 0).all()


@given(tables())
@SETTINGS
def test_sparse_and_dense_counts_agree(table):
    """Large vocabularies take the sparse count; zero-weight items must not add empty cells."""
    import augkit_cfm.pairwise as pairwise

    schema, raw, weights = table
    corpus = FeatureBatch.from_tensors(schema, raw)
    w = None if weights is None else torch.tensor(weights)
    dense = compute_mutual_information(corpus, weights=w)
    original = pairwise.DENSE_CELLS
    try:
        pairwise.DENSE_CELLS = 0
        sparse = compute_mutual_information(corpus, weights=w)
    finally:
        pairwise.DENSE_CELLS = original
    np.testing.assert_allclose(sparse.matrix, dense.matrix, rtol=0, atol=1e-12)


@given(tables(weighted=False), st.sampled_from([0.5, 3.0, 1e3]))
@SETTINGS
def test_scaling_weights_leaves_mi_unchanged(table, scale):
    schema, raw, _ = table
    corpus = FeatureBatch.from_tensors(schema, raw)
    uniform = compute_mutual_information(corpus)
    scaled = compute_mutual_information(corpus, weights=np.full(corpus.batch_size, scale))
    np.testing.assert_allclose(scaled.matrix, uniform.matrix, atol=1e-12)
    assert scaled.weighting.startswith("weights:") and uniform.weighting == "uniform"


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=30),
    st.lists(st.integers(0, 5), min_size=30, max_size=30),
)
@SETTINGS
def test_single_valued_uniform_equals_sklearn(xs, ys):
    ys = ys[: len(xs)]
    schema = FeatureSchema([Categorical(name="x", num_values=6), Categorical(name="y", num_values=6)])
    mi = compute_mutual_information(FeatureBatch.from_tensors(schema, {"x": xs, "y": ys}))
    assert mi["x", "y"] == pytest.approx(mutual_info_score(xs, ys), abs=1e-9)


@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=40),
    st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=40, max_size=40),
)
@SETTINGS
def test_feature_with_itself_is_its_entropy(values, weights):
    weights = weights[: len(values)]
    if sum(weights) == 0:
        weights[0] = 1.0
    schema = FeatureSchema([Categorical(name="x", num_values=7)])
    corpus = FeatureBatch.from_tensors(schema, {"x": values})
    assert compute_mutual_information(corpus)["x", "x"] == pytest.approx(entropy(values), abs=1e-12)
    weighted = compute_mutual_information(corpus, weights=np.array(weights))
    assert weighted["x", "x"] == pytest.approx(entropy(values, weights), abs=1e-12)


def test_independent_features_give_zero():
    # A full cartesian grid: every (a, tags-bag, b) combination once, so a, tags and b are
    # exactly independent, counting bag values fractionally.
    bags = [[0, -1], [1, 2], [0, 3]]
    grid = list(itertools.product(range(3), range(len(bags)), range(2)))
    schema = FeatureSchema(
        [
            Categorical(name="a", num_values=3),
            MultiCategorical(name="tags", num_values=4, max_len=2),
            Categorical(name="b", num_values=2),
        ]
    )
    corpus = FeatureBatch.from_tensors(
        schema,
        {
            "a": [a for a, _, _ in grid],
            "tags": [bags[t] for _, t, _ in grid],
            "b": [b for _, _, b in grid],
        },
    )
    mi = compute_mutual_information(corpus)
    off_diagonal = mi.matrix[~np.eye(3, dtype=bool)]
    np.testing.assert_allclose(off_diagonal, 0.0, atol=1e-12)
    assert mi["a", "a"] == pytest.approx(math.log(3))
    assert mi["b", "b"] == pytest.approx(math.log(2))


def test_missing_values_leave_the_item_out_of_that_pair_only():
    schema = FeatureSchema([Categorical(name=n, num_values=2) for n in ("a", "b", "c")])
    full = {"a": [0, 1, 0, 1], "b": [0, 1, 1, 0], "c": [0, 1, 0, 1]}
    holed = {**full, "c": [0, 1, -1, -1]}
    both = compute_mutual_information(FeatureBatch.from_tensors(schema, full))
    some = compute_mutual_information(FeatureBatch.from_tensors(schema, holed))
    assert some["a", "b"] == both["a", "b"]
    assert some["a", "c"] == pytest.approx(math.log(2))  # on items 0 and 1, c equals a


def test_an_id_of_two_million_items_is_fast_and_meets_the_entropy_bound():
    size = 2_000_000
    schema = FeatureSchema(
        [Categorical(name="item_id", num_values=size), Categorical(name="shelf", num_values=10)]
    )
    corpus = FeatureBatch.from_tensors(
        schema, {"item_id": torch.arange(size), "shelf": torch.arange(size) % 7}
    )
    start = time.perf_counter()
    mi = compute_mutual_information(corpus)
    assert time.perf_counter() - start < 10.0
    assert mi["item_id", "item_id"] == pytest.approx(math.log(size), abs=1e-9)
    assert mi["item_id", "shelf"] == pytest.approx(math.log(7), abs=1e-9)


def test_dense_features_are_left_out_or_rejected_by_name():
    schema = FeatureSchema(
        [Categorical(name="a", num_values=2), Dense(name="price", dim=1), Categorical(name="b", num_values=2)]
    )
    corpus = FeatureBatch.from_tensors(schema, {"a": [0, 1], "price": torch.zeros(2, 1), "b": [1, 0]})
    assert compute_mutual_information(corpus).names == ("a", "b")
    with pytest.raises(BatchValidationError, match="'price' is Dense"):
        compute_mutual_information(corpus, features=["a", "price"])
    only_dense = FeatureSchema([Dense(name="price", dim=1)])
    with pytest.raises(BatchValidationError, match="no categorical feature"):
        compute_mutual_information(FeatureBatch.from_tensors(only_dense, {"price": torch.zeros(2, 1)}))


def small_corpus() -> FeatureBatch:
    schema = FeatureSchema(
        [
            Categorical(name="a", num_values=3),
            MultiCategorical(name="tags", num_values=4, max_len=3),
            Categorical(name="b", num_values=2),
            Categorical(name="c", num_values=4),
        ]
    )
    return FeatureBatch.from_tensors(
        schema,
        {
            "a": [0, 1, 2, 0, 1, 2, 0],
            "tags": [[0, 1, -1], [2, -1, -1], [3, 0, 1], [-1, -1, -1], [1, 2, 3], [0, -1, -1], [2, 3, -1]],
            "b": [0, 1, 1, 0, -1, 1, 0],
            "c": [3, 2, 1, 0, 3, 2, 1],
        },
    )


def test_features_come_in_schema_order_and_errors_name_the_feature():
    corpus = small_corpus()
    assert compute_mutual_information(corpus, features=["c", "a"]).names == ("a", "c")
    with pytest.raises(UnknownNameError, match="'d'"):
        compute_mutual_information(corpus, features=["a", "d"])
    with pytest.raises(ValueError, match="distinct"):
        compute_mutual_information(corpus, features=["a", "a"])


@settings(max_examples=20, deadline=None)
@given(text=st.text(max_size=8))
def test_a_string_of_features_is_rejected_not_split_into_letters(text):
    corpus = small_corpus()
    message = f"features must be a list of feature names, got the string {text!r}; write [{text!r}]"
    with pytest.raises(ValueError) as raised:
        compute_mutual_information(corpus, features=text)
    assert str(raised.value) == f"compute_mutual_information: {message}"
    with pytest.raises(ValueError) as raised:
        compute_mutual_information(corpus, features=["a", "b"]).extend(corpus, text)
    assert str(raised.value) == f"extend: {message}"


def test_names_of_a_matrix_must_be_a_list_not_a_string():
    with pytest.raises(ConfigError, match="names must be distinct feature names, got 'ab'"):
        MutualInformation(names="ab", matrix=np.zeros((2, 2)), fingerprints={"a": "0", "b": "0"})


def test_out_of_range_ids_in_an_unvalidated_batch_are_rejected():
    corpus = small_corpus()
    values = dict(corpus.values)
    values["c"] = torch.tensor([3, 2, 1, 9, 3, 2, 1])
    with pytest.raises(BatchValidationError, match=r"feature 'c': id 9 of item 3"):
        compute_mutual_information(corpus.evolve(values=values))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), r"shape \[7\]"),
        (np.array([1, 1, 1, -1, 1, 1, 1.0]), r"weights\[3\] = -1.0"),
        (np.array([1, 1, np.nan, 1, 1, 1, 1.0]), r"weights\[2\] = nan"),
        (np.zeros(7), "all zero"),
        (np.ones(7, dtype=bool), "numeric"),
    ],
)
def test_bad_weights_are_rejected(weights, message):
    with pytest.raises(BatchValidationError, match=message):
        compute_mutual_information(small_corpus(), weights=weights)


def test_lookup_and_top_correlates_break_ties_by_schema_order():
    mi = MutualInformation(
        names=("a", "b", "c", "d"),
        matrix=[[2.0, 0.5, 0.9, 0.5], [0.5, 1.0, 0.1, 0.2], [0.9, 0.1, 1.0, 0.3], [0.5, 0.2, 0.3, 1.0]],
        fingerprints={n: "0" for n in "abcd"},
    )
    assert mi["a", "c"] == 0.9 and mi["c", "a"] == 0.9
    assert mi.top_correlates("a", 3) == ("c", "b", "d")
    assert mi.top_correlates("a", 2) == ("c", "b")
    assert mi.top_correlates("a", 10) == ("c", "b", "d")
    assert mi.top_correlates("b", 0) == ()
    with pytest.raises(UnknownNameError, match="'e'"):
        mi["a", "e"]
    with pytest.raises(ValueError, match="non-negative int"):
        mi.top_correlates("a", -1)
    assert not mi.matrix.flags.writeable


def test_fingerprints_detect_a_change_in_one_feature():
    corpus = small_corpus()
    before = compute_mutual_information(corpus)
    values = dict(corpus.values)
    values["c"] = torch.tensor([3, 2, 1, 0, 3, 2, 2])
    after = compute_mutual_information(corpus.evolve(values=values))
    changed = [n for n in before.names if before.fingerprints[n] != after.fingerprints[n]]
    assert changed == ["c"]
    assert before.fingerprint != after.fingerprint
    mask = torch.zeros(7, 4, dtype=torch.bool)
    mask[0, 0] = True
    masked = compute_mutual_information(corpus.mask_features(mask))
    assert masked.fingerprints["a"] != before.fingerprints["a"]
    assert masked.fingerprints["c"] == before.fingerprints["c"]


def test_extend_computes_only_new_pairs_and_equals_full_recomputation(monkeypatch):
    corpus = small_corpus()
    weights = np.array([1.0, 2.0, 0.0, 1.0, 3.0, 1.0, 1.0])
    full = compute_mutual_information(corpus, weights=weights)
    base = compute_mutual_information(corpus, features=["a", "b", "c"], weights=weights)
    calls = []
    original = mi_module.pair_mutual_information
    monkeypatch.setattr(
        mi_module, "pair_mutual_information", lambda x, y, w, *estimator: calls.append(1) or original(x, y, w, *estimator)
    )
    grown = base.extend(corpus, ["tags"], weights=weights)
    assert len(calls) == 4  # tags with a, b, c and itself
    assert grown == full
    assert grown.names == ("a", "tags", "b", "c")


def test_extend_refuses_changed_data_other_weights_and_known_features():
    corpus = small_corpus()
    base = compute_mutual_information(corpus, features=["a", "b"])
    values = dict(corpus.values)
    values["b"] = torch.tensor([1, 1, 1, 0, 0, 1, 0])
    with pytest.raises(BatchValidationError, match="'b' changed"):
        base.extend(corpus.evolve(values=values), ["c"])
    with pytest.raises(ValueError, match="weighting 'uniform'"):
        base.extend(corpus, ["c"], weights=np.ones(7))
    with pytest.raises(ValueError, match="'a' are already"):
        base.extend(corpus, ["a"])
    with pytest.raises(ValueError, match="distinct"):
        base.extend(corpus, ["c", "c"])
    with pytest.raises(ValueError, match="at least one"):
        base.extend(corpus, [])
    other = FeatureSchema([Categorical(name="a", num_values=3), Categorical(name="c", num_values=4)])
    smaller = FeatureBatch.from_tensors(other, {"a": [0, 1], "c": [1, 2]})
    with pytest.raises(BatchValidationError, match="lacks feature\\(s\\) 'b'"):
        base.extend(smaller, ["c"])


@given(tables())
@settings(max_examples=15, deadline=None)
def test_save_load_round_trip_is_exact(tmp_path_factory, table):
    schema, raw, weights = table
    mi = compute_mutual_information(
        FeatureBatch.from_tensors(schema, raw), weights=None if weights is None else np.array(weights)
    )
    path = tmp_path_factory.mktemp("mi") / "mi.json"
    mi.save(path)
    loaded = MutualInformation.load(path)
    assert loaded == mi
    assert np.array_equal(loaded.matrix, mi.matrix)
    assert loaded.fingerprint == mi.fingerprint
    assert MutualInformation.from_dict(json.loads(json.dumps(mi.to_dict()))) == mi
    assert mi.to_dict()["version"] == 1


def mangled(change):
    data = compute_mutual_information(small_corpus()).to_dict()
    change(data)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (mangled(lambda d: d.pop("weighting")), "lacks key\\(s\\) 'weighting'"),
        (mangled(lambda d: d.update(version=2)), "'version' 2"),
        (mangled(lambda d: d.update(extra=1)), "unknown key of a mutual-information dict 'extra'"),
        (mangled(lambda d: d.update(names="abc")), "'names' must be a list"),
        (mangled(lambda d: d["matrix"][0].__setitem__(1, 9.0)), r"not symmetric: \['a', 'tags'\]"),
        (mangled(lambda d: d["matrix"].pop()), r"must be \[4, 4\]"),
        (mangled(lambda d: d["matrix"][2].__setitem__(2, -1.0)), r"\['b', 'b'\] = -1.0"),
        (mangled(lambda d: d["fingerprints"].pop("c")), "fingerprints must map"),
        (mangled(lambda d: d.update(weighting="counts")), "weighting must be"),
        ([1, 2], "is a mapping"),
    ],
)
def test_from_dict_errors_name_the_key(data, message):
    with pytest.raises((ConfigError, UnknownNameError), match=message):
        MutualInformation.from_dict(data)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match="absent.json"):
        MutualInformation.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json.*not JSON"):
        MutualInformation.load(broken)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(mangled(lambda d: d.pop("names"))))
    with pytest.raises(ConfigError, match="bad.json.*'names'"):
        MutualInformation.load(bad)
