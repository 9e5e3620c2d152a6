"""Griffe extension: the API reference shows each conformance check's public signature.

`augkit.testing.checks` writes each check as a body ``check_x(call)`` under
``@_conformance_check``, which gives it the signature of the `Check` protocol at run time
(what `inspect.signature` shows). Griffe reads the source, so this copies the protocol's
parameters onto every function so decorated.
"""

from __future__ import annotations

from typing import Any

import griffe


class ConformanceCheckSignatures(griffe.Extension):
    def on_function_instance(self, *, func: griffe.Function, **kwargs: Any) -> None:
        if any(d.callable_path.endswith("._conformance_check") for d in func.decorators):
            call = func.module["Check"]["__call__"]
            func.parameters = griffe.Parameters(*list(call.parameters)[1:])  # all but self
