"""Hypothesis strategies: random transactions and random target specs.

The data is built to hit the edges: same-time ties, refunds, null amounts and MCCs, empty
windows (filters that rarely match), integer days, several time zones and DST changes,
shuffled input order, several users (integer or string ids).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import strategies as st

from sqltargets.compile.spec import (
    AGGS,
    EVENT_AGGS,
    EVENT_KINDS,
    MCC_LABEL_AGGS,
    PERIODS,
    WEEKDAYS,
    WINDOW_KINDS,
)


def fits(agg: str, kind: str) -> bool:
    """Is ``agg`` over a ``kind`` window a valid target? Event windows take only first,
    last, count and elapsed; elapsed needs an event window."""
    if kind in EVENT_KINDS:
        return agg in EVENT_AGGS
    return agg != "elapsed"


#: Every valid agg × window kind.
COMBINATIONS = [(a, k) for a in AGGS for k in WINDOW_KINDS if fits(a, k)]

TIME_KINDS = ("int_day", "int_s", "timestamp", "timestamptz", "date")
ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata")
# instants next to DST changes, and an ordinary one
BASES = (
    dt.datetime(2024, 3, 9, 12),  # New York springs forward on 2024-03-10
    dt.datetime(2024, 11, 2, 20),  # ... falls back on 2024-11-03
    dt.datetime(2024, 3, 30, 22),  # Berlin: 2024-03-31
    dt.datetime(2024, 10, 26, 23),  # Berlin: 2024-10-27
    dt.datetime(2024, 4, 6, 10),  # Sydney: 2024-04-07
    dt.datetime(2023, 12, 28, 9),  # across a year, quarter and ISO week boundary
    dt.datetime(1969, 12, 25, 0),  # before 1970
)
STEPS = (1, 60, 1800, 3600, 6 * 3600, 86400, 5 * 86400, 20 * 86400)  # seconds per step
MCCS = (5411, 5499, 5812, 5814, 5541, 4511, 3100, 7011, 9999)
AMOUNTS = (12.5, 3.0, 40.25, 0.0, -12.5, 100.0, 7.75, -3.0, 1999.99)
SPECIAL = (float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 5e-324)
LENGTHS = ("1s", "90s", "30m", "12h", "1d", "2d", "7d", "30d")
OFFSETS = (0, "0d", "1s", "12h", "1d", "7d")
QUANTILES = (0.1, 0.25, 0.5, 0.9, 1 / 3)
GROUPS = (["grocery"], [5812, "5400-5500"], ["grocery", [4511, "7011"], "9999"], ["travel", 1234])
MCC_FILTERS = (None, [5411], ["5400-5500"], ["grocery"], ["grocery", "fast_food", 4511], [1234])
WHERES = (None, "amount > 0", "amount < 0 OR mcc = 5812", "abs(amount) BETWEEN 3 AND 50")


@st.composite
def transactions(
    draw: st.DrawFn,
    time_kind: str | None = None,
    max_rows: int = 40,
    max_users: int = 5,
    special: bool = False,
) -> dict:
    """A random transaction table (pyarrow) and the spec pieces that fit it."""
    kind = time_kind or draw(st.sampled_from(TIME_KINDS))
    n_users = draw(st.integers(1, max_users))
    string_users = draw(st.booleans())
    step = draw(st.sampled_from(STEPS if kind not in ("int_day", "date") else (86400, 7 * 86400)))
    base = draw(st.sampled_from(BASES))
    rows = []
    for u in range(n_users):
        n = draw(st.integers(1 if u == 0 else 0, max(1, max_rows // n_users)))
        for _ in range(n):
            rows.append(
                {
                    "user": f"u{u:02d}" if string_users else u * 7 - 3,
                    "steps": draw(st.integers(0, 40)),
                    "amount": draw(
                        st.one_of(
                            st.sampled_from(AMOUNTS + (SPECIAL if special else ())), st.none()
                        )
                    ),
                    "mcc": draw(st.one_of(st.sampled_from(MCCS), st.none())),
                }
            )
    order = draw(st.permutations(range(len(rows))))
    rows = [rows[i] for i in order]
    with_id = draw(st.booleans())
    ids = None
    if with_id and draw(st.booleans()):  # repeated (and sometimes null) ids
        pool = st.one_of(st.integers(0, max(1, len(rows) // 3)), st.none())
        ids = [draw(pool) for _ in rows]
    elif with_id:
        ids = draw(st.permutations(range(1000, 1000 + len(rows))))
    mcc_as_string = draw(st.booleans())

    offsets = [r["steps"] * step for r in rows]
    if kind == "int_day":
        time = pa.array([o // 86400 - 5 for o in offsets], pa.int64())
    elif kind == "int_s":
        time = pa.array(offsets, pa.int64())
    elif kind == "date":
        time = pa.array([base.date() + dt.timedelta(seconds=o) for o in offsets], pa.date32())
    else:
        stamps = [base + dt.timedelta(seconds=o) for o in offsets]
        if kind == "timestamptz":
            zone = draw(st.sampled_from(("UTC", "America/New_York", "Asia/Tokyo")))
            time = pa.array(stamps, pa.timestamp("us")).cast(pa.timestamp("us", tz=zone))
        else:
            time = pa.array(stamps, pa.timestamp("us"))
    cols = {
        "user_id": pa.array([r["user"] for r in rows], pa.string() if string_users else pa.int64()),
        "t": time,
        "amount": pa.array([r["amount"] for r in rows], pa.float64()),
        "mcc": pa.array(
            [
                None if r["mcc"] is None else (str(r["mcc"]) if mcc_as_string else r["mcc"])
                for r in rows
            ],
            pa.string() if mcc_as_string else pa.int32(),
        ),
    }
    if with_id:
        cols["tx_id"] = pa.array(ids, pa.int64())
    columns = {"user": "user_id", "time": "t", "amount": "amount", "mcc": "mcc"}
    if with_id:
        columns["id"] = "tx_id"
    spec = {
        "columns": columns,
        "timezone": draw(st.sampled_from(ZONES)),
        "week_start": draw(st.sampled_from(WEEKDAYS)),
    }
    if kind.startswith("int_"):
        spec["time"] = {"unit": "day" if kind == "int_day" else "s", "origin": "2024-02-27"}
    table = pa.table(cols)
    assert table.num_rows == len(rows) and len(set(map(len, cols.values()))) <= 1
    return {"table": table, "spec": spec}


@st.composite
def target(draw: st.DrawFn, name: str, agg: str | None = None, kind: str | None = None) -> dict:
    """One random target of the given agg and window kind (random ones fit each other)."""
    if agg is None:
        aggs = [a for a in AGGS if kind is None or fits(a, kind)]
        agg = draw(st.sampled_from(aggs))
    if kind is None:
        kinds = [k for k in WINDOW_KINDS if fits(agg, k)]
        kind = draw(st.sampled_from(kinds))
    window: dict = {"kind": kind}
    if kind in ("rolling", "future"):
        window["length"] = draw(st.sampled_from(LENGTHS))
    elif kind not in EVENT_KINDS:
        window["period"] = draw(st.sampled_from(PERIODS))
    if kind == "future" and draw(st.booleans()):
        window["offset"] = draw(st.sampled_from(OFFSETS))
    if kind == "next_period" and draw(st.booleans()):
        window["offset"] = draw(st.integers(0, 2))
    if kind in ("expanding", "rolling") and draw(st.booleans()):
        window["include_current"] = draw(st.booleans())
    if kind in EVENT_KINDS and draw(st.booleans()):
        window["n"] = draw(st.integers(1, 3))
    t: dict = {"name": name, "agg": agg, "window": window}
    mcc = draw(st.sampled_from(MCC_FILTERS))
    if mcc is not None:
        t["mcc"] = mcc
    where = draw(st.sampled_from(WHERES))
    if where is not None:
        t["where"] = where
    if agg == "top_k":
        t["k"] = draw(st.integers(1, 4))
    if agg == "quantile":
        t["q"] = draw(st.sampled_from(QUANTILES))
    if agg == "distribution":
        t["by"] = {"mcc": draw(st.sampled_from(GROUPS))}
        t["measure"] = draw(st.sampled_from(["sum", "count"]))
        t["normalize"] = draw(st.booleans())
    if agg == "count_distinct" and draw(st.booleans()):
        t["value"] = "mcc"
    if agg in MCC_LABEL_AGGS and draw(st.booleans()):
        t["value"] = "mcc"  # MCC codes as int64 class labels
    if agg != "distribution" and draw(st.integers(0, 4)) == 0:
        t["fill"] = draw(st.sampled_from([-1, 0, 7]))
    return t
