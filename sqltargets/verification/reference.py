"""The NumPy reference: every target computed the slow, obvious way, straight from TARGETS.md.

This module is what the generated SQL is proven against, so it shares no code with the
compiler and uses no SQL. For every user it walks the events in order; for every event and
target it builds the set of the user's transactions in the target's window (a NumPy boolean
mask), keeps those that pass the filter, and aggregates them with plain Python.

The worked example of TARGETS.md (integer days, a running sum of ``amount`` at MCC 5411):

>>> import pyarrow as pa
>>> from sqltargets.compile.spec import load
>>> ts = load({
...     "columns": {"user": "u", "time": "day", "amount": "amount", "mcc": "mcc"},
...     "time": {"unit": "day"},
...     "targets": [{"name": "grocery_day", "agg": "sum", "mcc": [5411],
...                  "window": {"kind": "expanding", "period": "day"}}],
... })
>>> table = pa.table({
...     "u": [1, 1, 1, 1, 1, 1],
...     "day": [1, 1, 2, 2, 2, 3],
...     "amount": [10.0, 20.0, 5.0, 7.5, 2.5, 1.0],
...     "mcc": [5812, 5411, 5411, 5942, 5411, 5411],
... })
>>> reference_table(ts, table).column("grocery_day").to_pylist()
[0.0, 20.0, 5.0, 5.0, 7.5, 1.0]
>>> reference_table(ts, table).column_names
['u', 'day', 'row_id', 'grocery_day']
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import zoneinfo
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from ..compile import where as where_mod
from ..compile.spec import UNIT_US, Target, TargetSet, Window
from ..errors import DataError

__all__ = ["reference_table"]

EPOCH = dt.datetime(1970, 1, 1)
DAY_US = UNIT_US["day"]
UTC = zoneinfo.ZoneInfo("UTC")

#: Aggregations whose output is an integer; every other one gives float64 (top_k and
#: distribution a list), except first / last / mode of the spec's mcc column (MCC codes, int64).
INTEGER_AGGS = ("count", "count_distinct")
#: Aggregations that read the spec's mcc column as MCC codes (class labels), not as numbers.
MCC_LABEL_AGGS = ("first", "last", "mode")


def reference_table(ts: TargetSet, table: pa.Table) -> pa.Table:
    """Compute every target of ``ts`` over ``table`` (row i has input position i).

    Returns the ``events`` or ``periods`` output described in TARGETS.md, with the columns
    and row order the SQL path produces.
    """
    if ts.null_rows == "drop":
        user_col, time_col = table.column(ts.columns.user), table.column(ts.columns.time)
        if user_col.null_count or time_col.null_count:
            # rows that cannot be placed are left out; the others keep their input positions
            keep = [
                i
                for i, (u, t) in enumerate(zip(user_col.to_pylist(), time_col.to_pylist()))
                if u is not None and t is not None
            ]
            # (typed indices: pyarrow has no take with an empty list's null type)
            kept = table.take(pa.array(keep, pa.int64()))
            out = reference_table(dataclasses.replace(ts, null_rows="error"), kept)
            if ts.output == "events" and ts.columns.id is None:
                positions = np.array(keep, dtype=np.int64)[out.column("row_id").to_numpy()]
                out = out.set_column(
                    out.schema.get_field_index("row_id"), "row_id", pa.array(positions)
                )
            return out
    _check_input(ts, table)
    n = table.num_rows
    users = table.column(ts.columns.user).to_pylist()
    clock = event_clock(ts, table)

    # Event order inside a user: time, then the id column (or the input position).
    if ts.columns.id:
        ids = table.column(ts.columns.id).to_pylist()
        tie = [(0, v, i) if v is not None else (1, 0, i) for i, v in enumerate(ids)]
    else:
        tie = [(0, i, i) for i in range(n)]
    order = sorted(range(n), key=lambda i: (users[i], int(clock.o[i]), tie[i]))

    # The users' events, each user's input positions in event order.
    per_user: list[np.ndarray] = []
    start = 0
    for k in range(1, n + 1):
        if k == n or users[order[k]] != users[order[start]]:
            per_user.append(np.array(order[start:k], dtype=np.int64))
            start = k

    filters = {t.name: passes_filter(ts, t, table) for t in ts.targets}
    values = {t.name: agg_values(ts, t, table) for t in ts.targets}
    period_keys = {
        t.window.period: period_keys_of(clock.local, t.window.period, ts.week_start_index)
        for t in ts.targets
        if t.window.period is not None
    }

    if ts.output == "periods":
        return _periods_output(ts, table, per_user, filters, values, period_keys)

    results: dict[str, list[Any]] = {t.name: [None] * n for t in ts.targets}
    for rows in per_user:
        elapsed = clock.e[rows]
        for target in ts.targets:
            in_filter = filters[target.name][rows]
            keys = period_keys[target.window.period][rows] if target.window.period else None
            for k, row in enumerate(rows):
                if target.window.kind in ("next", "previous"):
                    window = nth_event_mask(target.window, k, in_filter)
                else:
                    window = window_mask(target.window, k, elapsed, keys)
                inside = np.flatnonzero(window & in_filter)  # positions in rows, event order
                if target.agg == "elapsed":
                    window_values = [
                        elapsed_seconds(target.window, int(elapsed[k]), int(elapsed[j]))
                        for j in inside
                    ]
                else:
                    window_values = [values[target.name][rows[j]] for j in inside]
                results[target.name][row] = aggregate(
                    target, window_values, mcc_codes=reads_mcc_codes(ts, target)
                )

    take = pa.array(order, type=pa.int64())
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        ts.columns.user: table.column(ts.columns.user).take(take),
        ts.columns.time: table.column(ts.columns.time).take(take),
    }
    if ts.columns.id:
        columns[ts.columns.id] = table.column(ts.columns.id).take(take)
    else:
        columns["row_id"] = take
    for target in ts.targets:
        ordered = [results[target.name][i] for i in order]
        columns[target.name] = pa.array(ordered, type=output_type(target, ts))
    return pa.table(columns)


def _periods_output(
    ts: TargetSet,
    table: pa.Table,
    per_user: list[np.ndarray],
    filters: dict[str, np.ndarray],
    values: dict[str, list[Any]],
    period_keys: dict[str, np.ndarray],
) -> pa.Table:
    """One row per user and calendar period present in that user's data."""
    period = ts.targets[0].window.period
    assert period is not None
    first_rows: list[int] = []  # one input row of each (user, period), to copy the user from
    starts: list[dt.date] = []
    results: dict[str, list[Any]] = {t.name: [] for t in ts.targets}
    for rows in per_user:
        keys = period_keys[period][rows]
        for key in sorted(set(keys.tolist())):
            first_rows.append(int(rows[keys == key][0]))
            starts.append(_date_of(key))
            for target in ts.targets:
                if target.window.kind == "period":
                    wanted = key
                else:  # next_period, `offset` periods after the next one
                    wanted = key
                    for _ in range(1 + target.window.offset):
                        wanted = next_period_key(wanted, period)
                window = keys == wanted
                members = rows[window & filters[target.name][rows]]
                window_values = [values[target.name][m] for m in members]
                results[target.name].append(
                    aggregate(target, window_values, mcc_codes=reads_mcc_codes(ts, target))
                )

    take = pa.array(first_rows, type=pa.int64())
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        ts.columns.user: table.column(ts.columns.user).take(take),
        "period_start": pa.array(starts, type=pa.date32()),
    }
    for target in ts.targets:
        columns[target.name] = pa.array(results[target.name], type=output_type(target, ts))
    return pa.table(columns)


# ---------------------------------------------------------------------------------------------
# input checks


def _check_input(ts: TargetSet, table: pa.Table) -> None:
    """Every column the spec names exists (and no other differs from it only in case, as
    the engines refuse), and no row has a null user or time."""
    names = table.column_names
    ts.check_column_case(names)
    wanted = [ts.columns.user, ts.columns.time]
    if ts.columns.id:
        wanted.append(ts.columns.id)
    if any(t.mcc is not None or t.agg == "distribution" for t in ts.targets):
        wanted.append(ts.columns.mcc)
    wanted += [t.value for t in ts.targets]
    for name in dict.fromkeys(wanted):
        if name not in names:
            raise DataError(
                f"column {name!r} named by the spec is not in the input; "
                f"the input has: {', '.join(names)}"
            )
    for role, name in (("user", ts.columns.user), ("time", ts.columns.time)):
        column = table.column(name)
        if column.null_count:
            nulls = [i for i, v in enumerate(column.is_null().to_pylist()) if v]
            raise DataError(
                f"{len(nulls)} row(s) have a null {role} ({name!r}); first at input row {nulls[0]}"
            )


# ---------------------------------------------------------------------------------------------
# time


@dataclass(frozen=True)
class Clock:
    """Per input row: the local wall-clock time, the order key and the elapsed key (µs)."""

    local: list[dt.datetime]
    o: np.ndarray
    e: np.ndarray


def event_clock(ts: TargetSet, table: pa.Table) -> Clock:
    """The three per-row times of the spec's time column (an error for local times outside
    years 1 to 9999, which Python's datetime cannot hold)."""
    try:
        return _event_clock(ts, table)
    except (OverflowError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(
            f"column {ts.columns.time!r}: a time falls outside years 1 to 9999 in time zone "
            f"{ts.timezone}, which the NumPy reference (Python's datetime) cannot represent"
        ) from e


def _event_clock(ts: TargetSet, table: pa.Table) -> Clock:
    column = table.column(ts.columns.time)
    kind = column.type
    zone = zoneinfo.ZoneInfo(ts.timezone)

    if pa.types.is_timestamp(kind):
        to_us = {"s": 1_000_000, "ms": 1_000, "us": 1}
        raw = column.cast(pa.int64()).to_pylist()
        # ns are floor-divided, also before 1970.
        us = [v // 1_000 if kind.unit == "ns" else v * to_us[kind.unit] for v in raw]
        if kind.tz is not None:
            # An instant: convert it to the spec's zone for the calendar.
            local = [
                (dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=v))
                .astimezone(zone)
                .replace(tzinfo=None)
                for v in us
            ]
            return Clock(local, np.array(us, dtype=np.int64), np.array(us, dtype=np.int64))
        # Naive: a wall-clock time already local to the spec's zone.
        local = [EPOCH + dt.timedelta(microseconds=v) for v in us]
        elapsed = [
            v if ts.timezone == "UTC" else wall_to_instant_us(w, zone)
            for v, w in zip(us, local, strict=True)
        ]
        return Clock(local, np.array(us, dtype=np.int64), np.array(elapsed, dtype=np.int64))

    if pa.types.is_date32(kind) or pa.types.is_date64(kind):
        if pa.types.is_date32(kind):
            days = column.cast(pa.int32()).to_pylist()
        else:
            days = [v // 86_400_000 for v in column.cast(pa.int64()).to_pylist()]
        local = [EPOCH + dt.timedelta(days=d) for d in days]
        us = np.array([d * DAY_US for d in days], dtype=np.int64)
        return Clock(local, us, us)

    if pa.types.is_integer(kind):
        unit = ts.time.unit
        if unit is None:
            raise DataError(
                f"time column {ts.columns.time!r} is an integer ({kind}); the spec needs "
                "time.unit (day, s, ms or us) to read it"
            )
        steps = column.to_pylist()
        low, high = ts.time.steps_allowed()
        for v in steps:
            if v is not None and not low <= v <= high:  # (as every engine refuses it)
                before, after = ts.time.outside(ts.columns.time)
                raise DataError(f"{before}{v}{after}")
        origin = dt.datetime.combine(ts.time.origin, dt.time())
        local = [origin + dt.timedelta(microseconds=v * UNIT_US[unit]) for v in steps]
        us = np.array([v * UNIT_US[unit] for v in steps], dtype=np.int64)
        return Clock(local, us, us)

    raise DataError(
        f"time column {ts.columns.time!r} has type {kind}; expected a timestamp, a date "
        "or an integer"
    )


def wall_to_instant_us(wall: dt.datetime, zone: zoneinfo.ZoneInfo) -> int:
    """µs since the epoch of a naive wall-clock time in ``zone``.

    A wall time in a spring-forward gap takes the offset in force before the change; a
    repeated (fall-back) one is its later occurrence, as DuckDB's ``timezone()`` does.

    >>> ny = zoneinfo.ZoneInfo("America/New_York")
    >>> wall_to_instant_us(dt.datetime(2024, 3, 10, 2, 30), ny)
    1710055800000000
    >>> wall_to_instant_us(dt.datetime(2024, 11, 3, 1, 30), ny)
    1730615400000000
    """
    early = wall.replace(tzinfo=zone, fold=0)
    late = wall.replace(tzinfo=zone, fold=1)

    def round_trips(t: dt.datetime) -> bool:
        return t.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall

    if early.utcoffset() == late.utcoffset():
        offset = early.utcoffset()
    elif round_trips(early) and round_trips(late):
        offset = late.utcoffset()  # repeated hour: the later occurrence
    else:
        offset = early.utcoffset()  # gap: the offset before the transition
    assert offset is not None
    return (wall - EPOCH - offset) // dt.timedelta(microseconds=1)


def period_start(day: dt.date, period: str, week_start_index: int) -> dt.date:
    """First day of the calendar ``period`` that holds ``day``.

    >>> may15 = dt.date(2024, 5, 15)  # a Wednesday
    >>> period_start(may15, "quarter", 0), period_start(may15, "week", 6)
    (datetime.date(2024, 4, 1), datetime.date(2024, 5, 12))
    """
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=(day.weekday() - week_start_index) % 7)
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if period == "year":
        return dt.date(day.year, 1, 1)
    raise ValueError(f"unknown period {period!r}")


def next_period_start(start: dt.date, period: str) -> dt.date:
    """First day of the period right after the one starting at ``start``.

    >>> next_period_start(dt.date(2024, 12, 1), "month")
    datetime.date(2025, 1, 1)
    >>> next_period_start(dt.date(2024, 10, 1), "quarter")
    datetime.date(2025, 1, 1)
    """
    if period == "day":
        return start + dt.timedelta(days=1)
    if period == "week":
        return start + dt.timedelta(days=7)
    if period in ("month", "quarter"):
        months = start.year * 12 + start.month - 1 + (1 if period == "month" else 3)
        return dt.date(months // 12, months % 12 + 1, 1)
    if period == "year":
        return dt.date(start.year + 1, 1, 1)
    raise ValueError(f"unknown period {period!r}")


def period_keys_of(local: list[dt.datetime], period: str, week_start_index: int) -> np.ndarray:
    """Per row, the start of its calendar period, as a date ordinal (a week that starts
    before 0001-01-01 has ordinal 0 or less)."""
    if period == "week":  # in ordinals: a week may start in year 0, which date cannot hold
        return np.array(
            [t.date().toordinal() - (t.date().weekday() - week_start_index) % 7 for t in local],
            dtype=np.int64,
        )
    return np.array(
        [period_start(t.date(), period, week_start_index).toordinal() for t in local],
        dtype=np.int64,
    )


#: A period key no row has: the start of a period after 9999-12-31.
BEYOND = dt.date.max.toordinal() + 1


def next_period_key(key: int, period: str) -> int:
    """The key (date ordinal) of the period right after the one whose key is ``key``; a
    period after year 9999 (which no row can be in) is :data:`BEYOND`.

    >>> next_period_key(dt.date(2024, 12, 1).toordinal(), "month") == dt.date(2025, 1, 1).toordinal()
    True
    >>> next_period_key(dt.date(9999, 1, 1).toordinal(), "year") == BEYOND
    True
    """
    if period == "day":
        return key + 1
    if period == "week":
        return key + 7
    try:
        return next_period_start(dt.date.fromordinal(key), period).toordinal()
    except (ValueError, OverflowError):
        return BEYOND


def _date_of(key: int) -> dt.date:
    try:
        return dt.date.fromordinal(key)
    except (ValueError, OverflowError) as e:
        raise DataError(
            "a period starts before 0001-01-01, which the NumPy reference (Python dates) "
            "cannot represent"
        ) from e


# ---------------------------------------------------------------------------------------------
# windows


def window_mask(window: Window, k: int, e: np.ndarray, keys: np.ndarray | None) -> np.ndarray:
    """Which of a user's events (in event order) fall into the window of its k-th event.

    ``e`` is the elapsed time (µs) of each event and ``keys`` its period key (for calendar
    windows). Event windows (``next`` / ``previous``) depend on the filter: see
    :func:`nth_event_mask`.

    >>> day = 86_400_000_000
    >>> e = np.array([0, 0, 1, 2, 3]) * day
    >>> window_mask(Window("rolling", length=2 * day), 2, e, None).tolist()
    [True, True, True, False, False]
    >>> window_mask(Window("rolling", length=2 * day, include_current=False), 2, e, None).tolist()
    [True, True, False, False, False]
    >>> window_mask(Window("future", length=day, offset=day), 0, e, None).tolist()
    [False, False, False, True, False]
    """
    if window.kind == "expanding":
        assert keys is not None
        if window.include_current:
            at_or_before = np.arange(len(e)) <= k
        else:
            at_or_before = np.arange(len(e)) < k  # strictly before this row in event order
        return (keys == keys[k]) & at_or_before
    if window.kind == "period":
        assert keys is not None
        return keys == keys[k]
    if window.kind == "next_period":
        assert keys is not None and window.period is not None
        wanted = int(keys[k])
        for _ in range(1 + window.offset):  # the next period, then `offset` more
            wanted = next_period_key(wanted, window.period)
        return keys == wanted
    assert window.length is not None
    if window.kind == "rolling":
        if window.include_current:
            return (e > e[k] - window.length) & (e <= e[k])
        return (e > e[k] - window.length) & (e < e[k])  # this time, ties too, left out
    if window.kind == "future":
        start = e[k] + window.offset
        return (e > start) & (e <= start + window.length)
    raise ValueError(f"unknown window kind {window.kind!r}")


def nth_event_mask(window: Window, k: int, passes: np.ndarray) -> np.ndarray:
    """``next`` / ``previous``: the n-th event that passes the filter, strictly after / before
    the k-th event in event order (one True, or none when there are fewer than n).

    >>> passes = np.array([True, False, True, True, True])
    >>> nth_event_mask(Window("next", n=2), 0, passes).tolist()
    [False, False, False, True, False]
    >>> nth_event_mask(Window("previous"), 2, passes).tolist()
    [True, False, False, False, False]
    >>> nth_event_mask(Window("previous", n=2), 2, passes).tolist()
    [False, False, False, False, False]
    """
    if window.kind == "next":
        candidates = [j for j in range(k + 1, len(passes)) if passes[j]]
    elif window.kind == "previous":
        candidates = [j for j in range(k - 1, -1, -1) if passes[j]]  # nearest first
    else:
        raise ValueError(f"{window.kind!r} is not an event window")
    mask = np.zeros(len(passes), dtype=bool)
    if len(candidates) >= window.n:
        mask[candidates[window.n - 1]] = True
    return mask


def elapsed_seconds(window: Window, this_us: int, event_us: int) -> float:
    """Seconds from this event to the next one, or from the previous one to this one, on the
    elapsed clock (µs), as a double.

    >>> elapsed_seconds(Window("next"), 1_000_000, 3_500_000)
    2.5
    >>> elapsed_seconds(Window("previous"), 1_000_000, 3_500_000)
    -2.5
    """
    if window.kind == "next":
        return (event_us - this_us) / 1_000_000
    return (this_us - event_us) / 1_000_000


# ---------------------------------------------------------------------------------------------
# values and aggregation


def reads_mcc_codes(ts: TargetSet, target: Target) -> bool:
    """``first``, ``last`` and ``mode`` of the spec's mcc column read MCC codes (class labels)
    and output them as int64."""
    return target.agg in MCC_LABEL_AGGS and target.value == ts.columns.mcc


@dataclass(frozen=True, order=True)
class NsTime:
    """A naive nanosecond timestamp, whole (Python's datetime holds µs): what a ``where``
    compares and ``count_distinct`` counts, as the engines do."""

    ns: int


def py_values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values as Python objects (None for null). Nanosecond timestamps: a naive
    one whole (:class:`NsTime`), a zoned one rounded down to the µs, as the engines read
    them (pyarrow's own conversion refuses any that is not a whole µs)."""
    kind = column.type
    if not (pa.types.is_timestamp(kind) and kind.unit == "ns"):
        return column.to_pylist()
    raw = column.cast(pa.int64()).to_pylist()
    if kind.tz is None:
        return [None if v is None else NsTime(v) for v in raw]
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return [None if v is None else epoch + dt.timedelta(microseconds=v // 1_000) for v in raw]


def agg_values(ts: TargetSet, target: Target, table: pa.Table) -> list[Any]:
    """Per input row, the value the target aggregates (None for null).

    ``count_distinct`` sees the raw values; ``count`` and ``elapsed`` read no value;
    ``first`` / ``last`` / ``mode`` of the mcc column read MCC codes (an integer, or a string
    of digits; anything else is null); ``distribution`` reads (slot, value) pairs; every
    other aggregation reads the column as float64.
    """
    column = table.column(target.value)
    raw = py_values(column)
    if target.agg in ("count", "count_distinct", "elapsed"):
        return raw
    if reads_mcc_codes(ts, target):
        return [mcc_code(v) for v in raw]
    if target.agg == "distribution":
        codes = [mcc_code(v) for v in table.column(ts.columns.mcc).to_pylist()]
        slots = [distribution_slot(target, code) for code in codes]
        if target.measure == "count":
            return [(slot, None) for slot in slots]
        return list(zip(slots, _numbers(target, column), strict=True))
    return _numbers(target, column)


def _numbers(target: Target, column: pa.ChunkedArray) -> list[float | None]:
    """A numeric column as floats (None for null); any other type is an error."""
    kind = column.type
    if not (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    ):  # (a BOOLEAN is no number: the engines refuse it too)
        also = " or the spec's mcc column" if target.agg == "mode" else ""
        raise DataError(
            f"target {target.name!r}: {target.agg} needs a numeric value column{also}; "
            f"{target.value!r} has type {kind}"
        )
    return [None if v is None else float(v) for v in column.to_pylist()]


def distribution_slot(target: Target, code: int | None) -> int:
    """The slot of a transaction in a distribution: the first group whose ranges hold its
    MCC code, else the last slot, "other" (also for a null or non-digit MCC).

    >>> t = Target("d", "distribution", Window("period", period="day"), "amount",
    ...            by=(((5411, 5499),), ((5400, 5500), (5812, 5812))), by_names=("a", "b"))
    >>> [distribution_slot(t, c) for c in (5411, 5450, 5400, 5812, 6011, None)]
    [0, 0, 1, 1, 2, 2]
    """
    assert target.by is not None
    if code is not None:
        for slot, ranges in enumerate(target.by):
            if any(lo <= code <= hi for lo, hi in ranges):
                return slot
    return len(target.by)


def _order_key(v: float) -> tuple[int, float]:
    """Sort key for floats that puts NaN above everything, as DuckDB orders them."""
    return (1, 0.0) if math.isnan(v) else (0, v)


def _distinct_key(v: Any) -> Any:
    """Hashable stand-in for a raw value: every NaN counts as one value; lists, structs and
    maps count by their contents."""
    if isinstance(v, float) and math.isnan(v):
        return ("NaN",)
    if isinstance(v, list):
        return ("list", tuple(_distinct_key(x) for x in v))
    if isinstance(v, dict):
        return ("struct", tuple((k, _distinct_key(x)) for k, x in v.items()))
    if isinstance(v, tuple):  # a map's (key, value) pairs
        return ("pair", tuple(_distinct_key(x) for x in v))
    return v


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics.

    Sorted ascending with NaN as the largest value: m values, h = (m - 1)·q, j = floor(h),
    g = h - j; x_j when g == 0, else (1 - g)·x_j + g·x_{j+1}.

    >>> quantile([4.0, 1.0, 2.0, 3.0], 0.5), quantile([1.0, 2.0], 0.25), quantile([7.0], 0.9)
    (2.5, 1.25, 7.0)
    >>> quantile([1.0, float("nan"), 2.0], 0.5), quantile([1.0, float("nan")], 0.5)
    (2.0, nan)
    """
    xs = sorted(values, key=_order_key)
    h = (len(xs) - 1) * q
    j = math.floor(h)
    g = h - j
    if g == 0:
        return xs[j]
    return (1 - g) * xs[j] + g * xs[j + 1]


def mode(values: Sequence[Any]) -> Any:
    """The most frequent value; ties go to the smallest (NaN is the largest, all NaN are one
    value, -0.0 equals 0.0).

    >>> mode([3.0, 1.0, 3.0, 1.0, 2.0]), mode([float("nan"), float("nan"), 5.0])
    (1.0, nan)
    >>> mode([-0.0, 0.0, 1.0]), mode([5411, 5812, 5812])
    (0.0, 5812)
    """
    counts: Counter[Any] = Counter()
    for v in values:
        if isinstance(v, float) and math.isnan(v):
            counts["NaN"] += 1
        elif isinstance(v, float) and v == 0.0:
            counts[0.0] += 1  # -0.0 and 0.0 are one value
        else:
            counts[v] += 1
    most = max(counts.values())
    tied = [v for v, c in counts.items() if c == most]
    numbers = [v for v in tied if v != "NaN"]
    return min(numbers) if numbers else math.nan


def aggregate(target: Target, window_values: Sequence[Any], mcc_codes: bool = False) -> Any:
    """``target.agg`` over the values of the window's transactions, in event order.

    ``mcc_codes``: the values are MCC codes (``first`` / ``last`` / ``mode`` of the mcc
    column), so the result and its fill are integers.
    """
    agg = target.agg
    fill = target.fill
    present = [v for v in window_values if v is not None]

    if agg == "count":
        if not window_values:
            return 0 if fill is None else int(fill)
        return len(window_values)
    if agg == "count_distinct":
        if not present:
            return 0 if fill is None else int(fill)
        return len({_distinct_key(v) for v in present})
    if agg == "top_k":
        assert target.k is not None
        largest = sorted(present, key=_order_key, reverse=True)[: target.k]
        pad = None if fill is None else float(fill)
        return largest + [pad] * (target.k - len(largest))
    if agg == "distribution":
        assert target.by is not None
        slots = [0.0] * (len(target.by) + 1)
        for slot, value in window_values:
            if target.measure == "count":
                slots[slot] += 1.0
            elif value is not None:
                slots[slot] += value
        if not target.normalize:
            return slots
        total = sum(slots)
        if total == 0:
            return [None] * len(slots)  # no shares of nothing (also an empty window)
        return [x / total for x in slots]

    if fill is None:
        empty = None
    else:
        empty = int(fill) if mcc_codes else float(fill)
    if agg == "sum":
        if not present:
            return 0.0 if fill is None else float(fill)
        return float(sum(present))
    if agg in ("std", "var"):  # sample (n - 1); std is the square root of var
        if len(present) < 2:
            return empty
        spread = np.std if agg == "std" else np.var
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN amounts give inf/NaN
            return float(spread(np.array(present, dtype=np.float64), ddof=1))
    if not present:
        return empty
    if agg == "mean":
        return float(sum(present)) / len(present)
    if agg == "min":
        return min(present, key=_order_key)
    if agg == "max":
        return max(present, key=_order_key)
    if agg in ("first", "elapsed"):  # an event window holds at most one transaction
        return present[0]
    if agg == "last":
        return present[-1]
    if agg == "median":
        return quantile(present, 0.5)
    if agg == "quantile":
        assert target.q is not None
        return quantile(present, target.q)
    if agg == "mode":
        return mode(present)
    raise ValueError(f"unknown agg {agg!r}")


def output_type(target: Target, ts: TargetSet) -> pa.DataType:
    """Arrow type of a target's output column."""
    if target.agg in INTEGER_AGGS or reads_mcc_codes(ts, target):
        return pa.int64()
    if target.agg in ("top_k", "distribution"):
        return pa.list_(pa.float64())
    return pa.float64()


# ---------------------------------------------------------------------------------------------
# filter: mcc ranges and the where expression

_MCC_DIGITS = re.compile(r"[0-9]+")


#: MCC codes are 32-bit integers (an ISO 18245 code has 4 digits); a cell beyond is no code.
MCC_MIN, MCC_MAX = -(2**31), 2**31 - 1


def mcc_code(value: Any) -> int | None:
    """The MCC a cell holds: an integer, or a string of digits (spaces stripped), within
    32 bits; else None.

    >>> mcc_code(5411), mcc_code(" 5411 "), mcc_code("54a1"), mcc_code(None)
    (5411, 5411, None, None)
    >>> mcc_code(2**31 - 1), mcc_code(2**31), mcc_code("99999999999")
    (2147483647, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        code = value
    elif isinstance(value, str):
        text = value.strip(" ")
        if not _MCC_DIGITS.fullmatch(text):
            return None
        code = int(text)
    else:
        raise DataError(f"mcc value {value!r} is neither an integer nor a string of digits")
    return code if MCC_MIN <= code <= MCC_MAX else None


def passes_filter(ts: TargetSet, target: Target, table: pa.Table) -> np.ndarray:
    """Per input row: does it pass the target's mcc and where filters?"""
    n = table.num_rows
    passes = np.ones(n, dtype=bool)
    if target.mcc is not None:
        codes = [mcc_code(v) for v in table.column(ts.columns.mcc).to_pylist()]
        passes &= np.array(
            [c is not None and any(lo <= c <= hi for lo, hi in target.mcc) for c in codes],
            dtype=bool,
        )
    if target.where is not None:
        try:
            passes &= evaluate_where(target.where, table, zoneinfo.ZoneInfo(ts.timezone))
        except DataError as e:  # (named as the engines name it: where_failure)
            i = next(i for i, t in enumerate(ts.targets) if t is target)
            raise DataError(
                f"targets[{i}].where: {target.where!r} fails on a row of the input: {e}"
            ) from e
    return passes


@dataclass(frozen=True)
class Vec:
    """A column of SQL values: Python objects, with a separate NULL mask."""

    values: np.ndarray  # dtype object; an entry under a NULL is meaningless
    null: np.ndarray  # dtype bool


def evaluate_where(text: str, table: pa.Table, zone: zoneinfo.ZoneInfo) -> np.ndarray:
    """Rows for which the ``where`` expression is TRUE (NULL and FALSE do not pass).

    >>> t = pa.table({"a": [1, -2, None], "city": ["Oslo", "oslo", "Rome"]})
    >>> evaluate_where("a > 0 OR city ILIKE 'os%'", t, UTC).tolist()
    [True, True, False]
    """
    result = _Where(table, zone).eval(where_mod.parse(text))
    truth = np.array([_truthy(v) for v in result.values], dtype=bool)
    return truth & ~result.null


def _truthy(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, (bool, int, float)):
        return bool(v)
    raise DataError(f"where: {v!r} is not a boolean")


def _sql_number(v: Any) -> Any:
    """A value as a number for arithmetic and numeric comparison (strings are cast)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (Decimal, np.float32)):  # (exact decimals; FLOAT arithmetic in FLOAT)
        return v
    if isinstance(v, str):
        text = v.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise DataError(f"where: could not convert string {v!r} to a number") from None
    raise DataError(f"where: {v!r} ({type(v).__name__}) is not a number")


_BOOLEAN_TEXT = {"true": True, "t": True, "1": True, "yes": True, "y": True,
                 "false": False, "f": False, "0": False, "no": False, "n": False}  # fmt: skip


def _cast_text(text: str, like: Any) -> Any:
    """A string compared with ``like``, cast to its type as DuckDB casts it: to a BOOLEAN
    ('yes', 't', '1', ...), to an INTEGER by rounding its number half away from zero
    ('1.5' is 2; '0x10' 16; '1_000' 1000), to a DECIMAL at the other's scale, rounded the
    same way ('1.051' is 1.05 beside a decimal(5,2)), to a FLOAT or a DOUBLE."""
    if isinstance(like, bool):
        value = _BOOLEAN_TEXT.get(text.lower())
        if value is None:
            raise DataError(f"where: could not convert string {text!r} to a boolean")
        return value
    body = text.strip().replace("_", "")
    if isinstance(like, int) and re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", body):
        return int(body, 16)
    if isinstance(like, (int, Decimal)):
        try:
            number = Decimal(body)
        except ArithmeticError:
            raise DataError(f"where: could not convert string {text!r} to a number") from None
        if not number.is_finite():
            raise DataError(f"where: could not convert string {text!r} to a number")
        scale = Decimal(1) if isinstance(like, int) else Decimal(1).scaleb(like.as_tuple().exponent)
        exact = number.quantize(scale, rounding=ROUND_HALF_UP, context=_WIDE)
        return int(exact) if isinstance(like, int) else exact
    if isinstance(like, np.float32):
        return np.float32(_float(text))
    return _float(text)


def _float(v: Any) -> float:
    """A value as a double, as DuckDB casts it (a decimal zero has no sign: -0.0 is 0.0)."""
    x = _sql_number(v)
    return float(x) + 0.0 if isinstance(x, Decimal) else float(x)


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Two operands of arithmetic in DuckDB's common type: a double if either is one, else a
    FLOAT (float32) if either is one, else a decimal if either is one (exact), else
    integers."""
    a, b = _sql_number(a), _sql_number(b)
    if isinstance(a, float) or isinstance(b, float):
        return _float(a), _float(b)
    if isinstance(a, np.float32) or isinstance(b, np.float32):  # a FLOAT column: in FLOAT
        return np.float32(_float(a)), np.float32(_float(b))
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(a), Decimal(b)
    return a, b


def _arithmetic(name: str) -> Callable[[Any, Any], Any]:
    """``+``, ``-`` or ``*`` in DuckDB's common type of the operands (decimals exactly)."""
    plain = {
        "add": lambda x, y: x + y,
        "subtract": lambda x, y: x - y,
        "multiply": lambda x, y: x * y,
    }
    decimal = getattr(_WIDE, name)

    def apply(a: Any, b: Any) -> Any:
        if _is_date(a) or _is_date(b):  # DATE ± integer days; DATE - DATE is days
            if name == "add" and _is_date(a) != _is_date(b):
                day, n = (a, b) if _is_date(a) else (b, a)
                return day + dt.timedelta(days=int(_sql_number(n)))
            if name == "subtract" and _is_date(a):
                return (a - b).days if _is_date(b) else a - dt.timedelta(days=int(_sql_number(b)))
        x, y = _pair(a, b)
        if isinstance(x, Decimal):
            return decimal(x, y)
        with np.errstate(all="ignore"):
            return plain[name](x, y)

    return apply


_LOOSE_TIME = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?)?\s*"
)


def _parse_timestamp(text: str) -> dt.datetime:
    """ISO text, or DuckDB's looser one-digit months, days and hours ('2024-1-1 2:30')."""
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        pass
    m = _LOOSE_TIME.fullmatch(text)
    try:
        if m is None:
            raise ValueError(text)
        y, mo, d, h, mi, sec = (int(m.group(i) or 0) for i in range(1, 7))
        return dt.datetime(y, mo, d, h, mi, sec, int((m.group(7) or "").ljust(6, "0")))
    except ValueError:
        raise DataError(f"where: could not convert string {text!r} to a timestamp") from None


def _sql_datetime(v: Any, zone: zoneinfo.ZoneInfo, aware: bool) -> dt.datetime:
    """A date, datetime or ISO string as a datetime (aware in ``zone`` when ``aware``). A
    string with an offset compared with a naive timestamp loses its offset, as DuckDB's
    cast of it to TIMESTAMP does ('2024-01-01T00:00:00+05:00' is 2024-01-01 00:00)."""
    if isinstance(v, str):
        v = _parse_timestamp(v)
        if not aware:
            v = v.replace(tzinfo=None)
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        v = dt.datetime.combine(v, dt.time())
    if not isinstance(v, dt.datetime):
        raise DataError(f"where: {v!r} is not a date or timestamp")
    if aware and v.tzinfo is None:  # a wall time in the zone: a repeated hour's later one
        v = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(
            microseconds=wall_to_instant_us(v, zone)
        )
    return v


def _is_temporal(v: Any) -> bool:
    return isinstance(v, dt.date)


def _is_date(v: Any) -> bool:
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


_TIMESTAMP_TEXT = re.compile(
    r"\s*(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?\s*"
)


def _ns(v: Any) -> int:
    """ns since the epoch of a value compared with a naive nanosecond timestamp: a string is
    cast as DuckDB casts it to TIMESTAMP_NS (digits past the ninth and an offset dropped)."""
    if isinstance(v, NsTime):
        return v.ns
    if isinstance(v, str) and (m := _TIMESTAMP_TEXT.fullmatch(v)):
        day = (dt.date.fromisoformat(m.group(1)) - dt.date(1970, 1, 1)).days
        h, mi, sec = (int(m.group(i) or 0) for i in (2, 3, 4))
        frac = int(((m.group(5) or "") + "0" * 9)[:9])
        return ((day * 24 + h) * 60 + mi) * 60_000_000_000 + sec * 1_000_000_000 + frac
    t = _sql_datetime(v, UTC, aware=False)
    if t.tzinfo is not None:
        raise DataError(f"where: {v!r} is a zoned time; a naive timestamp has no zone")
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) * 1_000


def _compare(a: Any, b: Any, zone: zoneinfo.ZoneInfo) -> int:
    """-1, 0 or 1 as SQL compares two non-NULL values (NaN equals NaN and is the largest)."""
    if isinstance(a, NsTime) or isinstance(b, NsTime):
        a, b = _ns(a), _ns(b)
        return int(a > b) - int(a < b)
    if isinstance(a, str) and isinstance(b, str):
        return int(a > b) - int(a < b)
    if (_is_date(a) and isinstance(b, str)) or (_is_date(b) and isinstance(a, str)):
        # DuckDB casts the string to a DATE: its time of day and offset are dropped
        a, b = (_parse_timestamp(x).date() if isinstance(x, str) else x for x in (a, b))
        return int(a > b) - int(a < b)
    if _is_temporal(a) or _is_temporal(b):
        aware = any(isinstance(x, dt.datetime) and x.tzinfo is not None for x in (a, b))
        a, b = _sql_datetime(a, zone, aware), _sql_datetime(b, zone, aware)
        return int(a > b) - int(a < b)
    if isinstance(a, str) != isinstance(b, str):  # DuckDB casts the string to the other's type
        a, b = (_cast_text(a, b), b) if isinstance(a, str) else (a, _cast_text(b, a))
    a, b = _pair(a, b)  # (a double with an integer or a decimal: both as doubles)
    a_nan = isinstance(a, (float, np.floating)) and math.isnan(a)
    b_nan = isinstance(b, (float, np.floating)) and math.isnan(b)
    if a_nan or b_nan:
        return int(a_nan) - int(b_nan)
    return int(a > b) - int(a < b)


def _sql_round(v: Any, decimals: int) -> Any:
    """DuckDB's ``round(x, decimals)``: the exact value of ``x`` (a double's binary value, a
    decimal's digits) rounded half away from zero, so ``round(0.15::DOUBLE, 1)`` is 0.1 (the
    double is just below 0.15) and ``round(0.15, 1)`` (a DECIMAL literal) is 0.2."""
    x = v if isinstance(v, Decimal) else _sql_number(v)
    if isinstance(x, int) and decimals >= 0:
        return x
    if isinstance(x, float) and not math.isfinite(x):
        return x
    exact = x if isinstance(x, Decimal) else Decimal(x)
    if decimals > 400:  # finer than any double or decimal: nothing to round
        rounded = exact
    elif decimals < -400:
        rounded = Decimal(0)
    else:
        rounded = exact.quantize(
            Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP, context=_WIDE
        )
    if isinstance(x, int):
        return int(rounded)
    if isinstance(x, Decimal):
        return rounded
    return float(rounded)


#: Enough digits for any double (about 770 significant digits at most) at any scale.
_WIDE = Context(prec=2000, rounding=ROUND_HALF_UP)


def _divide(a: Any, b: Any) -> float:
    """DuckDB ``/``: float division; x/0 is ±inf, 0/0 is NaN."""
    with np.errstate(all="ignore"):
        x, y = _pair(a, b)
        if isinstance(x, np.float32):  # FLOAT / FLOAT is a FLOAT
            return x / y
        return float(np.float64(_float(x)) / np.float64(_float(y)))


def _modulo(a: Any, b: Any) -> Any:
    """DuckDB ``%``: the remainder takes the sign of the dividend; integer x % 0 is an
    error, a double's is NaN (as is inf % y; x % inf is x)."""
    a, b = _pair(a, b)
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            raise DataError("where: division by zero in '%'")
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    if isinstance(a, Decimal):  # (exact; the sign of the dividend)
        if b == 0:
            raise DataError("where: division by zero in '%'")
        return _WIDE.remainder(a, b)
    with np.errstate(all="ignore"):
        return float(np.fmod(np.float64(a), np.float64(b)))


def _sqrt(v: Any) -> float:
    x = _float(v)
    return math.nan if x < 0 or math.isnan(x) else math.sqrt(x)


def _ln(v: Any) -> float:
    x = _float(v)
    if x == 0:
        return -math.inf
    return math.nan if x < 0 or math.isnan(x) else math.log(x)


def _rounding(fn: Callable[[float], int], mode: str) -> Callable[[Any], Any]:
    """DuckDB's floor or ceil: of an integer, the double; of a decimal, the exact decimal;
    of a double, a double."""

    def apply(v: Any) -> Any:
        x = _sql_number(v)
        if isinstance(x, Decimal):
            return x.to_integral_value(rounding=mode, context=_WIDE)
        if isinstance(x, int) or not math.isfinite(x):
            return float(x)
        return float(fn(x))

    return apply


def _text(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    def apply(v: Any) -> Any:
        if not isinstance(v, str):
            raise DataError(f"where: {v!r} is not a string")
        return fn(v)

    return apply


def _upper(text: str) -> str:
    """DuckDB's ``upper``: character by character, one character for one (Python's
    ``str.upper`` makes 'SS' of 'ß', DuckDB 'ẞ'; a character without a one-character
    capital, such as 'ﬀ', stays).

    >>> _upper("straße ﬀ ᾳ")
    'STRAẞE ﬀ ᾼ'
    """
    out = []
    for c in text:
        up = c.upper()
        if len(up) != 1:
            title = c.title()
            up = "ẞ" if c == "ß" else title if len(title) == 1 else c
        out.append(up)
    return "".join(out)


def _lower(text: str) -> str:
    """DuckDB's ``lower``: character by character (no final-sigma rule; 'İ' is 'i').

    >>> _lower("ΑΣ İ")
    'ασ i'
    """
    out = []
    for c in text:
        low = c.lower()
        out.append(low if len(low) == 1 else "i" if c == "İ" else c)
    return "".join(out)


def _like(value: Any, pattern: str, case_insensitive: bool) -> bool:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character, no escape character."""
    if not isinstance(value, str):
        raise DataError(f"where: LIKE needs a string, got {value!r}")
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    if case_insensitive:
        value, regex = _lower(value), _lower(regex)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


class _Where:
    """Evaluates a checked ``where`` tree over a table, row-wise, with SQL NULL logic."""

    def __init__(self, table: pa.Table, zone: zoneinfo.ZoneInfo) -> None:
        self.table = table
        self.zone = zone
        self.n = table.num_rows

    # --- building blocks

    def constant(self, value: Any) -> Vec:
        values = np.empty(self.n, dtype=object)
        values[:] = [value] * self.n
        return Vec(values, np.full(self.n, value is None, dtype=bool))

    def column(self, name: str) -> Vec:
        names = self.table.column_names
        if name not in names:
            folded = [c for c in names if c.lower() == name.lower()]
            if len(folded) != 1:
                raise DataError(f"where: column {name!r} is not in the input")
            name = folded[0]
        column = self.table.column(name)
        raw = py_values(column)
        if pa.types.is_float32(column.type):  # (DuckDB computes with a FLOAT in FLOAT)
            raw = [None if v is None else np.float32(v) for v in raw]
        values = np.empty(self.n, dtype=object)
        values[:] = raw  # (decimals stay exact, as in DuckDB)
        return Vec(values, np.array([v is None for v in raw], dtype=bool))

    def map(self, fn: Callable[..., Any], *args: Vec) -> Vec:
        """Apply ``fn`` row by row; NULL in any argument gives NULL."""
        null = np.zeros(self.n, dtype=bool)
        for a in args:
            null = null | a.null
        values = np.empty(self.n, dtype=object)
        for i in range(self.n):
            if not null[i]:
                values[i] = fn(*(a.values[i] for a in args))
        return Vec(values, null)

    def boolean(self, truth: np.ndarray, null: np.ndarray) -> Vec:
        values = np.empty(self.n, dtype=object)
        values[:] = [bool(t) for t in truth]
        return Vec(values, null.copy())

    def truth(self, v: Vec) -> np.ndarray:
        return np.array(
            [False if null else _truthy(x) for x, null in zip(v.values, v.null, strict=True)],
            dtype=bool,
        )

    def and_(self, a: Vec, b: Vec) -> Vec:
        a_false = ~a.null & ~self.truth(a)
        b_false = ~b.null & ~self.truth(b)
        false = a_false | b_false
        null = ~false & (a.null | b.null)
        return self.boolean(~false & ~null, null)

    def or_(self, a: Vec, b: Vec) -> Vec:
        true = (~a.null & self.truth(a)) | (~b.null & self.truth(b))
        null = ~true & (a.null | b.null)
        return self.boolean(true, null)

    def not_(self, a: Vec) -> Vec:
        return self.boolean(~self.truth(a), a.null)

    def compare(self, a: Vec, b: Vec, test: Callable[[int], bool]) -> Vec:
        return self.map(lambda x, y: test(_compare(x, y, self.zone)), a, b)

    # --- the tree

    def eval(self, node: exp.Expression) -> Vec:
        comparisons: dict[type[exp.Expression], Callable[[int], bool]] = {
            exp.EQ: lambda c: c == 0,
            exp.NEQ: lambda c: c != 0,
            exp.LT: lambda c: c < 0,
            exp.LTE: lambda c: c <= 0,
            exp.GT: lambda c: c > 0,
            exp.GTE: lambda c: c >= 0,
        }
        arithmetic: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
            exp.Add: _arithmetic("add"),
            exp.Sub: _arithmetic("subtract"),
            exp.Mul: _arithmetic("multiply"),
            exp.Div: _divide,
            exp.Mod: _modulo,
        }
        one_argument: dict[type[exp.Expression], Callable[[Any], Any]] = {
            exp.Abs: lambda x: abs(_sql_number(x)),
            exp.Floor: _rounding(math.floor, ROUND_FLOOR),
            exp.Ceil: _rounding(math.ceil, ROUND_CEILING),
            exp.Sqrt: _sqrt,
            exp.Ln: _ln,
            exp.Lower: _text(_lower),
            exp.Upper: _text(_upper),
            exp.Length: _text(len),
        }

        if isinstance(node, exp.Paren):
            return self.eval(node.this)
        if isinstance(node, exp.Column):
            return self.column(node.name)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return self.constant(node.this)
            if "." in node.this and not {"e", "E"} & set(node.this):  # DuckDB: a DECIMAL
                return self.constant(Decimal(node.this))
            return self.constant(_sql_number(node.this))
        if isinstance(node, exp.Boolean):
            return self.constant(bool(node.this))
        if isinstance(node, exp.Null):
            return self.constant(None)
        if isinstance(node, exp.Neg):
            return self.map(lambda x: -_sql_number(x), self.eval(node.this))
        if isinstance(node, exp.Not):
            return self.not_(self.eval(node.this))
        if isinstance(node, exp.And):
            return self.and_(self.eval(node.this), self.eval(node.expression))
        if isinstance(node, exp.Or):
            return self.or_(self.eval(node.this), self.eval(node.expression))
        if type(node) in comparisons:
            return self.compare(
                self.eval(node.this), self.eval(node.expression), comparisons[type(node)]
            )
        if type(node) in arithmetic:
            return self.map(
                arithmetic[type(node)], self.eval(node.this), self.eval(node.expression)
            )
        if type(node) in one_argument:
            return self.map(one_argument[type(node)], self.eval(node.this))
        if isinstance(node, exp.Is):  # only IS NULL passes the checker
            value = self.eval(node.this)
            return self.boolean(value.null, np.zeros(self.n, dtype=bool))
        if isinstance(node, exp.Between):
            value = self.eval(node.this)
            low = self.compare(value, self.eval(node.args["low"]), lambda c: c >= 0)
            high = self.compare(value, self.eval(node.args["high"]), lambda c: c <= 0)
            return self.and_(low, high)
        if isinstance(node, exp.In):
            return self.in_list(self.eval(node.this), [self.eval(e) for e in node.expressions])
        if isinstance(node, (exp.Like, exp.ILike)):
            pattern = node.expression.this
            insensitive = isinstance(node, exp.ILike)
            result = self.map(lambda x: _like(x, pattern, insensitive), self.eval(node.this))
            return self.not_(result) if node.args.get("negate") else result
        if isinstance(node, exp.Round):
            decimals = node.args.get("decimals")
            places = 0
            if isinstance(decimals, exp.Neg):  # a literal, checked by where.parse
                places = -int(decimals.this.this)
            elif decimals is not None:
                places = int(decimals.this)
            # (a decimal literal or column is a Decimal here: rounded exactly, as DuckDB does)
            return self.map(lambda x: _sql_round(x, places), self.eval(node.this))
        if isinstance(node, exp.Coalesce):
            return self.coalesce([self.eval(node.this)] + [self.eval(e) for e in node.expressions])
        if isinstance(node, (exp.Least, exp.Greatest)):
            args = [self.eval(node.this)] + [self.eval(e) for e in node.expressions]
            return self.extreme(args, largest=isinstance(node, exp.Greatest))
        raise DataError(f"where: {node.sql()!r} is not supported by the reference")

    def in_list(self, value: Vec, options: list[Vec]) -> Vec:
        """x IN (a, b, ...): TRUE on a match; else NULL when x or an option is NULL."""
        found = np.zeros(self.n, dtype=bool)
        some_null = value.null.copy()
        for option in options:
            equal = self.compare(value, option, lambda c: c == 0)
            found |= ~equal.null & self.truth(equal)
            some_null |= option.null
        null = ~found & some_null
        return self.boolean(found & ~null, null)

    def coalesce(self, args: list[Vec]) -> Vec:
        values = np.empty(self.n, dtype=object)
        null = np.ones(self.n, dtype=bool)
        for i in range(self.n):
            for a in args:
                if not a.null[i]:
                    values[i] = a.values[i]
                    null[i] = False
                    break
        return Vec(values, null)

    def extreme(self, args: list[Vec], largest: bool) -> Vec:
        """least / greatest, skipping NULL arguments (NULL only when all are NULL)."""
        values = np.empty(self.n, dtype=object)
        null = np.ones(self.n, dtype=bool)
        for i in range(self.n):
            for a in args:
                if a.null[i]:
                    continue
                x = a.values[i]
                if null[i]:
                    values[i], null[i] = x, False
                    continue
                c = _compare(x, values[i], self.zone)
                if (c > 0) if largest else (c < 0):
                    values[i] = x
        return Vec(values, null)
