"""Spec validation, the MCC catalog and `where` checks (including hostile input)."""

from __future__ import annotations

import pytest

import sqltargets
from sqltargets.compile import mcc, where
from sqltargets.compile.spec import load, parse_duration
from sqltargets.errors import SpecError

COLUMNS = {"user": "u", "time": "t", "amount": "a", "mcc": "m"}


def spec(**target: object) -> dict:
    t = {"name": "x", "agg": "sum", "window": {"kind": "expanding", "period": "day"}, **target}
    return {"columns": COLUMNS, "targets": [t]}


def issues(data: dict) -> list[str]:
    with pytest.raises(SpecError) as e:
        load(data)
    return [str(i) for i in e.value.issues]


def test_valid_spec_is_frozen_and_resolved() -> None:
    ts = load(spec(mcc=[5411, "5412-5420", "Fast Food"], where="a > 0", fill=1.5))
    t = ts.targets[0]
    assert t.mcc == ((5411, 5420), (5814, 5814))
    assert t.value == "a" and t.fill == 1.5 and t.where == "a > 0"
    with pytest.raises(AttributeError):
        t.name = "y"  # type: ignore[misc]
    assert ts.week_start_index == 0 and ts.timezone == "UTC" and ts.output == "events"


def test_durations() -> None:
    assert parse_duration("7d") == 7 * 86_400_000_000
    assert parse_duration("12 hours") == 12 * 3_600_000_000
    assert parse_duration("90s") == 90_000_000
    for bad in ("7 parsecs", "0d", "-1d", "1.5h", "d", "", None, 7):
        assert parse_duration(bad) is None


def test_all_problems_collected_with_paths() -> None:
    data = {
        "columns": {"user": "u", "time": "t", "amount": "a"},
        "timezone": "Mars/Olympus",
        "week_start": "funday",
        "targets": [
            {"name": "ok", "agg": "sum", "window": {"kind": "expanding", "period": "day"}},
            {"name": "1bad", "agg": "sum", "window": {"kind": "rolling", "period": "day"}},
            {
                "name": "c",
                "agg": "count",
                "fill": 1.5,
                "window": {"kind": "future", "length": "3 fortnights"},
            },
            {
                "name": "d",
                "agg": "top_k",
                "k": 5000,
                "window": {"kind": "period", "period": "month"},
            },
            {
                "name": "e",
                "agg": "sum",
                "k": 2,
                "window": {"kind": "period", "period": "month", "length": "1d"},
            },
        ],
    }
    got = issues(data)
    paths = [g.split(":")[0] for g in got]
    for p in [
        "columns.mcc", "timezone", "week_start", "targets[1].name", "targets[1].window.period",
        "targets[1].window.length", "targets[2].window.length", "targets[2].fill", "targets[3].k",
        "targets[4].k", "targets[4].window.length",
    ]:  # fmt: skip
        assert p in paths, (p, got)


def test_names_collide_with_output_columns() -> None:
    assert any("collides" in i for i in issues(spec(name="row_id")))
    assert any("collides" in i for i in issues(spec(name="U")))


def test_periods_output_rules() -> None:
    data = spec()
    data["output"] = "periods"
    assert any("targets[0].window.kind" in i for i in issues(data))
    data["targets"] = [
        {"name": "a", "agg": "sum", "window": {"kind": "period", "period": "day"}},
        {"name": "b", "agg": "sum", "window": {"kind": "next_period", "period": "week"}},
    ]
    assert any(i.startswith("output:") and "one calendar period" in i for i in issues(data))


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a path or a dict"):
        load([1, 2])  # type: ignore[arg-type]
    assert issues({"columns": COLUMNS, "targets": []}) == [
        "targets: expected a non-empty list of targets, got list []"
    ]


def test_mcc_catalog() -> None:
    assert mcc.resolve(["grocery"]) == (
        (5411, 5411),
        (5422, 5422),
        (5441, 5441),
        (5451, 5451),
        (5462, 5462),
        (5499, 5499),
    )
    assert mcc.resolve(["airlines"])[0] == (3000, 3350)
    with pytest.raises(SpecError, match="empty range"):
        mcc.resolve(["5499-5411"])
    with pytest.raises(SpecError, match="did you mean 'drug_stores'"):
        mcc.resolve(["drugstores"])
    for name in (
        "grocery",
        "restaurants",
        "fast_food",
        "drug_stores",
        "fuel",
        "airlines",
        "hotels",
        "rent",
        "utilities",
        "clothing",
        "electronics",
        "travel",
    ):
        assert name in mcc.CATALOG
        assert all(0 <= lo <= hi <= 9999 for lo, hi in mcc.CATALOG[name].ranges())


@pytest.mark.parametrize(
    "text",
    [
        "amount > 0; DROP TABLE transactions",
        "amount > (SELECT max(amount) FROM transactions)",
        "read_csv('/etc/passwd') IS NULL",
        "amount IN (SELECT 1)",
        "COPY transactions TO '/tmp/x.csv'",
        "ATTACH '/tmp/evil.db'",
        "INSTALL httpfs",
        "CAST(amount AS VARCHAR) = '1'",
        "t.amount > 0",
        "getenv('HOME') = 'x'",
        "amount > 0 UNION SELECT 1",
        "amount",
        "1 + 1",
        "",
        "amount > 0 AND exists(SELECT 1)",
        "mcc IN (mcc, 1)",
    ],
)
def test_where_refuses_hostile_or_non_boolean(text: str) -> None:
    with pytest.raises(SpecError):
        where.parse(text)
    with pytest.raises(SpecError):
        load(spec(where=text))


@pytest.mark.parametrize(
    ("text", "sql"),
    [
        ("amount > 0", '"amount" > 0'),
        ("a > 0 -- */ DROP TABLE t", '"a" > 0'),
        ("a > 0 /* x */", '"a" > 0'),
        ("city = 'O''Hare'", "\"city\" = 'O''Hare'"),
        ('"weird""col" < 3', '"weird""col" < 3'),
        ("channel NOT IN ('atm', 'online') AND amount BETWEEN -5 AND 5", None),
        ("lower(channel) LIKE 'on%' OR amount IS NOT NULL", None),
    ],
)
def test_where_allows_and_requotes(text: str, sql: str | None) -> None:
    tree = where.parse(text)
    out = where.to_sql(tree)
    if sql is not None:
        assert out == sql
    assert "--" not in out and "/*" not in out


def test_where_columns_are_checked_against_data() -> None:
    import pyarrow as pa

    t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [1.0], "m": [5411]})
    data = spec(where="amout > 0")
    data["time"] = {"unit": "day"}
    with pytest.raises(
        sqltargets.DataError,
        match=r"targets\[0\].where: column 'amout'.*did you mean 'a'|targets\[0\].where: column 'amout'",
    ):
        sqltargets.generate(data, t)
