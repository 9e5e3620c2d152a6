"""Test support for augmentation authors: Hypothesis strategies and conformance checks.

Check your plugin's augmentations the way augkit checks its own::

    from augkit.testing import parametrize_with_checks

    @parametrize_with_checks([MyAugmentation(p=0.2)])
    def test_my_augmentation(aug, check):
        check(aug)

and draw schemas and valid batches for your own properties with `augkit.testing.strategies`.
"""

from augkit.testing.checks import (
    CHECKS,
    applicable_checks,
    check_augmentation,
    check_config_round_trip,
    check_generate_then_apply,
    check_global_rngs_untouched,
    check_granularity,
    check_ids_in_range,
    check_input_not_mutated,
    check_mask_contract,
    check_no_host_sync,
    check_pair_augmentation,
    check_rejects_missing_generator,
    check_reproducible,
    check_views_structure,
    parametrize_with_checks,
)
from augkit.testing.strategies import (
    EXAMPLE_SCHEMA,
    batches,
    generators,
    random_batch,
    schemas,
    schemas_and_batches,
    seeds,
    tiny_batch,
)

__all__ = [
    "CHECKS",
    "EXAMPLE_SCHEMA",
    "applicable_checks",
    "batches",
    "check_augmentation",
    "check_config_round_trip",
    "check_generate_then_apply",
    "check_global_rngs_untouched",
    "check_granularity",
    "check_ids_in_range",
    "check_input_not_mutated",
    "check_mask_contract",
    "check_no_host_sync",
    "check_pair_augmentation",
    "check_rejects_missing_generator",
    "check_reproducible",
    "check_views_structure",
    "generators",
    "parametrize_with_checks",
    "random_batch",
    "schemas",
    "schemas_and_batches",
    "seeds",
    "tiny_batch",
]
