"""Golden files: each tests/golden/CASE.yaml beside what it compiles to: the portable
statement (CASE.sql), the native program (CASE.program.sql: the prologue and one comment
line per kernel) and the Spark statement (CASE.spark.sql, for specs with an id column).

Run ``pytest tests/test_golden.py --update-golden`` to rewrite them, then review the diff.
Every golden file is one statement that sqlglot parses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

import sqltargets

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
KINDS = {
    "sql": ("duckdb", "sql"),
    "program.sql": ("duckdb", "native"),
    "spark.sql": ("spark", "sql"),
}


def _wanted(case: str) -> list[str]:
    spec = sqltargets.load(GOLDEN / f"{case}.yaml")
    return [k for k in KINDS if k != "spark.sql" or spec.columns.id is not None]


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_golden: bool) -> None:
    for suffix in _wanted(case):
        dialect, engine = KINDS[suffix]
        sql = sqltargets.explain(GOLDEN / f"{case}.yaml", dialect=dialect, engine=engine) + ";\n"
        path = GOLDEN / f"{case}.{suffix}"
        if update_golden or not path.exists():
            path.write_text(sql)
        assert sql == path.read_text(), (
            f"{path.name} changed; rerun with --update-golden and review"
        )


@pytest.mark.parametrize("case", CASES)
def test_golden_parses(case: str) -> None:
    for suffix in _wanted(case):
        dialect = KINDS[suffix][0]
        text = (GOLDEN / f"{case}.{suffix}").read_text()
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        assert len(statements) == 1, suffix
        if suffix == "program.sql":
            assert "ORDER BY" in text and "--   " in text  # sorted events, kernel lines
        else:
            assert statements[0].find(sqlglot.exp.Window) is not None or "GROUP BY" in text


def test_golden_cases_exist() -> None:
    assert len(CASES) >= 5
    assert any(p.name.endswith(".spark.sql") for p in GOLDEN.iterdir())
