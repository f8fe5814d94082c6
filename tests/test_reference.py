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
    elif kind not in ("next", "previous"):
        window["period"] = kw.pop("period", "day")
    for key in ("offset", "include_current", "n"):  # window parameters
        if key in kw:
            window[key] = kw.pop(key)
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


# ---------------------------------------------------------------------------------------------
# issue 12: var, quantile, median, mode (AGG_TABLE: day 1 holds 4, 1, 4, 2 and two nulls;
# day 2 one null; day 3 one 7)


def test_var_is_sample_variance() -> None:
    # 4, 1, 4, 2: squared deviations from 2.75 sum to 6.75; / (4 - 1) = 2.25 (std's square);
    # fewer than 2 values: null, or fill
    assert run_agg("var") == by_day(2.25, None, None)
    assert run_agg("var", fill=-1) == by_day(2.25, -1.0, -1.0)


def test_quantile_interpolates_between_order_statistics() -> None:
    # sorted 1, 2, 4, 4 (m = 4): h = 3q, j = floor(h), g = h - j
    # median: h = 1.5 -> 0.5*2 + 0.5*4 = 3
    assert run_agg("median") == by_day(3.0, None, 7.0)
    # q 0.25: h = 0.75 -> 0.25*1 + 0.75*2 = 1.75
    assert run_agg("quantile", q=0.25) == by_day(1.75, None, 7.0)
    # q 0.9: h = 2.7 -> between x_2 = 4 and x_3 = 4: 4
    assert run_agg("quantile", q=0.9) == by_day(4.0, None, 7.0)
    # q 1/3: h = 3 * (1/3) rounds to exactly 1.0 in double, so g == 0: x_1 = 2
    assert run_agg("quantile", q=1 / 3) == by_day(2.0, None, 7.0)
    # one value: h = 0 for any q; empty: null or fill
    assert run_agg("median", fill=-1) == by_day(3.0, -1.0, 7.0)


def test_quantile_with_nan_and_infinities() -> None:
    inf, nan = math.inf, math.nan
    # day 1: 1, NaN, 3, inf -> sorted 1, 3, inf, NaN (NaN is the largest)
    # day 2: inf, inf; day 3: -inf, inf; day 4: NaN, NaN; day 5: -inf, -inf, 5
    table = pa.table(
        {
            "u": [1] * 13,
            "t": [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5],
            "amount": [1.0, nan, 3.0, inf, inf, inf, -inf, inf, nan, nan, -inf, -inf, 5.0],
            "mcc": [0] * 13,
        }
    )
    ts = make_spec(
        target("med", agg="median", kind="period"),
        target("q25", agg="quantile", q=0.25, kind="period"),
        target("q90", agg="quantile", q=0.9, kind="period"),
        time={"unit": "day"},
    )
    out = reference_table(ts, table)

    def per_day(name: str) -> list[float]:
        values = col(out, name)
        return [values[i] for i in (0, 4, 6, 8, 10)]

    def same(got: list[float], want: list[float]) -> bool:
        return all(
            (math.isnan(g) and math.isnan(w)) or g == w for g, w in zip(got, want, strict=True)
        )

    # median: day 1 h = 1.5: 0.5*3 + 0.5*inf = inf; day 2: inf, inf -> inf; day 3:
    # 0.5*(-inf) + 0.5*inf = NaN; day 4: NaN; day 5: h = 1, g = 0: x_1 = -inf
    assert same(per_day("med"), [inf, inf, nan, nan, -inf])
    # q 0.25: day 1 h = 0.75: 0.25*1 + 0.75*3 = 2.5; day 2 inf; day 3 h = 0.25:
    # 0.75*(-inf) + 0.25*inf = NaN; day 4 NaN; day 5 h = 0.5: -inf
    assert same(per_day("q25"), [2.5, inf, nan, nan, -inf])
    # q 0.9: day 1 h = 2.7: 0.3*inf + 0.7*NaN = NaN (a NaN neighbour); day 5 h = 1.8:
    # 0.2*(-inf) + 0.8*5 = -inf
    assert same(per_day("q90"), [nan, inf, nan, nan, -inf])


def test_mode_most_frequent_ties_to_the_smallest() -> None:
    # day 1: 4 twice, 1 and 2 once -> 4; day 2 empty: null or fill; day 3: 7
    assert run_agg("mode") == by_day(4.0, None, 7.0)
    assert run_agg("mode", fill=0) == by_day(4.0, 0.0, 7.0)
    # day 1: 3, 1, 3, 1, 2 -> 1 and 3 tie (twice each): the smaller, 1
    # day 2: NaN, NaN, 5 -> NaN twice (all NaN are one value)
    # day 3: NaN, 5 -> a tie; NaN is the largest: 5
    # day 4: -0.0, 0.0, 1, 1 -> 0 (twice: -0.0 equals 0.0) ties with 1: 0
    # day 5: inf, -inf -> a tie: -inf
    nan, inf = math.nan, math.inf
    table = pa.table(
        {
            "u": [1] * 15,
            "t": [1] * 5 + [2] * 3 + [3] * 2 + [4] * 4 + [5] * 1,
            "amount": [3.0, 1.0, 3.0, 1.0, 2.0, nan, nan, 5.0, nan, 5.0, -0.0, 0.0, 1.0, 1.0, inf],
            "mcc": [0] * 15,
        }
    )
    table = pa.concat_tables(
        [table, pa.table({"u": [1], "t": [5], "amount": [-inf], "mcc": [0]}).cast(table.schema)]
    )
    ts = make_spec(target("m", agg="mode", kind="period"), time={"unit": "day"})
    got = col(reference_table(ts, table), "m")
    assert got[0] == 1.0 and math.isnan(got[5]) and got[8] == 5.0 and got[-1] == -inf
    assert got[10] == 0.0 and math.copysign(1.0, got[10]) == 1.0  # 0.0, not -0.0


# ---------------------------------------------------------------------------------------------
# issue 12: MCC codes as integer class labels

MCC_LABELS = pa.table(
    {
        "u": [1] * 5,
        "t": [1, 1, 1, 1, 2],
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
        # codes: 5411, 5812, 5812 (spaces stripped), none ("abc" is not digits), none
        "mcc": ["5411", "5812", " 5812 ", "abc", None],
    }
)


def test_first_last_mode_of_the_mcc_column_are_int64_codes() -> None:
    ts = make_spec(
        target("f", agg="first", value="mcc", kind="period"),
        target("l", agg="last", value="mcc", kind="period"),
        target("m", agg="mode", value="mcc", kind="period"),
        target("m_fill", agg="mode", value="mcc", kind="period", fill=0),
        target("f_amount", agg="first", kind="period"),
        time={"unit": "day"},
    )
    out = reference_table(ts, MCC_LABELS)
    for name in ("f", "l", "m", "m_fill"):
        assert out.schema.field(name).type == pa.int64(), name
    assert out.schema.field("f_amount").type == pa.float64()
    # day 1: codes 5411, 5812, 5812, null -> first 5411, last 5812 (the null "abc" is
    # skipped), mode 5812; day 2: only a null -> null, or the fill
    assert col(out, "f") == [5411] * 4 + [None]
    assert col(out, "l") == [5812] * 4 + [None]
    assert col(out, "m") == [5812] * 4 + [None]
    assert col(out, "m_fill") == [5812] * 4 + [0]
    assert col(out, "f_amount") == [1.0] * 4 + [5.0]


def test_mode_of_an_integer_mcc_column_and_count_distinct_unchanged() -> None:
    table = MCC_LABELS.set_column(3, "mcc", pa.array([5411, 5812, 5411, None, 4511], pa.int32()))
    ts = make_spec(
        target("m", agg="mode", value="mcc", kind="period"),
        target("cd", agg="count_distinct", value="mcc", kind="period"),
        target("mx", agg="max", value="mcc", kind="period"),
        time={"unit": "day"},
    )
    out = reference_table(ts, table)
    assert col(out, "m") == [5411] * 4 + [4511]  # 5411 twice on day 1
    assert col(out, "cd") == [2] * 4 + [1]  # raw values, as before
    assert col(out, "mx") == [5812.0] * 4 + [4511.0]  # other aggs read DOUBLE, as before
    assert out.schema.field("mx").type == pa.float64()


def test_mode_needs_a_number_or_the_mcc_column() -> None:
    table = MCC_LABELS.append_column("city", pa.array(["a"] * 5))
    ts = make_spec(target("m", agg="mode", value="city"), time={"unit": "day"})
    with pytest.raises(DataError, match="numeric value column or the spec's mcc column"):
        reference_table(ts, table)


# ---------------------------------------------------------------------------------------------
# issue 12: distribution

# row:    0     1     2     3     4     5
# mcc:    5411  5450  5812  6011  9999  null
# amount: 10    5     2     null  3     1
DIST = pa.table(
    {
        "u": [1] * 6,
        "t": [1] * 6,
        "amount": [10.0, 5.0, 2.0, None, 3.0, 1.0],
        "mcc": pa.array([5411, 5450, 5812, 6011, 9999, None], pa.int32()),
    }
)
# groups: grocery; 5400-5500; restaurants or 6011; then "other".
# 5411 is in both grocery and 5400-5500: the first group takes it. 5450 is not grocery.
GROUPS = {"mcc": ["grocery", "5400-5500", ["restaurants", 6011]]}


def run_dist(**kw: Any) -> list[Any]:
    kw.setdefault("by", GROUPS)
    ts = make_spec(target("d", agg="distribution", kind="period", **kw), time={"unit": "day"})
    out = reference_table(ts, DIST)
    assert out.schema.field("d").type == pa.list_(pa.float64())
    assert ts.targets[0].by_names == ("grocery", "5400-5500", "restaurants+6011")
    values = col(out, "d")
    assert all(v == values[0] for v in values)  # a whole-period window: one value per day
    return values[0]


def test_distribution_sums_and_counts_per_group() -> None:
    # sum: grocery 10; 5400-5500: 5; restaurants+6011: 2 (6011's null is skipped);
    # other: 9999's 3 + the null MCC's 1 = 4
    assert run_dist() == [10.0, 5.0, 2.0, 4.0]
    # count: transactions, null values too: 1, 1, 2 (5812 and 6011), 2 (9999, null MCC)
    assert run_dist(measure="count") == [1.0, 1.0, 2.0, 2.0]


def test_distribution_normalized_shares() -> None:
    # sum 10 + 5 + 2 + 4 = 21; count 6
    assert run_dist(normalize=True) == [10 / 21, 5 / 21, 2 / 21, 4 / 21]
    assert run_dist(measure="count", normalize=True) == [1 / 6, 1 / 6, 2 / 6, 2 / 6]


def test_distribution_after_the_filter_and_when_empty() -> None:
    # the target's mcc filter applies first: only 5411 passes
    assert run_dist(mcc=["grocery"]) == [10.0, 0.0, 0.0, 0.0]
    assert run_dist(mcc=["grocery"], normalize=True) == [1.0, 0.0, 0.0, 0.0]
    # nothing passes: all zeros; as shares, all null (the total is 0)
    assert run_dist(mcc=[1234]) == [0.0, 0.0, 0.0, 0.0]
    assert run_dist(mcc=[1234], normalize=True) == [None] * 4
    # where filters too: amount > 2 keeps 10 (grocery), 5 (5400-5500), 3 (other)
    assert run_dist(where="amount > 2", measure="count") == [1.0, 1.0, 0.0, 1.0]


def test_distribution_total_zero_and_infinities() -> None:
    # a refund cancels the purchase: the total is 0, so the shares are null
    table = pa.table({"u": [1, 1], "t": [1, 1], "amount": [5.0, -5.0], "mcc": [5411, 9999]})
    ts = make_spec(
        target("d", agg="distribution", kind="period", by={"mcc": [5411]}, normalize=True),
        target("s", agg="distribution", kind="period", by={"mcc": [5411]}),
        time={"unit": "day"},
    )
    out = reference_table(ts, table)
    assert col(out, "d") == [[None, None]] * 2
    assert col(out, "s") == [[5.0, -5.0]] * 2
    # inf in a slot: the total is inf; inf / inf = NaN, 1 / inf = 0
    table = table.set_column(2, "amount", pa.array([math.inf, 1.0]))
    share = col(reference_table(ts, table), "d")[0]
    assert math.isnan(share[0]) and share[1] == 0.0


def test_distribution_running_with_string_mccs() -> None:
    # expanding over the day, row by row; "abc" is not an MCC: "other"
    table = pa.table(
        {"u": [1] * 3, "t": [1, 1, 1], "amount": [1.0, 3.0, 4.0], "mcc": ["5411", "abc", "5411"]}
    )
    ts = make_spec(
        target("d", agg="distribution", by={"mcc": ["grocery"]}, normalize=True),
        time={"unit": "day"},
    )
    # row 0: grocery 1 of 1; row 1: 1 and 3 of 4; row 2: 5 and 3 of 8
    assert col(reference_table(ts, table), "d") == [[1.0, 0.0], [0.25, 0.75], [0.625, 0.375]]


# ---------------------------------------------------------------------------------------------
# issue 12: next / previous event windows

# row:    0     1     2     3     4
# day:    1     1     2     4     4
# amount: 10    20    null  40    50
# mcc:    5411  5812  5411  5411  5812
EVENTS = pa.table(
    {
        "u": [1] * 5,
        "t": [1, 1, 2, 4, 4],
        "amount": [10.0, 20.0, None, 40.0, 50.0],
        "mcc": [5411, 5812, 5411, 5411, 5812],
    }
)


def run_events(*targets: dict[str, Any]) -> pa.Table:
    out = reference_table(make_spec(*targets, time={"unit": "day"}), EVENTS)
    assert col(out, "row_id") == [0, 1, 2, 3, 4]  # event order = input order here
    return out


def test_next_event_value_count_and_elapsed() -> None:
    out = run_events(
        target("v", agg="first", kind="next"),
        target("l", agg="last", kind="next"),
        target("c", agg="count", kind="next"),
        target("c9", agg="count", kind="next", fill=9),
        target("e", agg="elapsed", kind="next"),
        target("e_fill", agg="elapsed", kind="next", fill=-1),
    )
    # the next row's value: row 1's 20, row 2's null, row 3's 40, row 4's 50, nothing
    assert col(out, "v") == [20.0, None, 40.0, 50.0, None]
    assert col(out, "l") == col(out, "v")  # a window of one event
    # count: 1 when there is a next event (even with a null value), else 0 (or fill)
    assert col(out, "c") == [1, 1, 1, 1, 0]
    assert col(out, "c9") == [1, 1, 1, 1, 9]
    # seconds to it: rows 0 and 1 share day 1 (0 s), day 1 -> 2 is 86400 s, day 2 -> 4 is
    # 172800 s, rows 3 and 4 share day 4 (0 s); the last row has none
    assert col(out, "e") == [0.0, 86400.0, 172800.0, 0.0, None]
    assert col(out, "e_fill") == [0.0, 86400.0, 172800.0, 0.0, -1.0]
    assert out.schema.field("e").type == pa.float64()
    assert out.schema.field("c").type == pa.int64()


def test_previous_event_and_the_n_th() -> None:
    out = run_events(
        target("v", agg="first", kind="previous"),
        target("e", agg="elapsed", kind="previous"),
        target("v2", agg="first", kind="next", n=2),
        target("p2", agg="last", kind="previous", n=2),
        target("e2", agg="elapsed", kind="previous", n=2),
    )
    assert col(out, "v") == [None, 10.0, 20.0, None, 40.0]  # row 3's previous is row 2 (null)
    assert col(out, "e") == [None, 0.0, 86400.0, 172800.0, 0.0]
    # two events later: row 0 -> row 2 (null), 1 -> 3, 2 -> 4, then none
    assert col(out, "v2") == [None, 40.0, 50.0, None, None]
    # two events earlier: row 2 -> row 0, 3 -> 1, 4 -> 2 (null)
    assert col(out, "p2") == [None, None, 10.0, 20.0, None]
    # day 2 - day 1, day 4 - day 1, day 4 - day 2
    assert col(out, "e2") == [None, None, 86400.0, 259200.0, 172800.0]


def test_event_windows_take_the_n_th_passing_transaction() -> None:
    # grocery (5411) rows are 0, 2, 3: the filter picks the event, not only its value
    out = run_events(
        target("next_g", agg="first", kind="next", mcc=["grocery"]),
        target("since_g", agg="elapsed", kind="previous", mcc=["grocery"]),
        target("next_pos", agg="first", kind="next", where="amount > 15"),
    )
    # row 0 -> row 2 (null), row 1 -> row 2 (null), row 2 -> row 3, rows 3 and 4: none
    assert col(out, "next_g") == [None, None, 40.0, None, None]
    # seconds since the previous grocery purchase: row 0 none; row 1 <- row 0 (same day);
    # row 2 <- row 0 (1 day); row 3 <- row 2 (2 days); row 4 <- row 3 (same day)
    assert col(out, "since_g") == [None, 0.0, 86400.0, 172800.0, 0.0]
    # amount > 15 passes rows 1, 3, 4 (a null amount does not pass)
    assert col(out, "next_pos") == [20.0, 40.0, 40.0, 50.0, None]


def test_next_mcc_as_a_class_label() -> None:
    out = run_events(
        target("next_mcc", agg="first", kind="next", value="mcc"),
        target("prev_mcc", agg="last", kind="previous", value="mcc", fill=0),
    )
    assert out.schema.field("next_mcc").type == pa.int64()
    assert col(out, "next_mcc") == [5812, 5411, 5411, 5812, None]
    assert col(out, "prev_mcc") == [0, 5411, 5812, 5411, 5411]


def test_event_windows_follow_the_id_order_in_ties() -> None:
    # three rows at the same time; ids 3, 1, 2: event order is rows 1, 2, 0
    table = pa.table(
        {"u": [1] * 3, "t": [5] * 3, "amount": [1.0, 2.0, 4.0], "mcc": [0] * 3, "tx": [3, 1, 2]}
    )
    ts = make_spec(
        target("nxt", agg="first", kind="next"),
        target("prv", agg="first", kind="previous"),
        target("e", agg="elapsed", kind="next"),
        columns={"id": "tx"},
        time={"unit": "day"},
    )
    out = reference_table(ts, table)
    assert col(out, "tx") == [1, 2, 3]
    assert col(out, "nxt") == [4.0, 1.0, None]  # id 1 -> id 2 (row 2), id 2 -> id 3 (row 0)
    assert col(out, "prv") == [None, 2.0, 4.0]
    assert col(out, "e") == [0.0, 0.0, None]  # same time: 0 seconds


def test_elapsed_is_on_the_elapsed_clock_with_microseconds() -> None:
    # naive New York: 2024-03-09 12:00 EST (17:00Z) -> 2024-03-10 12:00 EDT (16:00Z) is 23 h
    # (24 wall hours); then 1 µs later
    walls = [
        dt.datetime(2024, 3, 9, 12),
        dt.datetime(2024, 3, 10, 12),
        dt.datetime(2024, 3, 10, 12, 0, 0, 1),
    ]
    ts = make_spec(target("e", agg="elapsed", kind="next"), timezone="America/New_York")
    assert col(reference_table(ts, naive_ny(*walls)), "e") == [82800.0, 1e-06, None]
    # in UTC the same wall times are 24 h apart
    utc = make_spec(target("e", agg="elapsed", kind="next"))
    assert col(reference_table(utc, naive_ny(*walls)), "e") == [86400.0, 1e-06, None]
    # dates: days x 86400; integer seconds: the seconds
    dates = pa.table(
        {
            "u": [1, 1],
            "t": pa.array([dt.date(2024, 2, 28), dt.date(2024, 3, 1)]),
            "amount": [1.0, 2.0],
            "mcc": [0, 0],
        }
    )
    assert col(reference_table(utc, dates), "e") == [2 * 86400.0, None]
    seconds = pa.table({"u": [1, 1], "t": [10, 95], "amount": [1.0, 2.0], "mcc": [0, 0]})
    ts_s = make_spec(target("e", agg="elapsed", kind="previous"), time={"unit": "s"})
    assert col(reference_table(ts_s, seconds), "e") == [None, 85.0]


def test_spring_forward_gap_elapsed_can_be_negative_and_rolling_exclusive() -> None:
    # New York, 2024-03-10: 01:30 EST = 06:30Z; 02:30 does not exist and reads as 02:30 EST
    # = 07:30Z; 03:15 EDT = 07:15Z. Event order is by wall clock: 01:30, 02:30, 03:15.
    table = naive_ny(
        dt.datetime(2024, 3, 10, 1, 30),
        dt.datetime(2024, 3, 10, 2, 30),
        dt.datetime(2024, 3, 10, 3, 15),
    )
    ts = make_spec(
        target("to_next", agg="elapsed", kind="next"),
        target("since_prev", agg="elapsed", kind="previous"),
        target("r_in", agg="count", kind="rolling", length="30m"),
        target("r_ex", agg="count", kind="rolling", length="30m", include_current=False),
        timezone="America/New_York",
    )
    out = reference_table(ts, table)
    assert col(out, "row_id") == [0, 1, 2]
    # 06:30Z -> 07:30Z is 3600 s; 07:30Z -> 07:15Z is -900 s (the next event is earlier on
    # the elapsed clock)
    assert col(out, "to_next") == [3600.0, -900.0, None]
    assert col(out, "since_prev") == [None, 3600.0, -900.0]
    # rolling 30m at 07:30Z holds (07:00Z, 07:30Z]: itself and 03:15 EDT (07:15Z), a row that
    # comes later in event order but earlier in time; exclusive: (07:00Z, 07:30Z) keeps only
    # 07:15Z. At 07:15Z: (06:45Z, 07:15Z] holds only itself; exclusive: nothing.
    assert col(out, "r_in") == [1, 2, 1]
    assert col(out, "r_ex") == [0, 1, 0]


# ---------------------------------------------------------------------------------------------
# issue 12: offset and include_current (DAYS: days 1, 1, 2, 3 with amounts 10, 20, 5, 1)


def test_future_offset() -> None:
    # 1d after a 1d offset: (t + 1d, t + 2d]: day 1 -> day 3 (1), day 2 -> day 4 (nothing)
    assert run_days(kind="future", length="1d", offset="1d") == [1.0, 1.0, 0.0, 0.0]
    # offset 0 is the plain future window: (t, t + 1d]
    assert run_days(kind="future", length="1d", offset="0d") == [5.0, 5.0, 1.0, 0.0]
    assert run_days(kind="future", length="1d", offset=0) == [5.0, 5.0, 1.0, 0.0]
    # (t + 12h, t + 36h]: day 1 -> day 2 (5), day 2 -> day 3 (1), day 3 -> nothing
    assert run_days(kind="future", length="1d", offset="12h") == [5.0, 5.0, 1.0, 0.0]
    # (t + 1d, t + 3d]: day 1 -> (day 2, day 4]: day 3 only (day 2 is not after t + 1d)
    assert run_days(kind="future", length="2d", offset="1d") == [1.0, 1.0, 0.0, 0.0]


def test_next_period_offset() -> None:
    # offset 1: the day after the next one: day 1 -> day 3 (1), day 2 -> day 4 (nothing)
    assert run_days(kind="next_period", period="day", offset=1) == [1.0, 1.0, 0.0, 0.0]
    assert run_days(kind="next_period", period="day", offset=0) == [5.0, 5.0, 1.0, 0.0]
    # integer days, origin 2024-12-30: days 0, 1 (December), 2 (January), 33 (February):
    # month offset 1: December -> February (8), January -> March (nothing)
    table = pa.table(
        {"u": [1] * 4, "t": [0, 1, 2, 33], "amount": [1.0, 2.0, 4.0, 8.0], "mcc": [0] * 4}
    )
    ts = make_spec(
        target("nm2", kind="next_period", period="month", offset=1),
        time={"unit": "day", "origin": "2024-12-30"},
    )
    assert col(reference_table(ts, table), "nm2") == [8.0, 8.0, 0.0, 0.0]


def test_next_period_offset_in_periods_output() -> None:
    # a: January 8, March 2; b: January 1 and 4, February 16. offset 1 skips a period:
    # a January -> March (2), a March -> May, b January -> March, b February -> April
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
            "mcc": [0] * 5,
        }
    )
    ts = make_spec(
        target("after_next", kind="next_period", period="month", offset=1), output="periods"
    )
    out = reference_table(ts, table)
    assert col(out, "u") == ["a", "a", "b", "b"]
    assert col(out, "after_next") == [2.0, 0.0, 0.0, 0.0]


def test_expanding_without_the_current_row() -> None:
    # rows strictly before this one in the period: day 1: nothing, then row 0; days 2, 3: nothing
    assert run_days(kind="expanding", include_current=False) == [0.0, 10.0, 0.0, 0.0]
    assert run_days(agg="count", include_current=False) == [0, 1, 0, 0]
    assert run_days(agg="mean", include_current=False) == [None, 10.0, None, None]
    # the TARGETS.md example, exclusive: a 5411 running sum of the rows before this one
    # day 1: row 0 (5812) 0, row 1 0 (row 0 fails the filter); day 2: row 2 0, row 3 5, row 4
    # 5 (row 3 fails); day 3: 0
    ts = make_spec(target("x", mcc=[5411], include_current=False), time={"unit": "day"})
    table = pa.table(
        {
            "u": [7] * 6,
            "t": [1, 1, 2, 2, 2, 3],
            "amount": [10.0, 20.0, 5.0, 7.5, 2.5, 1.0],
            "mcc": [5812, 5411, 5411, 5942, 5411, 5411],
        }
    )
    assert col(reference_table(ts, table), "x") == [0.0, 0.0, 0.0, 5.0, 5.0, 0.0]


def test_rolling_without_the_current_time() -> None:
    # 2d exclusive: (t - 2d, t): day 1 rows see nothing (their tie is left out together);
    # day 2 sees days 1 (10 + 20); day 3 sees day 2 (5)
    assert run_days(kind="rolling", length="2d", include_current=False) == [0.0, 0.0, 30.0, 5.0]
    assert run_days(agg="mean", kind="rolling", length="2d", include_current=False) == [
        None,
        None,
        15.0,
        5.0,
    ]


# ---------------------------------------------------------------------------------------------
# issue 12: output types and the empty input


def test_new_output_types_and_empty_input() -> None:
    ts = make_spec(
        target("v", agg="var"),
        target("q", agg="quantile", q=0.9),
        target("md", agg="median"),
        target("mo", agg="mode"),
        target("mo_mcc", agg="mode", value="mcc"),
        target("f_mcc", agg="first", kind="next", value="mcc"),
        target("e", agg="elapsed", kind="previous"),
        target("d", agg="distribution", by={"mcc": ["grocery", "fuel"]}),
        time={"unit": "day"},
    )
    empty = pa.table(
        {
            "u": pa.array([], pa.int64()),
            "t": pa.array([], pa.int64()),
            "amount": pa.array([], pa.float64()),
            "mcc": pa.array([], pa.string()),
        }
    )
    for table in (empty, AGG_TABLE):
        schema = reference_table(ts, table).schema
        assert [schema.field(n).type for n in ("v", "q", "md", "mo", "e")] == [pa.float64()] * 5
        assert schema.field("mo_mcc").type == pa.int64()
        assert schema.field("f_mcc").type == pa.int64()
        assert schema.field("d").type == pa.list_(pa.float64())
    assert col(reference_table(ts, AGG_TABLE), "d")[:2] == [[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]
