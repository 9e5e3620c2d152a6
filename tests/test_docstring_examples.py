"""The ``Examples:`` sections of the public docstrings run, as the API reference shows them.

Every ``>>>`` example of the core modules and of the built-in plugins' main modules runs with
the standard library's `doctest` (one test per docstring, named by its object), and the main
public names keep an example: a docstring that loses its ``Examples:`` section fails here.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "augkit.schema",
    "augkit.batch",
    "augkit.augmentation",
    "augkit.compose",
    "augkit.registry",
    "augkit.random",
    "augkit.validators",
    "augkit.errors",
    "augkit.testing.strategies",
    "augkit_mask.mask",
    "augkit_dropout.dropout",
    "augkit_complementary.complementary",
    "augkit_cfm.cfm",
    "augkit_cfm.mutual_information",
    "augkit_losses.batch_softmax",
    "augkit_losses.info_nce",
    "augkit_samplers.count",
    "augkit_samplers.streaming",
    "augkit_samplers.uniform",
)

WITH_EXAMPLES = (
    "augkit.schema.Categorical",
    "augkit.schema.MultiCategorical",
    "augkit.schema.Dense",
    "augkit.schema.FeatureSchema",
    "augkit.batch.FeatureBatch",
    "augkit.batch.FeatureBatch.from_tensors",
    "augkit.batch.FeatureBatch.to_tensors",
    "augkit.batch.FeatureBatch.mask_features",
    "augkit.batch.FeatureBatch.select",
    "augkit.batch.FeatureBatch.evolve",
    "augkit.augmentation.Augmentation",
    "augkit.augmentation.PairAugmentation",
    "augkit.compose.Sequential",
    "augkit.compose.TwoViews",
    "augkit.compose.from_config",
    "augkit.compose.prepare_config",
    "augkit.registry.Registry",
    "augkit.registry.Registry.create",
    "augkit.registry.get_registry",
    "augkit.random.generator_for",
    "augkit.validators.probability",
    "augkit.errors.UnknownNameError",
    "augkit_mask.mask.MaskFeatures",
    "augkit_dropout.dropout.ValueDropout",
    "augkit_complementary.complementary.ComplementaryMasking",
    "augkit_cfm.cfm.CorrelatedFeatureMasking",
    "augkit_cfm.mutual_information.compute_mutual_information",
    "augkit_losses.batch_softmax.BatchSoftmaxLoss",
    "augkit_losses.info_nce.InfoNCELoss",
    "augkit_samplers.count.CountFrequency",
    "augkit_samplers.streaming.StreamingFrequency",
    "augkit_samplers.uniform.UniformItemSampler",
)
"""Objects whose docstring must keep an ``Examples:`` section with a runnable example."""

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [test for test in finder.find(module) if test.examples]


def _all_doctests() -> dict[str, doctest.DocTest]:
    return {test.name: test for name in MODULES for test in _doctests(name)}


DOCTESTS = _all_doctests()


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_docstring_example_runs(name: str) -> None:
    test = DOCTESTS[name]
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, f"the Examples of {name} ({test.filename}:{test.lineno}) fail:\n" + "".join(report)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_public_name_keeps_its_examples(name: str) -> None:
    test = DOCTESTS.get(name)
    assert test is not None, f"{name} has no runnable example in its docstring"
    assert "Examples:" in (test.docstring or ""), f"{name}: put the examples under an 'Examples:' heading"

