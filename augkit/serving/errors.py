"""The errors of a trained run's requests (`augkit.serving`)."""

from __future__ import annotations

from augkit.errors import AugkitError


class RunError(AugkitError, ValueError):
    """A trained run cannot answer a request: a bad ``k``, a run whose weights do not fit the
    model its config builds, an export directory that is in the way."""


class UnknownValueError(AugkitError, LookupError):
    """A feature value of a new item (`Run.embed_items`) that the run's vocabulary lacks."""
