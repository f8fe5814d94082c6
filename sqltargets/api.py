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
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from .compile.spec import TargetSet, load
from .errors import OutputError, SourceError
from .execute import engine as _engine
from .execute import source as _source
from .execute.files import parquet_files, replace_dir
from .verification.compare import Mismatch, diff

SpecLike = str | Path | dict[str, Any] | TargetSet


def _connection(
    connection: duckdb.DuckDBPyConnection | None,
    threads: int | None,
    memory_limit: str | None,
    temp_directory: str | None,
) -> tuple[duckdb.DuckDBPyConnection, bool]:
    if connection is not None:
        return connection.cursor(), True
    return _source.connect(
        threads=threads, memory_limit=memory_limit, temp_directory=temp_directory
    ), True


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
    con, close = _connection(connection, threads, memory_limit, temp_directory)
    try:
        return _engine.execute(ts, source, con, engine=engine)
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
    if not store_mod.is_fresh(store, source):
        store_mod.prepare(
            source, store, user=ts.columns.user, time=ts.columns.time, threads=threads,
            memory_limit=memory_limit, temp_directory=temp_directory,
        )  # fmt: skip
    return str(store)


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
    con, _ = _connection(connection, threads, memory_limit, temp_directory)
    try:
        return _engine.execute_batches(
            ts, source, con, batch_size, own_connection=True, on_total=on_total, engine=engine
        )
    except BaseException:
        con.close()
        raise


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
    --   s: max of _v0, rolling/1w -> double
    """
    ts = load(specs)
    return _engine.explain_sql(
        ts, str(source) if isinstance(source, Path) else source, connection, dialect, time_type,
        engine,
    )  # fmt: skip


def read_input(source: Any, *, connection: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The input as one Arrow table in input order (files in name order, rows in file order)."""
    import pyarrow.parquet as pq

    if isinstance(source, Path):
        source = str(source)
    if isinstance(source, str):
        if connection is not None and not _source.looks_like_path(source):
            return (
                connection.cursor()
                .sql(f"SELECT * FROM {_rel(source)} ORDER BY rowid")
                .to_arrow_table()
            )
        _, files, _ = parquet_files(source)
        tables = [pq.read_table(f) for f in files]
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    source = _source.as_arrow(source)
    if isinstance(source, pa.Table):
        return source
    raise SourceError(f"input: cannot read {type(source).__name__}")


def _rel(name: str) -> str:
    from .compile.render import ident

    return ".".join(ident(p) for p in name.split(".", 1))


def reference(
    specs: SpecLike, source: Any, *, connection: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """The NumPy reference: the same schema and values as :func:`generate`, computed by
    plain per-user loops (slow; meant for tests and ``verify``)."""
    from .verification.reference import reference_table

    return reference_table(load(specs), read_input(source, connection=connection))


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
    the sampled users' rows only, in input order.
    """
    import numpy as np
    import pyarrow.compute as pc

    from .verification.reference import reference_table

    ts = load(specs)
    table = read_input(source, connection=connection)
    ucol = ts.columns.user
    all_users = pc.unique(table.column(ucol).drop_null()).to_pylist()
    rng = random.Random(seed)
    chosen = sorted(rng.sample(all_users, min(users, len(all_users))))
    mask = pc.is_in(
        table.column(ucol), value_set=pa.array(chosen, type=table.schema.field(ucol).type)
    )
    positions = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    subset = table.take(pa.array(positions))
    ref = reference_table(ts, subset)
    if ts.columns.id is None and ts.output == "events":
        rid = ref.column("row_id").to_numpy()
        ref = ref.set_column(
            ref.schema.get_field_index("row_id"), "row_id", pa.array(positions[rid], pa.int64())
        )
    again = table if isinstance(source, (pa.RecordBatchReader, pa.RecordBatch)) else source
    sql = generate(
        ts, again, connection=connection, threads=threads, memory_limit=memory_limit,
        engine=engine,
    )  # fmt: skip
    sql = sql.filter(
        pc.is_in(sql.column(ucol), value_set=pa.array(chosen, type=sql.schema.field(ucol).type))
    )
    key = [ucol, ts.key_column()] if ts.output == "events" else [ucol, "period_start"]
    names = [t.name for t in ts.targets]
    return VerifyReport(chosen, ref.num_rows, names, diff(sql, ref, names, key, limit=1000))


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
    """
    out = Path(output)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output {str(out)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output {str(out)!r}: folder {str(folder)!r} is not writable")
    if shards < 1 or jobs < 1:
        raise OutputError(f"shards and jobs must be positive, got shards={shards}, jobs={jobs}")
    ts = load(specs)
    if past_only:
        ts.check_past_only()
    _engine.check_engine(engine)
    settings = {
        "threads": threads, "memory_limit": memory_limit, "temp_directory": temp_directory,
        "engine": engine,
    }  # fmt: skip
    if shards == 1:
        if out.is_dir():
            raise OutputError(f"output {str(out)!r} is a folder; expected a file name")
        return _write_file(ts, source, out, None, connection, settings, batch_size, progress)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {str(out)!r} is a file; with shards the output is a folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=folder))
    rows = 0
    try:
        parts = [(i, tmp / f"part-{i:05d}.parquet") for i in range(shards)]
        if jobs == 1 or connection is not None:
            for i, path in parts:
                n = _write_file(
                    ts, source, path, (i, shards), connection, settings, batch_size, None
                )
                rows += n
                if on_shard:
                    on_shard(i, shards, n)
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = {
                    pool.submit(
                        _write_shard, ts, source, path, (i, shards), settings, batch_size
                    ): i
                    for i, path in parts
                }
                for fut in cf.as_completed(futures):
                    n = fut.result()
                    rows += n
                    if on_shard:
                        on_shard(futures[fut], shards, n)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def _write_shard(
    ts: TargetSet,
    source: Any,
    path: Path,
    shard: tuple[int, int],
    settings: dict[str, Any],
    batch_size: int,
) -> int:
    # runs in a worker process: its own DuckDB connection
    return _write_file(ts, source, path, shard, None, settings, batch_size, None)


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
    import pyarrow.parquet as pq

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
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
                if progress:
                    progress(rows, total[-1])
        os.replace(tmp, out)
    except BaseException:
        reader.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return rows
