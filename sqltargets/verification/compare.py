"""Cell-by-cell comparison of two target tables (the SQL path and the NumPy reference).

>>> import pyarrow as pa
>>> a = pa.table({"u": [1, 1], "row_id": [0, 1], "s": [1.0, None]})
>>> b = pa.table({"u": [1, 1], "row_id": [0, 1], "s": [1.0 + 1e-12, None]})
>>> diff(a, b, ["s"], ["u", "row_id"]) == []
True
>>> diff(a, b.set_column(2, "s", pa.array([2.0, None])), ["s"], ["u", "row_id"])[0].column
's'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

REL_TOL = 1e-9
ABS_TOL = 1e-6


@dataclass(frozen=True)
class Mismatch:
    """One cell that differs."""

    column: str
    key: tuple[Any, ...]
    left: Any
    right: Any

    def __str__(self) -> str:
        return f"{self.column} at {self.key}: sql={self.left!r} reference={self.right!r}"


def close(a: Any, b: Any) -> bool:
    """Equal values, nulls equal nulls, floats within tolerance, lists elementwise."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(close(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(a == b)


def diff(
    left: pa.Table, right: pa.Table, columns: list[str], key: list[str], limit: int = 0
) -> list[Mismatch]:
    """Mismatching cells of ``columns`` between two tables in the same row order.

    Row counts and the ``key`` columns must agree first; a key mismatch is reported once.
    """
    out: list[Mismatch] = []
    if left.num_rows != right.num_rows:
        return [Mismatch("<rows>", (), left.num_rows, right.num_rows)]
    lk = list(zip(*(left.column(k).to_pylist() for k in key)))
    rk = list(zip(*(right.column(k).to_pylist() for k in key)))
    if lk != rk:
        first = next(i for i, (a, b) in enumerate(zip(lk, rk)) if a != b)
        return [Mismatch("<row order>", (first,), lk[first], rk[first])]
    for col in columns:
        a, b = left.column(col).to_pylist(), right.column(col).to_pylist()
        for i, (x, y) in enumerate(zip(a, b)):
            if not close(x, y):
                out.append(Mismatch(col, lk[i], x, y))
                if limit and len(out) >= limit:
                    return out
    return out
