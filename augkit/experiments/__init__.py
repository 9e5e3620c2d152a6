"""Experiments over the reference trainer, a layer above `augkit.train`: ``augkit compare``
(`augkit.experiments.compare`) and ``augkit tune`` (`augkit.experiments.tune`).

One job per module: `variants` (the built-in variants, defined once), `spec` (what a
comparison runs, typed and checked), `training` (train and test one run), `stats` (statistics
over seeds, with SciPy), `compare` and `tune` (orchestration), `report` and `plots` (the
markdown pages and plots), `progress` (log lines over a comparison's runs). Optuna and SciPy
come with the ``experiments`` extra.
"""
