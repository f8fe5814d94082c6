"""The heart of the suite: both engines equal the NumPy reference on random data: ``native``
(the default: the prologue in DuckDB, then compiled kernels) and ``sql`` (the portable
statement that ``explain --engine sql`` prints).

Every window kind × aggregation gets its own property; more properties mix several targets
in one spec (shared windows and aggregates), per-period output, and string MCCs, ids and
users. Data has same-time ties, refunds, nulls, empty windows, integer days, several time
zones and DST changes (see strategies.py).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sqltargets
from sqltargets.verification.compare import diff
from tests.conftest import ROOT, examples
from tests.strategies import COMBINATIONS, target, transactions


def check_same(spec: dict, table: pa.Table) -> None:
    """Both engines equal the reference."""
    want = sqltargets.reference(spec, table)
    check_engine(spec, table, want, "native")
    check_engine(spec, table, want, "sql")


def check_engine(spec: dict, table: pa.Table, want: pa.Table, engine: str) -> None:
    got = sqltargets.generate(spec, table, threads=1, engine=engine)
    assert got.schema.names == want.schema.names
    for name in got.schema.names:
        assert got.schema.field(name).type == want.schema.field(name).type, name
    ts = sqltargets.load(spec)
    if ts.output == "events":
        assert got.num_rows == table.num_rows
        key = [ts.columns.user, ts.key_column()]
    else:
        key = [ts.columns.user, "period_start"]
    names = [t["name"] for t in spec["targets"]]
    mismatches = diff(got, want, names, key, limit=5)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


@pytest.mark.parametrize(("agg", "kind"), COMBINATIONS)
@settings(max_examples=examples(40))
@given(data=st.data())
def test_each_kind_and_agg(agg: str, kind: str, data: st.DataObject) -> None:
    tx = data.draw(transactions())
    spec = {**tx["spec"], "targets": [data.draw(target("t0", agg=agg, kind=kind))]}
    check_same(spec, tx["table"])


@settings(max_examples=examples(400))
@given(data=st.data())
def test_many_targets_share_windows(data: st.DataObject) -> None:
    tx = data.draw(transactions(max_rows=60))
    n = data.draw(st.integers(2, 7))
    targets = [data.draw(target(f"t{i}")) for i in range(n)]
    # make sharing likely: copy a window and filter onto a different agg
    if data.draw(st.booleans()):
        twin = dict(
            targets[0], name="twin", agg=data.draw(st.sampled_from(["sum", "mean", "count"]))
        )
        for key in ("k", "value", "q", "by", "measure", "normalize"):
            twin.pop(key, None)
        if twin["window"]["kind"] in ("next", "previous"):  # one event: count it
            twin["agg"] = "count"
        if twin["agg"] == "count" and "fill" in twin:
            twin["fill"] = int(twin["fill"])
        targets.append(twin)
    check_same({**tx["spec"], "targets": targets}, tx["table"])


@settings(max_examples=examples(200))
@given(data=st.data())
def test_periods_output(data: st.DataObject) -> None:
    tx = data.draw(transactions())
    period = data.draw(st.sampled_from(["day", "week", "month", "quarter", "year"]))
    targets = []
    for i in range(data.draw(st.integers(1, 4))):
        t = data.draw(target(f"t{i}", kind=data.draw(st.sampled_from(["period", "next_period"]))))
        t["window"]["period"] = period
        targets.append(t)
    check_same({**tx["spec"], "output": "periods", "targets": targets}, tx["table"])


@settings(max_examples=examples(150))
@given(data=st.data())
def test_many_users(data: st.DataObject) -> None:
    tx = data.draw(transactions(time_kind="int_day", max_rows=200, max_users=40))
    targets = [data.draw(target(f"t{i}")) for i in range(3)]
    check_same({**tx["spec"], "targets": targets}, tx["table"])


#: Aggregations that add values. Over rolling and future frames DuckDB's window operator
#: adds them in its segment tree's order, not event order: with values that overflow or
#: cancel (1e300, then -1e300) the portable statement may differ from the reference's
#: sequential sum (README, Numerics). The native executor adds such windows in event order.
ADDING = ("sum", "mean", "std", "var", "distribution")


def adds_in_segment_tree_order(t: dict) -> bool:
    return (
        t["window"]["kind"] in ("rolling", "future")
        and t["agg"] in ADDING
        and t.get("measure") != "count"
    )


@settings(max_examples=examples(150))
@given(data=st.data())
def test_nan_infinity_and_huge_amounts(data: st.DataObject) -> None:
    """Native equals the reference on every target; the portable statement on every target
    but sliding sums (whose order of addition DuckDB chooses)."""
    tx = data.draw(transactions(special=True))
    targets = [data.draw(target(f"t{i}")) for i in range(data.draw(st.integers(1, 3)))]
    spec = {**tx["spec"], "targets": targets}
    want = sqltargets.reference(spec, tx["table"])
    check_engine(spec, tx["table"], want, "native")
    ordered = [t for t in targets if not adds_in_segment_tree_order(t)]
    if ordered:
        spec = {**spec, "targets": ordered}
        check_engine(spec, tx["table"], sqltargets.reference(spec, tx["table"]), "sql")


def test_sliding_sums_cancelling_huge_values_add_in_event_order() -> None:
    """Found by the property above: a future window over -1e300, 12.5, 1e300 (in event
    order) is 0 added in that order; DuckDB's window SUM over the same frame gives 12.5.
    The native executor re-adds risky windows in event order, as the reference does."""
    t = pa.table({
        "user_id": [-3] * 16,
        "t": pa.array([1] + [0] * 13 + [1, 2], pa.int64()),
        "amount": [-1e300] + [12.5] * 5 + [None] * 8 + [12.5, 1e300],
        "mcc": pa.array([5411] * 6 + [None] * 8 + [5411, 5411], pa.int32()),
    })  # fmt: skip
    spec = {
        "columns": {"user": "user_id", "time": "t", "amount": "amount", "mcc": "mcc"},
        "time": {"unit": "s", "origin": "2024-02-27"},
        "targets": [{"name": "s", "agg": "sum", "window": {"kind": "future", "length": "90s"}}],
    }
    want = sqltargets.reference(spec, t)
    check_engine(spec, t, want, "native")
    got = sqltargets.generate(spec, t).column("s").to_pylist()
    # rows at time 0 see -1e300, 12.5, 1e300 ahead: 0 in event order
    assert got[:13] == [0.0] * 13
    assert got[13:] == [1e300, 1e300, 0.0]  # the rows at time 1 see 1e300 alone ahead


@pytest.mark.parametrize("output", ["events", "periods"])
@pytest.mark.parametrize("engine", ["native", "sql"])
def test_period_sums_add_in_event_order_not_input_order(engine: str, output: str) -> None:
    """Found by an independent oracle: rows out of time order whose values cancel. February
    in event order is -1e300 + 1e300 + 1 = 1; the portable statement's GROUP BY added them
    in input order (1 - 1e300 + 1e300 = 0) until its SUM took an ORDER BY."""
    t = pa.table({"user": [1, 1, 1, 1], "time": pa.array([40, 31, 31, 0], pa.int64()),
                  "amount": [1.0, -1e300, 1e300, 0.0], "mcc": [5411] * 4})  # fmt: skip
    spec = {
        "columns": {"user": "user", "time": "time", "amount": "amount", "mcc": "mcc"},
        "time": {"unit": "day"}, "output": output,
        "targets": [
            {"name": "sp", "agg": "sum", "window": {"kind": "period", "period": "month"}},
            {"name": "mp", "agg": "mean", "window": {"kind": "period", "period": "month"}},
            {"name": "sn", "agg": "sum", "window": {"kind": "next_period", "period": "month"}},
            {"name": "dp", "agg": "distribution", "by": {"mcc": [5411]},
             "window": {"kind": "period", "period": "month"}},
        ],
    }  # fmt: skip
    check_engine(spec, t, sqltargets.reference(spec, t), engine)
    got = sqltargets.generate(spec, t, engine=engine)
    feb = -1 if output == "periods" else 1  # (events: row 3, in January, comes first)
    assert got.column("sp")[feb].as_py() == 1.0
    assert got.column("mp")[feb].as_py() == 1 / 3
    assert got.column("dp")[feb].as_py() == [1.0, 0.0]
    assert got.column("sn")[0].as_py() == 1.0  # January's next month


def test_distribution_shares_add_slots_in_order() -> None:
    # eight slots and cancelling huge values: the total is added slot by slot (numpy's
    # pairwise sum of eight or more values would cancel the two huge ones first)
    t = pa.table({
        "user_id": [1, 1, 1], "t": pa.array([0, 0, 0], pa.int64()),
        "amount": [1e300, -1e300, 1.0], "mcc": pa.array([1, 3, 4], pa.int32()),
    })  # fmt: skip
    spec = {
        "columns": {"user": "user_id", "time": "t", "amount": "amount", "mcc": "mcc"},
        "time": {"unit": "day"},
        "targets": [{
            "name": "d", "agg": "distribution", "by": {"mcc": [1, 2, 3, 4, 5, 6, 7]},
            "normalize": True, "window": {"kind": "period", "period": "day"},
        }],
    }  # fmt: skip
    check_same(spec, t)
    assert sqltargets.generate(spec, t).column("d")[0].as_py() == [1e300, 0, -1e300, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("threads", [1, 2])
def test_targets_sharing_a_window_with_different_filters(threads: int) -> None:
    """Targets with the same window share its row ranges (computed once per thread); each
    still gets its own filter, and `next`/`previous` windows (which depend on the filter)
    are never shared across filters."""
    from sqltargets.demo import make_transactions

    table = make_transactions(30, seed=3, days=60)
    cols = {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc"}
    targets = [
        {"name": "a", "agg": "sum", "where": "amount > 0", "window": {"kind": "rolling", "length": "7d"}},
        {"name": "b", "agg": "max", "mcc": ["grocery"], "window": {"kind": "rolling", "length": "7d"}},
        {"name": "c", "agg": "count", "window": {"kind": "rolling", "length": "7d", "include_current": False}},
        {"name": "d", "agg": "mean", "where": "amount < 0", "window": {"kind": "future", "length": "7d"}},
        {"name": "e", "agg": "std", "window": {"kind": "future", "length": "7d"}},
        {"name": "f", "agg": "first", "mcc": ["grocery"], "window": {"kind": "next", "n": 1}},
        {"name": "g", "agg": "first", "mcc": ["fuel"], "window": {"kind": "next", "n": 1}},
        {"name": "h", "agg": "last", "where": "amount > 100", "window": {"kind": "previous", "n": 2}},
        {"name": "i", "agg": "sum", "window": {"kind": "next_period", "period": "week"}},
        {"name": "j", "agg": "median", "mcc": ["grocery"], "window": {"kind": "next_period", "period": "week"}},
    ]  # fmt: skip
    spec = {"columns": cols, "targets": targets}
    want = sqltargets.reference(spec, table)
    got = sqltargets.generate(spec, table, threads=threads)
    key = ["user_id", "row_id"]
    mismatches = diff(got, want, [t["name"] for t in targets], key, limit=5)
    assert not mismatches, "\n".join(str(m) for m in mismatches)
    assert got.column("f") != got.column("g")  # the two next-event filters differ


@pytest.mark.parametrize("threads", [1, 2])
def test_blocks_of_users(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels work on blocks of users of about runner.BLOCK_ROWS rows (bounded work
    arrays), each target's blocks written into one output: with tiny blocks, the demo's
    and the pretraining example's targets (every window kind, nulls, lists) still equal
    the reference."""
    from sqltargets.demo import make_transactions
    from sqltargets.execute import runner

    monkeypatch.setattr(runner, "BLOCK_ROWS", 97)
    table = make_transactions(25, seed=5, days=70)
    for path in ("examples/demo.yaml", "examples/pretrain.yaml"):
        spec = sqltargets.load(ROOT / path)
        want = sqltargets.reference(spec, table)
        got = sqltargets.generate(spec, table, threads=threads)
        names = [t.name for t in spec.targets]
        key = [spec.columns.user, spec.key_column()]
        mismatches = diff(got, want, names, key, limit=5)
        assert not mismatches, "\n".join(str(m) for m in mismatches)
