"""The earlier classes of bad input, closed (issue 20, deliverable 5): wrong types at public
constructors, deep nesting, non-text encodings, keys that are equal as integers, augmentations
that draw from a global RNG, ``--set`` into lists, a cut ``u.data`` for ``--weights-from``, and
writes that fail (read-only paths, full disks).

Each class is table-driven through the API, the CLI (click's runner) and, for a few cases, a
real process: the CLI exits 1 with exactly one ``Error:`` line naming the file, key or argument
and no traceback, and earlier results (files outside the run directory, an earlier run, an
earlier ``mi.json``) are as they were afterwards.
"""

from __future__ import annotations

import builtins
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from test_bad_inputs import (
    CONFIG,
    Workdir,
    assert_refused,
    config_text,
    copy_run,
    invoke,
    run_dir_state,
    spawn,
    tables_config,
    write_tables,
)
from test_bad_inputs import finished_run as _finished_run
from test_bad_inputs import work as _work
from test_movielens_dataset import write_ml

import augkit.registry
import augkit.train.checkpoint
import augkit.train.rundir
import augkit_cfm.mutual_information
from augkit import Categorical, FeatureBatch, FeatureSchema, from_config
from augkit.augmentation import Augmentation
from augkit.compose import prepare_config
from augkit.config_io import MAX_DEPTH
from augkit.data import load_movielens_rating_counts
from augkit.data.tables import read_tables
from augkit.errors import AugkitError, BatchValidationError, ConfigError, SchemaError
from augkit.registry import get_registry, load_plugins
from augkit.train import apply_overrides, config_from_dict, load_config
from augkit.train.run import build_augmentation
from augkit_cfm import CorrelatedFeatureMasking, MutualInformation, compute_mutual_information

SCHEMA = FeatureSchema([Categorical(name="genre", num_values=3), Categorical(name="year", num_values=2)])
CORPUS = FeatureBatch.from_tensors(SCHEMA, {"genre": [0, 1, 2, 0], "year": [0, 1, 0, 1]})
MI = compute_mutual_information(CORPUS).to_dict()
DEEP = 10_000


work = _work  # the fixtures of test_bad_inputs: a working directory, and a finished tiny run
finished_run = _finished_run


def deep_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def deep_pipeline(depth: int) -> dict[str, Any]:
    """``two_views`` and ``sequential`` nested `depth` deep around a dropout."""
    config: dict[str, Any] = {"name": "dropout", "params": {"rate": 0.1}}
    for i in range(depth):
        config = (
            {"name": "two_views", "params": {"pair": config}}
            if i % 2
            else {"name": "sequential", "params": {"augmentations": [config]}}
        )
    return config


def raises_named(action: Any, error: type[BaseException], parts: list[str]) -> str:
    """`action()` raises `error` (an `AugkitError`) whose one-line message holds every part."""
    with pytest.raises(error) as info:
        action()
    assert isinstance(info.value, AugkitError), type(info.value)
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def write_mi(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -- 1. wrong types at public constructors -------------------------------------------------------
WRONG_TYPES = [
    pytest.param(
        lambda: FeatureSchema(None), SchemaError, ["FeatureSchema(features)", "NoneType"], id="schema-none"
    ),
    pytest.param(lambda: FeatureSchema(5), SchemaError, ["FeatureSchema(features)", "int"], id="schema-int"),
    pytest.param(
        lambda: FeatureSchema("genre"), SchemaError, ["FeatureSchema(features)", "str"], id="schema-str"
    ),
    pytest.param(
        lambda: FeatureSchema(SCHEMA.to_dict()),
        SchemaError,
        ["dict", "FeatureSchema.from_dict"],
        id="schema-dict",
    ),
    pytest.param(
        lambda: FeatureSchema([1, 2]),
        SchemaError,
        ["Categorical, MultiCategorical or Dense", "(int)"],
        id="schema-ints",
    ),
    pytest.param(
        lambda: FeatureSchema([{"type": "categorical", "name": "g", "num_values": 2}]),
        SchemaError,
        ["Categorical, MultiCategorical or Dense", "(dict)"],
        id="schema-dicts",
    ),
    pytest.param(
        lambda: FeatureBatch.from_tensors(None, {"genre": [0]}),
        BatchValidationError,
        ["from_tensors(schema)", "NoneType"],
        id="batch-schema-none",
    ),
    pytest.param(
        lambda: FeatureBatch.from_tensors(SCHEMA.to_dict(), {}),
        BatchValidationError,
        ["from_tensors(schema)", "from_dict"],
        id="batch-schema-dict",
    ),
    pytest.param(
        lambda: FeatureBatch.from_tensors(SCHEMA, None),
        BatchValidationError,
        ["from_tensors(values)", "NoneType"],
        id="batch-values-none",
    ),
    pytest.param(
        lambda: FeatureBatch.from_tensors(SCHEMA, [[0, 1]]),
        BatchValidationError,
        ["from_tensors(values)", "list"],
        id="batch-values-list",
    ),
    pytest.param(
        lambda: FeatureBatch.from_tensors(SCHEMA, "genre"),
        BatchValidationError,
        ["from_tensors(values)", "str"],
        id="batch-values-str",
    ),
    pytest.param(
        lambda: FeatureBatch.from_tensors(SCHEMA, {"genre": None, "year": [0]}),
        BatchValidationError,
        ["feature 'genre'"],
        id="batch-value-none",
    ),
    pytest.param(
        lambda: MutualInformation.load(None),
        ConfigError,
        ["MutualInformation.load", "NoneType"],
        id="mi-load-none",
    ),
    pytest.param(
        lambda: MutualInformation.load(3), ConfigError, ["MutualInformation.load", "int"], id="mi-load-int"
    ),
    pytest.param(
        lambda: MutualInformation.from_dict([MI]), ConfigError, ["mapping", "list"], id="mi-dict-list"
    ),
    pytest.param(
        lambda: MutualInformation.from_dict({**MI, "names": "genre"}),
        ConfigError,
        ["'names'", "list"],
        id="mi-names-str",
    ),
    pytest.param(
        lambda: MutualInformation.from_dict({**MI, "matrix": [[0.1]]}),
        ConfigError,
        ["matrix", "[2, 2]"],
        id="mi-matrix-shape",
    ),
    pytest.param(
        lambda: MutualInformation.from_dict({**MI, "fingerprints": ["a", "b"]}),
        ConfigError,
        ["'fingerprints'", "mapping"],
        id="mi-fingerprints-list",
    ),
]


@pytest.mark.parametrize(("action", "error", "parts"), WRONG_TYPES)
def test_wrong_types_are_named_errors(action: Any, error: type[BaseException], parts: list[str]) -> None:
    raises_named(action, error, parts)


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        pytest.param("null", ["mapping", "NoneType"], id="null"),
        pytest.param([1, 2], ["mapping", "list"], id="list"),
        pytest.param({**MI, "names": None}, ["'names'", "NoneType"], id="names-null"),
        pytest.param({**MI, "version": 2}, ["'version' 2"], id="version"),
    ],
)
def test_an_mi_file_of_the_wrong_shape_names_the_file(tmp_path: Path, content: Any, parts: list[str]) -> None:
    path = write_mi(tmp_path / "mi.json", content)
    raises_named(lambda: MutualInformation.load(path), ConfigError, [str(path), *parts])


def test_a_stale_mi_is_caught_by_prepare_config_not_by_the_constructor(tmp_path: Path) -> None:
    """CFM built directly trusts its matrix (documented); `prepare_config` checks it."""
    other = FeatureBatch.from_tensors(SCHEMA, {"genre": [2, 2, 1, 0], "year": [0, 1, 0, 1]})
    CorrelatedFeatureMasking(mi=MI)  # accepted: no corpus to check against
    raises_named(
        lambda: prepare_config({"name": "cfm", "params": {"mi": MI}}, other),
        ConfigError,
        ["params.mi", "stale", "'genre'"],
    )
    assert prepare_config({"name": "cfm", "params": {"mi": MI}}, CORPUS)["params"]["mi"] == MI


def test_an_mi_file_of_the_wrong_type_through_the_cli(work: Workdir) -> None:
    write_mi(work.root / "mi.json", [1, 2])
    work.write(CONFIG, config_text({"ssl": {"augmentation": {"name": "cfm", "params": {"mi": "mi.json"}}}}))
    work.freeze()
    assert_refused(invoke(["train", CONFIG]), ["ssl.augmentation.params.mi", "mi.json", "mapping, got list"])
    work.assert_untouched(nothing_written=True)


# -- 2. deep nesting ----------------------------------------------------------------------------------
DEEP_API = [
    pytest.param(
        lambda: from_config(deep_pipeline(DEEP)),
        ["augmentation config", f"more than {MAX_DEPTH} deep"],
        id="from-config",
    ),
    pytest.param(
        lambda: from_config(deep_pipeline(DEEP), where="ssl.augmentation"),
        ["ssl.augmentation", "params.pair"],
        id="from-config-where",
    ),
    pytest.param(
        lambda: prepare_config(deep_pipeline(DEEP), CORPUS),
        ["augmentation config", f"{MAX_DEPTH} deep"],
        id="prepare-config",
    ),
    pytest.param(
        lambda: MutualInformation.from_dict({**MI, "matrix": deep_list(DEEP)}),
        ["mutual-information dict", "matrix[0][0]"],
        id="mi-dict",
    ),
    pytest.param(
        lambda: FeatureSchema.from_dict({"features": deep_list(DEEP)}),
        ["schema dict", "features[0]"],
        id="schema-dict",
    ),
    pytest.param(
        lambda: config_from_dict({"ssl": {"augmentation": deep_pipeline(DEEP)}}),
        ["config", f"{MAX_DEPTH} deep"],
        id="train-config-dict",
    ),
    pytest.param(
        lambda: apply_overrides(config_from_dict({}), ["ssl.augmentation=" + "[" * DEEP + "]" * DEEP]),
        ["--set 'ssl.augmentation'", f"{MAX_DEPTH} deep"],
        id="set-value",
    ),
]


@pytest.mark.parametrize(("action", "parts"), DEEP_API)
def test_deep_nesting_is_a_named_error(action: Any, parts: list[str]) -> None:
    raises_named(action, ConfigError, parts)


def test_a_deep_mi_json_file_names_the_file(tmp_path: Path) -> None:
    deep = write_mi(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    raises_named(lambda: MutualInformation.load(deep), ConfigError, [str(deep), f"{MAX_DEPTH} deep"])
    shallow = write_mi(tmp_path / "shallow.json", {**MI, "version": deep_list(200)})
    raises_named(lambda: MutualInformation.load(shallow), ConfigError, [str(shallow), "version[0]"])


def deep_inline_toml(depth: int) -> str:
    leaf = '{name = "dropout", params = {rate = 0.1}}'
    pipeline = '{name = "two_views", params = {pair = ' * depth + leaf + "}}" * depth
    return config_text().replace("[ssl]\n", f"[ssl]\naugmentation = {pipeline}\n", 1)


def deep_dotted_toml(depth: int) -> str:
    return config_text() + f'\n[ssl.augmentation.{".".join(["params.pair"] * depth)}]\nname = "dropout"\n'


@pytest.mark.parametrize("real_process", [False, True], ids=["cli", "process"])
@pytest.mark.parametrize(
    ("text", "parts"),
    [
        pytest.param(
            deep_inline_toml(DEEP), [CONFIG, "TOML reader", f"{MAX_DEPTH} deep"], id="inline-tables"
        ),
        pytest.param(
            deep_dotted_toml(DEEP),
            [CONFIG, "ssl.augmentation.params.pair", f"{MAX_DEPTH} deep"],
            id="dotted-tables",
        ),
    ],
)
def test_a_deep_config_file_is_a_named_error(
    work: Workdir, text: str, parts: list[str], real_process: bool
) -> None:
    work.write(CONFIG, text)
    work.freeze()
    outcome = spawn(["train", CONFIG], work.root) if real_process else invoke(["train", CONFIG])
    assert_refused(outcome, parts)
    work.assert_untouched(nothing_written=True)
    raises_named(lambda: load_config(work.root / CONFIG), ConfigError, parts[1:])


# -- 3. encodings must be text encodings ------------------------------------------------------------
ENCODINGS = [
    pytest.param("rot13", ["'rot13' is not a text encoding"], id="rot13"),
    pytest.param("zlib", ["'zlib' is not a text encoding"], id="zlib"),
    pytest.param("base64", ["'base64' is not a text encoding"], id="base64"),
    pytest.param("hex", ["'hex' is not a text encoding"], id="hex"),
    pytest.param("bz2", ["'bz2' is not a text encoding"], id="bz2"),
    pytest.param("utf8x", ["'utf8x' is not a known codec", "did you mean 'utf8'"], id="unknown-close"),
    pytest.param("latin_l", ["'latin_l' is not a known codec", "did you mean 'latin_1'"], id="unknown-latin"),
    pytest.param("klingon", ["'klingon' is not a known codec"], id="unknown"),
]


@pytest.mark.parametrize(("encoding", "parts"), ENCODINGS)
def test_an_encoding_must_be_a_text_encoding(work: Workdir, encoding: str, parts: list[str]) -> None:
    write_tables(work, {})
    config = tables_config(encoding=encoding)["data"]["tables"]
    raises_named(
        lambda: read_tables(config, base_dir=work.root), ConfigError, [*parts, "@ interactions.encoding"]
    )


@pytest.mark.parametrize("real_process", [False, True], ids=["cli", "process"])
def test_a_non_text_encoding_through_the_cli(work: Workdir, real_process: bool) -> None:
    write_tables(work, {})
    work.write(CONFIG, config_text(tables_config(encoding="rot13")))
    work.freeze()
    outcome = spawn(["train", CONFIG], work.root) if real_process else invoke(["train", CONFIG])
    assert_refused(outcome, ["'rot13' is not a text encoding", "data.tables.interactions.encoding"])
    work.assert_untouched(nothing_written=True)


# -- 4. keys equal as integers ------------------------------------------------------------------------
LOG = "user,item\na,1\nb,01\nc,+1\nd,2\n"


def test_text_keys_equal_as_integers_stay_apart_with_one_warning(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text(LOG)
    config = {"interactions": {"path": "log.csv", "user": "user", "item": "item"}}
    loaded = read_tables(config, base_dir=tmp_path)
    assert loaded.dataset.num_items == 4  # '1', '01', '+1' stay three items
    warned = [w for w in loaded.warnings if "spell the same integer" in w]
    assert len(warned) == 1, loaded.warnings
    for part in ("item keys", "column 'item'", "log.csv", "'+1' and '01'", 'key_type = "int"'):
        assert part in warned[0], (part, warned[0])


def test_integer_keys_read_as_one_without_a_warning(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text(LOG)
    config = {
        "interactions": {"path": "log.csv", "user": "user", "item": "item"},
        "key_type": {"item": "int"},
    }
    loaded = read_tables(config, base_dir=tmp_path)
    assert loaded.dataset.num_items == 2 and not loaded.warnings


def test_the_warning_names_user_keys_too(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("user,item\n7,a\n007,b\n")
    loaded = read_tables(
        {"interactions": {"path": "log.csv", "user": "user", "item": "item"}}, base_dir=tmp_path
    )
    assert loaded.dataset.num_users == 2
    assert any("user keys" in w and "'007' and '7'" in w for w in loaded.warnings), loaded.warnings


# -- 5. augmentations that draw from the global RNG ---------------------------------------------------
class GlobalNoise(Augmentation[torch.Tensor]):
    """Masks features where ``torch.rand`` (the global generator, not `generator`) says so."""

    name = "global_noise"
    granularity = "example"

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(batch.present.shape, device=batch.device) < 0.5

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.mask_features(params)

    def params(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def global_noise(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The process registry with `GlobalNoise` registered by hand."""
    registry = load_plugins()
    registry.register("augmentation", "global_noise", GlobalNoise, distribution="noisy-plugin", version="0.1")
    get_registry.cache_clear()
    monkeypatch.setattr(augkit.registry, "load_plugins", lambda **kwargs: registry)
    assert get_registry() is registry
    yield registry
    get_registry.cache_clear()


def rng_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "global random number generator" in r.getMessage()]


def test_an_augmentation_on_the_global_rng_is_named_in_a_warning(
    global_noise: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_from_dict(
        {
            "ssl": {
                "augmentation": {
                    "name": "two_views",
                    "params": {"pair": {"name": "complementary"}, "each": [{"name": "global_noise"}]},
                }
            }
        }
    )
    with caplog.at_level(logging.WARNING, logger="augkit.train"):
        build_augmentation(config, CORPUS)
    [message] = rng_warnings(caplog)
    assert "augmentation 'global_noise' from distribution noisy-plugin 0.1" in message
    assert "complementary" not in message


def test_augmentations_on_their_generator_give_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = config_from_dict(
        {
            "ssl": {
                "augmentation": {
                    "name": "two_views",
                    "params": {
                        "pair": {"name": "complementary"},
                        "each": [{"name": "mask", "params": {"p": 0.3}}],
                    },
                }
            }
        }
    )
    with caplog.at_level(logging.WARNING, logger="augkit.train"):
        build_augmentation(config, CORPUS)
    assert not rng_warnings(caplog)


def test_the_global_rng_warning_through_the_cli(
    work: Workdir, global_noise: None, caplog: pytest.LogCaptureFixture
) -> None:
    work.write(CONFIG, config_text({"ssl": {"augmentation": {"name": "global_noise"}}}))
    with caplog.at_level(logging.WARNING, logger="augkit.train"):
        outcome = invoke(["train", CONFIG])
    assert outcome.exit_code == 0, outcome.output  # a warning, not an error
    assert any("'global_noise'" in m for m in rng_warnings(caplog))


# -- 6. --set into lists -------------------------------------------------------------------------------
PIPELINE = {
    "ssl": {
        "augmentation": {
            "name": "two_views",
            "params": {
                "pair": {"name": "complementary"},
                "each": [{"name": "dropout", "params": {"rate": 0.2}}],
            },
        }
    }
}
SET_CASES = [
    pytest.param(
        "ssl.augmentation.params.each[3].params.rate=0.5",
        ["each[3] is out of range", "holds 1 item(s)"],
        id="out-of-range",
    ),
    pytest.param(
        "ssl.augmentation.params.pair[0]=1",
        ["ssl.augmentation.params.pair is a table, not a list"],
        id="index-a-table",
    ),
    pytest.param(
        "ssl.augmentation.params.each.name=1", ["params.each is a list", "each[index]"], id="key-into-a-list"
    ),
    pytest.param(
        "main.batch_size.x=1", ["main.batch_size is an integer", "not a table"], id="key-into-an-integer"
    ),
    pytest.param(
        "ssl.augmentation.params.each[0].params.rate[0]=1",
        ["rate is a float, not a list"],
        id="index-a-float",
    ),
    pytest.param(
        "ssl.augmentation.params.each[x]=1", ["cannot read key part 'each[x]'", "name[index]"], id="bad-index"
    ),
    pytest.param(
        "ssl.augmentation.params.each[0].params.rate=2.0",
        ["each[0].params.rate", "dropout"],
        id="value-checked",
    ),
]


@pytest.mark.parametrize(("override", "parts"), SET_CASES)
def test_set_addresses_list_items_or_says_why_not(work: Workdir, override: str, parts: list[str]) -> None:
    work.write(CONFIG, config_text(PIPELINE))
    work.freeze()
    expected = parts if "rate=2.0" in override else ["--set", *parts]  # a value is checked where it is used
    assert_refused(invoke(["train", CONFIG, "--set", override]), expected)
    work.assert_untouched(nothing_written=True)
    if "rate=2.0" not in override:  # the value itself is checked when the pipeline is built
        raises_named(lambda: apply_overrides(load_config(work.root / CONFIG), [override]), ConfigError, parts)


def test_set_into_a_list_item_changes_that_item_only(work: Workdir) -> None:
    work.write(CONFIG, config_text(PIPELINE))
    config = apply_overrides(
        load_config(work.root / CONFIG), ["ssl.augmentation.params.each[0].params.rate=0.5", "eval.ks[0]=5"]
    )
    assert config.ssl.augmentation["params"]["each"] == [{"name": "dropout", "params": {"rate": 0.5}}]
    assert config.ssl.augmentation["params"]["pair"] == {"name": "complementary"}
    assert config.eval.ks[0] == 5


def test_set_out_of_range_in_a_real_process(work: Workdir) -> None:
    work.write(CONFIG, config_text(PIPELINE))
    work.freeze()
    outcome = spawn(["train", CONFIG, "--set", "ssl.augmentation.params.each[1].params.rate=0.5"], work.root)
    assert_refused(outcome, ["each[1] is out of range"])
    work.assert_untouched(nothing_written=True)


# -- 7. a cut u.data for --weights-from ----------------------------------------------------------------
CUT_RATINGS = [
    pytest.param(
        "3\t2\t5\t881250949\n1\t1", ["line 2", "2 tab-separated fields, expected 4"], id="cut-in-item"
    ),
    pytest.param("3\t2\t5\t881250949\n1\t1\t", ["line 2", "3 tab-separated fields"], id="cut-after-item"),
    pytest.param("3\t2\t5\t881250949\n1\t\t4\t1", ["line 2", "movie id ''"], id="empty-item"),
    pytest.param("3\t2\t5\t881250949\n1\t9\t4\t1\n", ["line 2", "item 9 is outside"], id="item-out-of-range"),
]


@pytest.mark.parametrize(("text", "parts"), CUT_RATINGS)
def test_a_cut_weights_file_names_the_file_and_line(tmp_path: Path, text: str, parts: list[str]) -> None:
    (tmp_path / "ml").mkdir()
    ml = write_ml(tmp_path / "ml")
    (tmp_path / "cut.data").write_text(text)
    error = ConfigError if "outside" not in parts[-1] else BatchValidationError
    raises_named(lambda: load_movielens_rating_counts(tmp_path / "cut.data", 2), error, ["cut.data", *parts])
    (tmp_path / "mi.json").write_text("earlier")
    outcome = invoke(
        ["mi", str(ml), "--weights-from", str(tmp_path / "cut.data"), "--output", str(tmp_path / "mi.json")]
    )
    assert_refused(outcome, ["cut.data", *parts])
    assert (tmp_path / "mi.json").read_text() == "earlier"


# -- 8. writes that fail: read-only paths, permissions, full disks ------------------------------------
def raising(error: OSError, *, when: Any = lambda *args: True) -> Any:
    """A stand-in for `open` that raises `error` for the paths `when` picks."""

    def fake(file: Any, *args: Any, **kwargs: Any) -> Any:
        if when(file):
            raise error
        return builtins.open(file, *args, **kwargs)

    return fake


DENIED = PermissionError(errno.EACCES, "Permission denied")
FULL = OSError(errno.ENOSPC, "No space left on device")


def test_a_read_only_output_dir_is_named(work: Workdir, monkeypatch: pytest.MonkeyPatch) -> None:
    work.write(CONFIG, config_text())
    work.freeze()
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "default":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert_refused(
        invoke(["train", CONFIG]), ["cannot create run directory", "runs/default", "Permission denied"]
    )
    work.assert_untouched(nothing_written=False)


@pytest.mark.parametrize("error", [DENIED, FULL], ids=["read-only", "full"])
def test_a_run_directory_that_cannot_be_written_is_named(
    work: Workdir, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    work.write(CONFIG, config_text())
    work.freeze()
    monkeypatch.setattr(augkit.train.rundir, "open", raising(error), raising=False)
    assert_refused(invoke(["train", CONFIG]), ["cannot lock run directory", "runs/default/.lock", error.strerror])
    work.assert_untouched(nothing_written=False)


@pytest.mark.parametrize("error", [DENIED, FULL], ids=["read-only", "full"])
def test_a_checkpoint_that_cannot_be_written_leaves_the_earlier_one(
    work: Workdir, finished_run: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    work.write(CONFIG, config_text())
    run_dir = copy_run(finished_run, work)
    before = run_dir_state(run_dir)
    work.freeze()
    monkeypatch.setattr(augkit.train.checkpoint, "open", raising(error), raising=False)
    outcome = invoke(["train", CONFIG, "--resume", "--set", "epochs=2"])
    assert_refused(outcome, ["cannot write", "runs/default/", ".pt:", error.strerror])
    after = run_dir_state(run_dir)
    assert after["checkpoint.pt"] == before["checkpoint.pt"] and after["best.pt"] == before["best.pt"]
    assert not list(run_dir.glob(".*.tmp"))
    work.assert_untouched(nothing_written=False)


def test_a_full_disk_while_writing_the_report_is_named(
    work: Workdir, monkeypatch: pytest.MonkeyPatch
) -> None:
    work.write(CONFIG, config_text())
    real_write = Path.write_text

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.name == "metrics.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    assert_refused(invoke(["train", CONFIG]), ["cannot write", "metrics.json", "No space left on device"])


@pytest.mark.parametrize("error", [DENIED, FULL], ids=["read-only", "full"])
def test_mi_output_that_cannot_be_written_keeps_the_earlier_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    table = tmp_path / "items.csv"
    table.write_text("genre,year\na,1\nb,2\na,2\n")
    output = tmp_path / "mi.json"
    output.write_text("earlier")
    monkeypatch.setattr(augkit_cfm.mutual_information, "open", raising(error), raising=False)
    outcome = invoke(["mi", str(table), "--output", str(output)])
    assert_refused(outcome, [f"cannot write {output}", error.strerror])
    assert output.read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv", "mi.json"]


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into read-only directories; the monkeypatched cases cover it"
)
def test_a_read_only_directory_for_real(work: Workdir) -> None:
    work.write(CONFIG, config_text())
    work.output_dir.mkdir()
    work.output_dir.chmod(0o555)
    try:
        assert_refused(invoke(["train", CONFIG]), ["runs/default", "Permission denied"])
    finally:
        work.output_dir.chmod(0o755)
