"""The Python API: sources, row ids, streaming, connections, threads, atomic writes."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.demo import make_transactions
from sqltargets.verification.compare import diff

SPEC = {
    "columns": {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc"},
    "targets": [
        {
            "name": "g_day",
            "agg": "sum",
            "mcc": ["grocery"],
            "window": {"kind": "expanding", "period": "day"},
        },
        {"name": "n_7d", "agg": "count", "window": {"kind": "rolling", "length": "7d"}},
        {
            "name": "last_next_week",
            "agg": "last",
            "window": {"kind": "next_period", "period": "week"},
        },
        {"name": "top2", "agg": "top_k", "k": 2, "window": {"kind": "period", "period": "month"}},
    ],
}
NAMES = [t["name"] for t in SPEC["targets"]]


@pytest.fixture(scope="module")
def tx() -> pa.Table:
    return make_transactions(25, seed=5, ties=0.2, shuffle=True)


def test_parquet_row_ids_follow_file_names_then_rows(tx: pa.Table, tmp_path: Path) -> None:
    # three files written out of name order; row_id follows names, then rows in the file
    parts = {
        "b.parquet": tx.slice(0, 100),
        "a.parquet": tx.slice(100, 50),
        "c.parquet": tx.slice(150),
    }
    for name, part in parts.items():
        pq.write_table(part, tmp_path / name, row_group_size=17)
    out = sqltargets.generate(SPEC, tmp_path)
    in_order = pa.concat_tables([parts["a.parquet"], parts["b.parquet"], parts["c.parquet"]])
    ids = out.column("row_id").to_pylist()
    assert sorted(ids) == list(range(tx.num_rows))
    assert out.schema.field("row_id").type == pa.int64()
    # each output row carries the user and time of the input row at that position
    users, times = in_order.column("user_id").to_pylist(), in_order.column("ts").to_pylist()
    assert [users[i] for i in ids] == out.column("user_id").to_pylist()
    assert [times[i] for i in ids] == out.column("ts").to_pylist()
    # and the reference, which reads the files in name order itself, agrees
    ref = sqltargets.reference(SPEC, tmp_path)
    assert diff(out, ref, NAMES, ["user_id", "row_id"]) == []
    # a single file, and a glob, give the same as the Arrow table
    pq.write_table(in_order, tmp_path / "one.parquet")
    single = sqltargets.generate(SPEC, tmp_path / "one.parquet")
    assert single.equals(sqltargets.generate(SPEC, in_order))
    assert sqltargets.generate(SPEC, str(tmp_path / "[abc].parquet")).equals(out)


def test_events_output_order_and_schema(tx: pa.Table) -> None:
    out = sqltargets.generate(SPEC, tx)
    assert out.column_names == ["user_id", "ts", "row_id", *NAMES]
    assert out.schema.field("n_7d").type == pa.int64()
    assert out.schema.field("top2").type == pa.list_(pa.float64())
    assert out.num_rows == tx.num_rows
    keys = list(
        zip(
            out.column("user_id").to_pylist(),
            out.column("ts").to_pylist(),
            out.column("row_id").to_pylist(),
        )
    )
    assert keys == sorted(keys)
    assert all(len(v) == 2 for v in out.column("top2").to_pylist())


def test_reader_and_batches(tx: pa.Table) -> None:
    want = sqltargets.generate(SPEC, tx)
    reader = pa.RecordBatchReader.from_batches(tx.schema, tx.to_batches(max_chunksize=1000))
    assert sqltargets.generate(SPEC, reader).equals(want)
    batches = sqltargets.generate_batches(SPEC, tx, batch_size=500)
    assert isinstance(batches, pa.RecordBatchReader)
    got = batches.read_all()
    assert got.equals(want.cast(got.schema))


def test_table_in_user_connection(tx: pa.Table) -> None:
    con = duckdb.connect()
    con.register("tx_arrow", tx)
    con.execute("CREATE TABLE tx AS SELECT * FROM tx_arrow")
    con.execute("CREATE VIEW tx_view AS SELECT * FROM tx")
    want = sqltargets.generate(SPEC, tx)
    assert sqltargets.generate(SPEC, "tx", connection=con).equals(want)
    with pytest.raises(sqltargets.SourceError, match=r"view.*columns\.id"):
        sqltargets.generate(SPEC, "tx_view", connection=con)
    with_id = {**SPEC, "columns": {**SPEC["columns"], "id": "tx_id"}}
    by_view = sqltargets.generate(with_id, "tx_view", connection=con)
    assert by_view.equals(sqltargets.generate(with_id, tx))
    with pytest.raises(sqltargets.SourceError, match="did you mean 'tx'"):
        sqltargets.generate(SPEC, "txs", connection=con)
    # the user's connection is still usable, and nothing was left registered on it
    assert con.sql("SELECT count(*) FROM tx").fetchall() == [(tx.num_rows,)]


def test_threads_share_one_connection(tx: pa.Table) -> None:
    con = duckdb.connect()
    con.register("tx_arrow", tx)
    con.execute("CREATE TABLE tx AS SELECT * FROM tx_arrow")
    want = sqltargets.generate(SPEC, tx)
    results: list[pa.Table] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(sqltargets.generate(SPEC, "tx", connection=con))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 4 and all(r.equals(want) for r in results)


def test_zoned_time_keeps_input_type() -> None:
    # instants 2024-03-09 23:00, 03-10 12:00 and 03-11 01:00 UTC
    utc = [dt.datetime(2024, 3, 9, 23), dt.datetime(2024, 3, 10, 12), dt.datetime(2024, 3, 11, 1)]
    t = pa.table({
        "user_id": [1, 1, 1],
        "ts": pa.array(utc, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz="America/New_York")),
        "amount": [1.0, 2.0, 4.0], "mcc": [5411, 5411, 5411],
    })  # fmt: skip
    spec = {**SPEC, "timezone": "America/New_York",
            "targets": [{"name": "d", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    out = sqltargets.generate(spec, t)
    assert out.schema.field("ts").type == pa.timestamp("us", tz="America/New_York")
    assert out.column("ts").to_pylist() == t.column("ts").to_pylist()
    # in New York: 03-09 18:00 EST, 03-10 08:00 EDT, 03-10 21:00 EDT -> the last two share a day
    assert out.column("d").to_pylist() == [1.0, 2.0, 6.0]
    assert sqltargets.reference(spec, t).column("d").to_pylist() == [1.0, 2.0, 6.0]
    # in UTC each falls on its own day
    spec_utc = {**spec, "timezone": "UTC"}
    assert sqltargets.generate(spec_utc, t).column("d").to_pylist() == [1.0, 2.0, 4.0]
    assert sqltargets.reference(spec_utc, t).column("d").to_pylist() == [1.0, 2.0, 4.0]


def test_empty_input_keeps_schema(tx: pa.Table) -> None:
    out = sqltargets.generate(SPEC, tx.slice(0, 0))
    assert out.num_rows == 0
    assert out.column_names == ["user_id", "ts", "row_id", *NAMES]
    assert out.schema.equals(sqltargets.generate(SPEC, tx).schema)


def test_quoted_names_survive(tx: pa.Table) -> None:
    # column names that need quoting, even ones that look like SQL
    t = tx.rename_columns(['user "id"', "select", "amount; drop", "mcc", "tx_id", "channel"])
    spec = {
        "columns": {"user": 'user "id"', "time": "select", "amount": "amount; drop", "mcc": "mcc"},
        "targets": [
            {
                "name": "s",
                "agg": "sum",
                "where": '"amount; drop" > 0',
                "window": {"kind": "expanding", "period": "month"},
            }
        ],
    }
    out = sqltargets.generate(spec, t)
    assert out.column_names == ['user "id"', "select", "row_id", "s"]
    ref = sqltargets.reference(spec, t)
    assert diff(out, ref, ["s"], ['user "id"', "row_id"]) == []


def test_write_is_atomic(tx: pa.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "t.parquet"
    rows = sqltargets.write(SPEC, tx, out, batch_size=100)
    assert rows == tx.num_rows
    assert pq.read_table(out).equals(sqltargets.generate(SPEC, tx))
    before = out.read_bytes()

    def boom(self, batch, **kw):  # the writer fails after the temporary file exists
        raise OSError("disk full")

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", boom)
    with pytest.raises(sqltargets.OutputError, match="cannot be written: disk full"):
        sqltargets.write(SPEC, tx, out, batch_size=100)
    assert out.read_bytes() == before  # the old output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_explain_variants(tx: pa.Table, tmp_path: Path) -> None:
    sql = sqltargets.explain(SPEC, engine="sql")
    assert 'FROM "transactions"' in sql and "rowid" in sql
    pq.write_table(tx, tmp_path / "x.parquet")
    sql = sqltargets.explain(SPEC, source=tmp_path / "x.parquet", engine="sql")
    assert "READ_PARQUET(" in sql and "file_row_number" in sql
    # the portable statement explain prints is exactly what engine="sql" runs
    shell = duckdb.connect().sql(sql).to_arrow_table()
    assert shell.equals(sqltargets.generate(SPEC, tx, engine="sql"))
    native = sqltargets.generate(SPEC, tx)  # same values, up to rounding of sums
    names = [t["name"] for t in SPEC["targets"]]
    assert not diff(shell, native, names, ["user_id", "row_id"], limit=3)


def test_explain_prints_the_native_program(tx: pa.Table, tmp_path: Path) -> None:
    pq.write_table(tx, tmp_path / "x.parquet")
    text = sqltargets.explain(SPEC, source=tmp_path / "x.parquet")
    head, derived = text.split("-- and derives from the prologue's columns:\n")
    comments = [line for line in head.splitlines() if line.startswith("--   ")]
    assert [c.split(":")[0].strip("- ") for c in comments] == [t["name"] for t in SPEC["targets"]]
    # filters on MCC codes and calendar keys are derived by the executor, not by the prologue;
    # so is the order key of a µs timestamp column, which is a view of the time column
    names = [
        line.split(":")[0].strip("- ") for line in derived.splitlines() if line.startswith("--   ")
    ]
    assert names[0] == "_o" and all(n.startswith(("_f", "_p_")) for n in names[1:])
    assert not any(f"AS {n}" in text for n in names)
    # the prologue is the events the kernels read: every input row, sorted by user and time
    events = duckdb.connect().sql(text).to_arrow_table()
    assert events.num_rows == tx.num_rows
    got = events.select(["_u", "_tb"]).to_pylist()
    want = sqltargets.generate(SPEC, tx).select(["user_id", "row_id"]).to_pylist()
    assert [(r["_u"], r["_tb"]) for r in got] == [(r["user_id"], r["row_id"]) for r in want]
    with pytest.raises(sqltargets.SqlTargetsError, match="native program runs on DuckDB only"):
        sqltargets.explain(SPEC, dialect="spark", engine="native")
    with pytest.raises(sqltargets.SqlTargetsError, match=r"dialect.*'postgre'.*duckdb"):
        sqltargets.explain(SPEC, dialect="postgre")
    with pytest.raises(sqltargets.SourceError, match="Arrow"):
        sqltargets.explain(SPEC, source=tx)
    # an engine out of its range is an ArgumentError (a ValueError), as every argument
    for engine in (None, "fast", 1):
        with pytest.raises(sqltargets.ArgumentError, match=r"engine: .* is not supported"):
            sqltargets.generate(SPEC, tx, engine=engine)  # type: ignore[arg-type]


def test_load_forms(tmp_path: Path) -> None:
    import json

    ts = sqltargets.load(SPEC)
    assert sqltargets.load(ts) is ts
    (tmp_path / "s.json").write_text(json.dumps(SPEC))
    assert sqltargets.load(tmp_path / "s.json") == ts
    assert sqltargets.load(str(tmp_path / "s.json")) == ts
    with pytest.raises(sqltargets.SourceError, match="does not exist"):
        sqltargets.load(tmp_path / "nope.yaml")


def test_null_users_and_times_are_errors(tx: pa.Table) -> None:
    users = tx.column("user_id").to_pylist()
    users[3] = None
    bad = tx.set_column(0, "user_id", pa.array(users, pa.int64()))
    with pytest.raises(sqltargets.DataError, match=r"columns.user: 1 of \d+ rows have a null user"):
        sqltargets.generate(SPEC, bad)


def test_value_must_be_numeric(tx: pa.Table) -> None:
    spec = {
        **SPEC,
        "targets": [
            {
                "name": "x",
                "agg": "sum",
                "value": "channel",
                "window": {"kind": "period", "period": "day"},
            }
        ],
    }
    with pytest.raises(
        sqltargets.DataError, match=r"targets\[0\].value: column 'channel' has type VARCHAR"
    ):
        sqltargets.generate(spec, tx)
    spec["targets"][0]["agg"] = "count_distinct"
    out = sqltargets.generate(spec, tx)
    ref = sqltargets.reference(spec, tx)
    assert diff(out, ref, ["x"], ["user_id", "row_id"]) == []
    assert max(out.column("x").to_pylist()) <= 3


def test_past_only_refuses_future_looking_targets(tx: pa.Table, tmp_path: Path) -> None:
    past = {
        **SPEC,
        "targets": [
            {"name": "run", "agg": "sum", "window": {"kind": "expanding", "period": "day"}},
            {"name": "roll", "agg": "max", "window": {"kind": "rolling", "length": "7d"}},
            {"name": "prev", "agg": "elapsed", "window": {"kind": "previous"}},
        ],
    }
    ahead = {
        **past,
        "targets": [
            *past["targets"],
            {"name": "nxt", "agg": "first", "window": {"kind": "next"}},
            {"name": "whole", "agg": "sum", "window": {"kind": "period", "period": "month"}},
        ],
    }
    got = sqltargets.generate(past, tx, past_only=True)
    assert got.column_names[-3:] == ["run", "roll", "prev"]
    for call in (
        lambda: sqltargets.generate(ahead, tx, past_only=True),
        lambda: sqltargets.generate_batches(ahead, tx, past_only=True),
        lambda: sqltargets.write(ahead, tx, tmp_path / "o.parquet", past_only=True),
    ):
        with pytest.raises(
            sqltargets.SpecError,
            match=r"past_only: 2 target\(s\).*nxt \(next#1\), whole \(period/month\)",
        ):
            call()
    assert not (tmp_path / "o.parquet").exists()
    assert sqltargets.generate(ahead, tx).num_columns == 8  # without the guard: computed


@pytest.mark.parametrize("engine", ["native", "sql"])
def test_the_longest_windows(engine: str) -> None:
    """Windows up to 10,000 years (the longest a spec takes; longer ones are refused, so no
    frame offset comes near the ends of BIGINT): a rolling window that long holds every
    earlier row, a future one every later row; one starting 10,000 years later, none."""
    t = pa.table({"u": [1, 1, 1], "t": [-5, 3, 3], "a": [1.0, 2.0, 4.0], "m": [1, 3, 3]})
    years = "3660000d"  # 10,000 years of 366 days
    spec = {
        "columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
        "time": {"unit": "us"},
        "targets": [
            {"name": "back", "agg": "sum", "window": {"kind": "rolling", "length": years}},
            {"name": "ahead", "agg": "count", "window": {"kind": "future", "length": years}},
            {"name": "later", "agg": "count",
             "window": {"kind": "future", "length": "1us", "offset": years}},
        ],
    }  # fmt: skip
    got = sqltargets.generate(spec, t, engine=engine)
    assert got.column("back").to_pylist() == [1.0, 7.0, 7.0]
    assert got.column("ahead").to_pylist() == [2, 0, 0]
    assert got.column("later").to_pylist() == [0, 0, 0]
    too_long = {
        **spec,
        "targets": [
            {**spec["targets"][0], "window": {"kind": "rolling", "length": f"{2**63 - 1}us"}}
        ],
    }
    with pytest.raises(sqltargets.SpecError, match="longer than 10,000 years"):
        sqltargets.generate(too_long, t, engine=engine)


def test_the_collector_pauses_while_compiling_and_resumes_as_it_was(
    tx: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate, generate_batches and explain run with Python's cyclic collector paused (a
    full collection in a process that imported torch costs 0.1 to 0.2 s); it runs again
    afterwards, and between the batches of a reader (the caller's code runs there); one a
    caller turned off stays off."""
    import gc

    from sqltargets.execute import engine

    seen: list[bool] = []
    real = engine.events_table

    def spy(*args: object, **kwargs: object) -> pa.Table:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "events_table", spy)
    assert gc.isenabled()
    want = sqltargets.generate(SPEC, tx)
    assert seen == [False] and gc.isenabled()
    sqltargets.explain(SPEC)
    assert gc.isenabled()
    reader = sqltargets.generate_batches(SPEC, tx, batch_size=50)
    assert gc.isenabled()
    inside = [gc.isenabled() for _ in reader]
    assert inside and all(inside)
    gc.disable()
    try:
        assert sqltargets.generate(SPEC, tx).equals(want)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(sqltargets.SpecError):
        sqltargets.generate({**SPEC, "targets": [{"name": "x"}]}, tx)
    assert gc.isenabled()  # after an error too


def test_the_collector_pause_counts_nested_and_threaded_uses() -> None:
    import gc

    from sqltargets.execute.collector import paused

    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with paused():
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    with paused():
        t.start()
        assert entered.wait(10)
        with paused():
            assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's pause still holds
    leave.set()
    t.join()
    assert gc.isenabled()


def test_generate_and_batches_load_their_kernels_on_a_thread_during_the_prologue(
    tx: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native engine loads the program's kernels on a thread while DuckDB computes the
    prologue; the thread has ended when generate returns, and the values are those of the
    reference either way."""
    from sqltargets.execute import engine

    where: list[str] = []
    real = engine.warm_up

    def spy(prog: object) -> None:
        where.append(threading.current_thread().name)
        real(prog)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "warm_up", spy)
    got = sqltargets.generate(SPEC, tx)
    assert len(where) == 1 and where[0].startswith("sqltargets-kernels")
    assert not [t for t in threading.enumerate() if t.name.startswith("sqltargets-kernels")]
    assert diff(got, sqltargets.reference(SPEC, tx), NAMES, ["user_id", "row_id"]) == []
    sqltargets.generate(SPEC, tx, engine="sql")
    assert len(where) == 1  # the portable statement runs no kernel
    # generate_batches (and so write) too: the kernels load while DuckDB sorts
    batches = sqltargets.generate_batches(SPEC, tx, batch_size=64).read_all()
    assert len(where) == 2 and where[1].startswith("sqltargets-kernels")
    assert batches.equals(got)
    assert not [t for t in threading.enumerate() if t.name.startswith("sqltargets-kernels")]

    def broken(prog: object) -> None:
        raise RuntimeError("kernels failed to load")

    monkeypatch.setattr(engine, "warm_up", broken)
    with pytest.raises(RuntimeError, match="kernels failed to load"):
        sqltargets.generate(SPEC, tx)
    with pytest.raises(RuntimeError, match="kernels failed to load"):
        sqltargets.generate_batches(SPEC, tx).read_all()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_fork_waits_for_the_kernels_loading_thread(
    tx: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader's kernels load on a thread that may still run when the caller forks (a
    DataLoader or a process pool started before the reader is drained): the fork waits for
    it, so that no child inherits numba's compiler lock held by a thread it lacks."""
    import time

    from sqltargets.execute import engine

    state = {"done": False}
    real = engine.warm_up

    def slow(prog: object) -> None:
        time.sleep(0.5)
        real(prog)  # type: ignore[arg-type]
        state["done"] = True

    monkeypatch.setattr(engine, "warm_up", slow)
    reader = sqltargets.generate_batches(SPEC, tx, batch_size=64)
    assert not state["done"]  # still loading
    pid = os.fork()
    if pid == 0:  # the child: leave at once, touching nothing
        os._exit(0)
    done_at_fork = state["done"]
    os.waitpid(pid, 0)
    assert done_at_fork
    assert reader.read_all().num_rows == tx.num_rows


def test_a_reader_that_fails_to_start_leaves_no_kernels_thread(
    tx: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate_batches starts loading its kernels before DuckDB runs the prologue; when
    that fails (the input cannot be read, a `where` DuckDB cannot bind, ...), the thread is
    joined before the error reaches the caller, and the thread is not a daemon: a process
    that ends right after the error must not end while the thread is inside numba (that
    aborted it, exit status 134)."""
    import time

    from sqltargets.execute import engine

    state: dict[str, object] = {}
    real = engine.warm_up

    def slow(prog: object) -> None:
        state["daemon"] = threading.current_thread().daemon
        time.sleep(0.3)
        real(prog)  # type: ignore[arg-type]
        state["done"] = True

    def unreadable(*args: object) -> None:
        raise duckdb.IOException("the disk went away")

    monkeypatch.setattr(engine, "warm_up", slow)
    monkeypatch.setattr(engine, "_events_reader", unreadable)
    with pytest.raises(sqltargets.SqlTargetsError, match="disk went away"):
        sqltargets.generate_batches(SPEC, tx)
    assert state.get("done") is True
    assert state["daemon"] is False
    assert not [t for t in threading.enumerate() if t.name.startswith("sqltargets-kernels")]


@pytest.mark.parametrize("jobs", [1, 2])
def test_sharded_write_of_a_stream_keeps_every_row(tx: pa.Table, tmp_path: Path, jobs: int) -> None:
    """Every shard reads the input: a RecordBatchReader (one pass only) is read once, into
    a table. The first shard drained it and the others wrote nothing, a complete-looking
    folder with rows lost (jobs=2 failed to pickle the reader)."""
    reader = pa.RecordBatchReader.from_batches(tx.schema, tx.to_batches(max_chunksize=100))
    out = tmp_path / f"out-{jobs}"
    rows = sqltargets.write(SPEC, reader, out, shards=3, jobs=jobs)
    got = pq.read_table(out).sort_by([("user_id", "ascending"), ("row_id", "ascending")])
    want = sqltargets.generate(SPEC, tx).sort_by(
        [("user_id", "ascending"), ("row_id", "ascending")]
    )
    assert rows == got.num_rows == tx.num_rows
    assert diff(got, want, NAMES, ["user_id", "row_id"]) == []


def test_sharded_jobs_warn_in_the_callers_process(tx: pa.Table, tmp_path: Path) -> None:
    """A worker's warnings (rows dropped for a null user) come back with its rows and are
    warned in the caller's process, where its filters and the CLI's one-line form apply
    (the workers printed them raw, Python's two-line form with a source line)."""
    users = tx.column("user_id").to_pylist()
    users[0] = users[5] = None
    data = tx.set_column(0, "user_id", pa.array(users, pa.int64()))
    spec = {**SPEC, "null_rows": "drop"}
    with pytest.warns(sqltargets.DroppedRowsWarning, match="null user or time") as caught:
        rows = sqltargets.write(spec, data, tmp_path / "out", shards=3, jobs=2)
    assert rows == tx.num_rows - 2
    assert sum("dropped" in str(w.message) for w in caught) >= 1


def test_small_inputs_share_one_database_and_keep_sessions_apart() -> None:
    """Small Arrow inputs run on cursors of one shared database (opening one took 35-50 ms,
    half of a small generate): each cursor's session is its own (the time zone a spec
    sets), and its tables are dropped with it."""
    from sqltargets.execute import connection

    t = pa.table({"u": [1, 1, 1], "t": pa.array([0, 3_600_000_000 * 20, 3_600_000_000 * 30], pa.timestamp("us", tz="UTC")),
                  "a": [1.0, 2.0, 4.0], "m": [5411] * 3})  # fmt: skip
    day = {"name": "d", "agg": "sum", "window": {"kind": "period", "period": "day"}}
    utc = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [day]}
    tokyo = {**utc, "timezone": "Asia/Tokyo"}
    assert connection.small(t)
    first = sqltargets.generate(utc, t).column("d").to_pylist()
    for _ in range(2):  # a Tokyo day (UTC+9) is other hours: the session's zone is not shared
        assert sqltargets.generate(tokyo, t).column("d").to_pylist() == [1.0, 6.0, 6.0]
        assert sqltargets.generate(utc, t).column("d").to_pylist() == first == [3.0, 3.0, 4.0]
    shared = connection.light()
    left = shared.sql("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall()
    assert left == [(0,)]
    shared.close()


def test_a_forked_child_after_a_small_run_runs_and_exits(tmp_path: Path) -> None:
    """The shared database is closed before a fork: a child that inherited it open hung
    when it opened its own (the old one let go, DuckDB joined threads the child lacks)."""
    import subprocess
    import sys

    script = tmp_path / "fork.py"
    script.write_text(
        "import os, sys, pyarrow as pa, sqltargets\n"
        "t = pa.table({'u': [1, 1, 2], 't': pa.array([0, 1, 2], pa.int64()), 'a': [1.0, 2.0, 4.0], 'm': [1, 1, 2]})\n"
        "spec = {'columns': {'user': 'u', 'time': 't', 'amount': 'a', 'mcc': 'm'}, 'time': {'unit': 'day'},\n"
        "        'targets': [{'name': 's', 'agg': 'sum', 'window': {'kind': 'expanding', 'period': 'month'}}]}\n"
        "print(sqltargets.generate(spec, t).column('s').to_pylist(), flush=True)\n"
        "for ending in ('exit', 'os_exit'):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        print('child', sqltargets.generate(spec, t).column('s').to_pylist(), flush=True)\n"
        "        sys.exit(0) if ending == 'exit' else os._exit(0)\n"
        "    print('status', os.waitpid(pid, 0)[1], flush=True)\n"
        "print(sqltargets.generate(spec, t).column('s').to_pylist(), flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    runs = "[1.0, 3.0, 4.0]"
    assert proc.stdout.split("\n") == [runs, f"child {runs}", "status 0", f"child {runs}", "status 0", runs, ""], proc.stderr  # fmt: skip


def test_a_table_with_deleted_rows_keeps_its_rowids_in_every_verb() -> None:
    """A table's row_id is its rowid, with gaps where rows were deleted: the reference read
    the table as dense positions, so verify reported a mismatch on valid input."""
    con = duckdb.connect()
    con.execute("CREATE TABLE d AS SELECT i % 2 AS u, TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR AS t, "
                "i::DOUBLE AS a, 5411 AS m FROM range(10) r(i)")  # fmt: skip
    con.execute("DELETE FROM d WHERE rowid IN (3, 4)")
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    got = sqltargets.generate(spec, "d", connection=con)
    want = sqltargets.reference(spec, "d", connection=con)
    assert sorted(got.column("row_id").to_pylist()) == [0, 1, 2, 5, 6, 7, 8, 9]
    assert diff(got, want, ["s"], ["u", "row_id"]) == [] and got.num_rows == want.num_rows == 8
    assert sqltargets.verify(spec, "d", connection=con, users=2).ok


def test_a_table_name_means_one_table(tmp_path: Path) -> None:
    """A name was looked up in every schema and attached database at once: a view in main
    was taken for a same-named table elsewhere, and another table's 'rowid' column refused
    this one. `t` is the current schema's, `s.t` schema s's or attached database s's,
    `d.s.t` exactly that; temporary tables are named as unseen by a cursor."""
    con = duckdb.connect()
    con.execute("CREATE TABLE base AS SELECT i AS id, i % 2 AS u, TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR AS t, "
                "i::DOUBLE AS a, 5411 AS m FROM range(10) r(i)")  # fmt: skip
    con.execute("CREATE SCHEMA other; CREATE TABLE other.tx AS SELECT 1 AS rowid")
    con.execute("CREATE VIEW main.tx AS SELECT * FROM base")
    con.execute(f"ATTACH '{tmp_path / 'side.db'}' AS side")
    con.execute("CREATE TABLE side.tx2 AS SELECT * FROM base WHERE id < 4")
    con.execute("CREATE TEMP TABLE tmp AS SELECT * FROM base")
    cols = {"user": "u", "time": "t", "amount": "a", "mcc": "m"}
    day = [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]
    with_id = {"columns": {**cols, "id": "id"}, "targets": day}
    assert sqltargets.generate(with_id, "tx", connection=con).num_rows == 10  # the view
    with pytest.raises(sqltargets.SourceError, match="is a view, whose row order is not defined"):
        sqltargets.generate({"columns": cols, "targets": day}, "tx", connection=con)
    for name in ("side.tx2", "side.main.tx2"):
        got = sqltargets.generate({"columns": cols, "targets": day}, name, connection=con)
        assert got.column("row_id").to_pylist() == [0, 2, 1, 3]
        assert got.equals(
            sqltargets.reference({"columns": cols, "targets": day}, name, connection=con)
        )
    with pytest.raises(sqltargets.DataError, match="has a column named 'rowid'"):
        sqltargets.generate({"columns": cols, "targets": day}, "other.tx", connection=con)
    with pytest.raises(sqltargets.SourceError, match=r"'tmp' is neither a file nor a table .*a temporary table"):  # fmt: skip
        sqltargets.generate(with_id, "tmp", connection=con)


def test_a_damaged_parquet_file_is_a_source_error_in_every_engine(tmp_path: Path) -> None:
    """engine="sql" let DuckDB's own exception through (its first read is the row count)."""
    t = make_transactions(20, seed=1, tx_per_user=20)
    pq.write_table(t, tmp_path / "a.parquet", compression="snappy")
    data = bytearray((tmp_path / "a.parquet").read_bytes())
    data[20:200] = bytes(180)
    (tmp_path / "a.parquet").write_bytes(bytes(data))
    for engine in ("native", "sql"):
        with pytest.raises(sqltargets.SqlTargetsError, match=r"a\.parquet"):
            sqltargets.generate(SPEC, tmp_path / "a.parquet", engine=engine)
