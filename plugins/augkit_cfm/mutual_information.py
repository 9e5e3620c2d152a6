"""`MutualInformation` between the item features of a corpus, saved with data fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import numpy as np
import torch

from augkit import validators
from augkit.batch import FeatureBatch
from augkit.config_io import MAX_DEPTH, check_depth
from augkit.errors import AugkitError, BatchValidationError, ConfigError, UnknownNameError
from augkit.schema import Dense
from augkit_cfm.columns import Column, column
from augkit_cfm.pairwise import ESTIMATORS, pair_mutual_information

FORMAT_VERSION = 1
"""Version of the dict (and JSON file) `MutualInformation.to_dict` writes."""

UNIFORM = "uniform"
_KEYS = ("version", "names", "matrix", "fingerprints", "weighting")


def _names(value: Any) -> Any:
    """Converter: a list (from JSON) becomes a tuple; anything else, a string especially,
    stays as it is for `_check_names` to reject."""
    return tuple(value) if isinstance(value, list) else value


def _check_names(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    names_ok = isinstance(value, tuple) and value and all(isinstance(n, str) for n in value)
    if not names_ok or len(set(value)) != len(value):
        raise ConfigError(f"MutualInformation.names must be distinct feature names, got {value!r}")


def _read_only_matrix(value: Any) -> np.ndarray:
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"MutualInformation.matrix must be a square table of numbers ({error})") from None
    matrix.setflags(write=False)
    return matrix


def _check_matrix(instance: MutualInformation, attribute: attrs.Attribute, value: np.ndarray) -> None:
    k = len(instance.names)
    if value.shape != (k, k):
        raise ConfigError(
            f"MutualInformation.matrix must be [{k}, {k}] for names {list(instance.names)}, "
            f"got shape {list(value.shape)}"
        )
    bad = ~np.isfinite(value) | (value < 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConfigError(
            f"MutualInformation.matrix[{instance.names[i]!r}, {instance.names[j]!r}] = "
            f"{float(value[i, j])!r}; mutual information is a finite number >= 0"
        )
    if not np.array_equal(value, value.T):
        i, j = np.argwhere(value != value.T)[0]
        raise ConfigError(
            f"MutualInformation.matrix is not symmetric: [{instance.names[i]!r}, "
            f"{instance.names[j]!r}] = {float(value[i, j])!r} but the transpose holds {float(value[j, i])!r}"
        )


def _fingerprint_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _check_fingerprints(
    instance: MutualInformation, attribute: attrs.Attribute, value: Mapping[str, str]
) -> None:
    if set(value) != set(instance.names) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(
            f"MutualInformation.fingerprints must map each of {list(instance.names)} to a hex "
            f"digest, got keys {sorted(value)}"
        )


def _check_weighting(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not (value == UNIFORM or value.startswith("weights:")):
        raise ConfigError(
            f"MutualInformation.weighting must be 'uniform' or 'weights:<digest>', got {value!r}"
        )


CORRELATIONS: tuple[str, ...] = ("mi", "symmetric_uncertainty")
"""Rankings of correlates: raw mutual information, or symmetric uncertainty."""


@attrs.frozen
class MutualInformation:
    """Mutual information in nats between item features, in schema order.

    ``matrix`` (float64 ``[k, k]``, symmetric, read-only): entry ``[a, b]`` for features
    ``names[a]``, ``names[b]``; the diagonal holds each feature's MI with itself (its entropy
    for a single-valued feature). ``fingerprints`` map each name to a sha256 digest of the
    feature's data, ``weighting`` says how items were weighted: ``"uniform"`` or
    ``"weights:<sha256 of the weights>"``.
    """

    names: tuple[str, ...] = attrs.field(converter=_names, validator=_check_names)
    matrix: np.ndarray = attrs.field(
        converter=_read_only_matrix,
        validator=_check_matrix,
        eq=attrs.cmp_using(eq=np.array_equal),
    )
    fingerprints: Mapping[str, str] = attrs.field(
        converter=_fingerprint_map,
        validator=_check_fingerprints,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    weighting: str = attrs.field(default=UNIFORM, validator=_check_weighting)

    def index(self, name: str) -> int:
        """Row of feature `name`; `UnknownNameError` if the matrix lacks it."""
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownNameError("feature of the mutual-information matrix", name, self.names) from None

    def __getitem__(self, pair: tuple[str, str]) -> float:
        """``mi["genres", "year"]``: MI of two features by name."""
        first, second = pair
        return float(self.matrix[self.index(first), self.index(second)])

    def symmetric_uncertainty(self) -> np.ndarray:
        """float64 ``[k, k]``: ``SU[a, b] = 2 MI[a, b] / (H[a] + H[b])`` with the diagonal as
        the entropies ``H`` (0 where both are 0). In ``[0, 1]`` for single-valued features: 1
        for features that determine each other, 0 for independent ones. Unlike raw MI it does
        not favour a feature with a large entropy: a key such as ``item_id``, whose MI with
        any X is ``H(X)``, has ``SU = 2 H(X) / (H(X) + H(id))``, small when ``H(id)`` is large."""
        entropy = np.diag(self.matrix)
        total = entropy[:, None] + entropy[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, 2 * self.matrix / np.where(total > 0, total, 1.0), 0.0)

    def top_correlates(self, name: str, n: int, correlation: str = "mi") -> tuple[str, ...]:
        """The (at most) `n` other features most correlated with `name`, descending; ties go to
        the feature first in ``names`` (schema order). `correlation`: ``"mi"`` (raw mutual
        information, default) or ``"symmetric_uncertainty"`` (`symmetric_uncertainty`)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"top_correlates: n must be a non-negative int, got {n!r}")
        if correlation not in CORRELATIONS:
            raise ValueError(
                f"top_correlates: correlation must be one of {', '.join(CORRELATIONS)}, got {correlation!r}"
            )
        row = self.index(name)
        scores = self.matrix[row] if correlation == "mi" else self.symmetric_uncertainty()[row]
        others = np.array([j for j in range(len(self.names)) if j != row], dtype=np.int64)
        order = others[np.lexsort((others, -scores[others]))]
        return tuple(self.names[j] for j in order[:n])

    @property
    def fingerprint(self) -> str:
        """sha256 hex digest of the names, each feature's fingerprint and the weighting."""
        digest = hashlib.sha256()
        for name in self.names:
            digest.update(f"{name}={self.fingerprints[name]};".encode())
        digest.update(self.weighting.encode())
        return digest.hexdigest()

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict ``{"version": 1, "names", "matrix", "fingerprints", "weighting"}``;
        floats round-trip exactly through JSON."""
        return {
            "version": FORMAT_VERSION,
            "names": list(self.names),
            "matrix": self.matrix.tolist(),
            "fingerprints": dict(self.fingerprints),
            "weighting": self.weighting,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MutualInformation:
        """Inverse of `to_dict`; `ConfigError`/`UnknownNameError` name the key at fault (also for
        tables and lists nested deeper than `augkit.config_io.MAX_DEPTH`)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a mutual-information dict is a mapping, got {type(data).__name__}")
        check_depth(data, "mutual-information dict")
        for key in data:
            if key not in _KEYS:
                raise UnknownNameError("key of a mutual-information dict", str(key), _KEYS)
        missing = [key for key in _KEYS if key not in data]
        if missing:
            raise ConfigError(f"mutual-information dict lacks key(s) {', '.join(map(repr, missing))}")
        if data["version"] != FORMAT_VERSION:
            raise ConfigError(
                f"mutual-information dict has 'version' {data['version']!r}; this augkit reads "
                f"version {FORMAT_VERSION}"
            )
        for key, kind in (("names", list), ("matrix", list), ("fingerprints", Mapping)):
            if not isinstance(data[key], kind):
                raise ConfigError(
                    f"mutual-information dict key {key!r} must be a "
                    f"{'list' if kind is list else 'mapping'}, got {type(data[key]).__name__}"
                )
        return cls(
            names=data["names"],
            matrix=data["matrix"],
            fingerprints=data["fingerprints"],
            weighting=data["weighting"],
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write `to_dict` as JSON to `path`, through a temporary file beside it renamed over
        it: a write that fails (a full disk) leaves an earlier file at `path` as it was."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except OSError as error:
            if error.filename == tmp:  # name the file the caller asked for
                error.filename = os.fspath(path)
            raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MutualInformation:
        """Read a file `save` wrote (`path`: a str or path-like); errors name the file and the
        key at fault, and JSON nested deeper than `augkit.config_io.MAX_DEPTH` is one."""
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(
                f"MutualInformation.load: path must be a str or os.PathLike, got {type(path).__name__}"
            )
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read mutual-information file {os.fspath(path)!r}: {error}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"mutual-information file {os.fspath(path)!r} is not JSON: {error}") from None
        except RecursionError:
            raise ConfigError(
                f"mutual-information file {os.fspath(path)!r}: JSON nested deeper than the reader "
                f"follows; augkit reads JSON files nested at most {MAX_DEPTH} deep"
            ) from None
        try:
            return cls.from_dict(data)
        except AugkitError as error:
            raise ConfigError(f"mutual-information file {os.fspath(path)!r}: {error}") from None

    # -- growth --------------------------------------------------------------------------------
    def extend(
        self,
        corpus: FeatureBatch,
        features: Sequence[str],
        *,
        weights: torch.Tensor | np.ndarray | None = None,
        estimator: str = "plugin",
    ) -> MutualInformation:
        """Add `features` of `corpus`, computing only the pairs that involve them.

        The features already here must be in `corpus` with unchanged data (checked against
        their fingerprints) and `weights` must be the ones this matrix was computed with, as
        `estimator` should be (the matrix does not record it).
        The result lists all features in the order of ``corpus.schema``.
        """
        new = validators.name_list("extend", "features", features)
        if not new:
            raise ValueError("extend: give at least one feature to add")
        if len(set(new)) != len(new):
            raise ValueError(f"extend: features must be distinct, got {list(new)}")
        again = [name for name in new if name in self.names]
        if again:
            raise ValueError(
                f"extend: feature(s) {', '.join(map(repr, again))} are already in the matrix "
                f"({', '.join(self.names)})"
            )
        absent = [name for name in self.names if name not in corpus.schema]
        if absent:
            raise BatchValidationError(
                f"extend: the corpus lacks feature(s) {', '.join(map(repr, absent))} of the "
                f"mutual-information matrix; its schema has {', '.join(corpus.schema.names)}"
            )
        item_weights, weighting = _weights(weights, corpus.batch_size)
        if weighting != self.weighting:
            raise ValueError(
                f"extend: the matrix was computed with weighting {self.weighting!r}, "
                f"the given weights are {weighting!r}"
            )
        columns = {name: column(corpus, name) for name in (*self.names, *new)}
        fingerprints = {name: columns[name].fingerprint() for name in columns}
        changed = [n for n in self.names if fingerprints[n] != self.fingerprints[n]]
        if changed:
            raise BatchValidationError(
                f"extend: the data of feature(s) {', '.join(map(repr, changed))} changed since "
                "the matrix was computed (fingerprint mismatch); recompute it from scratch"
            )
        names = tuple(n for n in corpus.schema.names if n in columns)
        return _assemble(
            names, columns, item_weights, weighting, known=self.__getitem__, old=self.names,
            fingerprints=fingerprints, estimator=_estimator(estimator),
        )


def compute_mutual_information(
    corpus: FeatureBatch,
    *,
    features: Sequence[str] | None = None,
    weights: torch.Tensor | np.ndarray | None = None,
    estimator: str = "plugin",
) -> MutualInformation:
    """Mutual information (nats, float64) between every pair of features of `corpus`.

    `corpus` holds all N items (any device; the work happens in numpy on the CPU).
    `features` defaults to every Categorical and MultiCategorical feature: Dense features are
    left out silently then, and are an error when named. The result lists features in schema
    order. Items weigh equally (the SSL distribution) unless `weights` (``[N]``, finite, >= 0,
    not all zero, e.g. interaction counts) is given.

    An item's bag of |U| values counts as |U|·|V| value pairs of weight 1/(|U|·|V|) each
    (|U| = 1 for a single-valued feature). An item with a missing value (or an empty bag) for
    either feature is left out of that pair. The diagonal is each feature's MI with itself,
    computed the same way: a single-valued feature's entropy.

    `estimator`: ``"plugin"`` (default) reads MI off the empirical joint; ``"miller_madow"``
    subtracts from each pair its small-sample bias under independence, ``(K_x - 1)(K_y - 1) / 2N``
    nats for ``K`` values seen and ``N`` items with both features (`augkit_cfm.pairwise`), which
    the plug-in value of a sparse feature of many values (tags on few items) is mostly made
    of; the diagonal stays the plug-in entropy.

    Examples:
        ``subgenre`` follows ``genre``; ``year`` is independent of both:

        >>> import torch
        >>> from augkit import Categorical, FeatureBatch, FeatureSchema
        >>> schema = FeatureSchema(
        ...     [Categorical(name=name, num_values=4) for name in ("genre", "subgenre", "year")]
        ... )
        >>> genre = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> corpus = FeatureBatch.from_tensors(
        ...     schema, {"genre": genre, "subgenre": genre, "year": torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])}
        ... )
        >>> from augkit_cfm import compute_mutual_information
        >>> mi = compute_mutual_information(corpus)
        >>> mi.names
        ('genre', 'subgenre', 'year')
        >>> mi.matrix.round(4)  # nats: H(genre) = log 4, H(year) = log 2
        array([[1.3863, 1.3863, 0.    ],
               [1.3863, 1.3863, 0.    ],
               [0.    , 0.    , 0.6931]])
        >>> mi.top_correlates("genre", 1)
        ('subgenre',)
    """
    schema = corpus.schema
    if features is None:
        names = tuple(s.name for s in schema if not isinstance(s, Dense))
        if not names:
            raise BatchValidationError(
                f"the corpus has no categorical feature to compute mutual information of "
                f"(features: {', '.join(schema.names)})"
            )
    else:
        requested = validators.name_list("compute_mutual_information", "features", features)
        if not requested or len(set(requested)) != len(requested):
            raise ValueError(
                "compute_mutual_information: features must be one or more distinct feature names, "
                f"got {list(requested)}"
            )
        names = tuple(schema.names[i] for i in sorted(schema.indices(requested)))
    estimator = _estimator(estimator)
    item_weights, weighting = _weights(weights, corpus.batch_size)
    columns = {name: column(corpus, name) for name in names}
    return _assemble(names, columns, item_weights, weighting, known=None, old=(), estimator=estimator)


def _estimator(value: Any) -> str:
    if value not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {value!r}")
    return value


def _assemble(
    names: tuple[str, ...],
    columns: Mapping[str, Column],
    weights: np.ndarray,
    weighting: str,
    *,
    known: Callable[[tuple[str, str]], float] | None,
    old: tuple[str, ...],
    fingerprints: Mapping[str, str] | None = None,
    estimator: str = "plugin",
) -> MutualInformation:
    """Fill the matrix over `names`, reading pairs of two `old` features from `known`;
    `fingerprints` of the columns, when already computed."""
    k = len(names)
    matrix = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            a, b = names[i], names[j]
            if known is not None and a in old and b in old:
                value = known((a, b))
            else:
                value = pair_mutual_information(columns[a], columns[b], weights, estimator if a != b else "plugin")
            matrix[i, j] = matrix[j, i] = value
    return MutualInformation(
        names=names,
        matrix=matrix,
        fingerprints=fingerprints or {name: columns[name].fingerprint() for name in names},
        weighting=weighting,
    )


def _weights(weights: torch.Tensor | np.ndarray | None, size: int) -> tuple[np.ndarray, str]:
    """float64 ``[size]`` item weights and their weighting label."""
    if weights is None:
        return np.ones(size), UNIFORM
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    array = np.asarray(weights)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number) or array.shape != (size,):
        raise BatchValidationError(
            f"weights must be a numeric array of shape [{size}] (one per corpus item), "
            f"got {array.dtype} {list(array.shape)}"
        )
    array = array.astype(np.float64)
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise BatchValidationError(
            f"weights[{position}] = {float(array[position])!r}; weights must be finite and >= 0"
        )
    if not array.sum() > 0:
        raise BatchValidationError("weights are all zero; at least one item must weigh something")
    return array, "weights:" + hashlib.sha256(array.astype("<f8").tobytes()).hexdigest()
