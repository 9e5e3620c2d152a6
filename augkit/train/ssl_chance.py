"""Is the SSL task learning? The loop's `SSLChance` piece compares the SSL loss with chance.

InfoNCE over B candidates starts at ln B: a tower that cannot tell the items of a batch apart
puts probability 1/B on the right one. Each epoch, `SSLChance` logs the epoch's mean SSL loss
beside ln B, and warns once per run when an epoch after the first still has a mean above
`CHANCE_RATIO` x ln B. The first epoch is spared: a task that learns may sit at chance for a
while, as the id embeddings move. ``docs/how-to/is-ssl-learning.md`` explains what to try.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch

from augkit import distributed
from augkit.train.callbacks import Callback, EpochEnd, LoopView
from augkit.train.step import TERMS

log = logging.getLogger("augkit.train")

CHANCE_RATIO = 0.9
"""An epoch whose mean SSL loss is above this share of ln B has learned next to nothing: at
0.9 the model puts on the right item, on average, at most about B^0.1 times the chance
probability (1.9 times for B = 512)."""

_SSL = TERMS.index("ssl")


def ssl_candidates(loop: LoopView) -> int:
    """B: the items each SSL query is scored against (``ssl.batch_size``, at most the corpus;
    on several processes without ``main.gather``, this process's share)."""
    config = loop.config
    size = min(config.ssl.batch_size, loop.parts.dataset.num_items)
    world = distributed.world_size()
    gathered = config.main.gather if config.main.gather is not None else world > 1
    return size if gathered else max(1, size // world)


def advice(ratio: float, candidates: int) -> str:
    """The warning for an epoch whose mean SSL loss is `ratio` x ln(`candidates`)."""
    return (
        f"the SSL loss stays near chance ({ratio:.2f} x ln({candidates}) after the first epoch): the SSL task "
        "is not learning, and ssl.alpha only adds noise. The two views may share no information: try "
        "correlation = 'symmetric_uncertainty' and granularity = 'example' in the cfm params, keep "
        "item_id among the masked features, or check the splits `augkit mi` shows (docs: how-to/is-ssl-learning)"
    )


class SSLChance(Callback):
    """Each epoch's mean SSL loss against ln B (`ssl_candidates`); one warning per run when an
    epoch after the first stays above `CHANCE_RATIO` x ln B. Does nothing without an SSL task.
    ``epochs`` (in the checkpoint): ``{"epoch", "ssl_loss", "chance", "ratio"}`` per epoch;
    ``warning``: the warning given, or None."""

    def __init__(self) -> None:
        self.sum = torch.zeros((), dtype=torch.float64)
        self.steps = 0
        self.epochs: list[dict[str, Any]] = []
        self.warning: str | None = None

    def on_step_end(self, loop: LoopView, terms: torch.Tensor) -> None:
        if loop.present["ssl"]:
            self.sum = self.sum.to(terms.device) + terms[_SSL]
            self.steps += 1

    def on_epoch_end(self, loop: LoopView, end: EpochEnd) -> None:
        if not loop.present["ssl"] or self.steps == 0:
            return
        loop.check_finite()
        candidates = ssl_candidates(loop)
        chance = math.log(candidates)
        mean = float(self.sum) / self.steps
        ratio = mean / chance if chance > 0 else math.nan
        self.sum, self.steps = torch.zeros_like(self.sum), 0
        self.epochs.append({"epoch": end.epoch, "ssl_loss": mean, "chance": chance, "ratio": ratio})
        log.info(
            "epoch %d: ssl loss %.3f, %.2f x chance ln(%d) = %.3f", end.epoch, mean, ratio, candidates, chance
        )
        if end.epoch > 1 and ratio > CHANCE_RATIO and self.warning is None:
            self.warning = advice(ratio, candidates)
            log.warning(self.warning)

    @property
    def summary(self) -> dict[str, Any] | None:
        """``{"chance", "last_ratio", "epochs", "warning"}`` for the run's metrics, or None
        without an SSL epoch."""
        if not self.epochs:
            return None
        return {
            "chance": self.epochs[-1]["chance"],
            "last_ratio": self.epochs[-1]["ratio"],
            "epochs": [row["ratio"] for row in self.epochs],
            "warning": self.warning,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "ssl_chance_sum": self.sum.cpu(),
            "ssl_chance_steps": self.steps,
            "ssl_chance_epochs": self.epochs,
            "ssl_chance_warning": self.warning,
        }

    def state_defaults(self) -> dict[str, Any]:
        """A checkpoint written before this piece existed resumes with it fresh: the SSL loss
        against chance then counts from the resume (the model is not affected)."""
        return SSLChance().state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sum = state["ssl_chance_sum"].to(torch.float64)
        self.steps, self.epochs = state["ssl_chance_steps"], state["ssl_chance_epochs"]
        self.warning = state["ssl_chance_warning"]
