"""Speed and memory benchmarks of augkit:
``python -m benchmarks [--tiny | --quick] [--output PATH] [--only CASE ...] [--threads N]``.

Each case (one module each: augmentation, mutual_information, training, evaluation, ann,
distributed, scale, and scaling over their results) measures augkit and its references side
by side and returns a `benchmarks.report.CaseResult`: a printed table, JSON-able rows and the
targets it was held to. Not part of the test suite's pass/fail; ``tests/test_benchmarks_smoke.py``
runs the smallest profile (``--tiny``) to check the JSON structure only.
"""
