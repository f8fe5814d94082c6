"""The Spark dialect: the Spark SQL gives DuckDB's values, cell by cell, in Spark local mode.

One SparkSession (``local[2]``, two shuffle partitions, no UI, session time zone UTC) serves
the whole module. Each check registers an Arrow table as the temp view ``transactions`` (or
writes Parquet for the ``--input`` form), runs ``sqltargets.explain(spec, dialect="spark")``
in Spark, and compares every cell with ``sqltargets.generate`` (DuckDB): hand-picked
fixtures with every window kind × aggregation in one spec (DST folds and gaps, zoned
timestamps, dates, integer days and seconds, string MCCs, ties), per-period output for every
period, and hypothesis-drawn transactions and targets. The checks that need no Spark (the
missing ``columns.id`` error, refused constructs) run without it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

import sqltargets
from sqltargets.compile.plan import build
from sqltargets.compile.render import relation_source, statement
from sqltargets.compile.spec import AGGS, PERIODS, WINDOW_KINDS
from sqltargets.dialects.spark import explain_spark, to_spark, wall_to_instant
from sqltargets.errors import SpecError, SqlTargetsError
from sqltargets.verification.compare import diff
from tests.conftest import examples
from tests.strategies import fits, target, transactions

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning"),
    pytest.mark.xdist_group("spark"),  # one Spark session: every test here on one worker
]

COLUMNS = {"user": "user_id", "time": "t", "amount": "amount", "mcc": "mcc", "id": "tx_id"}


# ---------------------------------------------------------------------------------------------
# the session and helpers


def _java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (home and Path(home, "bin", "java").exists()))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession for the module: small and quiet, session time zone UTC."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install pyspark)")
    if not _java_available():
        pytest.skip("no Java runtime: Spark needs java on PATH or JAVA_HOME")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sqltargets-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # tiny data: planning and code generation dominate, so skip both
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("OFF")
    yield session
    session.stop()


def time_kind(table: pa.Table, column: str) -> str:
    """The plan's time kind for an Arrow time column."""
    t = table.schema.field(column).type
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_date(t):
        return "date"
    return "timestamptz" if t.tz else "timestamp"


def spark_sql(spec: dict, table: pa.Table) -> str:
    """The Spark statement reading the view ``transactions``.

    ``explain`` without a source cannot see the time column's type and plans for an integer
    (with ``time.unit``) or a naive timestamp; for a DATE or a zoned timestamp,
    ``explain_spark`` takes the type.
    """
    kind = time_kind(table, sqltargets.load(spec).columns.time)
    if kind in ("integer", "timestamp"):
        return sqltargets.explain(spec, dialect="spark")
    return explain_spark(spec, time_type=kind)


def register(spark: Any, table: pa.Table, name: str = "transactions") -> None:
    """The Arrow table as a temp view; naive timestamps stay TIMESTAMP_NTZ."""
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(table.schema, prefer_timestamp_ntz=True)
    spark.createDataFrame(table, schema=schema).createOrReplaceTempView(name)


def _micros(table: pa.Table, column: str) -> pa.Table:
    """A timestamp column as int64 µs: instants compare as instants, whatever their zone
    (Python's aware datetimes in a repeated hour never equal one in another zone)."""
    i = table.schema.get_field_index(column)
    col = table.column(i)
    if not pa.types.is_timestamp(col.type):
        return table
    return table.set_column(i, column, col.cast(pa.timestamp("us", col.type.tz)).cast(pa.int64()))


def assert_same(got: pa.Table, want: pa.Table, spec: dict) -> None:
    """Spark's result equals DuckDB's: names, kinds of types, then every cell in order."""
    ts = sqltargets.load(spec)
    got, want = _micros(got, ts.columns.time), _micros(want, ts.columns.time)
    assert got.schema.names == want.schema.names
    names = [t.name for t in ts.targets]
    for name in names:
        g, w = got.schema.field(name).type, want.schema.field(name).type
        if pa.types.is_list(w):
            assert pa.types.is_list(g) and g.value_type == w.value_type, name
        else:
            assert g == w, name
    if ts.output == "events":
        key = [ts.columns.user, ts.key_column()]
        values = [*names, ts.columns.time]
    else:
        key = [ts.columns.user, "period_start"]
        values = names
    mismatches = diff(got, want, values, key, limit=8)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


def check(spark: Any, spec: dict, table: pa.Table, reference: bool = False) -> None:
    """Spark's result equals ``generate``'s (and, with ``reference``, the NumPy reference's)."""
    register(spark, table)
    got = spark.sql(spark_sql(spec, table)).toArrow()
    want = sqltargets.generate(spec, table, threads=1)
    assert_same(got, want, spec)
    if reference:
        assert_same(got, sqltargets.reference(spec, table), spec)


# ---------------------------------------------------------------------------------------------
# fixtures: every window kind × aggregation in one spec


def _rows(n: int, base: dt.datetime, step_minutes: int) -> dict[str, list]:
    """``n`` transactions of three users: ties in time, refunds, null amounts, MCCs and ids."""
    stamps = []
    for i in range(n):
        minutes = (i // 2) * step_minutes  # pairs share a time
        stamps.append(base + dt.timedelta(minutes=minutes))
    return {
        "user_id": [("u1", "u2", "u3")[(i // 2) % 3] for i in range(n)],  # pairs: same user
        "time": stamps,
        "amount": [None if i % 7 == 3 else float((i * 13) % 17 - 5) * 1.25 for i in range(n)],
        "mcc": [None if i % 5 == 4 else (5411, 5812, 4511, 5499)[i % 4] for i in range(n)],
        # ids out of input order; a null id sorts after the other of its pair (NULLS LAST)
        "tx_id": [None if i in (10, 33, 44) else 1000 + (i * 37) % n for i in range(n)],
    }


def fixture_table(kind: str) -> tuple[pa.Table, dict]:
    """A table of the given time kind and the spec pieces that fit it."""
    spec: dict = {"columns": dict(COLUMNS)}
    if kind == "naive_new_york_fold":  # New York falls back on 2024-11-03 at 02:00
        r = _rows(60, dt.datetime(2024, 11, 2, 20), 37)
        time = pa.array(r["time"], pa.timestamp("us"))
        spec.update(timezone="America/New_York", week_start="sunday")
    elif kind == "naive_berlin_gap":  # Berlin springs forward on 2024-03-31 at 02:00
        r = _rows(60, dt.datetime(2024, 3, 30, 21, 15), 41)
        time = pa.array(r["time"], pa.timestamp("us"))
        spec.update(timezone="Europe/Berlin", week_start="wednesday")
    elif kind == "zoned_sydney":
        r = _rows(60, dt.datetime(2024, 4, 6, 10), 53)
        naive = pa.array(r["time"], pa.timestamp("us"))
        time = naive.cast(pa.timestamp("us", tz="Asia/Tokyo"))
        spec.update(timezone="Australia/Sydney")
    elif kind == "date_new_york":
        r = _rows(60, dt.datetime(2024, 3, 1), 60 * 24 * 2)
        time = pa.array([s.date() for s in r["time"]], pa.date32())
        spec.update(timezone="America/New_York", week_start="saturday")
    elif kind == "int_days":
        r = _rows(60, dt.datetime(2023, 12, 20), 60 * 24 * 3)
        time = pa.array([(s - dt.datetime(2023, 12, 20)).days - 5 for s in r["time"]], pa.int64())
        spec.update(time={"unit": "day", "origin": "2024-02-27"})
    elif kind == "int_seconds_string_mcc":
        r = _rows(60, dt.datetime(1969, 12, 31, 18), 29)
        secs = [int((s - dt.datetime(1969, 12, 31, 18)).total_seconds()) for s in r["time"]]
        time = pa.array(secs, pa.int64())
        r["mcc"] = [None if m is None else str(m) for m in r["mcc"]]
        spec.update(time={"unit": "s", "origin": "1969-12-30"}, timezone="Asia/Kolkata")
    else:
        raise ValueError(kind)
    table = pa.table(
        {
            "user_id": pa.array(r["user_id"]),
            "t": time,
            "amount": pa.array(r["amount"], pa.float64()),
            "mcc": pa.array(r["mcc"], pa.string() if kind.endswith("string_mcc") else pa.int32()),
            "tx_id": pa.array(r["tx_id"], pa.int64()),
        }
    )
    return table, spec


#: What some aggregations need besides agg and window.
NEW_AGG_PARAMETERS: dict[str, dict] = {
    "quantile": {"q": 0.25},
    "distribution": {"by": {"mcc": ["grocery", [4511, "5800-5899"]]}, "normalize": True},
}
#: Window parameters, taken by every other combination of a kind and an agg.
WINDOW_PARAMETERS: dict[str, dict] = {
    "expanding": {"include_current": False},
    "rolling": {"include_current": False},
    "future": {"offset": "1h"},
    "next_period": {"offset": 1},
    "next": {"n": 2},
    "previous": {"n": 3},
}


def all_targets(period: str = "day", length: str = "3h") -> list[dict]:
    """Every window kind × aggregation (calendar windows over ``period``, durations of
    ``length``), with MCC and ``where`` filters, fills, window parameters (offsets,
    include_current, n), distributions of sums (as shares) and counts, and MCC codes as
    values (count_distinct, first, last, mode)."""
    targets = []
    for i, agg in enumerate(AGGS):
        for j, kind in enumerate(WINDOW_KINDS):
            if not fits(agg, kind):
                continue
            if kind in ("rolling", "future"):
                window = {"kind": kind, "length": length}
            elif kind in ("next", "previous"):
                window = {"kind": kind}
            else:
                window = {"kind": kind, "period": period}
            if (i + j) % 2:
                window.update(WINDOW_PARAMETERS.get(kind, {}))
            t: dict = {"name": f"{agg}_{kind}", "agg": agg, "window": window}
            if (i + j) % 3 == 0:
                t["mcc"] = ["grocery", 4511]
            if (i + j) % 4 == 1:
                t["where"] = "amount > 0 OR mcc = 5812"
            if agg == "top_k":
                t["k"] = 3
            t.update(NEW_AGG_PARAMETERS.get(agg, {}))
            if agg == "distribution" and j % 2:
                t.update(measure="count", normalize=False)
            if agg in ("count_distinct", "first", "last", "mode") and j % 2:
                t["value"] = "mcc"
            if (i + j) % 5 == 2 and agg != "distribution":
                integer = agg in ("count", "count_distinct") or t.get("value") == "mcc"
                t["fill"] = 7 if integer else -1.5
            targets.append(t)
    return targets


#: fixture → (calendar period, duration) of its windows: together every period
FIXTURES = {
    "naive_new_york_fold": ("day", "3h"),
    "naive_berlin_gap": ("week", "2h"),
    "zoned_sydney": ("month", "12h"),
    "date_new_york": ("quarter", "3d"),
    "int_days": ("year", "7d"),
    "int_seconds_string_mcc": ("week", "90m"),
}


@pytest.mark.parametrize("kind", FIXTURES)
def test_every_window_kind_and_agg(spark: Any, kind: str) -> None:
    table, spec = fixture_table(kind)
    period, length = FIXTURES[kind]
    check(spark, {**spec, "targets": all_targets(period, length)}, table)


@pytest.mark.parametrize("period", PERIODS)
def test_periods_output(spark: Any, period: str) -> None:
    table, spec = fixture_table("naive_new_york_fold" if period == "day" else "int_days")
    targets = []
    for agg in AGGS:
        for kind in ("period", "next_period"):
            if not fits(agg, kind):
                continue
            t: dict = {
                "name": f"{agg}_{kind}",
                "agg": agg,
                "window": {"kind": kind, "period": period},
            }
            if agg == "top_k":
                t["k"] = 2
            t.update(NEW_AGG_PARAMETERS.get(agg, {}))
            if kind == "next_period":
                t["mcc"] = [5411, "5400-5500"]
            targets.append(t)
            if kind == "next_period" and agg in ("sum", "mode", "distribution"):
                later = {**t, "name": f"{agg}_{kind}_plus2"}
                targets.append({**later, "window": {**t["window"], "offset": 2}})
    check(spark, {**spec, "output": "periods", "targets": targets}, table)


def test_session_time_zone_does_not_matter(spark: Any) -> None:
    """Naive timestamps, integer times and DST rules do not go through the session zone."""
    table, spec = fixture_table("naive_new_york_fold")
    spec = {**spec, "targets": all_targets(period="week")}
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        check(spark, spec, table)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_wall_to_instant_follows_duckdb_in_gaps_and_folds(spark: Any) -> None:
    """Wall-clock → instant, next to DST changes: DuckDB/ICU's later occurrence in a fold."""
    zones = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe"]
    starts = [
        dt.datetime(2024, 11, 3, 0),
        dt.datetime(2024, 3, 10, 1),
        dt.datetime(2024, 3, 31, 1),
        dt.datetime(2024, 10, 27, 1),
        dt.datetime(2024, 4, 7, 1),
        dt.datetime(2024, 10, 6, 1),
        dt.datetime(1969, 12, 31, 23),
    ]
    walls = [s + dt.timedelta(minutes=m) for s in starts for m in range(0, 200, 15)]
    wall_us = [int((w - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1)) for w in walls]
    con = duckdb.connect()
    for zone in zones:
        want = [
            r[0]
            for r in con.execute(
                "SELECT epoch_us(timezone(?, make_timestamp(w))) FROM unnest(?) AS x(w)",
                [zone, wall_us],
            ).fetchall()
        ]
        expr = wall_to_instant(sqlglot.exp.column("w"), zone).sql(dialect="spark")
        values = ", ".join(f"({w})" for w in wall_us)
        rows = spark.sql(f"SELECT unix_micros({expr}) FROM VALUES {values} AS v(w)").collect()
        got = [r[0] for r in rows]
        bad = [(walls[i], zone, got[i], want[i]) for i in range(len(walls)) if got[i] != want[i]]
        assert not bad, bad[:5]


# ---------------------------------------------------------------------------------------------
# hypothesis: random transactions and targets


def with_id(tx: dict) -> tuple[pa.Table, dict]:
    """Spark needs columns.id: give the table its input positions as ids where it has none."""
    table, spec = tx["table"], dict(tx["spec"])
    if "id" not in spec["columns"]:
        table = table.append_column("tx_id", pa.array(range(table.num_rows), pa.int64()))
        spec["columns"] = {**spec["columns"], "id": "tx_id"}
    return table, spec


@settings(max_examples=examples(40))
@given(data=st.data())
def test_random_targets(spark: Any, data: st.DataObject) -> None:
    table, spec = with_id(data.draw(transactions()))
    n = data.draw(st.integers(1, 4))
    targets = [data.draw(target(f"t{i}")) for i in range(n)]
    check(spark, {**spec, "targets": targets}, table)


@settings(max_examples=examples(15))
@given(data=st.data())
def test_random_periods_output(spark: Any, data: st.DataObject) -> None:
    table, spec = with_id(data.draw(transactions()))
    period = data.draw(st.sampled_from(PERIODS))
    targets = []
    for i in range(data.draw(st.integers(1, 3))):
        t = data.draw(target(f"t{i}", kind=data.draw(st.sampled_from(["period", "next_period"]))))
        t["window"]["period"] = period
        targets.append(t)
    check(spark, {**spec, "output": "periods", "targets": targets}, table)


@settings(max_examples=examples(15))
@given(data=st.data())
def test_random_targets_nan_and_infinity(spark: Any, data: st.DataObject) -> None:
    """NaN, infinities and the smallest subnormal among the amounts (not the huge ones, whose
    sums depend on the order of addition, which differs between engines)."""
    table, spec = with_id(data.draw(transactions(special=True)))
    amounts = [
        2.5 if v is not None and abs(v) == 1e300 else v for v in table.column("amount").to_pylist()
    ]
    table = table.set_column(
        table.schema.get_field_index("amount"), "amount", pa.array(amounts, pa.float64())
    )
    targets = [data.draw(target(f"t{i}")) for i in range(data.draw(st.integers(1, 3)))]
    check(spark, {**spec, "targets": targets}, table)


def test_nan_signed_zero_ties_and_nulls(spark: Any) -> None:
    """var, median, quantiles, mode and distributions over frames and GROUP BY, on NaN (one
    value, the largest), infinities, -0.0 next to 0.0, ties and nulls: Spark's percentile
    and mode(x, true) order and count them as DuckDB's quantile_cont and histogram do (and
    as the reference does); nulls are skipped and an empty window is NULL."""
    table, spec = fixture_table("int_days")
    nan, inf = float("nan"), float("inf")
    cycle = [nan, 2.5, -0.0, 0.0, None, 2.5, inf, nan, 1.0, -inf, 0.0, -0.0, 1.0, None, 7.0]
    amounts = [cycle[i % len(cycle)] for i in range(table.num_rows)]
    table = table.set_column(
        table.schema.get_field_index("amount"), "amount", pa.array(amounts, pa.float64())
    )
    windows = [
        {"kind": "expanding", "period": "month"},
        {"kind": "expanding", "period": "week", "include_current": False},
        {"kind": "rolling", "length": "5d"},
        {"kind": "future", "length": "6d", "offset": "3d"},
        {"kind": "period", "period": "month"},
        {"kind": "next_period", "period": "week", "offset": 1},
    ]
    aggs: list[dict] = [
        {"agg": "var"},
        {"agg": "median"},
        {"agg": "quantile", "q": 1 / 3},
        {"agg": "quantile", "q": 0.9},
        {"agg": "mode"},
        {"agg": "mode", "value": "mcc", "fill": -1},
        {"agg": "distribution", "by": {"mcc": [5411, 5812]}, "normalize": True},
    ]
    targets = [
        {"name": f"{a['agg']}{i}_{j}", **a, "window": w}
        for i, a in enumerate(aggs)
        for j, w in enumerate(windows)
    ]
    check(spark, {**spec, "targets": targets}, table, reference=True)


# ---------------------------------------------------------------------------------------------
# the --input form: Spark reads the Parquet itself


def test_input_parquet_file_and_folder(spark: Any, tmp_path: Path) -> None:
    """``explain(source=...)`` reads the Parquet in Spark's syntax; repeated ids fall back to
    the input position (files in name order, rows in file order), from Spark's _metadata."""
    table, spec = fixture_table("zoned_sydney")
    repeated = pa.array([1000 + i % 9 for i in range(table.num_rows)], pa.int64())
    table = table.set_column(table.schema.get_field_index("tx_id"), "tx_id", repeated)
    spec = {**spec, "targets": all_targets("month", "12h")}
    folder = tmp_path / "data"
    folder.mkdir()
    for name, lo, hi in (("part-0", 0, 20), ("part-10", 20, 40), ("part-2", 40, 60)):
        pq.write_table(table.slice(lo, hi - lo), folder / f"{name}.parquet", row_group_size=7)
    single = tmp_path / "one.parquet"
    pq.write_table(table, single)
    for source in (str(single), str(folder), str(folder / "*.parquet")):
        sql = sqltargets.explain(spec, dialect="spark", source=source)
        assert "parquet.`" in sql and "read_parquet(" not in sql.lower()
        got = spark.sql(sql).toArrow()
        assert_same(got, sqltargets.generate(spec, source, threads=1), spec)


def test_where_filters_and_odd_values(spark: Any) -> None:
    """``where`` on a zoned time (a literal in a repeated hour), division by zero, LIKE with a
    backslash, the safe functions, and a DOUBLE column with halves next to the MCCs (an MCC
    column itself must be integer or text)."""
    table, spec = fixture_table("zoned_sydney")
    n = table.num_rows
    notes = [("a\\b", "a%b", "A_b", None, "ab")[i % 5] for i in range(n)]
    mccs = [
        None if i % 6 == 5 else (5411.0, 5410.5, 5411.5, 4511.0, 5812.0)[i % 5] for i in range(n)
    ]
    table = table.append_column("note", pa.array(notes)).append_column(
        "code", pa.array(mccs, pa.float64())
    )
    wheres = [
        "t >= '2024-04-07 02:30:00'",  # in Sydney's repeated hour: the later instant
        "t BETWEEN '2024-04-06 20:00:00' AND '2024-04-07 02:10:00+10:00'",
        "amount / (code - 5411) > 0",  # x / 0 is +-inf or NaN in DuckDB
        "note LIKE 'a\\%'",  # DuckDB: no escape character
        "note ILIKE 'a_b' OR note IS NULL",
        "floor(amount / 2) = -1 OR ceil(amount) = 3",
        "round(amount, 1) > 2.5 AND sqrt(abs(amount)) > 1",
        "lower(user_id) IN ('u1', 'u3') AND length(note) = 3",
        "coalesce(amount, 0) BETWEEN -3 AND 3 OR greatest(amount, 2) > 9",
        "amount % 3 = 1 OR least(amount, code) < 0",
        # ln of 0 and of negatives is -inf and NaN in DuckDB (NULL in Spark, unless written
        # out)
        "ln(amount) < 5 OR ln(amount) > 0",
        "ln(amount - amount) < 0 OR ln(-abs(amount) - 1) > 1e308",
    ]
    targets = [
        {"name": f"w{i}_{agg}", "agg": agg, "where": w, "window": window}
        for i, w in enumerate(wheres)
        for agg, window in (
            ("sum", {"kind": "expanding", "period": "day"}),
            ("count", {"kind": "rolling", "length": "6h"}),
        )
    ]
    targets += [
        {
            "name": "grocery",
            "agg": "count",
            "mcc": [5411],
            "window": {"kind": "period", "period": "week"},
        },
        {
            "name": "codes",
            "agg": "count_distinct",
            "value": "code",
            "window": {"kind": "future", "length": "1d"},
        },
    ]
    check(spark, {**spec, "targets": targets}, table)


def test_cli_explain_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sqltargets.cli import main

    spec_path = tmp_path / "spec.json"
    spec = {"columns": COLUMNS, "targets": all_targets()[:5]}
    spec_path.write_text(__import__("json").dumps(spec))
    assert main(["explain", str(spec_path), "--dialect", "spark"]) == 0
    out = capsys.readouterr().out
    assert "FROM `transactions`" in out and "WINDOW" in out


# ---------------------------------------------------------------------------------------------
# errors: no columns.id, and constructs that cannot be translated (no Spark needed)


def test_spark_needs_columns_id() -> None:
    spec = {"columns": {k: v for k, v in COLUMNS.items() if k != "id"}, "targets": all_targets()}
    with pytest.raises(SpecError, match=r"columns\.id") as info:
        sqltargets.explain(spec, dialect="spark")
    assert "Spark" in str(info.value)
    assert [i.path for i in info.value.issues] == ["columns.id"]


def _plan() -> Any:
    return build(sqltargets.load({"columns": COLUMNS, "targets": all_targets()[:3]}))


@pytest.mark.parametrize(
    "duckdb_sql",
    [
        "SELECT median(amount) FROM transactions",  # no checked translation
        "SELECT list_sort([amount]) FROM transactions",  # unknown DuckDB function
        "SELECT rowid FROM transactions",  # row positions
        "SELECT * FROM read_parquet('x.parquet', hive_partitioning = TRUE)",
        "SELECT CAST(t AS TIMESTAMPTZ) FROM transactions",  # session DST rules differ
        "SELECT CAST(amount AS VARCHAR) FROM transactions",  # number formatting differs
        "SELECT INTERVAL 3 DAY FROM transactions",  # a bare interval
        "SELECT epoch_ns(t) FROM transactions",
        "SELECT amount FROM transactions QUALIFY row_number() OVER () = 1",
        "SELECT user_id FROM transactions WHERE user_id LIKE mcc",  # pattern not a literal
        "SELECT count(DISTINCT amount, mcc) FROM transactions",
        "SELECT max(amount, mcc) FROM transactions",  # top k with a k of unknown type
        "SELECT date_trunc('decade', CAST(t AS TIMESTAMP)) FROM transactions",
        "SELECT CAST(t AS TIMESTAMP) - CAST(t AS TIMESTAMP) FROM transactions",
        "SELECT * FROM read_parquet('data/**/x/*.parquet')",
        "SELECT map_values(histogram(amount)) FROM transactions",  # only a histogram's mode
        "SELECT map_keys(h)[1] FROM (SELECT histogram(amount) AS h FROM transactions)",
        "SELECT map_keys(h)[list_position(map_values(h), list_max(map_values(h)))] "
        "FROM (SELECT max(amount) AS h FROM transactions)",  # not a histogram
        "SELECT lead(amount, 1, 0) OVER (ORDER BY t) FROM transactions",  # a default
        "SELECT quantile_cont(amount, mcc) FROM transactions",  # not a constant fraction
        "SELECT struct_extract({'v': amount}, 'w') FROM transactions",  # no such field
    ],
)
def test_untranslatable_constructs_are_refused(duckdb_sql: str) -> None:
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    with pytest.raises(SqlTargetsError, match="dialect spark: cannot translate"):
        to_spark(tree, _plan())


@pytest.mark.parametrize(
    ("window", "why"),
    [({"kind": "rolling", "length": "1us", "include_current": False}, "holds no transaction")],
)
def test_windows_spark_cannot_frame_are_refused_by_target(window: dict, why: str) -> None:
    # (windows reaching past 2^62 µs, which Spark's BIGINT frames could not state, are refused
    # by the spec: nothing is longer than 10,000 years)
    spec = {
        "columns": COLUMNS,
        "targets": [{"name": "fine", "agg": "sum", "window": {"kind": "rolling", "length": "1d"}},
                    {"name": "odd_one", "agg": "count", "window": window}],
    }  # fmt: skip
    sqltargets.explain(spec, engine="sql")  # DuckDB takes it
    with pytest.raises(SqlTargetsError, match=f"target 'odd_one': .*{why}"):
        sqltargets.explain(spec, dialect="spark")


def test_no_duckdb_construct_survives() -> None:
    """The Spark SQL of a spec using every construct has no DuckDB-only spelling left."""
    for tz in ("UTC", "Europe/Berlin"):
        spec = {"columns": COLUMNS, "timezone": tz, "targets": all_targets()}
        for kind in ("timestamp", "timestamptz", "date"):
            plan = build(sqltargets.load(spec), time_kind=kind)
            src = relation_source("transactions", rid_column="")
            sql = to_spark(statement(plan, src), plan)
            upper = sql.upper()
            for duck in ("EPOCH_US", "TIMEZONE(", "TO_MICROSECONDS", "LIST_RESIZE", "FILTER(",
                         "ARG_MIN", "ARG_MAX", "TRY_CAST(`MCC` AS INT) IN", "{'", "[]",
                         "QUANTILE_CONT", "HISTOGRAM", "MAP_KEYS", "LIST_POSITION",
                         "STRUCT_EXTRACT", "IGNORE NULLS)", "VAR_SAMP"):  # fmt: skip
                assert duck not in upper, (duck, kind, tz)
            sqlglot.parse_one(sql, read="spark")  # and it parses as Spark


def test_explain_spark_time_type() -> None:
    spec = {"columns": COLUMNS, "targets": all_targets()[:3]}
    assert explain_spark(spec) == sqltargets.explain(spec, dialect="spark")
    assert "`people`" in explain_spark(spec, time_type="date", relation="people")
    with pytest.raises(SqlTargetsError, match="did you mean 'timestamptz'"):
        explain_spark(spec, time_type="timestamptx")
    with pytest.raises(SpecError, match=r"time\.unit"):
        explain_spark(spec, time_type="integer")


@pytest.mark.parametrize("tz", [None, "UTC"])
def test_nanosecond_times_are_refused_with_a_reason(tmp_path: Path, tz: str | None) -> None:
    """Spark reads no nanosecond timestamps from Parquet, and the statement reads them
    rounded down to the µs with epoch_ns, which Spark lacks: a one-line refusal saying so
    (no Spark needed to see it)."""
    t = pa.table({"u": [1, 1], "t": pa.array([1, 2], pa.timestamp("ns", tz=tz)),
                  "a": [1.0, 2.0], "m": [5411, 5411], "id": [1, 2]})  # fmt: skip
    pq.write_table(t, tmp_path / "t.parquet")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m", "id": "id"},
            "targets": [{"name": "d", "agg": "sum", "window": {"kind": "period", "period": "day"}}]}  # fmt: skip
    with pytest.raises(sqltargets.SqlTargetsError, match="nanosecond timestamps, which Spark"):
        sqltargets.explain(spec, dialect="spark", source=str(tmp_path))


def test_integer_time_outside_years_1_to_9999_stops_spark_with_the_same_words(spark: Any) -> None:
    """DuckDB's error() is Spark's raise_error: a step in a smaller unit than time.unit
    stops the query there too, naming time.unit and the value; in-range steps run."""
    spec = {"columns": COLUMNS, "time": {"unit": "s"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    good = pa.table({"user_id": ["a", "a"], "t": pa.array([1_700_000_000, 1_700_000_100]),
                     "amount": [1.0, 2.0], "mcc": [5411, 5411], "tx_id": [1, 2]})  # fmt: skip
    check(spark, spec, good, reference=True)
    bad = good.set_column(1, "t", pa.array([1_700_000_000, 1_700_000_100_000]))
    register(spark, bad)
    with pytest.raises(Exception, match=r"time\.unit: column 't' holds 1700000100000, which as s steps"):  # fmt: skip
        spark.sql(spark_sql(spec, bad)).toArrow()
