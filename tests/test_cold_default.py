"""Cold items read fairly: an item never seen in training is served with its ``item_id``
missing, so its score reads the ``item_id`` default embedding; every variant of compare and
tune trains that embedding alike (`augkit.experiments.variants.ID_DROPOUT`), where a plain
main task never would."""

from __future__ import annotations

import attrs
import pytest
import torch
from workspaces import TINY_RUN

from augkit.errors import ConfigError
from augkit.experiments.spec import check_tuned
from augkit.experiments.variants import ID_DROPOUT, VARIANTS, id_dropout, variant_config
from augkit.train import build_run, config_from_dict, train
from augkit.train.run import ITEM_ID_FEATURE, load_dataset

TINY = {**TINY_RUN, "checkpoint_every": 0}


def _default_moves(config) -> bool:
    """Whether a short training moves the ``item_id`` default embedding from its initial value."""
    parts = build_run(config, load_dataset(config))
    before = parts.model["item"].input_layer.default(ITEM_ID_FEATURE).detach().clone()
    result = train(config, parts=parts)
    after = result.parts.model["item"].input_layer.default(ITEM_ID_FEATURE).detach().cpu()
    return not torch.equal(before, after)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_the_default_embedding_cold_items_are_served_with(tmp_path, variant):
    base = config_from_dict({**TINY, "output_dir": str(tmp_path)})
    config = variant_config(base, variant, 0, 0.3)
    assert _default_moves(config)


def test_without_id_dropout_the_main_task_never_trains_the_default(tmp_path):
    # What the comparison used to do: a baseline whose main task never masks the id.
    plain = config_from_dict({**TINY, "output_dir": str(tmp_path), "ssl": {**TINY["ssl"], "alpha": 0.0}})
    assert not _default_moves(plain)


def test_every_variant_masks_the_id_at_the_same_rate(tmp_path):
    base = config_from_dict({**TINY, "output_dir": str(tmp_path)})
    for variant in VARIANTS:
        main = variant_config(base, variant, 0, 0.3).main
        if variant == "fd":  # FD masks every feature, item_id among them, at the same rate
            assert main.feature_dropout == ID_DROPOUT and main.augmentation is None
        else:
            assert main.item_augmentation() == id_dropout()


def test_a_tuned_config_that_does_not_train_the_default_is_refused(tmp_path):
    base = config_from_dict({**TINY, "output_dir": str(tmp_path)})
    tuned = variant_config(base, "cfm", 0, 0.3)
    check_tuned(base, "cfm", tuned, "best.toml")
    old = attrs.evolve(tuned, main=attrs.evolve(tuned.main, augmentation=None))
    with pytest.raises(ConfigError, match="item_id"):
        check_tuned(base, "cfm", old, "best.toml")
