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
from sqltargets import scan
from sqltargets.cli import main
from sqltargets.compare import diff
from sqltargets.errors import SqlTargetsError
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
        ([1e15, 2.5], 2),  # too large for 4 places with exact int64 sums: 2 fit
    ],
)
def test_values_decimal_detection(values: list[float], scale: int | None) -> None:
    v = scan.Values.of(pa.array(values, pa.float64()))
    if scale is None:
        assert v.cents is None
    else:
        assert v.cents is not None and v.scale == scale
        assert np.array_equal(v.cents / 10.0**v.scale, np.array(values))


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
        a = rng.choice([1e300, -1e300, 2.5, float("nan"), float("inf")], n)
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
    + [  # not scanned: these stay in the SQL, and the columns keep their order
        {"name": "std_week", "agg": "std", "window": {"kind": "expanding", "period": "week"}},
        {"name": "roll", "agg": "sum", "window": {"kind": "rolling", "length": "3d"}},
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
