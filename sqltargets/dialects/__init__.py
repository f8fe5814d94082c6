"""SQL dialects of the portable statement: DuckDB's own, and Spark's translation of it."""

from __future__ import annotations

from ..compile.plan import Plan
from ..compile.render import Source, render, statement
from ..errors import ArgumentError, did_you_mean, short

DIALECTS = ("duckdb", "spark")


def check_dialect(dialect: str) -> None:
    """An unknown ``dialect`` is an :class:`ArgumentError` naming the allowed ones."""
    if dialect not in DIALECTS:
        raise ArgumentError(
            f"dialect: {short(dialect)} is not supported; expected one of: "
            f"{', '.join(DIALECTS)}{did_you_mean(dialect, DIALECTS)}"
        )


def portable_sql(plan: Plan, source: Source, dialect: str = "duckdb", pretty: bool = True) -> str:
    """The portable statement for ``plan`` reading ``source``, in ``dialect``."""
    check_dialect(dialect)
    if dialect == "spark":
        from .spark import to_spark

        return to_spark(statement(plan, source), plan, pretty=pretty)
    return render(plan, source, pretty=pretty)
