"""Beyond one query: sharded runs, parallel shard processes, and inputs larger than the
DuckDB memory limit."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.cli import main
from sqltargets.demo import make_transactions, write_demo
from sqltargets.verification.compare import diff

SPEC = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
NAMES = [t.name for t in sqltargets.load(SPEC).targets]


def by_key(t: pa.Table) -> pa.Table:
    return t.sort_by([("user_id", "ascending"), ("row_id", "ascending")])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "data"
    write_demo(out, 60, seed=4, files=4, ties=0.05, shuffle=True)
    return out


def test_shards_union_equals_unsharded(data: Path, tmp_path: Path) -> None:
    want = sqltargets.generate(SPEC, data)
    seen = []
    rows = sqltargets.write(
        SPEC, data, tmp_path / "out", shards=3, on_shard=lambda i, n, r: seen.append((i, n, r))
    )
    assert rows == want.num_rows
    assert sorted(i for i, _, _ in seen) == [0, 1, 2] and sum(r for *_, r in seen) == rows
    # the parts, and the marker that lets a later run replace the folder it wrote
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[0] == "_sqltargets.json"
    parts = sorted(p.name for p in (tmp_path / "out").glob("*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    users = [set(pq.read_table(tmp_path / "out" / p).column("user_id").to_pylist()) for p in parts]
    assert all(u for u in users) and not (
        users[0] & users[1] or users[1] & users[2] or users[0] & users[2]
    )
    got = by_key(pq.read_table(tmp_path / "out"))
    assert diff(got, by_key(want), NAMES, ["user_id", "row_id"]) == []
    assert got.column("ts").equals(by_key(want).column("ts"))


def test_shards_in_parallel_processes_and_cli(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    want = by_key(sqltargets.generate(SPEC, data))
    code = main(["run", str(SPEC), "--input", str(data), "--output", str(tmp_path / "o"),
                 "--shards", "4", "--jobs", "2", "--threads", "1"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "4 shards, 2 at a time" in err
    assert sum("/4 done" in line for line in err.splitlines()) == 4
    got = by_key(pq.read_table(tmp_path / "o"))
    assert diff(got, want, NAMES, ["user_id", "row_id"]) == []
    # a rerun replaces the dataset atomically, leaving no temporary folders behind
    assert (
        main(
            [
                "run",
                str(SPEC),
                "--input",
                str(data),
                "--output",
                str(tmp_path / "o"),
                "--shards",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(tmp_path)) == ["o"]
    assert sorted(os.listdir(tmp_path / "o")) == [
        "_sqltargets.json",
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_input_larger_than_memory_limit(tmp_path: Path) -> None:
    """6.1M transactions (about 270 MB as Arrow, four times the limit) under a 64 MB limit:
    the run spills and shards, and sampled users match the NumPy reference."""
    table = make_transactions(1500, seed=1, tx_per_user=4096, shuffle=True)
    assert table.nbytes > 4 * 64 * 2**20
    (tmp_path / "data").mkdir()
    third = table.num_rows // 3
    for i in range(3):
        part = table.slice(i * third, third if i < 2 else table.num_rows - 2 * third)
        pq.write_table(part, tmp_path / "data" / f"part-{i}.parquet", row_group_size=65536)
    out = tmp_path / "targets"
    rows = sqltargets.write(
        SPEC, tmp_path / "data", out, memory_limit="64MB", threads=1,
        temp_directory=str(tmp_path / "spill"), shards=24,
    )  # fmt: skip
    assert rows == table.num_rows
    got = pq.read_table(out)
    sample = [table.column("user_id")[i].as_py() for i in (0, 5_000_000)]
    mine = got.filter(pc.is_in(got.column("user_id"), pa.array(sample)))
    positions = pc.indices_nonzero(pc.is_in(table.column("user_id"), pa.array(sample)))
    ref = sqltargets.reference(SPEC, table.take(positions))
    ref = ref.set_column(2, "row_id", pc.take(positions, ref.column("row_id")).cast(pa.int64()))
    assert diff(by_key(mine), by_key(ref), NAMES, ["user_id", "row_id"]) == []
    assert mine.num_rows == 2 * 4096


def _generate_in_child(data: str, queue: object) -> None:
    table = sqltargets.generate(SPEC, data, threads=2)
    queue.put(table.num_rows)  # type: ignore[attr-defined]


def test_a_forked_process_runs_after_its_parent_ran(data: Path) -> None:
    """The kernels use no runtime that breaks across fork (numba's OpenMP layer killed a
    forked child that sorted events after its parent had): the parent runs, then a forked
    child (a DataLoader worker, a multiprocessing pool) runs too."""
    import multiprocessing

    want = sqltargets.generate(SPEC, data, threads=2).num_rows
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_generate_in_child, args=(str(data), queue))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == want


def test_sharded_writes_count_null_rows_over_the_whole_input(tmp_path: Path) -> None:
    """Each shard warned of its own share ("dropped 8 of 12 rows", "dropped 2 of 20"), and
    with null_rows: error named a shard's count ("1 of 2 rows"): the whole input's now."""
    import warnings

    t = pa.table({"u": pa.array(list(range(20)) * 2, pa.int64()),
                  "t": pa.array([None if i % 4 == 0 else i for i in range(40)], pa.int64()),
                  "a": [1.0] * 40, "m": [5411] * 40})  # fmt: skip
    pq.write_table(t, tmp_path / "in.parquet")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
            "null_rows": "drop", "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "month"}}]}  # fmt: skip
    for i, kw in enumerate(({}, {"shards": 3}, {"shards": 3, "jobs": 2})):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert sqltargets.write(spec, tmp_path / "in.parquet", tmp_path / f"o{i}", **kw) == 30
        said = [
            str(w.message) for w in caught if issubclass(w.category, sqltargets.DroppedRowsWarning)
        ]
        assert said == ["dropped 10 of 40 rows with a null user or time (null_rows: drop)"], kw
    with pytest.raises(
        sqltargets.DataError, match=r"columns\.time: 10 of 40 rows have a null time"
    ):
        sqltargets.write({**spec, "null_rows": "error"}, tmp_path / "in.parquet", tmp_path / "o9", shards=3)  # fmt: skip
    assert not (tmp_path / "o9").exists()
