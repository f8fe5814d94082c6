"""The scan engine (sqltargets/scan.py): its segmented scans against plain loops, its
integer paths, its streaming, and its results against the SQL engine and the reference.

The property suite (test_property.py) runs every example through both engines; this file
covers what random specs rarely reach: long segments, calendar keys out of order within a
user, batch boundaries, huge and non-decimal amounts, and bad engine names.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sqltargets
from sqltargets.cli import main
from sqltargets.errors import SqlTargetsError
from sqltargets.execute import scan
from sqltargets.verification.compare import diff
from tests.conftest import examples

COLUMNS = {"user": "u", "time": "t", "amount": "a", "mcc": "m"}


def loop_scan(users: np.ndarray, keys: np.ndarray, x: np.ndarray, op) -> np.ndarray:
    """Running ``op`` per (user, key), rows taken in order: the obvious loop."""
    acc: dict[tuple[int, int], float] = {}
    out = np.empty_like(x)
    for i in range(len(x)):
        k = (int(users[i]), int(keys[i]))
        acc[k] = x[i] if k not in acc else op(acc[k], x[i])
        out[i] = acc[k]
    return out


@st.composite
def segmented(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 300))
    users = np.sort(np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), int))
    keys = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), int)
    if draw(st.booleans()):  # keys in order within each user, as calendar keys usually are
        keys = keys[np.lexsort((keys, users))]
    x = np.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)), float)
    return users, keys, x


@pytest.mark.parametrize("tiny", [False, True], ids=["default", "tiny-steps"])
@settings(max_examples=examples(150))
@given(data=segmented())
def test_segments_equal_loops(tiny: bool, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    users, keys, x = data
    saved = scan._FEW, scan._STEPS
    if tiny:  # few position-major steps: long segments finish as contiguous tails
        scan._FEW, scan._STEPS = 2, 3
    try:
        check_segments(users, keys, x)
    finally:
        scan._FEW, scan._STEPS = saved


def check_segments(users: np.ndarray, keys: np.ndarray, x: np.ndarray) -> None:
    seg = scan.Segments.of(scan.user_codes(pa.array(users, pa.int64())), keys)
    for op in (np.add, np.maximum, np.fmin):
        assert np.array_equal(seg.accumulate(x, op), loop_scan(users, keys, x, op))
    flags = x > 0
    assert np.array_equal(seg.count(flags), loop_scan(users, keys, flags.astype(np.int64), np.add))
    ints = np.round(x).astype(np.int64)
    assert np.array_equal(seg.int_sum(ints), loop_scan(users, keys, ints, np.add))
    key = ints - ints.min(initial=0)
    got = seg.int_max(key, int(key.max(initial=0)) + 1)
    assert np.array_equal(got, loop_scan(users, keys, key, max))


def test_keys_out_of_order_within_a_user_are_reordered() -> None:
    seg = scan.Segments.of(np.array([0, 0, 0, 0]), np.array([7, 8, 7, 8]))
    assert seg.perm is not None
    got = seg.accumulate(np.array([1.0, 10.0, 2.0, 20.0]), np.add)
    assert got.tolist() == [1.0, 10.0, 3.0, 30.0]
    assert seg.count(np.array([True, False, True, True])).tolist() == [1, 0, 2, 1]


def loop_windows(users: np.ndarray, t: np.ndarray, kind: str, length: int, x: np.ndarray):
    """Sum and max of ``x`` over each row's rolling or future window: the obvious loop."""
    sums, maxes = np.zeros(len(x), np.int64), np.zeros(len(x), np.int64)
    for i in range(len(x)):
        if kind == "rolling":
            inside = (users == users[i]) & (t > t[i] - length) & (t <= t[i])
        else:
            inside = (users == users[i]) & (t > t[i]) & (t <= t[i] + length)
        sums[i] = x[inside].sum()
        maxes[i] = x[inside].max(initial=0)
    return sums, maxes


@pytest.mark.parametrize("grouped", [False, True], ids=["one-key", "user-groups"])
@settings(max_examples=examples(150))
@given(data=st.data())
def test_windows_equal_loops(grouped: bool, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 120))
    users = np.sort(np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), int))
    t = np.array(data.draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n)), np.int64)
    if data.draw(st.booleans()):  # times in order within each user, as usual
        t = t[np.lexsort((t, users))]
    x = np.array(data.draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n)), np.int64)
    kind = data.draw(st.sampled_from(["rolling", "future"]))
    length = data.draw(st.integers(1, 30))
    saved = scan._KEY_LIMIT
    if grouped:  # a tiny key limit: users are searched in groups
        scan._KEY_LIMIT = 4 * (int(np.ptp(t)) + length + 2) if n else 2
    try:
        codes = scan.user_codes(pa.array(users, pa.int64()))
        w = scan.Timeline(codes, t, length).windows(kind, length)
    finally:
        scan._KEY_LIMIT = saved
    sums, maxes = loop_windows(users, t, kind, length, x)
    assert np.array_equal(w.int_sum(x), sums)
    assert np.array_equal(w.int_max(x), maxes)


@pytest.mark.parametrize(
    ("values", "scale"),
    [
        ([12.34, -0.01, 1999.99, 0.0], 4),
        ([1.0, 2.0, 3.0], 4),
        ([0.1 + 0.2], None),  # 0.30000000000000004 is not a 4-place decimal
        ([5e-324], None),
        ([float("nan"), 1.0], None),
        ([float("inf")], None),
        ([1e300], None),
        # the double is ~7e-6 off the decimal it reads as: the window sums would differ
        ([100000000000.0001, -100000000000.0], None),
    ],
)
def test_values_decimal_detection(values: list[float], scale: int | None) -> None:
    v = scan.Values.of(pa.array(values, pa.float64()))
    if scale is None:
        assert v.cents is None
    else:
        assert v.cents is not None and v.scale == scale
        assert np.array_equal(v.cents / 10.0**v.scale, np.array(values))


def test_values_decimal_path_needs_windows_short_enough_for_the_magnitude() -> None:
    amounts = pa.array([1234567.89, -0.01])
    assert scan.Values.of(amounts, rows=1000).cents is not None
    assert scan.Values.of(amounts, rows=10_000).cents is None  # 1e4 x ulp(1.2e6) / 2 > 5e-7


def test_values_nulls_are_zero_and_invalid() -> None:
    v = scan.Values.of(pa.chunked_array([[1.25, None], [None, 3.5]]))
    assert v.doubles.tolist() == [1.25, 0.0, 0.0, 3.5]
    assert v.valid.tolist() == [True, False, False, True]
    assert v.cents is not None


def test_numpy_reads_sliced_and_chunked_buffers() -> None:
    b = pa.chunked_array([pa.array([True, None, False, True]).slice(1), pa.array([True])])
    assert scan._bools(b).tolist() == [False, False, True, True]
    assert scan._numpy(pa.array([1, 2, 3]).slice(1), np.int64).tolist() == [2, 3]
    d = pa.array([dt.date(2024, 1, 2)], pa.date32())
    assert scan._numpy(d, np.int64).tolist() == [19724]


def test_user_codes_for_strings_and_nan_users() -> None:
    assert scan.user_codes(pa.array(["a", "a", "b", "c", "c"])).tolist() == [0, 0, 1, 2, 2]
    nan = float("nan")
    assert scan.user_codes(pa.array([1.0, nan, nan, 2.0])).tolist() == [0, 1, 1, 2]


# ---------------------------------------------------------------------------------------------
# the engines agree with each other and with the reference


def _table(n_users: int, n: int, seed: int, amounts: str = "cents") -> pa.Table:
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    t = rng.integers(0, 90 * 86400, n) * 1_000_000 + 1_700_000_000_000_000
    if amounts == "cents":
        a = np.round(rng.normal(20, 40, n), 2)
    elif amounts == "floats":
        a = rng.normal(20, 40, n) / 3
    else:
        # no +-1e300 pairs: their sums would depend on the order of addition in any engine
        a = rng.choice([1e300, 2.5, float("nan"), float("inf"), 5e-324, -7.25], n)
    return pa.table(
        {
            "u": pa.array(u, pa.int64()),
            "t": pa.array(t, pa.timestamp("us")),
            "a": pa.array(a, pa.float64(), mask=rng.random(n) < 0.05),
            "m": pa.array(rng.choice([5411, 5812, 5541, 4511], n), pa.int32()),
        }
    )


SPEC = {
    "columns": COLUMNS,
    "targets": [
        {"name": f"{agg}_{p}{'_f' if fill else ''}", "agg": agg, "mcc": mcc,
         "window": {"kind": "expanding", "period": p}, **({"fill": fill} if fill else {})}
        for agg in ("sum", "count", "mean", "min", "max")
        for p, mcc in (("day", [5411]), ("month", ["grocery", 5812]), ("year", None))
        for fill in (None, 7)
    ]
    + [
        {"name": f"{kind}_{agg}_{p}", "agg": agg, "mcc": [5411, 5812],
         "window": {"kind": kind, "period": p}, **({"fill": -1} if agg == "max" else {})}
        for kind in ("period", "next_period")
        for agg in ("sum", "count", "mean", "min", "max")
        for p in ("week", "month")
    ]
    + [
        {"name": f"{kind}_{agg}_{length}", "agg": agg, "mcc": [5411, 5812],
         "window": {"kind": kind, "length": length}, **({"fill": 3} if agg == "min" else {})}
        for kind in ("rolling", "future")
        for agg in ("sum", "count", "mean", "min", "max")
        for length in ("1h", "2d")
    ]
    + [  # not scanned: these stay in the SQL, and the columns keep their order
        {"name": "std_week", "agg": "std", "window": {"kind": "expanding", "period": "week"}},
        {"name": "roll", "agg": "std", "window": {"kind": "rolling", "length": "3d"}},
        {"name": "top_month", "agg": "top_k", "k": 2, "window": {"kind": "period", "period": "month"}},
        {"name": "first_next", "agg": "first", "window": {"kind": "next_period", "period": "week"}},
    ],
}  # fmt: skip


def _same(a: pa.Table, b: pa.Table, key: list[str]) -> None:
    assert a.schema == b.schema
    names = [n for n in a.column_names if n not in key]
    assert not diff(a, b, names, key, limit=5)


@pytest.mark.parametrize("amounts", ["cents", "floats", "special"])
def test_scan_equals_sql_and_reference(amounts: str) -> None:
    table = _table(12, 3000, seed=len(amounts), amounts=amounts)
    scanned = sqltargets.generate(SPEC, table, threads=2)
    _same(scanned, sqltargets.generate(SPEC, table, engine="sql"), ["u", "row_id"])
    _same(scanned, sqltargets.reference(SPEC, table), ["u", "row_id"])
    assert scanned.column_names[3:] == [t["name"] for t in SPEC["targets"]]


@pytest.mark.parametrize("batch_size", [1, 7, 500, 100_000])
def test_batches_equal_the_table(batch_size: int) -> None:
    table = _table(9, 800, seed=3)
    whole = sqltargets.generate(SPEC, table)
    reader = sqltargets.generate_batches(SPEC, table, batch_size=batch_size)
    batches = list(reader)
    assert all(0 < b.num_rows <= batch_size for b in batches)
    assert pa.Table.from_batches(batches, reader.schema).equals(whole)


def test_bad_engine_is_one_line_error(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SqlTargetsError, match=r"engine: 'fast' is not supported.*scan, sql"):
        sqltargets.generate(SPEC, _table(2, 10, seed=0), engine="fast")
    data = tmp_path / "in.parquet"
    pq.write_table(_table(2, 10, seed=0), data)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "out.parquet"
    rc = main(["run", str(spec), "--input", str(data), "--output", str(out), "--engine", "sqll"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("Error: engine: 'sqll' is not supported") and "did you mean" in err
    assert err.count("\n") == 1
    assert not out.exists()
