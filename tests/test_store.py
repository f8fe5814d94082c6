"""Prepared stores: same results, reuse, and stale-input detection."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.cli import main
from sqltargets.demo import write_demo
from sqltargets.execute.store import is_fresh, read_manifest
from sqltargets.verification.compare import diff

SPEC = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
NAMES = [t.name for t in sqltargets.load(SPEC).targets]


def same(a, b) -> bool:
    """Same rows and keys, targets equal up to float summation order."""
    return a.schema == b.schema and diff(a, b, NAMES, ["user_id", "ts", "row_id"]) == []


@pytest.fixture
def data(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    write_demo(out, 25, seed=9, files=3, ties=0.1, shuffle=True)
    return out


def test_store_gives_the_same_targets(data: Path, tmp_path: Path) -> None:
    want = sqltargets.generate(SPEC, data)
    store = sqltargets.prepare(data, tmp_path / "store", specs=SPEC)
    manifest = read_manifest(store)
    assert manifest["rows"] == want.num_rows and manifest["files"] == 3
    stored = pq.read_table(store / "data.parquet")
    keys = list(zip(stored.column("user_id").to_pylist(), stored.column("ts").to_pylist()))
    assert keys == sorted(keys)
    assert same(sqltargets.generate(SPEC, store), want)
    assert same(sqltargets.generate(SPEC, data, store=store), want)


def test_store_notices_changed_input(data: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    sqltargets.generate(SPEC, data, store=store)  # made on first use
    assert is_fresh(store, data)
    first = sorted(data.glob("*.parquet"))[0]
    table = pq.read_table(first)
    time.sleep(0.01)
    pq.write_table(table.slice(0, table.num_rows - 1), first)  # one row fewer
    assert not is_fresh(store, data)
    with pytest.raises(sqltargets.SourceError, match=r"stale: .*part-00000.parquet was modified"):
        sqltargets.generate(SPEC, store)
    # through store=, the store is rebuilt and the result follows the new input
    again = sqltargets.generate(SPEC, data, store=store)
    assert again.num_rows == read_manifest(store)["rows"]
    assert same(again, sqltargets.generate(SPEC, data))
    os.remove(sorted(data.glob("*.parquet"))[-1])
    with pytest.raises(sqltargets.SourceError, match="was removed"):
        sqltargets.generate(SPEC, store)


def test_cli_prepare_and_run_with_store(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "prepare",
                str(data),
                "--out",
                str(tmp_path / "s"),
                "--user",
                "user_id",
                "--time",
                "ts",
            ]
        )
        == 0
    )
    assert "prepared" in capsys.readouterr().out
    out = tmp_path / "t.parquet"
    assert (
        main(
            [
                "run",
                str(SPEC),
                "--input",
                str(data),
                "--store",
                str(tmp_path / "s"),
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert same(pq.read_table(out), sqltargets.generate(SPEC, data))
    assert (
        main(
            ["prepare", str(data), "--out", str(tmp_path / "s2"), "--user", "nope", "--time", "ts"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("Error: prepare: the user column 'nope' is not in the input")
    assert not (tmp_path / "s2").exists()


def test_a_store_is_read_in_its_order_without_a_sort(data: Path, tmp_path: Path) -> None:
    from sqltargets.execute import engine, source
    from sqltargets.execute.connection import connect

    store = sqltargets.prepare(data, tmp_path / "store", specs=SPEC)
    ts = sqltargets.load(SPEC)
    con = connect(threads=2)
    inp = source.resolve(str(store), ts, con)
    source.prepare(ts, inp, con)
    assert engine.presorted(ts, str(store), inp, con)
    assert not engine.presorted(ts, str(data), inp, con)  # not a store
    with_id = sqltargets.load({**ts_dict(), "columns": {**ts_dict()["columns"], "id": "tx_id"}})
    assert not engine.presorted(with_id, str(store), inp, con)  # ties break by id: re-sort
    limited = connect(memory_limit="1GB")  # may reorder rows without ORDER BY: re-sort
    assert not engine.presorted(ts, str(store), inp, limited)
    # several threads reading the sorted file keep its order: every cell as from the input
    assert same(sqltargets.generate(SPEC, store, threads=2), sqltargets.generate(SPEC, data))


def ts_dict() -> dict:
    import yaml

    return yaml.safe_load(SPEC.read_text())


def test_a_store_keeps_the_input_zone_label_and_refuses_case_twins(tmp_path: Path) -> None:
    """A store's copy of a zoned time is labelled UTC; the output still carries the input's
    own label (as from the input itself), in every path and the reference. Input columns
    whose names differ only in case are refused (DuckDB's copy would rename one 'A_1')."""
    import pyarrow as pa

    zone = "America/New_York"
    t = pa.table({"u": [1, 1, 2], "t": pa.array([0, 3_600_000_000, 7_200_000_000],
                  pa.timestamp("us", tz=zone)), "a": [1.0, 2.0, 3.0], "m": [5411, 5411, 1]})  # fmt: skip
    (tmp_path / "in").mkdir()
    pq.write_table(t, tmp_path / "in" / "x.parquet")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "timezone": "Europe/Paris",
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    store = str(tmp_path / "store")
    want = sqltargets.generate(spec, str(tmp_path / "in"))
    outs = [
        sqltargets.generate(spec, str(tmp_path / "in"), store=store),
        sqltargets.generate(spec, store, engine="sql"),
        sqltargets.generate_batches(spec, store).read_all(),
        sqltargets.reference(spec, store),
    ]
    assert want.schema.field("t").type == pa.timestamp("us", tz=zone)
    for out in outs:
        assert out.schema == want.schema
        assert out.to_pylist() == want.to_pylist()
    twins = t.append_column("A", pa.array([1.0, 2.0, 3.0]))
    (tmp_path / "twins").mkdir()
    pq.write_table(twins, tmp_path / "twins" / "x.parquet")
    with pytest.raises(sqltargets.DataError, match="'a' and 'A', whose names differ only in case"):
        sqltargets.prepare(str(tmp_path / "twins"), str(tmp_path / "store2"), specs=spec)
    assert not (tmp_path / "store2").exists()


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"u": [1, 2], "t": [1.5, 2.5]}, "the time column 't' has type double; expected a"),
        ({"u": [1.0, 2.0], "t": [1, 2]}, "the user column 'u' has type double; expected an"),
        ({"u": [True, False], "t": [1, 2]}, "the user column 'u' has type bool; expected an"),
    ],
)
def test_prepare_refuses_role_columns_no_spec_can_read(
    columns: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store sorted by a double time or user would be refused by every run over it: the
    mistake is named before the sort is paid for, and nothing is written."""
    import pyarrow as pa

    pq.write_table(
        pa.table({**columns, "a": [1.0, 2.0], "m": [5411, 5411]}), tmp_path / "x.parquet"
    )
    with pytest.raises(sqltargets.DataError, match=message):
        sqltargets.prepare(tmp_path / "x.parquet", tmp_path / "store", user="u", time="t")
    rc = main(["prepare", str(tmp_path / "x.parquet"), "--user", "u", "--time", "t", "--out",
               str(tmp_path / "store")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("Error: prepare: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]
