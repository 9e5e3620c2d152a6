"""Shared pytest set-up: the pytester fixture, and no Hypothesis deadlines (torch warm-up
makes first calls slow)."""

from hypothesis import settings

pytest_plugins = ["pytester"]

settings.register_profile("augkit", deadline=None)
settings.load_profile("augkit")
