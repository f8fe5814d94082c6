"""sqltargets: synthetic targets for transaction sequences, compiled to DuckDB window SQL.

>>> import sqltargets
>>> spec = sqltargets.load({
...     "columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
...     "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}],
... })
>>> [t.name for t in spec.targets]
['s']
"""

from __future__ import annotations

from .compile.spec import Target, TargetSet, load
from .errors import (
    ArgumentError,
    DataError,
    DroppedRowsWarning,
    MccCodesWarning,
    OutputError,
    SkippedOutputsWarning,
    SourceError,
    SpecError,
    SqlTargetsError,
    VerifyError,
)

__version__ = "0.1.0"

_API = ("generate", "generate_batches", "explain", "prepare", "reference", "verify", "write")
#: Verbs living in their own modules, imported on first use: name -> module.
_LAZY = {"describe": "description"}


def __getattr__(name: str) -> object:
    # The API module pulls in duckdb and pyarrow; import it only when used.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sqltargets' has no attribute {name!r}")


__all__ = [
    "ArgumentError",
    "DataError",
    "DroppedRowsWarning",
    "MccCodesWarning",
    "SkippedOutputsWarning",
    "OutputError",
    "SourceError",
    "SpecError",
    "SqlTargetsError",
    "Target",
    "TargetSet",
    "VerifyError",
    "load",
    *_API,
    *_LAZY,
]
