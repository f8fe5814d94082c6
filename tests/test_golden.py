"""Golden SQL: each tests/golden/CASE.yaml beside the SQL it compiles to (CASE.sql).

Run ``pytest tests/test_golden.py --update-golden`` to rewrite them, then review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

import sqltargets

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_golden_sql(case: str, update_golden: bool) -> None:
    sql = sqltargets.explain(GOLDEN / f"{case}.yaml") + ";\n"
    path = GOLDEN / f"{case}.sql"
    if update_golden or not path.exists():
        path.write_text(sql)
    assert sql == path.read_text(), f"{path.name} changed; rerun with --update-golden and review"


@pytest.mark.parametrize("case", CASES)
def test_golden_parses(case: str) -> None:
    text = (GOLDEN / f"{case}.sql").read_text()
    statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    assert len(statements) == 1
    assert statements[0].find(sqlglot.exp.Window) is not None or "GROUP BY" in text


def test_golden_cases_exist() -> None:
    assert len(CASES) >= 5
