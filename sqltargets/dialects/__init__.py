"""SQL dialects of the portable statement: DuckDB's own, and Spark's translation of it."""

from __future__ import annotations

from ..compile.plan import Plan
from ..compile.render import Source, render, statement
from ..errors import ArgumentError, did_you_mean

DIALECTS = ("duckdb", "spark")


def portable_sql(plan: Plan, source: Source, dialect: str = "duckdb", pretty: bool = True) -> str:
    """The portable statement for ``plan`` reading ``source``, in ``dialect``."""
    if dialect not in DIALECTS:
        raise ArgumentError(
            f"dialect: {dialect!r} is not supported; expected one of: {', '.join(DIALECTS)}"
            f"{did_you_mean(dialect, DIALECTS)}"
        )
    if dialect == "spark":
        from .spark import to_spark

        return to_spark(statement(plan, source), plan, pretty=pretty)
    return render(plan, source, pretty=pretty)
