"""Sources of every Arrow type in every role (user, time, amount, MCC, id, aggregated value,
count_distinct value, ``where`` column, unused column), as an Arrow table and as Parquet:
each run either agrees with the NumPy reference (and ``verify`` is ok) or ends in one
``SqlTargetsError`` line. Valid data is accepted: ``timestamp[ns, tz=...]`` (what pandas
writes for zoned times), large strings, dictionaries, float16, decimal256."""

from __future__ import annotations

import datetime as dt
import decimal
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.verification.compare import diff

N = 6
DAYS = (1, 2, 2, 3, 5, 9)


def values(t: pa.DataType) -> pa.Array:
    """Six values of type ``t``, no nulls (a user or a time may not be null)."""
    if pa.types.is_null(t):
        return pa.nulls(N)
    if pa.types.is_boolean(t):
        return pa.array([True, False, True, True, False, True])
    if pa.types.is_integer(t):
        return pa.array([1, 2, 1, 3, 4, 2], t)
    if pa.types.is_floating(t):
        width = {16: np.float16, 32: np.float32, 64: np.float64}[t.bit_width]
        return pa.array(np.array([1.5, 2.5, 1.5, 3, 0, 2], dtype=width))
    if pa.types.is_decimal(t):
        return pa.array([decimal.Decimal(x) for x in ("1.25", "2.50", "1.25", "3", "0.01", "2")], t)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.array(["a", "b", "a", "5411", "c", "b"], t)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.array([b"a", b"b", b"a", b"c", b"d", b"b"], t)
    if pa.types.is_date(t):
        return pa.array([dt.date(2024, 1, d) for d in DAYS], t)
    if pa.types.is_timestamp(t):
        naive = [dt.datetime(2024, 1, d, 5) for d in DAYS]
        if t.tz is None:
            return pa.array(naive, pa.timestamp("us")).cast(t)
        return pa.array([x.replace(tzinfo=dt.timezone.utc) for x in naive], t)
    if pa.types.is_time(t):
        return pa.array([dt.time(1, d) for d in DAYS], t)
    if pa.types.is_duration(t):
        return pa.array([1, 2, 1, 3, 4, 2], t)
    if pa.types.is_dictionary(t):
        base = ["a", "b", "a", "c", "d", "b"] if pa.types.is_string(t.value_type) else DAYS
        return pa.array(base).dictionary_encode()
    if pa.types.is_fixed_size_list(t):
        return pa.array([[d, d] for d in DAYS], t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.array([[d] for d in DAYS], t)
    if pa.types.is_struct(t):
        return pa.array([{"a": d} for d in DAYS], t)
    if pa.types.is_map(t):
        return pa.array([[("k", d)] for d in DAYS], t)
    if pa.types.is_interval(t):
        return pa.array([pa.MonthDayNano([0, d, 0]) for d in DAYS], t)
    raise AssertionError(t)


TYPES = [
    pa.int32(), pa.uint64(), pa.float16(), pa.float32(), pa.decimal128(10, 2),
    pa.decimal256(40, 2), pa.decimal256(20, 2), pa.bool_(), pa.string(), pa.large_string(),
    pa.string_view(), pa.binary(), pa.date32(), pa.date64(), pa.timestamp("s"),
    pa.timestamp("ns"), pa.timestamp("ns", tz="Europe/Berlin"), pa.timestamp("us", tz="UTC"),
    pa.time64("us"), pa.duration("us"), pa.null(), pa.dictionary(pa.int32(), pa.string()),
    pa.dictionary(pa.int8(), pa.int64()), pa.list_(pa.int64()), pa.list_(pa.int64(), 2),
    pa.struct([("a", pa.int64())]), pa.map_(pa.string(), pa.int64()),
    pa.month_day_nano_interval(),
]  # fmt: skip
ROLES = ["user", "time", "amount", "mcc", "id", "value", "distinct", "where", "extra"]


def spec_for(role: str) -> dict:
    cols = {"user": "u", "time": "t", "amount": "a", "mcc": "m"}
    targets = [
        {"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}},
        {"name": "r", "agg": "max", "mcc": [5411], "window": {"kind": "rolling", "length": "3d"}},
        {"name": "f", "agg": "count", "window": {"kind": "future", "length": "2d"}},
    ]
    if role in ("user", "time", "amount", "mcc"):
        cols[role] = "x"
    if role == "id":
        cols["id"] = "x"
    if role == "value":
        targets[0]["value"] = "x"
    if role == "distinct":
        targets.append({"name": "d", "agg": "count_distinct", "value": "x",
                        "window": {"kind": "period", "period": "month"}})  # fmt: skip
    if role == "where":
        targets[0]["where"] = "x IS NOT NULL"
    return {"columns": cols, "targets": targets}


@pytest.mark.parametrize("kind", TYPES, ids=[str(t) for t in TYPES])
def test_every_type_in_every_role(kind: pa.DataType, tmp_path: Path) -> None:
    base = {
        "u": pa.array([1, 1, 1, 2, 2, 2]),
        "t": pa.array([dt.datetime(2024, 1, d, 5) for d in DAYS], pa.timestamp("us")),
        "a": pa.array([1.0, 2, 3, 4, 5, 6]),
        "m": pa.array([5411, 1, 5411, 2, 5411, 3]),
    }
    table = pa.table({**base, "x": values(kind)})
    path = tmp_path / "x.parquet"
    try:
        pq.write_table(table, path)
        sources: list[object] = [table, path]
    except (pa.ArrowException, OSError):
        sources = [table]  # a type Parquet cannot hold
    outcomes = {}
    for role in ROLES:
        spec = spec_for(role)
        names = [t["name"] for t in spec["targets"]]
        key = [spec["columns"]["user"], spec["columns"].get("id", "row_id")]
        for source in sources:
            label = (role, "arrow" if source is table else "parquet")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    out = sqltargets.generate(spec, source)
                except sqltargets.SqlTargetsError as e:
                    assert "\n" not in str(e), (label, str(e))
                    outcomes[label] = "refused"
                    # the reference reads no more than the engines do (it had summed a
                    # BOOLEAN amount as 0/1)
                    with pytest.raises(sqltargets.SqlTargetsError):
                        sqltargets.reference(spec, source)
                    continue
                ref = sqltargets.reference(spec, source)
                assert diff(out, ref, names, key) == [], label
                if source is not table or len(sources) == 1:  # verify reads files itself
                    report = sqltargets.verify(spec, source, users=5)
                    assert report.ok, (label, report.mismatches[:3])
                outcomes[label] = "ok"
    # whatever is refused, is refused for both sources alike (but a duration is an integer
    # in Parquet's own types, which DuckDB reads); the unused column never matters
    for role in ROLES:
        got = {outcomes[k] for k in outcomes if k[0] == role}
        assert len(got) == 1 or pa.types.is_duration(kind), (role, outcomes)
    assert outcomes[("extra", "arrow")] == "ok"
    assert outcomes[("where", "arrow")] == "ok"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        assert outcomes[("time", "arrow")] == "ok"
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        assert outcomes[("user", "arrow")] == "ok"
        assert outcomes[("mcc", "arrow")] == "ok"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        assert outcomes[("value", "arrow")] == "ok"
        assert outcomes[("amount", "arrow")] == "ok"


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
@pytest.mark.parametrize("source", ["arrow", "parquet", "duckdb"])
def test_nanosecond_times_are_rounded_down_to_the_microsecond(
    tz: str | None, source: str, tmp_path: Path
) -> None:
    """An event 400 ns before midnight happened that day: nanoseconds are read as µs rounded
    down, in every engine and from every source (DuckDB's casts, and its Parquet reader's
    zoned nanoseconds, round to the nearest µs, which put such events in the next day)."""
    before_midnight = 1_704_153_599_999_999_600  # 2024-01-01 23:59:59.9999996 (UTC)
    half_day = 43_200 * 10**9
    t = pa.table({
        "u": [1, 1, 2, 2],
        "t": pa.array([before_midnight, before_midnight + half_day, -400, -1], pa.timestamp("ns", tz=tz)),
        "a": [1.0, 2.0, 4.0, 8.0], "m": [5411] * 4,
    })  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "timezone": "UTC",
            "targets": [
                {"name": "day", "agg": "sum", "window": {"kind": "period", "period": "day"}},
                {"name": "year", "agg": "sum", "window": {"kind": "period", "period": "year"}},
                {"name": "next", "agg": "elapsed", "window": {"kind": "next"}},
            ]}  # fmt: skip
    want = {
        "day": [1.0, 2.0, 12.0, 12.0],  # -400 ns and -1 ns: both 1969-12-31 23:59:59.999999
        "year": [3.0, 3.0, 12.0, 12.0],
        "next": [43_200.0, None, 0.0, None],
    }
    con = duckdb.connect()
    if source == "parquet":
        pq.write_table(t, tmp_path / "t.parquet")
        src: object = str(tmp_path)
    elif source == "duckdb":
        kind = "TIMESTAMPTZ_NS" if tz else "TIMESTAMP_NS"
        con.sql(f"CREATE TABLE tx AS SELECT u, CAST(t AS {kind}) AS t, a, m FROM t")
        src = "tx"
    else:
        src = t
    kw = {"connection": con} if source == "duckdb" else {}
    for engine in ("native", "sql"):
        got = sqltargets.generate(spec, src, engine=engine, **kw)
        assert {k: got.column(k).to_pylist() for k in want} == want, engine
    ref = sqltargets.reference(spec, src, **kw)
    assert {k: ref.column(k).to_pylist() for k in want} == want


def test_a_zoned_time_keeps_its_input_zone_label(tmp_path: Path) -> None:
    """The output's time column is 'as input': a zoned Parquet column keeps the zone it is
    labelled with (DuckDB labelled it with the session's, the spec's zone), in every path
    and in the reference (same instants either way)."""
    t = pa.table({"u": [1, 1], "t": pa.array([0, 3_600_000_000], pa.timestamp("us", tz="UTC")),
                  "a": [1.0, 2.0], "m": [5411, 5411]})  # fmt: skip
    pq.write_table(t, tmp_path / "x.parquet")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "timezone": "America/New_York",
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    src = str(tmp_path / "x.parquet")
    sqltargets.write(spec, src, tmp_path / "out", shards=2)
    outs = [
        sqltargets.generate(spec, t), sqltargets.generate(spec, src),
        sqltargets.generate(spec, src, engine="sql"),
        sqltargets.generate_batches(spec, src, batch_size=1).read_all(),
        pq.read_table(tmp_path / "out"), sqltargets.reference(spec, src),
    ]  # fmt: skip
    for out in outs:
        assert out.schema.field("t").type == pa.timestamp("us", tz="UTC")
        assert sorted(out.column("t").to_pylist()) == t.column("t").to_pylist()


@pytest.mark.parametrize(
    "unit,tz", [("ms", "UTC"), ("s", "Asia/Tokyo"), ("ns", "UTC"), ("ns", None), ("ms", None)]
)
def test_the_time_column_keeps_its_input_type_in_generate_and_reference(
    unit: str, tz: str | None, tmp_path: Path
) -> None:
    """'As input': the output time column has the input's unit and zone label, from Arrow
    and from Parquet (DuckDB returns zoned ones in µs), in generate and the reference, with
    the same values (a zoned nanosecond time rounded down to the µs in both)."""
    ns = [1_704_153_599_999_999_600, 1_704_153_600_000_000_400]
    if unit != "ns":
        ns = [0, 3_600_000_000_000]
    t = pa.table({"u": [1, 1], "t": pa.array(ns, pa.timestamp("ns")).cast(pa.timestamp(unit, tz)),
                  "a": [1.0, 2.0], "m": [5411, 5411]})  # fmt: skip
    pq.write_table(t, tmp_path / "x.parquet")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "timezone": "Europe/Paris",
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "period", "period": "day"}}]}  # fmt: skip
    for src in (t, str(tmp_path)):
        got, ref = sqltargets.generate(spec, src), sqltargets.reference(spec, src)
        file_type = pq.read_schema(tmp_path / "x.parquet").field("t").type
        assert got.schema.field("t").type == (t.schema.field("t").type if src is t else file_type)
        assert got.schema == ref.schema
        # (as integers: datetime objects hold no nanoseconds without pandas)
        as_int = pa.timestamp(got.schema.field("t").type.unit)
        assert (
            got.column("t").cast(as_int).cast(pa.int64()).to_pylist()
            == ref.column("t").cast(as_int).cast(pa.int64()).to_pylist()
        )
