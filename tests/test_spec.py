"""Spec validation, the MCC catalog and `where` checks (including hostile input)."""

from __future__ import annotations

import re

import pytest

import sqltargets
from sqltargets.compile import mcc, where
from sqltargets.compile.spec import Window, load, parse_duration
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


def test_the_output_roles_name_different_columns() -> None:
    """The output carries the user, time and id columns: one column in two of these roles
    would write two columns of one name (which pyarrow cannot read back)."""
    for roles, field in [
        ({"time": "u"}, "columns.time"),
        ({"id": "U"}, "columns.id"),  # DuckDB's names are case-insensitive
        ({"id": "t"}, "columns.id"),
        ({"user": "row_id"}, "columns.user"),  # the output's row_id, without an id
        ({"time": "ROW_ID"}, "columns.time"),
    ]:
        data = spec()
        data["columns"] = {**COLUMNS, **roles}
        got = issues(data)
        assert any(
            i.startswith(field) and ("must name different columns" in i or "row_id" in i)
            for i in got
        ), got
    data = spec()
    data["columns"] = {**COLUMNS, "mcc": "a", "id": "a"}  # other roles may share a column
    load(data)
    data["columns"] = {**COLUMNS, "user": "row_id", "id": "tx"}  # an id: no row_id column
    load(data)


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


def test_where_types_are_checked_against_data_naming_the_target() -> None:
    """A `where` that parses but that DuckDB cannot bind on the input (a string column
    compared with a number, a string function of a number, a chained comparison) is an
    error naming the target's field and its expression, in generate (either engine),
    generate_batches and the torch datasets, before anything runs."""
    import pyarrow as pa

    t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [1.0], "m": [5411], "c": ["x"]})
    fine = {"name": "fine", "agg": "count", "where": "a > 0", "window": {"kind": "expanding", "period": "day"}}  # fmt: skip
    for text in ["c > 5", "lower(a) = 'x'", "a LIKE 'x%'", "m = 'abc'", "a > 1 = TRUE"]:
        data = spec(where=text)
        data["time"] = {"unit": "day"}
        data["targets"] = [fine, {**data["targets"][0], "name": "bad"}]
        pattern = rf"targets\[1\]\.where: {re.escape(repr(text))} cannot be evaluated on the input"
        for run, kw in [
            (sqltargets.generate, {}),
            (sqltargets.generate, {"engine": "sql"}),
            (sqltargets.generate_batches, {}),
        ]:
            with pytest.raises(sqltargets.DataError, match=pattern):
                run(data, t, **kw)
    pytest.importorskip("torch")
    from sqltargets.torch import StreamingTargetDataset

    with pytest.raises(sqltargets.DataError, match=r"targets\[1\]\.where: 'a > 1 = TRUE'"):
        StreamingTargetDataset(data, t)


# ---------------------------------------------------------------------------------------------
# issue 12: new aggregations, window kinds and parameters


def window_spec(agg: str = "sum", **window: object) -> dict:
    return spec(agg=agg, window=window)


def test_new_targets_are_frozen_objects_with_the_agreed_fields() -> None:
    ts = load(
        {
            "columns": COLUMNS,
            "targets": [
                {"name": "f", "agg": "sum", "window": {"kind": "future", "length": "7d", "offset": "1d"}},
                {"name": "np", "agg": "sum", "window": {"kind": "next_period", "period": "month", "offset": 1}},
                {"name": "ex", "agg": "count", "window": {"kind": "expanding", "period": "day", "include_current": False}},
                {"name": "rx", "agg": "mean", "window": {"kind": "rolling", "length": "30d", "include_current": False}},
                {"name": "nx", "agg": "first", "value": "m", "window": {"kind": "next", "n": 2}},
                {"name": "pv", "agg": "elapsed", "window": {"kind": "previous"}},
                {"name": "q", "agg": "quantile", "q": 0.9, "window": {"kind": "rolling", "length": "30d"}},
                {"name": "md", "agg": "median", "window": {"kind": "period", "period": "week"}},
                {"name": "d", "agg": "distribution", "measure": "count", "normalize": True,
                 "by": {"mcc": ["grocery", " 5411-5499 ", [5541, "fuel"], 6011]},
                 "window": {"kind": "next_period", "period": "month"}},
            ],
        }
    )  # fmt: skip
    t = {x.name: x for x in ts.targets}
    day = 86_400_000_000
    assert t["f"].window == Window("future", length=7 * day, offset=day)
    assert t["np"].window == Window("next_period", period="month", offset=1)
    assert t["ex"].window == Window("expanding", period="day", include_current=False)
    assert t["rx"].window == Window("rolling", length=30 * day, include_current=False)
    assert t["nx"].window == Window("next", n=2) and t["nx"].value == "m"
    assert t["pv"].window == Window("previous", n=1)
    assert t["q"].q == 0.9 and t["md"].q is None  # median is the quantile at 0.5
    d = t["d"]
    assert d.by_names == ("grocery", "5411-5499", "5541+fuel", "6011")
    assert d.by == (
        mcc.resolve(["grocery"]),
        ((5411, 5499),),
        ((5541, 5542), (5552, 5552), (5983, 5983)),
        ((6011, 6011),),
    )
    assert d.measure == "count" and d.normalize is True and d.fill is None
    # defaults for targets that do not use them
    assert t["q"].by is None and t["q"].by_names is None
    assert t["q"].measure == "sum" and t["q"].normalize is False
    assert [x.window.describe() for x in ts.targets] == [
        "future/1w+1d", "next_period/month+1", "expanding/day excl. current",
        "rolling/30d excl. current", "next#2", "previous#1", "rolling/30d", "period/week",
        "next_period/month",
    ]  # fmt: skip
    assert [x.looks for x in ts.targets] == [
        "future", "future", "past", "past", "future", "past", "past", "future", "future",
    ]  # fmt: skip
    assert [x.name for x in ts.future_targets()] == ["f", "np", "nx", "md", "d"]
    assert ts.outputs_mcc_code(t["nx"]) and not ts.outputs_mcc_code(t["pv"])


def test_offsets() -> None:
    for zero in (0, "0d", "0 s"):
        assert load(window_spec(kind="future", length="1d", offset=zero)).targets[0].window == (
            Window("future", length=86_400_000_000)
        )
    got = issues(window_spec(kind="future", length="1d", offset="-1d"))
    assert got == [
        "targets[0].window.offset: '-1d' is not a duration; a future window's offset is a whole "
        "number and a unit (us, ms, s, m, h, d, w), such as '1d', or 0"
    ]
    assert (
        "did you mean 'days'" in issues(window_spec(kind="future", length="1d", offset="2 dys"))[0]
    )
    assert "not a duration" in issues(window_spec(kind="future", length="1d", offset=5))[0]
    # next_period: whole periods
    got = issues(window_spec(kind="next_period", period="month", offset="1d"))
    assert "whole number of months" in got[0] and "use a future window" in got[0]
    for bad in (-1, 1.5, True, 1001):
        assert issues(window_spec(kind="next_period", period="week", offset=bad))[0].startswith(
            "targets[0].window.offset:"
        )
    # only on future and next_period
    for kind, extra in (("rolling", {"length": "1d"}), ("period", {"period": "day"})):
        got = issues(window_spec(kind=kind, offset="1d", **extra))
        assert got == [
            f"targets[0].window.offset: offset applies only to window kinds future and "
            f"next_period, not {kind!r}; remove it"
        ]


def test_include_current() -> None:
    got = issues(window_spec(kind="expanding", period="day", include_current="no"))
    assert got == [
        "targets[0].window.include_current: expected true or false (false leaves this row "
        "out), got str 'no'"
    ]
    got = issues(window_spec(kind="future", length="1d", include_current=False))
    assert "applies only to window kinds expanding and rolling, not 'future'" in got[0]
    assert (
        "did you mean 'include_current'"
        in issues(window_spec(kind="rolling", length="1d", include_curent=False))[0]
    )


def test_event_windows() -> None:
    for bad in (0, 1001, 1.0, True, "2"):
        got = issues(window_spec("first", kind="next", n=bad))
        assert got[0].startswith("targets[0].window.n:") and "1 to 1000" in got[0], got
    got = issues(window_spec("first", kind="previous", period="day", length="1d"))
    assert [g.split(":")[0] for g in got] == [
        "targets[0].window.period",
        "targets[0].window.length",
    ]
    assert "n-th passing transaction before this row" in got[0]
    assert (
        "n applies only to window kinds next and previous"
        in issues(window_spec(kind="period", period="day", n=2))[0]
    )
    assert "did you mean 'next'" in issues(window_spec("first", kind="nxt"))[0]
    assert "did you mean 'previous'" in issues(window_spec("first", kind="prevous"))[0]


def test_event_windows_take_first_last_count_elapsed_only() -> None:
    for agg in ("first", "last", "count", "elapsed"):
        load(window_spec(agg, kind="next"))
    got = issues(window_spec("mean", kind="previous"))
    assert got == [
        "targets[0].agg: 'mean' does not apply to a previous window, which holds one "
        "transaction (or none); expected one of: first, last (its value), count (1 or 0), "
        "elapsed (seconds since it)"
    ]
    # reported with the window's own problems, all together
    got = issues(window_spec("sum", kind="next", n=0))
    assert sorted(g.split(":")[0] for g in got) == ["targets[0].agg", "targets[0].window.n"]


def test_elapsed_needs_an_event_window() -> None:
    got = issues(window_spec("elapsed", kind="rolling", length="1d"))
    assert got == [
        "targets[0].agg: elapsed is the time to the next or since the previous transaction; "
        "it needs window kind next or previous, not 'rolling'"
    ]
    assert "did you mean 'elapsed'" in issues(window_spec("elapsd", kind="next"))[0]


def test_quantile_q() -> None:
    assert load(spec(agg="quantile", q=0.5)).targets[0].q == 0.5
    assert issues(spec(agg="quantile")) == [
        "targets[0].q: missing; quantile needs q, a number strictly between 0 and 1 (0.9 for "
        "the 90th percentile)"
    ]
    assert issues(spec(agg="quantile", q=90)) == [
        "targets[0].q: 90 is not allowed; q is a number strictly between 0 and 1; for the 90th "
        "percentile write 0.9"
    ]
    for bad in (0, 1, -0.5, 1.5, "0.5", True, float("nan")):
        assert issues(spec(agg="quantile", q=bad))[0].startswith("targets[0].q:"), bad
    assert issues(spec(agg="median", q=0.5)) == [
        "targets[0].q: median is the quantile at 0.5 and takes no q; for another q use agg quantile"
    ]
    assert issues(spec(agg="mean", q=0.5)) == [
        "targets[0].q: q applies only to agg quantile, not 'mean'; remove it"
    ]
    assert "did you mean 'quantile'" in issues(spec(agg="quantil", q=0.5))[0]
    assert "did you mean 'median'" in issues(spec(agg="medain"))[0]


def test_distribution_by_measure_normalize() -> None:
    got = issues(spec(agg="distribution"))
    assert got[0].startswith("targets[0].by: missing; distribution needs by")
    assert (
        "expected a mapping with the key mcc" in issues(spec(agg="distribution", by=["grocery"]))[0]
    )
    got = issues(spec(agg="distribution", by={"mccs": ["grocery"]}))
    assert "targets[0].by.mccs: unknown key 'mccs'; allowed keys: mcc (did you mean 'mcc'?)" in got
    assert any(g.startswith("targets[0].by.mcc: expected a list of 1 to 64 groups") for g in got)
    assert "got list []" in issues(spec(agg="distribution", by={"mcc": []}))[0]
    assert "got 65 groups" in issues(spec(agg="distribution", by={"mcc": list(range(65))}))[0]
    got = issues(
        spec(
            agg="distribution",
            by={"mcc": ["grocry", [], [5411, [5812]], "fuel", "fuel", 12345]},
            measure="cnt",
            normalize="yes",
        )
    )
    assert got == [
        "targets[0].measure: 'cnt' is not allowed; expected one of: sum, count (did you mean "
        "'count'?)",
        "targets[0].normalize: expected true or false (true: each slot as a share of the "
        "total), got str 'yes'",
        f"targets[0].by.mcc[0]: 'grocry' is not an MCC code, range or group; groups are: "
        f"{', '.join(mcc.CATALOG)} (did you mean 'grocery'?)",
        "targets[0].by.mcc[1]: an empty list; a group needs at least one code, range or group name",
        "targets[0].by.mcc[2][1]: lists do not nest; a group is one flat list of codes, ranges "
        "and group names",
        "targets[0].by.mcc[4]: 'fuel' repeats group by.mcc[3]; name each group once",
        "targets[0].by.mcc[5]: 12345 is not an MCC code; codes are 0-9999",
    ]


def test_distribution_only_keys_and_no_fill() -> None:
    got = issues(spec(agg="sum", by={"mcc": ["grocery"]}, measure="count", normalize=True))
    assert got == [
        f"targets[0].{key}: {key} applies only to agg distribution, not 'sum'; remove it"
        for key in ("by", "measure", "normalize")
    ]
    got = issues(spec(agg="distribution", by={"mcc": ["grocery"]}, fill=0))
    assert got == [
        "targets[0].fill: a distribution takes no fill: its empty value is a list (all zeros, "
        "or all null when normalized), not one number"
    ]
    assert (
        "did you mean 'normalize'"
        in issues(spec(agg="distribution", by={"mcc": ["grocery"]}, normalise=True))[0]
    )


def test_mcc_labels_take_an_integer_fill() -> None:
    assert load(spec(agg="first", value="m", fill=0.0)).targets[0].fill == 0
    assert isinstance(load(spec(agg="mode", value="m", fill=7)).targets[0].fill, int)
    assert issues(spec(agg="last", value="m", fill=1.5)) == [
        "targets[0].fill: 1.5: last of the mcc column gives MCC codes (integers), so fill must "
        "be an integer"
    ]
    assert load(spec(agg="mode", fill=1.5)).targets[0].fill == 1.5  # not the mcc column


def test_pretrain_example_validates() -> None:
    from pathlib import Path

    ts = load(Path(__file__).resolve().parents[1] / "examples" / "pretrain.yaml")
    aggs = {t.agg for t in ts.targets}
    kinds = {t.window.kind for t in ts.targets}
    assert {"first", "elapsed", "distribution", "quantile", "median", "count"} <= aggs
    assert {"next", "previous", "next_period", "future", "expanding", "rolling"} <= kinds
    assert any(t.window.offset for t in ts.targets if t.window.kind == "future")
    assert any(not t.window.include_current for t in ts.targets)
    assert any(ts.outputs_mcc_code(t) for t in ts.targets)


def test_a_distribution_group_covered_by_earlier_groups_is_refused() -> None:
    """Each transaction goes to the first group holding its MCC: a group whose codes all
    belong to earlier ones ('GROCERY' after 'grocery', 5411 after grocery) had a slot that
    was always 0, accepted without a word (only an identical spelling was refused)."""

    def spec(by: list) -> dict:
        return {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [
            {"name": "d", "agg": "distribution", "by": {"mcc": by}, "window": {"kind": "period", "period": "day"}}]}  # fmt: skip

    for by in (["grocery", "GROCERY"], ["Fast Food", "fast_food"], [5411, "5411-5411"],
               [[5812, 5411], [5411, 5812]], ["grocery", 5411], ["5400-5500", 5411, "5450-5460"]):  # fmt: skip
        with pytest.raises(SpecError, match=r"by\.mcc\[\d\]: .* holds only codes of the groups before it"):  # fmt: skip
            load(spec(by))
    for by in ([5411, "grocery"], ["5400-5500", [5411, 5999]], ["5400-5450", "5451-5460"]):  # fmt: skip
        assert len(load(spec(by)).targets[0].by) == len(by)
