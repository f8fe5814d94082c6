"""Hand-computed cases for the NumPy reference (sqltargets.verification.reference).

Every expected value below was worked out by hand from TARGETS.md; the comments show how.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import Any

import pyarrow as pa
import pytest

from sqltargets.compile.spec import TargetSet, load
from sqltargets.errors import DataError, SpecError
from sqltargets.verification.reference import (
    evaluate_where,
    next_period_start,
    period_start,
    reference_table,
    wall_to_instant_us,
)

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = zoneinfo.ZoneInfo("UTC")


def make_spec(*targets: dict[str, Any], **top: Any) -> TargetSet:
    columns = {"user": "u", "time": "t", "amount": "amount", "mcc": "mcc"}
    columns.update(top.pop("columns", {}))
    return load({"columns": columns, "targets": list(targets), **top})


def target(name: str, agg: str = "sum", kind: str = "expanding", **kw: Any) -> dict[str, Any]:
    window: dict[str, Any] = {"kind": kind}
    if kind in ("rolling", "future"):
        window["length"] = kw.pop("length")
    else:
        window["period"] = kw.pop("period", "day")
    return {"name": name, "agg": agg, "window": window, **kw}


def col(result: pa.Table, name: str) -> list[Any]:
    return result.column(name).to_pylist()


# ---------------------------------------------------------------------------------------------
# the worked example of TARGETS.md


def test_targets_md_example_exactly() -> None:
    ts = make_spec(
        target("target", mcc=[5411], period="day"),
        columns={"time": "day"},
        time={"unit": "day"},
    )
    table = pa.table(
        {
            "u": [7] * 6,
            "amount": [10.0, 20.0, 5.0, 7.5, 2.5, 1.0],
            "mcc": [5812, 5411, 5411, 5942, 5411, 5411],
            "day": [1, 1, 2, 2, 2, 3],
        }
    )
    out = reference_table(ts, table)
    assert out.column_names == ["u", "day", "row_id", "target"]
    assert out.schema.field("u").type == pa.int64()
    assert out.schema.field("day").type == pa.int64()
    assert out.schema.field("row_id").type == pa.int64()
    assert out.schema.field("target").type == pa.float64()
    assert col(out, "row_id") == [0, 1, 2, 3, 4, 5]
    assert col(out, "day") == [1, 1, 2, 2, 2, 3]
    assert col(out, "target") == [0.0, 20.0, 5.0, 5.0, 7.5, 1.0]


# ---------------------------------------------------------------------------------------------
# one case per window kind (integer days, one user)

# row:    0     1     2    3
# day:    1     1     2    3
# amount: 10    20    5    1
DAYS = pa.table(
    {"u": [1, 1, 1, 1], "t": [1, 1, 2, 3], "amount": [10.0, 20.0, 5.0, 1.0], "mcc": [1, 1, 1, 1]}
)


def run_days(**kw: Any) -> list[Any]:
    ts = make_spec(target("x", **kw), time={"unit": "day"})
    return col(reference_table(ts, DAYS), "x")


def test_expanding_is_row_by_row_within_the_period() -> None:
    # day 1: 10, then 10+20; day 2 starts over: 5; day 3: 1
    assert run_days(kind="expanding", period="day") == [10.0, 30.0, 5.0, 1.0]


def test_expanding_same_time_rows_get_running_values() -> None:
    # three rows at the same instant: counts 1, 2, 3 in input order
    assert run_days(agg="count", kind="expanding", period="day") == [1, 2, 1, 1]
    table = pa.table({"u": [1, 1, 1], "t": [5, 5, 5], "amount": [1.0, 2.0, 4.0], "mcc": [0] * 3})
    ts = make_spec(target("x"), time={"unit": "day"})
    assert col(reference_table(ts, table), "x") == [1.0, 3.0, 7.0]


def test_period_is_the_whole_period() -> None:
    assert run_days(kind="period", period="day") == [30.0, 30.0, 5.0, 1.0]


def test_rolling_is_a_trailing_duration_with_ties_together() -> None:
    # 2d: (t-2d, t]; row 0 sees row 1 (same time); row 2 (day 2) sees days 1..2; row 3 days 2..3
    assert run_days(kind="rolling", length="2d") == [30.0, 30.0, 35.0, 6.0]
    # 1d: only the same day
    assert run_days(kind="rolling", length="1d") == [30.0, 30.0, 5.0, 1.0]


def test_future_is_strictly_after() -> None:
    # 1d: (t, t+1d]; the last row has an empty window: sum 0.0
    assert run_days(kind="future", length="1d") == [5.0, 5.0, 1.0, 0.0]
    assert run_days(kind="future", length="2d") == [6.0, 6.0, 1.0, 0.0]
    assert run_days(agg="mean", kind="future", length="1d") == [5.0, 5.0, 1.0, None]


def test_next_period() -> None:
    # day 1 -> day 2 (5), day 2 -> day 3 (1), day 3 -> day 4 (nothing)
    assert run_days(kind="next_period", period="day") == [5.0, 5.0, 1.0, 0.0]
    # a gap: day 1 -> day 2 has nothing when the user skips it
    table = pa.table({"u": [1, 1], "t": [1, 3], "amount": [1.0, 2.0], "mcc": [0, 0]})
    ts = make_spec(target("x", kind="next_period"), time={"unit": "day"})
    assert col(reference_table(ts, table), "x") == [0.0, 0.0]


def test_windows_stay_inside_a_user() -> None:
    table = pa.table(
        {
            "u": ["b", "a", "b", "a"],
            "t": [1, 1, 2, 2],
            "amount": [1.0, 10.0, 2.0, 20.0],
            "mcc": [0] * 4,
        }
    )
    ts = make_spec(target("x", kind="rolling", length="7d"), time={"unit": "day"})
    out = reference_table(ts, table)
    # sorted by user, then time
    assert col(out, "u") == ["a", "a", "b", "b"]
    assert col(out, "row_id") == [1, 3, 0, 2]
    assert col(out, "x") == [10.0, 30.0, 1.0, 3.0]


# ---------------------------------------------------------------------------------------------
# one case per agg: whole-day windows over a day with nulls, a day of one null, a day of one value

# row:    0     1    2    3    4    5     | 6     | 7
# day:    1     1    1    1    1    1     | 2     | 3
# amount: null  4.0  1.0  4.0  2.0  null  | null  | 7.0
AGG_TABLE = pa.table(
    {
        "u": [1] * 8,
        "t": [1, 1, 1, 1, 1, 1, 2, 3],
        "amount": [None, 4.0, 1.0, 4.0, 2.0, None, None, 7.0],
        "mcc": [5411] * 8,
        "merchant": ["a", "b", "a", None, "c", "c", None, "z"],
    }
)


def run_agg(agg: str, **kw: Any) -> list[Any]:
    ts = make_spec(target("x", agg=agg, kind="period", period="day", **kw), time={"unit": "day"})
    return col(reference_table(ts, AGG_TABLE), "x")


def by_day(day1: Any, day2: Any, day3: Any) -> list[Any]:
    return [day1] * 6 + [day2, day3]


def test_sum() -> None:
    # 4+1+4+2 = 11; a day of only nulls sums to 0.0 (or fill)
    assert run_agg("sum") == by_day(11.0, 0.0, 7.0)
    assert run_agg("sum", fill=-1) == by_day(11.0, -1.0, 7.0)


def test_count_counts_null_values_too() -> None:
    assert run_agg("count") == by_day(6, 1, 1)
    # an empty window (nothing passes mcc 1234): 0, or fill
    assert run_agg("count", mcc=[1234]) == by_day(0, 0, 0)
    assert run_agg("count", mcc=[1234], fill=9) == by_day(9, 9, 9)


def test_mean_min_max() -> None:
    assert run_agg("mean") == by_day(2.75, None, 7.0)  # 11 / 4 non-null values
    assert run_agg("min") == by_day(1.0, None, 7.0)
    assert run_agg("max") == by_day(4.0, None, 7.0)
    assert run_agg("max", fill=0) == by_day(4.0, 0.0, 7.0)


def test_std_is_sample() -> None:
    # values 4, 1, 4, 2: mean 2.75, squared deviations 1.5625+3.0625+1.5625+0.5625 = 6.75,
    # / (4-1) = 2.25, sqrt = 1.5; one value (day 3) or none (day 2): null
    assert run_agg("std") == by_day(1.5, None, None)
    assert run_agg("std", fill=-1) == by_day(1.5, -1.0, -1.0)


def test_first_last_skip_nulls() -> None:
    assert run_agg("first") == by_day(4.0, None, 7.0)  # row 0 is null
    assert run_agg("last") == by_day(2.0, None, 7.0)  # row 5 is null
    assert run_agg("last", fill=-1) == by_day(2.0, -1.0, 7.0)


def test_first_last_running() -> None:
    ts = make_spec(
        target("f", agg="first", period="day"),
        target("l", agg="last", period="day"),
        time={"unit": "day"},
    )
    out = reference_table(ts, AGG_TABLE)
    assert col(out, "f") == [None, 4.0, 4.0, 4.0, 4.0, 4.0, None, 7.0]
    assert col(out, "l") == [None, 4.0, 1.0, 4.0, 2.0, 2.0, None, 7.0]


def test_count_distinct_on_raw_values() -> None:
    # amounts 4, 1, 4, 2 -> 3 distinct; a day of nulls: 0
    assert run_agg("count_distinct") == by_day(3, 0, 1)
    assert run_agg("count_distinct", fill=-5) == by_day(3, -5, 1)
    # a string column: a, b, a, null, c, c -> 3
    assert run_agg("count_distinct", value="merchant") == by_day(3, 0, 1)


def test_top_k_padded() -> None:
    assert run_agg("top_k", k=2) == by_day([4.0, 4.0], [None, None], [7.0, None])
    assert run_agg("top_k", k=5) == by_day(
        [4.0, 4.0, 2.0, 1.0, None], [None] * 5, [7.0, None, None, None, None]
    )
    assert run_agg("top_k", k=2, fill=0) == by_day([4.0, 4.0], [0.0, 0.0], [7.0, 0.0])


def test_output_types() -> None:
    ts = make_spec(
        target("s", agg="sum"),
        target("c", agg="count"),
        target("d", agg="count_distinct"),
        target("k", agg="top_k", k=3),
        target("m", agg="min"),
        time={"unit": "day"},
    )
    schema = reference_table(ts, AGG_TABLE).schema
    assert schema.field("s").type == pa.float64()
    assert schema.field("c").type == pa.int64()
    assert schema.field("d").type == pa.int64()
    assert schema.field("k").type == pa.list_(pa.float64())
    assert schema.field("m").type == pa.float64()


def test_integer_values_become_float() -> None:
    table = pa.table({"u": [1, 1], "t": [0, 0], "amount": [3, 4], "mcc": [0, 0]})
    ts = make_spec(target("s"), target("mx", agg="max"), time={"unit": "day"})
    out = reference_table(ts, table)
    assert col(out, "s") == [3.0, 7.0]
    assert col(out, "mx") == [3.0, 4.0]
    assert out.schema.field("mx").type == pa.float64()


# ---------------------------------------------------------------------------------------------
# filters


def test_mcc_ranges_groups_and_string_codes() -> None:
    table = pa.table(
        {
            "u": [1] * 6,
            "t": [0] * 6,
            "amount": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            "mcc": ["5411", " 5499 ", "5500", "abc", None, "5812"],
        }
    )
    ts = make_spec(
        target("range", kind="period", mcc=["5411-5499"]),
        target("groups", kind="period", mcc=["grocery", "restaurants"]),
        target("all", kind="period"),
        time={"unit": "day"},
    )
    out = reference_table(ts, table)
    assert col(out, "range") == [3.0] * 6  # 5411 and " 5499 "
    assert col(out, "groups") == [35.0] * 6  # 5411, 5499, 5812
    assert col(out, "all") == [63.0] * 6  # no mcc filter: "abc" and null pass


def test_where_filter_with_nulls() -> None:
    table = pa.table(
        {
            "u": [1] * 4,
            "t": [0] * 4,
            "amount": [-5.0, 10.0, 20.0, None],
            "mcc": [5411] * 4,
            "city": ["Oslo", None, "Rome", "Oslo"],
        }
    )
    ts = make_spec(
        target("pos_oslo", agg="count", kind="period", where="amount > 0 AND city = 'Oslo'"),
        target("not_rome", agg="count", kind="period", where="NOT city = 'Rome'"),
        target("both", kind="period", mcc=[5411], where="amount > 0 OR city IS NULL"),
        time={"unit": "day"},
    )
    out = reference_table(ts, table)
    assert col(out, "pos_oslo") == [0] * 4  # row 3: NULL > 0 is NULL
    assert col(out, "not_rome") == [2] * 4  # rows 0 and 3; row 1's NULL does not pass
    assert col(out, "both") == [30.0] * 4  # rows 1 (null city) and 2


WHERE_TABLE = pa.table(
    {
        "a": [1, -2, None, 7, 0],
        "x": [2.5, float("nan"), 1.0, None, -0.5],
        "s": ["Oslo", "oslo", None, "a_b", "50%"],
        "d": [dt.date(2024, 1, 1), dt.date(2024, 2, 1), None, dt.date(2023, 12, 31), None],
        "flag": [True, False, None, True, False],
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a > 0", [True, False, False, True, False]),
        ("a <> 1", [False, True, False, True, True]),
        ("a != 1", [False, True, False, True, True]),
        ("a >= 0 AND a <= 1", [True, False, False, False, True]),
        ("a IS NULL", [False, False, True, False, False]),
        ("a IS NOT NULL", [True, True, False, True, True]),
        ("NOT a IS NULL", [True, True, False, True, True]),
        ("a IN (1, 7)", [True, False, False, True, False]),
        ("a NOT IN (1, 7)", [False, True, False, False, True]),
        # NOT IN with a NULL in the list is never TRUE
        ("a NOT IN (1, NULL)", [False] * 5),
        ("a IN (-2, NULL)", [False, True, False, False, False]),
        ("a BETWEEN -2 AND 1", [True, True, False, False, True]),
        ("a NOT BETWEEN -2 AND 1", [False, False, False, True, False]),
        # / is float division; % keeps the dividend's sign
        ("a / 2 = 0.5", [True, False, False, False, False]),
        ("a % 2 = 1", [True, False, False, True, False]),
        ("a % 3 = -2", [False, True, False, False, False]),
        ("-a > 0", [False, True, False, False, False]),
        ("a * 2 + 1 - 3 = 12", [False, False, False, True, False]),
        # NaN equals NaN and is larger than any number
        ("x > 100", [False, True, False, False, False]),
        ("x = 'NaN'", [False, True, False, False, False]),
        ("abs(x) = 0.5", [False, False, False, False, True]),
        ("round(x) = 3", [True, False, False, False, False]),  # half away from zero
        ("round(x) = -1", [False, False, False, False, True]),
        ("round(x, 1) = 2.5", [True, False, False, False, False]),
        ("floor(x) = -1 OR ceil(x) = 3", [True, False, False, False, True]),
        # sqrt(-0.5) and ln(-0.5) are NaN, and NaN > 1.5
        ("sqrt(x) > 1.5", [True, True, False, False, True]),
        ("ln(x) > 0", [True, True, False, False, True]),
        ("s = 'Oslo'", [True, False, False, False, False]),
        ("lower(s) = 'oslo'", [True, True, False, False, False]),
        ("upper(s) = 'OSLO'", [True, True, False, False, False]),
        ("length(s) = 3", [False, False, False, True, True]),
        ("s LIKE 'O%'", [True, False, False, False, False]),
        ("s ILIKE 'O%'", [True, True, False, False, False]),
        ("s NOT LIKE 'O%'", [False, True, False, True, True]),
        ("s LIKE 'a_b'", [False, False, False, True, False]),
        ("s LIKE '_0%'", [False, False, False, False, True]),
        ("coalesce(a, 99) = 99", [False, False, True, False, False]),
        ("coalesce(s, 'none') = 'none'", [False, False, True, False, False]),
        # least / greatest skip NULL: least(NULL, 0) = 0; greatest(-2, NaN) is NaN
        ("least(a, 0) = 0", [True, False, True, True, True]),
        ("greatest(a, x) > 2", [True, True, False, True, False]),
        ("d >= '2024-01-01'", [True, True, False, False, False]),
        ("flag", None),  # a bare column is refused by the checker
        ("flag = TRUE", [True, False, False, True, False]),
        ("NOT flag", [False, True, False, False, True]),
        ("flag OR a IS NULL", [True, False, True, True, False]),
        ("flag AND a IS NULL", [False, False, False, False, False]),
        ("a = NULL", [False] * 5),
        ("TRUE", [True] * 5),
        ("FALSE OR NULL", [False] * 5),
        ("TRUE OR NULL", [True] * 5),
    ],
)
def test_where_evaluator(text: str, expected: list[bool] | None) -> None:
    if expected is None:
        with pytest.raises(SpecError, match="not a boolean expression"):
            evaluate_where(text, WHERE_TABLE, UTC)
        return
    assert evaluate_where(text, WHERE_TABLE, UTC).tolist() == expected


def test_where_errors_like_duckdb() -> None:
    with pytest.raises(DataError, match="division by zero"):
        evaluate_where("a % 0 = 1", WHERE_TABLE, UTC)
    with pytest.raises(DataError, match="could not convert"):
        evaluate_where("s = 5", WHERE_TABLE, UTC)


# ---------------------------------------------------------------------------------------------
# calendar: periods, week_start, origin, dates


def test_period_helpers() -> None:
    wed = dt.date(2024, 5, 15)
    assert period_start(wed, "day", 0) == wed
    assert period_start(wed, "week", 0) == dt.date(2024, 5, 13)  # Monday
    assert period_start(wed, "week", 6) == dt.date(2024, 5, 12)  # Sunday
    assert period_start(wed, "week", 2) == wed  # Wednesday
    assert period_start(wed, "week", 3) == dt.date(2024, 5, 9)  # Thursday
    assert period_start(wed, "month", 0) == dt.date(2024, 5, 1)
    assert period_start(wed, "quarter", 0) == dt.date(2024, 4, 1)
    assert period_start(dt.date(2024, 12, 31), "quarter", 0) == dt.date(2024, 10, 1)
    assert period_start(wed, "year", 0) == dt.date(2024, 1, 1)
    assert next_period_start(dt.date(2024, 2, 28), "day") == dt.date(2024, 2, 29)
    assert next_period_start(dt.date(2024, 5, 13), "week") == dt.date(2024, 5, 20)
    assert next_period_start(dt.date(2024, 11, 1), "month") == dt.date(2024, 12, 1)
    assert next_period_start(dt.date(2024, 12, 1), "month") == dt.date(2025, 1, 1)
    assert next_period_start(dt.date(2024, 7, 1), "quarter") == dt.date(2024, 10, 1)
    assert next_period_start(dt.date(2024, 1, 1), "year") == dt.date(2025, 1, 1)


def test_week_start() -> None:
    # Sat 2024-05-11, Sun 2024-05-12, Mon 2024-05-13
    table = pa.table(
        {
            "u": [1, 1, 1],
            "t": pa.array([dt.date(2024, 5, 11), dt.date(2024, 5, 12), dt.date(2024, 5, 13)]),
            "amount": [1.0, 2.0, 4.0],
            "mcc": [0, 0, 0],
        }
    )
    monday = make_spec(target("w", kind="period", period="week"))
    sunday = make_spec(target("w", kind="period", period="week"), week_start="sunday")
    saturday = make_spec(target("w", kind="period", period="week"), week_start="saturday")
    assert col(reference_table(monday, table), "w") == [3.0, 3.0, 4.0]  # Mon 6th..Sun 12th
    assert col(reference_table(sunday, table), "w") == [1.0, 6.0, 6.0]  # Sun 12th..Sat 18th
    assert col(reference_table(saturday, table), "w") == [7.0, 7.0, 7.0]  # Sat 11th..Fri 17th
    nxt = make_spec(target("w", kind="next_period", period="week"), week_start="sunday")
    assert col(reference_table(nxt, table), "w") == [6.0, 0.0, 0.0]


def test_integer_days_with_origin_have_months_quarters_years() -> None:
    # origin 2024-12-30: day 0 = Dec 30, 1 = Dec 31, 2 = Jan 1 2025, 33 = Feb 1 2025
    table = pa.table(
        {"u": [1] * 4, "t": [0, 1, 2, 33], "amount": [1.0, 2.0, 4.0, 8.0], "mcc": [0] * 4}
    )
    ts = make_spec(
        target("m", kind="period", period="month"),
        target("q", kind="period", period="quarter"),
        target("y", kind="expanding", period="year"),
        target("nm", kind="next_period", period="month"),
        time={"unit": "day", "origin": "2024-12-30"},
    )
    out = reference_table(ts, table)
    assert col(out, "m") == [3.0, 3.0, 4.0, 8.0]
    assert col(out, "q") == [3.0, 3.0, 12.0, 12.0]
    assert col(out, "y") == [1.0, 3.0, 4.0, 12.0]
    assert col(out, "nm") == [4.0, 4.0, 8.0, 0.0]


def test_integer_seconds_unit() -> None:
    # unit s: 86399 is the origin day, 86400 the next; 12h rolling is 43200 s
    table = pa.table(
        {"u": [1] * 3, "t": [0, 86_399, 86_400], "amount": [1.0, 2.0, 4.0], "mcc": [0] * 3}
    )
    ts = make_spec(
        target("d", kind="period", period="day"),
        target("r", kind="rolling", length="12h"),
        time={"unit": "s"},
    )
    out = reference_table(ts, table)
    assert col(out, "d") == [3.0, 3.0, 4.0]
    assert col(out, "r") == [1.0, 2.0, 6.0]


def test_date64_and_date32() -> None:
    days = [dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
    for kind in (pa.date32(), pa.date64()):
        table = pa.table(
            {"u": [1, 1], "t": pa.array(days, kind), "amount": [1.0, 2.0], "mcc": [0, 0]}
        )
        ts = make_spec(
            target("m", kind="period", period="month"), target("r", kind="rolling", length="1d")
        )
        out = reference_table(ts, table)
        assert out.schema.field("t").type == kind
        assert col(out, "t") == days
        assert col(out, "m") == [1.0, 2.0]
        assert col(out, "r") == [1.0, 2.0]  # 1d back from Feb 1 excludes Jan 31 (exactly 24h)


def test_nanosecond_timestamps_floor_to_microseconds() -> None:
    # -1 ns floors to -1 µs = 1969-12-31 23:59:59.999999, the day before 0 ns
    table = pa.table(
        {
            "u": [1, 1],
            "t": pa.array([-1, 0], pa.timestamp("ns")),
            "amount": [1.0, 2.0],
            "mcc": [0, 0],
        }
    )
    ts = make_spec(target("d", kind="period", period="day"))
    assert col(reference_table(ts, table), "d") == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------
# DST and time zones


def test_wall_to_instant_matches_duckdb() -> None:
    # DuckDB: epoch_us(timezone('America/New_York', TIMESTAMP '2024-03-10 02:30'))
    assert wall_to_instant_us(dt.datetime(2024, 3, 10, 2, 30), NY) == 1710055800000000
    assert wall_to_instant_us(dt.datetime(2024, 11, 3, 1, 30), NY) == 1730615400000000
    # an ordinary time: 2024-07-01 12:00 EDT = 16:00 UTC
    noon = dt.datetime(2024, 7, 1, 16, tzinfo=UTC).timestamp() * 1_000_000
    assert wall_to_instant_us(dt.datetime(2024, 7, 1, 12), NY) == noon


def naive_ny(*walls: dt.datetime, amounts: list[float] | None = None) -> pa.Table:
    return pa.table(
        {
            "u": [1] * len(walls),
            "t": pa.array(list(walls), pa.timestamp("us")),
            "amount": amounts or [2.0**i for i in range(len(walls))],
            "mcc": [0] * len(walls),
        }
    )


def test_rolling_day_across_spring_forward_is_24_elapsed_hours() -> None:
    # 2024-03-09 12:30 EST (17:30Z) and 2024-03-10 13:00 EDT (17:00Z): 23.5 h apart
    table = naive_ny(dt.datetime(2024, 3, 9, 12, 30), dt.datetime(2024, 3, 10, 13, 0))
    ny = make_spec(target("r", kind="rolling", length="1d"), timezone="America/New_York")
    utc = make_spec(target("r", kind="rolling", length="1d"))
    assert col(reference_table(ny, table), "r") == [1.0, 3.0]
    assert col(reference_table(utc, table), "r") == [1.0, 2.0]  # 24.5 wall hours


def test_rolling_across_fall_back_uses_later_occurrence() -> None:
    # 2024-11-03 00:45 EDT = 04:45Z; 01:30 is repeated and read as 01:30 EST = 06:30Z:
    # 1h45 elapsed (the earlier reading, 05:30Z, would give 45 minutes)
    table = naive_ny(dt.datetime(2024, 11, 3, 0, 45), dt.datetime(2024, 11, 3, 1, 30))
    ts = make_spec(
        target("r90", kind="rolling", length="90m"),
        target("r2h", kind="rolling", length="2h"),
        timezone="America/New_York",
    )
    out = reference_table(ts, table)
    assert col(out, "r90") == [1.0, 2.0]
    assert col(out, "r2h") == [1.0, 3.0]


def test_gap_wall_time_uses_offset_before_the_change() -> None:
    # 2024-03-10 02:30 does not exist in New York; it reads as 02:30 EST = 07:30Z,
    # which is after 03:15 EDT = 07:15Z. Event order is by wall clock (02:30 first),
    # but windows use elapsed time.
    table = naive_ny(dt.datetime(2024, 3, 10, 2, 30), dt.datetime(2024, 3, 10, 3, 15))
    ts = make_spec(
        target("fut", kind="future", length="30m"),
        target("roll", kind="rolling", length="10m"),
        target("run", kind="expanding", period="day"),
        timezone="America/New_York",
    )
    out = reference_table(ts, table)
    assert col(out, "row_id") == [0, 1]
    assert col(out, "fut") == [0.0, 1.0]  # from 07:15Z, 07:30Z is 15 minutes ahead
    assert col(out, "roll") == [1.0, 2.0]
    assert col(out, "run") == [1.0, 3.0]


def test_zoned_timestamps_take_periods_in_the_spec_zone() -> None:
    # 2024-03-10T04:30Z = Mar 9 23:30 EST; 05:30Z = Mar 10 00:30 EST
    instants = [
        dt.datetime(2024, 3, 10, 4, 30, tzinfo=UTC),
        dt.datetime(2024, 3, 10, 5, 30, tzinfo=UTC),
    ]
    table = pa.table(
        {
            "u": [1, 1],
            "t": pa.array(instants, pa.timestamp("us", tz="UTC")),
            "amount": [1.0, 2.0],
            "mcc": [0, 0],
        }
    )
    ny = make_spec(target("d", kind="period", period="day"), timezone="America/New_York")
    utc = make_spec(target("d", kind="period", period="day"))
    assert col(reference_table(ny, table), "d") == [1.0, 2.0]
    assert col(reference_table(utc, table), "d") == [3.0, 3.0]
    out = reference_table(ny, table)
    assert out.schema.field("t").type == pa.timestamp("us", tz="UTC")
    assert col(out, "t") == instants


def test_zoned_timestamp_in_another_zone_and_unit() -> None:
    # the instant matters, not the column's zone: same as above stored as ms in Asia/Tokyo
    ms = [int(dt.datetime(2024, 3, 10, h, 30, tzinfo=UTC).timestamp() * 1000) for h in (4, 5)]
    table = pa.table(
        {
            "u": [1, 1],
            "t": pa.array(ms, pa.timestamp("ms", tz="Asia/Tokyo")),
            "amount": [1.0, 2.0],
            "mcc": [0, 0],
        }
    )
    ny = make_spec(target("d", kind="period", period="day"), timezone="America/New_York")
    assert col(reference_table(ny, table), "d") == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------
# ordering, id column, output shapes, errors


def test_id_column_breaks_ties_and_replaces_row_id() -> None:
    table = pa.table(
        {
            "u": [1, 1, 1],
            "t": [5, 5, 4],
            "amount": [1.0, 2.0, 4.0],
            "mcc": [0] * 3,
            "tx": ["c", "b", "z"],
        }
    )
    ts = make_spec(target("x"), columns={"id": "tx"}, time={"unit": "day"})
    out = reference_table(ts, table)
    assert out.column_names == ["u", "t", "tx", "x"]
    # day 4: z; day 5: b (row 1) before c (row 0)
    assert col(out, "tx") == ["z", "b", "c"]
    assert col(out, "x") == [4.0, 2.0, 3.0]


def test_periods_output() -> None:
    table = pa.table(
        {
            "u": ["b", "a", "b", "a", "b"],
            "t": pa.array(
                [
                    dt.date(2024, 1, 5),
                    dt.date(2024, 3, 1),
                    dt.date(2024, 1, 9),
                    dt.date(2024, 1, 2),
                    dt.date(2024, 2, 1),
                ]
            ),
            "amount": [1.0, 2.0, 4.0, 8.0, 16.0],
            "mcc": [5411, 5411, 5812, 5411, 5411],
        }
    )
    ts = make_spec(
        target("s", kind="period", period="month"),
        target("n_grocery", agg="count", kind="period", period="month", mcc=["grocery"]),
        target("next_s", kind="next_period", period="month"),
        output="periods",
    )
    out = reference_table(ts, table)
    assert out.column_names == ["u", "period_start", "s", "n_grocery", "next_s"]
    assert out.schema.field("period_start").type == pa.date32()
    assert col(out, "u") == ["a", "a", "b", "b"]
    assert col(out, "period_start") == [
        dt.date(2024, 1, 1),
        dt.date(2024, 3, 1),
        dt.date(2024, 1, 1),
        dt.date(2024, 2, 1),
    ]
    assert col(out, "s") == [8.0, 2.0, 5.0, 16.0]
    assert col(out, "n_grocery") == [1, 1, 1, 1]
    assert col(out, "next_s") == [0.0, 0.0, 16.0, 0.0]  # a has no February


def test_empty_input_has_the_schema() -> None:
    ts = make_spec(target("s"), target("k", agg="top_k", k=2), time={"unit": "day"})
    empty = pa.table(
        {
            "u": pa.array([], pa.string()),
            "t": pa.array([], pa.int32()),
            "amount": pa.array([], pa.float64()),
            "mcc": pa.array([], pa.int64()),
        }
    )
    out = reference_table(ts, empty)
    assert out.num_rows == 0
    assert out.schema == pa.schema(
        [
            ("u", pa.string()),
            ("t", pa.int32()),
            ("row_id", pa.int64()),
            ("s", pa.float64()),
            ("k", pa.list_(pa.float64())),
        ]
    )
    periods = make_spec(target("s", kind="period", period="month"), output="periods")
    empty_dates = empty.set_column(1, "t", pa.array([], pa.date32()))
    assert reference_table(periods, empty_dates).schema == pa.schema(
        [("u", pa.string()), ("period_start", pa.date32()), ("s", pa.float64())]
    )


def test_null_user_or_time_is_an_error_with_a_count() -> None:
    ts = make_spec(target("s"), time={"unit": "day"})
    table = pa.table({"u": [1, None, None], "t": [1, 2, 3], "amount": [1.0] * 3, "mcc": [0] * 3})
    with pytest.raises(DataError, match=r"2 row\(s\) have a null user.*row 1"):
        reference_table(ts, table)
    table = pa.table({"u": [1, 1], "t": [1, None], "amount": [1.0] * 2, "mcc": [0] * 2})
    with pytest.raises(DataError, match=r"1 row\(s\) have a null time"):
        reference_table(ts, table)


def test_integer_time_needs_a_unit() -> None:
    ts = make_spec(target("s"))
    with pytest.raises(DataError, match=r"time\.unit"):
        reference_table(ts, DAYS)


def test_nan_is_largest_in_min_max_top_k() -> None:
    table = pa.table({"u": [1] * 3, "t": [0] * 3, "amount": [1.0, math.nan, 3.0], "mcc": [0] * 3})
    ts = make_spec(
        target("mx", agg="max", kind="period"),
        target("mn", agg="min", kind="period"),
        target("k", agg="top_k", k=2, kind="period"),
        target("cd", agg="count_distinct", kind="period"),
        time={"unit": "day"},
    )
    out = reference_table(ts, table)
    assert all(math.isnan(v) for v in col(out, "mx"))
    assert col(out, "mn") == [1.0] * 3
    assert [v[1] for v in col(out, "k")] == [3.0] * 3 and all(
        math.isnan(v[0]) for v in col(out, "k")
    )
    assert col(out, "cd") == [3] * 3
