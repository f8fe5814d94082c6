"""The Python API: load / generate / generate_batches / explain / reference / verify / write.

>>> import pyarrow as pa, sqltargets
>>> tx = pa.table({"user_id": [1, 1, 1], "day": [1, 1, 2], "amount": [10.0, 20.0, 5.0],
...                "mcc": [5812, 5411, 5411]})
>>> spec = {"columns": {"user": "user_id", "time": "day", "amount": "amount", "mcc": "mcc"},
...         "time": {"unit": "day", "origin": "2024-01-01"},
...         "targets": [{"name": "grocery_day", "agg": "sum", "mcc": [5411],
...                      "window": {"kind": "expanding", "period": "day"}}]}
>>> sqltargets.generate(spec, tx).column("grocery_day").to_pylist()
[0.0, 20.0, 5.0]
>>> sqltargets.reference(spec, tx).column("grocery_day").to_pylist()
[0.0, 20.0, 5.0]
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .compile.spec import TargetSet, load
from .errors import (
    MAX_SEED,
    ArgumentError,
    DroppedRowsWarning,
    OutputError,
    SourceError,
    SqlTargetsError,
    whole,
)
from .errors import first_line as _first_line
from .execute import engine as _engine
from .execute import files as _files
from .execute import source as _source
from .execute.collector import pausing
from .verification.compare import Mismatch, diff

SpecLike = str | Path | dict[str, Any] | TargetSet


def _connection(
    connection: duckdb.DuckDBPyConnection | None,
    threads: int | None,
    memory_limit: str | None,
    temp_directory: str | None,
    source: Any = None,
) -> tuple[duckdb.DuckDBPyConnection, bool]:
    if connection is not None:
        if not isinstance(connection, duckdb.DuckDBPyConnection):
            raise SourceError(
                f"connection: expected a duckdb connection, got {type(connection).__name__}"
            )
        try:
            return connection.cursor(), True
        except duckdb.Error as e:
            raise SourceError(f"connection: cannot be used: {_first_line(e)}") from e
    if memory_limit is None and temp_directory is None:
        from .execute.connection import light, small

        if small(source) and (threads is None or (type(threads) is int and 1 <= threads <= 8)):
            return light(threads), True  # (a database of its own costs 35-50 ms to open)
    return _source.connect(
        threads=threads, memory_limit=memory_limit, temp_directory=temp_directory
    ), True


def _callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ArgumentError(f"{name}: expected a function or None, got {type(value).__name__}")


_whole = whole  # (its name here)


@pausing
def generate(
    specs: SpecLike,
    source: Any,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    store: str | Path | None = None,
    engine: str = "native",
    past_only: bool = False,
) -> pa.Table:
    """Compute every target of ``specs`` over ``source``; one Arrow table.

    ``source``: a Parquet file, glob or folder; a ``pyarrow.Table`` or ``RecordBatchReader``;
    a pandas DataFrame; or the name of a table in ``connection`` (a table, or a view when
    ``columns.id`` is set); or a store written by :func:`prepare`. With ``connection``, the
    query runs on a cursor of it. With ``store``, a Parquet ``source`` is read through that
    prepared store, which is (re)written first when missing or when the input changed.

    ``engine="native"`` (the default) runs the native program: DuckDB reads, filters and
    sorts the events (the prologue), then compiled kernels compute every target in one
    pass over each user's rows (:mod:`sqltargets.execute.kernels`); ``engine="sql"`` runs
    the portable statement that ``explain(..., engine="sql")`` prints. Both give the same
    values (both are tested against the reference).

    ``past_only=True`` refuses a spec with a future-looking target (any window but
    ``expanding``, ``rolling`` and ``previous``), naming them: for targets used as
    features, which must not see the future.

    >>> import pyarrow as pa
    >>> t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [2.5], "m": [5411]})
    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
    ...         "time": {"unit": "s"},
    ...         "targets": [{"name": "n", "agg": "count", "window": {"kind": "period", "period": "day"}}]}
    >>> generate(spec, t).to_pylist()
    [{'u': 1, 't': 0, 'row_id': 0, 'n': 1}]
    """
    ts = load(specs)
    if past_only:
        ts.check_past_only()
    if store is not None:
        source = _through_store(ts, source, store, threads, memory_limit, temp_directory)
    con, close = _connection(connection, threads, memory_limit, temp_directory, source)
    try:
        return _engine.execute(ts, source, con, engine=engine, release=connection is None)
    finally:
        if close:
            con.close()


def prepare(
    source: str | Path,
    store: str | Path,
    *,
    specs: SpecLike | None = None,
    user: str | None = None,
    time: str | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> Path:
    """Write a prepared store of a Parquet ``source``: sorted by user and time, with input
    positions; later runs read it (``generate(spec, store)`` or ``generate(..., store=)``).
    The user and time columns come from ``specs`` or from ``user=`` and ``time=``."""
    from .execute import store as store_mod

    if specs is not None:
        ts = load(specs)
        user, time = user or ts.columns.user, time or ts.columns.time
    if not user or not time:
        raise SourceError("prepare: name the user and time columns (or pass a spec)")
    return store_mod.prepare(
        source, store, user=user, time=time, threads=threads, memory_limit=memory_limit,
        temp_directory=temp_directory,
    )  # fmt: skip


def _through_store(
    ts: TargetSet,
    source: Any,
    store: str | Path,
    threads: int | None,
    memory_limit: str | None,
    temp_directory: str | None,
) -> str:
    from .execute import store as store_mod

    if not isinstance(source, (str, Path)):
        raise SourceError("store=: only a Parquet path can be read through a store")
    if not isinstance(store, (str, Path)):
        raise SourceError(f"store=: expected a folder path, got {type(store).__name__}")
    if not store_mod.is_fresh(store, source):
        store_mod.prepare(
            source, store, user=ts.columns.user, time=ts.columns.time, threads=threads,
            memory_limit=memory_limit, temp_directory=temp_directory,
        )  # fmt: skip
    return str(store)


@pausing
def generate_batches(
    specs: SpecLike,
    source: Any,
    *,
    batch_size: int = 65_536,
    connection: duckdb.DuckDBPyConnection | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    on_total: Callable[[int], None] | None = None,
    engine: str = "native",
    past_only: bool = False,
) -> pa.RecordBatchReader:
    """Like :func:`generate`, as a ``pyarrow.RecordBatchReader`` of ``batch_size`` rows.

    Drain or close the reader: its DuckDB cursor stays busy until then. With the native
    engine a batch ends at a user's last row, so batches may be shorter than ``batch_size``.

    >>> import pyarrow as pa
    >>> t = pa.table({"u": [1, 2], "t": pa.array([0, 5], pa.int64()), "a": [1.0, 2.0], "m": [1, 2]})
    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "time": {"unit": "day"},
    ...         "targets": [{"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "month"}}]}
    >>> generate_batches(spec, t, batch_size=1).read_all().column("s").to_pylist()
    [1.0, 2.0]
    """
    ts = load(specs)
    if past_only:
        ts.check_past_only()
    _whole("batch_size", batch_size, 1, 2**31 - 1)
    _callable("on_total", on_total)
    con, _ = _connection(connection, threads, memory_limit, temp_directory, source)
    try:
        return _engine.execute_batches(
            ts, source, con, batch_size, own_connection=True, on_total=on_total, engine=engine
        )
    except BaseException:
        con.close()
        raise


@pausing
def explain(
    specs: SpecLike,
    *,
    dialect: str = "duckdb",
    source: str | Path | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
    time_type: str | None = None,
    engine: str | None = None,
) -> str:
    """What runs for ``specs`` reading ``source`` (a Parquet path, glob or folder, or a
    table name in ``connection``), or a table named ``transactions`` when None.

    ``engine="native"`` (the default for DuckDB) gives the native program: the prologue
    statement and one comment line per kernel. ``engine="sql"`` (the default for
    ``dialect="spark"``) gives the portable statement, which computes every target in SQL
    and runs unchanged in the DuckDB shell or in Spark.

    Without a source the time column's type cannot be seen: the SQL assumes an integer
    (when ``time.unit`` is set) or a naive TIMESTAMP; name another with ``time_type``
    (``timestamptz``, ``timestamp``, ``date``, ``integer``).

    >>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
    ...         "targets": [{"name": "s", "agg": "max", "window": {"kind": "rolling", "length": "7d"}}]}
    >>> print(explain(spec, engine="sql").splitlines()[-1])
      e._tb
    >>> print(explain(spec).splitlines()[2])
    --   s: max of _v0, rolling/1w -> double (past-looking)
    """
    ts = load(specs)
    return _engine.explain_sql(
        ts, str(source) if isinstance(source, Path) else source, connection, dialect, time_type,
        engine,
    )  # fmt: skip


def read_input(source: Any, *, connection: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The input as one Arrow table in input order (files in name order, rows in file order).

    Parquet files are the ones every run reads (:func:`sqltargets.execute.files.list_input`),
    read by pyarrow, each column with the type DuckDB reads it as (the common type of mixed
    files; a duration as an integer, ...), so that the reference sees what the run sees.
    """
    import pyarrow.parquet as pq

    from .execute import store as store_mod

    path = isinstance(source, Path)
    if path:
        source = os.fspath(source)
    if isinstance(source, str):
        if not path and connection is not None:
            read = _read_relation(source, connection)
            if read is not None:
                return read[0]
        if store_mod.is_store(source):
            return store_mod.read_store(source)
        inp = _source.parquet_input(source)
        assert inp.listing is not None and inp.file_schema is not None
        schema = inp.file_schema
        tables = []
        for f in inp.listing.files:
            try:
                table = pq.ParquetFile(f).read()
            except (OSError, ValueError, pa.ArrowException) as e:
                raise SourceError(f"input file {f!r} cannot be read: {_first_line(e)}") from e
            tables.append(table if schema.same else schema.cast(table))
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return _source.align(table, _duckdb_schema(inp))
    source = _source.as_arrow(source)
    if isinstance(source, pa.Table):
        table = _source.for_duckdb(source)
        name = "_sqltargets_read"
        inp = _source.Input(_rel_source(name), label="Arrow table", arrow_table=table, name=name)
        return _source.align(table, _duckdb_schema(inp))
    raise SourceError(f"input: cannot read {type(source).__name__}")


def _read_relation(
    name: str, connection: duckdb.DuckDBPyConnection
) -> tuple[pa.Table, pa.Array | None] | None:
    """A table or view of ``connection`` in input order (a table's ``rowid``), with those
    row ids (None for a view), or None when ``name`` names none. A table with deleted rows
    has gaps in its row ids: they are its rows' positions, as in a run's ``row_id``."""
    con, _ = _connection(connection, None, None, None)
    try:
        if not _source._is_relation(name, con):
            return None
        inp = _source._relation_input(name, None, con)  # the checks of a run
        rel = inp.source.relation
        try:
            if inp.source.rid_column != "rowid":
                return con.sql(f"SELECT * FROM {rel}").to_arrow_table(), None
            names = con.sql(f"SELECT * FROM {rel} LIMIT 0").columns
            rid = _source.unused_name("_st_rowid", names)
            table = con.sql(f"SELECT *, rowid AS {rid} FROM {rel} ORDER BY rowid").to_arrow_table()
        except duckdb.Error as e:
            raise SourceError(f"cannot read input {name!r}: {_first_line(e)}") from e
        ids = table.column(rid).combine_chunks()
        return table.drop_columns([rid]), ids
    finally:
        con.close()


def _read_with_rowids(
    source: Any, connection: duckdb.DuckDBPyConnection | None
) -> tuple[pa.Table, pa.Array | None]:
    """:func:`read_input`, with a table's row ids when ``source`` names one in
    ``connection`` (the row_id of its rows in a run), else None."""
    read = None
    if isinstance(source, str) and connection is not None:
        read = _read_relation(source, connection)
    return read if read is not None else (read_input(source, connection=connection), None)


def _rel_source(name: str) -> Any:
    from .compile.render import relation_source

    return relation_source(name, rid_column="")


def _duckdb_schema(inp: Any) -> pa.Schema:
    con = _source.connect(threads=1)
    try:
        return _source.duckdb_schema(inp, con)
    finally:
        con.close()


def _rel(name: str) -> str:
    from .compile.render import ident

    return ".".join(ident(p) for p in name.split(".", 1))


def _check_types_as_engines(ts: TargetSet, table: pa.Table) -> None:
    """The engines' checks of the spec's columns' types (:func:`source.check_columns`, over
    the types DuckDB reads ``table``'s columns as): the reference refuses what they refuse
    (it had summed a BOOLEAN amount as 0/1, and met a struct user with a TypeError)."""
    ts.check_column_case(table.column_names)  # (DuckDB would rename a case twin 'A_1')
    from .execute.connection import light

    con = light()  # (DESCRIBE only)
    try:
        con.register("_sqltargets_types", table)
        rows = con.sql("DESCRIBE SELECT * FROM _sqltargets_types").fetchall()
    finally:
        con.close()
    _source.check_columns(ts, {r[0]: r[1] for r in rows})


def reference(
    specs: SpecLike, source: Any, *, connection: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """The NumPy reference: the same schema and values as :func:`generate`, computed by
    plain per-user loops (slow; meant for tests and ``verify``)."""
    from .verification.reference import reference_table

    ts = load(specs)
    source = _source.as_arrow(source)  # (a stream: read once)
    table, rowids = _read_with_rowids(source, connection)
    _check_types_as_engines(ts, table)
    out = reference_table(ts, table)
    if rowids is not None and ts.columns.id is None and ts.output == "events":
        # a table's row_id is its rowid (with gaps where rows were deleted), as in a run
        import pyarrow.compute as pc

        i = out.schema.get_field_index("row_id")
        out = out.set_column(i, "row_id", pc.take(rowids, out.column(i)).cast(pa.int64()))
    # the passthrough columns' types as generate gives them back (engine.input_types): an
    # Arrow input's own, a Parquet time column's (a zoned ns time read as µs is ns again)
    inp = None
    if isinstance(source, pa.Table):
        inp = _source.Input(_rel_source("_sqltargets_read"), label="", arrow_schema=source.schema)
    elif isinstance(source, (str, Path)) and _files.looks_like_path(os.fspath(source)):
        from .execute import store as store_mod

        if not store_mod.is_store(os.fspath(source)):  # (read_store labels a store's zones)
            inp = _source.parquet_input(os.fspath(source))
    return out if inp is None else _engine.restore_types(out, ts, inp)


@dataclass
class VerifyReport:
    """What :func:`verify` compared and found."""

    users: list[Any]
    rows: int
    targets: list[str]
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every compared cell agrees."""
        return not self.mismatches


def verify(
    specs: SpecLike,
    source: Any,
    *,
    users: int = 20,
    seed: int = 0,
    connection: duckdb.DuckDBPyConnection | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    engine: str = "native",
) -> VerifyReport:
    """Run the SQL path and the NumPy reference on ``users`` sampled users; compare cells.

    The SQL runs over the whole input (row ids stay input positions); the reference runs on
    the sampled users' rows only, in input order. Both read the same rows: the files of one
    listing, with the same column types.
    """
    import numpy as np
    import pyarrow.compute as pc

    from .verification.reference import reference_table

    ts = load(specs)
    _whole("users", users, 1)
    _whole("seed", seed, 0, MAX_SEED)
    if isinstance(source, (pa.RecordBatchReader, pa.RecordBatch)):
        source = _source.as_arrow(source)
    # the run first: it checks the input against the spec before the reference reads it
    sql = generate(
        ts, source, connection=connection, threads=threads, memory_limit=memory_limit,
        engine=engine,
    )  # fmt: skip
    table, rowids = _read_with_rowids(source, connection)
    ucol = ts.columns.user
    all_users = pc.unique(table.column(ucol).drop_null()).to_pylist()
    rng = random.Random(seed)
    chosen = sorted(rng.sample(all_users, min(users, len(all_users))))
    utype = table.schema.field(ucol).type
    mask = pc.is_in(table.column(ucol), value_set=pa.array(chosen, type=utype))
    positions = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    subset = table.take(pa.array(positions, pa.int64()))
    ref = reference_table(ts, subset)
    if ts.columns.id is None and ts.output == "events":
        rid = positions[ref.column("row_id").to_numpy()]
        if rowids is not None:  # a table's rowids (gaps where rows were deleted)
            rid = rowids.to_numpy()[rid]
        ref = ref.set_column(
            ref.schema.get_field_index("row_id"), "row_id", pa.array(rid, pa.int64())
        )
    sql = _source.for_duckdb(sql)  # pyarrow cannot filter some types it can hold
    users_out = sql.column(ucol)
    if pa.types.is_dictionary(users_out.type):
        users_out = users_out.cast(users_out.type.value_type)
    sql = sql.filter(pc.is_in(users_out, value_set=pa.array(chosen, type=users_out.type)))
    key = [ucol, ts.key_column()] if ts.output == "events" else [ucol, "period_start"]
    names = [t.name for t in ts.targets]
    return VerifyReport(chosen, ref.num_rows, names, diff(sql, ref, names, key, limit=1000))


#: More shards than this is a mistake (each shard is a query over the whole input).
MAX_SHARDS = 100_000


def write(
    specs: SpecLike,
    source: Any,
    output: str | Path,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    batch_size: int = 262_144,
    shards: int = 1,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    on_shard: Callable[[int, int, int], None] | None = None,
    engine: str = "native",
    past_only: bool = False,
) -> int:
    """Compute targets and write them to Parquet, atomically; returns the rows written.

    With ``shards=1`` the output is one file, written to a temporary file in its folder and
    renamed into place when complete. With ``shards=N`` users are split by a hash into N
    shards, computed one shard at a time (memory bounded by the largest shard), or in
    ``jobs`` parallel processes, and the output is a folder of ``part-NNNNN.parquet`` files
    whose union equals the unsharded output; it too appears only when every shard is done.
    ``on_shard(i, n, rows)`` is called as each shard completes.

    Nothing is overwritten that sqltargets did not write: an output that is, contains or
    lies inside the input (or a store, or, for a folder, the working folder) is refused,
    and so is an existing file or folder that is not an earlier sqltargets output.
    """
    ts, out = check_write(
        specs, source, output, shards=shards, jobs=jobs, batch_size=batch_size,
        progress=progress, on_shard=on_shard, engine=engine, temp_directory=temp_directory,
    )  # fmt: skip
    if past_only:
        ts.check_past_only()
    settings = {
        "threads": threads, "memory_limit": memory_limit, "temp_directory": temp_directory,
        "engine": engine,
    }  # fmt: skip
    if shards == 1:
        return _write_file(ts, source, out, None, connection, settings, batch_size, progress)
    # every shard reads the input: a stream (a RecordBatchReader, ...) is read once, into a
    # table, or the first shard would drain it and the others write nothing (rows lost)
    source = _source.as_arrow(source)
    _check_null_rows(ts, source, connection, settings)  # (for the whole input, not per shard)
    tmp = _files.temp_dir(out)
    rows = 0
    try:
        parts = [(i, tmp / f"part-{i:05d}.parquet") for i in range(shards)]
        with warnings.catch_warnings():  # (each shard's share was said above, for the whole)
            warnings.simplefilter("ignore", DroppedRowsWarning)
            if jobs == 1 or connection is not None:
                for i, path in parts:
                    n = _write_file(
                        ts, source, path, (i, shards), connection, settings, batch_size, None
                    )
                    rows += n
                    if on_shard:
                        on_shard(i, shards, n)
            else:
                rows = _write_shards_in_processes(
                    ts, source, parts, shards, jobs, settings, batch_size, on_shard
                )
        _files.write_marker(tmp, "targets", [p.name for _, p in parts])
        _files.replace_dir(tmp, out, ("targets",))
    except BaseException:
        _files.remove(tmp)
        raise
    return rows


def _check_null_rows(
    ts: TargetSet,
    source: Any,
    connection: duckdb.DuckDBPyConnection | None,
    settings: dict[str, Any],
) -> None:
    """Null users or times of the whole input, before a sharded write: an error, or one
    warning of the rows left out (each shard had said its own share: "dropped 8 of 12")."""
    con, _ = _connection(
        connection, settings["threads"], settings["memory_limit"], settings["temp_directory"]
    )
    try:
        inp = _source.resolve(source, ts, con)
        inp.register(con)
        try:
            _source.prepare(ts, inp, con)
            _source.check_rows(ts, inp, con)
        finally:
            inp.unregister(con)
    finally:
        con.close()


def check_write(
    specs: SpecLike,
    source: Any,
    output: str | Path,
    *,
    shards: int = 1,
    jobs: int = 1,
    batch_size: int = 262_144,
    progress: Callable[[int, int], None] | None = None,
    on_shard: Callable[[int, int, int], None] | None = None,
    engine: str = "scan",
    temp_directory: str | None = None,
) -> tuple[TargetSet, Path]:
    """Everything :func:`write` checks before it computes anything (the arguments, the spec,
    the input's files, the output's place): the spec, and the output as an absolute path."""
    _whole("shards", shards, 1, MAX_SHARDS)
    _whole("jobs", jobs, 1, 1024)
    if jobs > 1 and shards == 1:  # (one shard is one job: the jobs would be ignored)
        raise ArgumentError(f"jobs: {jobs} jobs need shards above 1 (jobs run shards)")
    _whole("batch_size", batch_size, 1, 2**31 - 1)
    _callable("progress", progress)
    _callable("on_shard", on_shard)
    ts = load(specs)
    _engine.check_engine(engine)
    out = _files.check_output(
        output,
        inputs=_files.input_paths(source),
        folder=shards > 1,
        temp_directory=temp_directory,
    )
    return ts, out


def _write_shards_in_processes(
    ts: TargetSet,
    source: Any,
    parts: list[tuple[int, Path]],
    shards: int,
    jobs: int,
    settings: dict[str, Any],
    batch_size: int,
    on_shard: Callable[[int, int, int], None] | None,
) -> int:
    """Shards in ``jobs`` worker processes. Workers ignore Ctrl-C; on any failure or
    interrupt here they are terminated before this returns, so no worker writes on."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import signal

    ctx = mp.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init)
    rows = 0
    # the workers start (on submit) with Ctrl-C blocked, a mask exec keeps: one pressed
    # while they import (before _worker_init ignores it) printed their tracebacks; here it
    # stays pending until the submits are done, then interrupts as usual
    block = hasattr(signal, "pthread_sigmask")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if block else None
    try:
        try:
            futures = {
                pool.submit(_write_shard, ts, source, path, (i, shards), settings, batch_size): i
                for i, path in parts
            }
        finally:
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for fut in cf.as_completed(futures):
            n, caught = fut.result()
            for message, category in caught:
                warnings.warn(message, category, stacklevel=2)
            rows += n
            if on_shard:
                on_shard(futures[fut], shards, n)
    except cf.process.BrokenProcessPool as e:
        _stop_pool(pool)
        raise SqlTargetsError(
            "jobs: a worker process ended before its shard was done. Workers start afresh "
            "and import the script that started them (multiprocessing's spawn), so a script "
            'must call write(jobs=...) under `if __name__ == "__main__":`; else the machine '
            "may be out of memory"
        ) from e
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return rows


def _worker_init() -> None:
    # a terminal's Ctrl-C reaches the whole process group; the parent decides what stops
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool: Any) -> None:
    """Terminate a process pool's workers and wait (briefly) until they are gone; a second
    Ctrl-C meanwhile does not cut this short (it would leave workers running)."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        _terminate(pool)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _terminate(pool: Any) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # pragma: no cover - a broken pool
        pass
    for p in processes:
        try:
            p.terminate()
        except Exception:  # pragma: no cover - already gone
            pass
    for p in processes:
        try:
            p.join(timeout=10)
            if p.is_alive():  # pragma: no cover - ignores SIGTERM
                p.kill()
                p.join(timeout=5)
        except Exception:  # pragma: no cover
            pass


def _write_shard(
    ts: TargetSet,
    source: Any,
    path: Path,
    shard: tuple[int, int],
    settings: dict[str, Any],
    batch_size: int,
) -> tuple[int, list[tuple[str, type[Warning]]]]:
    # runs in a worker process: its own DuckDB connection; its warnings go back with its
    # rows and are warned again in the caller's process (the CLI's one-line form, or the
    # caller's filters), not printed raw by the worker
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = _write_file(ts, source, path, shard, None, settings, batch_size, None)
    return rows, [(str(w.message), w.category) for w in caught]


def _output_schema(schema: pa.Schema) -> pa.Schema:
    """The output's schema, with the metadata that marks files sqltargets wrote."""
    import json

    from . import __version__

    meta = dict(schema.metadata or {})
    meta[_files.OUTPUT_KEY] = json.dumps({"version": __version__}).encode()
    return schema.with_metadata(meta)


def _write_file(
    ts: TargetSet,
    source: Any,
    out: Path,
    shard: tuple[int, int] | None,
    connection: duckdb.DuckDBPyConnection | None,
    settings: dict[str, Any],
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    total = [0]

    def started(n: int) -> None:
        total.append(n)
        if progress:
            progress(0, n)

    con, _ = _connection(
        connection, settings["threads"], settings["memory_limit"], settings["temp_directory"]
    )
    try:
        reader = _engine.execute_batches(
            ts, source, con, batch_size, own_connection=True, on_total=started, shard=shard,
            engine=settings.get("engine", "native"),
        )  # fmt: skip
    except BaseException:
        con.close()
        raise
    rows = 0
    tmp = ""
    try:
        tmp = _files.temp_file(out)
        with _files.ParquetWriter(tmp, _output_schema(reader.schema), compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
                if progress:
                    progress(rows, total[-1])
        _files.place_file(tmp, out)
    except OSError as e:
        reader.close()
        if tmp:
            _files.remove(tmp)
        raise OutputError(
            f"output {str(out)!r} cannot be written: {e.strerror or _first_line(e)}"
        ) from e
    except BaseException:
        reader.close()
        if tmp:
            _files.remove(tmp)
        raise
    return rows
