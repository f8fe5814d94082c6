"""Execution on DuckDB: connections, sources (Parquet, Arrow, tables), checks, Arrow out.

A source is resolved once into a :class:`Input`: how the SQL reads it (a
:class:`~sqltargets.compile.render.Source`), the DuckDB types of its columns, and how to clean up
(Arrow inputs are registered on the connection under a private name).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..compile.plan import Plan, build
from ..compile.render import (
    ROW_ID_COLUMN,
    Source,
    ident,
    literal,
    parquet_source,
    relation_source,
    render,
    shard_condition,
)
from ..compile.spec import COUNTING, TargetSet
from ..errors import DataError, SourceError, SqlTargetsError, did_you_mean
from . import scan as scan_mod
from . import store as store_mod

GLOB_CHARS = set("*?[")
INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip
FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
TIME_TYPES = {
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "DATE": "date",
}


class DroppedRowsWarning(UserWarning):
    """Rows with a null user or time were left out (``null_rows: drop``)."""


def is_numeric(duck_type: str) -> bool:
    """Whether a DuckDB type name is numeric."""
    return duck_type in INTEGER_TYPES or duck_type in FLOAT_TYPES or duck_type.startswith("DECIMAL")


def connect(
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with the given resource settings."""
    config: dict[str, Any] = {}
    if threads is not None:
        config["threads"] = int(threads)
    if memory_limit is not None:
        config["memory_limit"] = str(memory_limit)
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    if memory_limit is not None:
        # lets DuckDB spill more freely; results keep their ORDER BY order regardless
        config["preserve_insertion_order"] = False
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as e:
        raise SqlTargetsError(f"cannot open DuckDB with settings {config}: {_msg(e)}") from e
    con.execute("SET enable_progress_bar = false")
    return con


def _msg(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


@dataclass
class Input:
    """A resolved source: how SQL reads it and what its columns are."""

    source: Source
    label: str  # for messages
    arrow_table: pa.Table | None = None  # registered under `name` while in use
    name: str = ""
    types: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type
    arrow_schema: pa.Schema | None = None  # the input's own Arrow types, when known

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make an Arrow input visible to ``con`` (a no-op for files and tables)."""
        if self.arrow_table is not None:
            con.register(self.name, self.arrow_table)

    def unregister(self, con: duckdb.DuckDBPyConnection) -> None:
        """Undo :meth:`register`."""
        if self.arrow_table is not None:
            try:
                con.unregister(self.name)
            except duckdb.Error:
                pass

    def scan_sql(self) -> str:
        """A FROM-clause item reading the raw input (no row positions)."""
        s = self.source
        if s.kind == "parquet":
            return f"read_parquet({s.files})"
        return s.relation


def looks_like_path(source: str) -> bool:
    """A string is a path (not a table name) when it has a slash, a glob, a .parquet
    suffix, or exists on disk."""
    return (
        "/" in source
        or os.sep in source
        or bool(GLOB_CHARS & set(source))
        or source.lower().endswith(".parquet")
        or os.path.exists(source)
    )


def parquet_files(path: str) -> tuple[str, list[str], bool]:
    """(pattern for read_parquet, the files it matches in name order, several files?)."""
    if os.path.isdir(path):
        pattern = os.path.join(path, "**", "*.parquet")
        files = sorted(glob.glob(pattern, recursive=True))
        if not files:
            raise SourceError(f"input {path!r} is a folder with no .parquet files")
        return pattern, files, True
    if GLOB_CHARS & set(path):
        files = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
        if not files:
            raise SourceError(f"input {path!r} matches no files")
        return path, files, True
    if not os.path.exists(path):
        raise SourceError(f"input {path!r} does not exist")
    return path, [path], False


def resolve(
    source: Any,
    ts: TargetSet,
    con: duckdb.DuckDBPyConnection | None,
    *,
    absolute: bool = True,
) -> Input:
    """Resolve ``source`` (Parquet path/glob/folder, Arrow table or reader, pandas frame,
    or a table/view name in ``con``)."""
    # input positions are needed for row_id, and break ties between repeated ids
    rid = True
    if isinstance(source, Path):
        source = str(source)
    if isinstance(source, str):
        if con is not None and not looks_like_path(source):
            return _relation_input(source, ts, con)
        if not looks_like_path(source):
            # a bare name with no connection and no such file
            raise SourceError(
                f"input {source!r} does not exist (to read a table, pass connection=)"
            )
        if store_mod.is_store(source):
            reason = store_mod.stale_reason(source)
            if reason:
                raise SourceError(
                    f"store {source!r} is stale: {reason}; run 'sqltargets prepare' again"
                )
            data = os.path.join(source, store_mod.DATA)
            data = os.path.abspath(data) if absolute else data
            src = parquet_source(data, multi=False, rid=rid, rid_column=store_mod.ROW_ID)
            return Input(src, label=source)
        pattern, _, multi = parquet_files(source)
        if absolute:
            pattern = os.path.abspath(pattern)
        return Input(parquet_source(pattern, multi=multi, rid=rid), label=source)
    source = as_arrow(source)
    if isinstance(source, pa.Table):
        if ROW_ID_COLUMN in source.column_names:
            raise DataError(f"input has a column named {ROW_ID_COLUMN!r}, which sqltargets uses")
        schema = source.schema
        table = source.append_column(
            ROW_ID_COLUMN, pa.array(range(source.num_rows), type=pa.int64())
        )
        name = f"_sqltargets_input_{uuid.uuid4().hex[:12]}"
        src = relation_source(name, rid_column=ROW_ID_COLUMN)
        return Input(src, label="Arrow table", arrow_table=table, name=name, arrow_schema=schema)
    raise SourceError(
        "input: expected a Parquet path, glob or folder, a pyarrow Table or RecordBatchReader, "
        f"or a table name with connection=; got {type(source).__name__}"
    )


def as_arrow(source: Any) -> Any:
    """An in-memory input (Arrow table, record batch or reader, pandas frame, DuckDB
    relation) as one ``pyarrow.Table``; anything else is returned unchanged."""
    if hasattr(source, "to_arrow_table") and not isinstance(source, pa.Table):
        return source.to_arrow_table()
    if type(source).__module__.startswith("pandas") and hasattr(source, "columns"):
        return pa.Table.from_pandas(source, preserve_index=False)
    if isinstance(source, pa.RecordBatchReader):
        return source.read_all()
    if isinstance(source, pa.RecordBatch):
        return pa.Table.from_batches([source])
    return source


def _relation_input(name: str, ts: TargetSet, con: duckdb.DuckDBPyConnection) -> Input:
    schema = None
    table = name
    if "." in name:
        schema, table = name.split(".", 1)
    rows = con.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_name = ? AND (? IS NULL OR table_schema = ?)",
        [table, schema, schema],
    ).fetchall()
    if not rows:
        known = [
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        raise SourceError(
            f"input {name!r} is neither a file nor a table or view in the connection"
            f"{did_you_mean(table, known)}"
        )
    is_view = rows[0][0] == "VIEW"
    if is_view and ts.columns.id is None:
        raise SourceError(
            f"input {name!r} is a view, whose row order is not defined; set columns.id "
            "(a unique transaction id) in the spec, or pass a table"
        )
    rid_column = "" if is_view else "rowid"
    return Input(relation_source(table, schema=schema, rid_column=rid_column), label=name)


# ---------------------------------------------------------------------------------------------
# checks against the data


def describe(inp: Input, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column → DuckDB type name of the input."""
    try:
        rows = con.sql(f"DESCRIBE SELECT * FROM {inp.scan_sql()}").fetchall()
    except duckdb.Error as e:
        raise SourceError(f"cannot read input {inp.label!r}: {_msg(e)}") from e
    inp.types = {r[0]: r[1] for r in rows}
    return inp.types


def check_columns(ts: TargetSet, types: dict[str, str]) -> str:
    """Check the spec's columns against the input; return the time column's kind."""
    names = list(types)

    def need(col: str, field: str) -> str:
        if col not in types:
            raise DataError(
                f"{field}: column {col!r} is not in the input; columns are: "
                f"{', '.join(names)}{did_you_mean(col, names)}"
            )
        return types[col]

    c = ts.columns
    need(c.user, "columns.user")
    time_type = need(c.time, "columns.time")
    need(c.amount, "columns.amount")
    mcc_type = need(c.mcc, "columns.mcc")
    if c.id:
        need(c.id, "columns.id")
    if mcc_type not in INTEGER_TYPES and mcc_type != "VARCHAR":
        raise DataError(
            f"columns.mcc: column {c.mcc!r} has type {mcc_type}; expected an integer or a "
            "string of digits"
        )
    for i, t in enumerate(ts.targets):
        vtype = need(t.value, f"targets[{i}].value")
        if t.agg != "count_distinct" and t.agg != "count" and not is_numeric(vtype):
            raise DataError(
                f"targets[{i}].value: column {t.value!r} has type {vtype}; agg {t.agg!r} needs "
                "a numeric column (count and count_distinct take any type)"
            )
        for col in sorted(t.where_columns()):
            need(col, f"targets[{i}].where")

    if time_type in INTEGER_TYPES:
        if ts.time.unit is None:
            raise DataError(
                f"time.unit: column {c.time!r} is an integer ({time_type}), so the spec needs "
                "time: {unit: day|s|ms|us, origin: YYYY-MM-DD}"
            )
        return "integer"
    if time_type in TIME_TYPES:
        if ts.time.unit is not None:
            raise DataError(
                f"time.unit: column {c.time!r} is {time_type}, not an integer; remove time.unit"
            )
        return TIME_TYPES[time_type]
    raise DataError(
        f"columns.time: column {c.time!r} has type {time_type}; expected TIMESTAMP "
        "(with or without time zone), DATE, or an integer with time.unit"
    )


def numeric_columns(types: dict[str, str]) -> dict[str, bool]:
    """Column → whether it is numeric."""
    return {k: is_numeric(v) for k, v in types.items()}


def check_rows(ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection) -> int:
    """Count input rows (of the shard); null users or times are errors with a count and an
    example, or left out and counted with ``null_rows: drop``."""
    u, t = ident(ts.columns.user), ident(ts.columns.time)
    key = ident(ts.columns.id) if ts.columns.id else None
    src = inp.scan_sql()
    if inp.source.shard is not None:
        src = f"(SELECT * FROM {src} WHERE {shard_condition(ts.columns.user, *inp.source.shard)})"
    row = con.sql(
        f"SELECT count(*), count(*) FILTER (WHERE {u} IS NULL), "
        f"count(*) FILTER (WHERE {t} IS NULL), "
        f"count(*) FILTER (WHERE {u} IS NULL OR {t} IS NULL) FROM {src}"
    ).fetchall()[0]
    total, null_users, null_times, dropped = row
    if ts.null_rows == "drop":
        if dropped:
            warnings.warn(
                f"dropped {dropped} of {total} rows with a null user or time (null_rows: drop)",
                DroppedRowsWarning,
                stacklevel=2,
            )
        return int(total - dropped)
    for n, col, role in (
        (null_users, ts.columns.user, "user"),
        (null_times, ts.columns.time, "time"),
    ):
        if n:
            example = con.sql(
                f"SELECT {u}, {t}{', ' + key if key else ''} FROM {src} "
                f"WHERE {ident(col)} IS NULL LIMIT 1"
            ).fetchall()[0]
            raise DataError(
                f"columns.{role}: {n} of {total} rows have a null {role} in column {col!r}, "
                f"so they cannot be placed; first such row: {example} "
                "(set null_rows: drop in the spec to leave them out)"
            )
    return int(total)


def prepare(ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection) -> Plan:
    """Describe the input, check it against the spec, and plan.

    Also sets the session's TimeZone to the spec's, so that a ``where`` comparing a zoned
    timestamp with a string literal reads it in that zone (as the NumPy reference does).
    ``con`` is sqltargets' own connection or a cursor, never the user's session itself.
    """
    con.execute(f"SET TimeZone = {literal(ts.timezone)}")
    types = describe(inp, con)
    time_kind = check_columns(ts, types)
    return build(ts, time_kind=time_kind, numeric=numeric_columns(types))


# ---------------------------------------------------------------------------------------------
# execution


def _restore_types(table: pa.Table, ts: TargetSet, inp: Input) -> pa.Table:
    """Give the passthrough columns (user, time, id) their input Arrow types back."""
    schema = inp.arrow_schema
    if schema is None:
        return table
    for col in (ts.columns.user, ts.columns.time, ts.columns.id):
        if col is None or col not in schema.names:
            continue
        want = schema.field(col).type
        i = table.schema.get_field_index(col)
        if i >= 0 and table.schema.field(i).type != want:
            try:
                table = table.set_column(i, col, table.column(i).cast(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    return table


def run_table(sql: str, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Run a statement and return its result as one Arrow table."""
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as e:
        raise SqlTargetsError(f"DuckDB failed: {_msg(e)}") from e


#: How targets are computed: ``scan`` (DuckDB runs the statement without the expanding
#: windows it can leave to :mod:`sqltargets.execute.scan`; the default) or ``sql`` (DuckDB runs the
#: whole statement, exactly as ``explain`` prints it).
ENGINES = ("scan", "sql")


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise SqlTargetsError(
            f"engine: {engine!r} is not supported; expected one of: {', '.join(ENGINES)}"
            f"{did_you_mean(str(engine), ENGINES)}"
        )


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    try:
        return str(con.execute(f"SELECT current_setting({literal(name)})").fetchall()[0][0])
    except duckdb.Error as e:
        raise SqlTargetsError(f"DuckDB failed: {_msg(e)}") from e


def _threads(con: duckdb.DuckDBPyConnection) -> int:
    return int(_setting(con, "threads"))


def _scan_schema(schema: pa.Schema, plan: Plan, split: scan_mod.ScanSplit) -> pa.Schema:
    """The result's schema: the statement's, with the scanned targets put in place."""
    base = list(schema)[: len(schema) - len(split.hidden)]
    fields = base[:3]
    rest = iter(base[3:])
    kinds = {t.name: t.agg for t in split.targets}
    for o in plan.outputs:
        name = o.target.name
        if name in kinds:
            fields.append(pa.field(name, pa.int64() if kinds[name] == "count" else pa.float64()))
        else:
            fields.append(next(rest))
    return pa.schema(fields)


def finish_scan(
    table: pa.Table, plan: Plan, split: scan_mod.ScanSplit, threads: int = 1
) -> pa.Table:
    """The scan engine's second half: compute the scanned targets over the statement's
    result (sorted by user and event order) and put them in place."""
    k = len(split.hidden)
    first = table.num_columns - k
    work = pa.Table.from_arrays(
        [table.column(0)] + [table.column(first + i) for i in range(k)],
        names=["_u"] + [alias for alias, _ in split.hidden],
    )
    if threads > 1 and len(split.targets) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            got = scan_mod.compute(
                work, "_u", dict(split.periods), list(split.targets),
                lambda f, xs: list(pool.map(f, xs)),
            )  # fmt: skip
    else:
        got = scan_mod.compute(work, "_u", dict(split.periods), list(split.targets))
    schema = _scan_schema(table.schema, plan, split)
    columns = [table.column(i) for i in range(3)]
    j = 3
    for f in list(schema)[3:]:
        if f.name in got:
            columns.append(pa.chunked_array([got[f.name]], type=f.type))
        else:
            columns.append(table.column(j))
            j += 1
    return pa.Table.from_arrays(columns, schema=schema)


@functools.lru_cache(maxsize=1)
def _default_memory_limit() -> str:
    c = duckdb.connect()
    try:
        return str(c.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    finally:
        c.close()


def _two_statements(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the scan engine materialises the events first: not under a memory limit set
    for this run (the events table would hold the whole input in memory; the single
    statement lets DuckDB stream and spill instead)."""
    return _setting(con, "memory_limit") == _default_memory_limit()


def _materialize_events(plan: Plan, inp: Input, con: duckdb.DuckDBPyConnection) -> str:
    """The scan engine's first statement: the events (keys, values, filters) as a temporary
    table. DuckDB sorts a table about twice as fast as the same rows streaming from Parquet
    through the projections. Returns the table's quoted name; drop it when done."""
    name = ident(f"_st_events_{uuid.uuid4().hex[:12]}")
    sql = render(plan, inp.source, events_only=True)
    try:
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
    except duckdb.Error as e:
        raise SqlTargetsError(f"DuckDB failed: {_msg(e)}") from e
    return name


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.execute(f"DROP TABLE IF EXISTS {name}")
    except duckdb.Error:  # pragma: no cover - the connection is gone
        pass


def _sliding_values(plan: Plan) -> frozenset[str]:
    """Value ids aggregated (not just counted) over rolling and future windows."""
    return frozenset(
        m.value.id
        for fr in plan.frames
        if fr.kind in ("rolling", "future")
        for m in fr.measures
        if m.value is not None and m.value.numeric
    )


def _decimal_values(plan: Plan, con: duckdb.DuckDBPyConnection, events: str) -> frozenset[str]:
    """Which of those value columns the scan's integer path takes (checked on the events,
    as :func:`sqltargets.execute.scan.compute` will check the rows it gets, or any subset)."""
    out = set()
    wanted = sorted(_sliding_values(plan))
    if not wanted:
        return frozenset()
    try:
        rows = con.execute(
            f"SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM {events} GROUP BY _u)"
        ).fetchall()[0][0]
        for vid in wanted:
            col = con.sql(f"SELECT _{vid} FROM {events}").to_arrow_table().column(0)
            if scan_mod.Values.of(col, int(rows)).cents is not None:
                out.add(vid)
    except duckdb.Error as e:
        raise SqlTargetsError(f"DuckDB failed: {_msg(e)}") from e
    return frozenset(out)


def _prepare_scan(
    plan: Plan, inp: Input, con: duckdb.DuckDBPyConnection, engine: str
) -> tuple[scan_mod.ScanSplit | None, str]:
    """What the scan computes, and the name of the materialised events table ("" when the
    statement reads the input itself)."""
    if engine != "scan":
        return None, ""
    if not _two_statements(con):
        return scan_mod.split(plan), ""
    if scan_mod.split(plan, _sliding_values(plan)) is None:
        return None, ""  # nothing to scan, even if every value column were decimal
    events = _materialize_events(plan, inp, con)
    try:
        return scan_mod.split(plan, _decimal_values(plan, con, events)), events
    except BaseException:
        _drop(con, events)
        raise


def _run(plan: Plan, inp: Input, con: duckdb.DuckDBPyConnection, engine: str) -> pa.Table:
    split, events = _prepare_scan(plan, inp, con, engine)
    try:
        table = run_table(render(plan, inp.source, scan=split, events_table=events), con)
    finally:
        if events:
            _drop(con, events)
    return table if split is None else finish_scan(table, plan, split, _threads(con))


def execute(
    ts: TargetSet,
    source: Any,
    con: duckdb.DuckDBPyConnection,
    engine: str = "scan",
) -> pa.Table:
    """Check, plan, render and run; the Arrow result, rows out checked against rows in."""
    check_engine(engine)
    inp = resolve(source, ts, con)
    inp.register(con)
    try:
        plan = prepare(ts, inp, con)
        total = check_rows(ts, inp, con)
        table = _run(plan, inp, con, engine)
    finally:
        inp.unregister(con)
    if ts.output == "events" and table.num_rows != total:
        raise SqlTargetsError(
            f"internal error: {total} rows in but {table.num_rows} rows out; please report this"
        )
    return _restore_types(table, ts, inp)


def execute_batches(
    ts: TargetSet,
    source: Any,
    con: duckdb.DuckDBPyConnection,
    batch_size: int,
    own_connection: bool,
    on_total: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
    engine: str = "scan",
) -> pa.RecordBatchReader:
    """Like :func:`execute`, streaming record batches. The connection stays busy until the
    reader is drained or closed. ``shard=(i, n)`` computes only the users of shard i of n.
    With the scan engine, batches end at a user's last row (a batch holds at most
    ``batch_size`` rows, and may hold fewer)."""
    check_engine(engine)
    inp = resolve(source, ts, con)
    if shard is not None:
        inp.source = dataclasses.replace(inp.source, shard=shard)
    inp.register(con)
    events = ""

    def _cleanup() -> None:
        if events:
            _drop(con, events)
        inp.unregister(con)

    try:
        plan = prepare(ts, inp, con)
        total = check_rows(ts, inp, con)
        if on_total:
            on_total(total)
        threads = _threads(con)
        split, events = _prepare_scan(plan, inp, con, engine)
        sql = render(plan, inp.source, scan=split, events_table=events)
        reader = con.sql(sql).to_arrow_reader(batch_size)
    except duckdb.Error as e:
        _cleanup()
        raise SqlTargetsError(f"DuckDB failed: {_msg(e)}") from e
    except BaseException:
        _cleanup()
        raise

    def raw() -> Iterator[pa.RecordBatch]:
        if split is None:
            yield from reader
            return
        yield from _scan_batches(reader, plan, split, threads, batch_size)

    def batches() -> Iterator[pa.RecordBatch]:
        seen = 0
        try:
            for batch in raw():
                seen += batch.num_rows
                yield batch
            if ts.output == "events" and seen != total:
                raise SqlTargetsError(f"internal error: {total} rows in but {seen} rows out")
        finally:
            try:
                reader.close()
            finally:
                try:
                    _cleanup()
                finally:
                    if own_connection:
                        con.close()

    schema = reader.schema if split is None else _scan_schema(reader.schema, plan, split)
    return pa.RecordBatchReader.from_batches(schema, batches())


def _scan_batches(
    reader: pa.RecordBatchReader,
    plan: Plan,
    split: scan_mod.ScanSplit,
    threads: int,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """The scan over a stream: rows are held back until their user's last row has arrived
    (a user's windows never cross users), then computed and cut into batches."""
    held: pa.Table | None = None  # rows of users that may go on in the next batch
    for batch in reader:
        if batch.num_rows == 0:
            continue
        part = pa.Table.from_batches([batch])
        codes = scan_mod.user_codes(part.column(0))
        last = int(np.searchsorted(codes, codes[-1]))  # first row of the batch's last user
        if held is not None and last == 0:  # one user in this batch: the held one's?
            pair = pa.chunked_array(
                [held.column(0).slice(held.num_rows - 1), batch.column(0).slice(0, 1)]
            )
            if scan_mod.user_codes(pair)[1] == 0:
                held = pa.concat_tables([held, part])
                continue
        done = [held] if held is not None else []
        if last:
            done.append(part.slice(0, last))
        if done:
            ready = pa.concat_tables(done) if len(done) > 1 else done[0]
            yield from finish_scan(ready, plan, split, threads).to_batches(batch_size)
        held = part.slice(last)
    if held is not None and held.num_rows:
        yield from finish_scan(held, plan, split, threads).to_batches(batch_size)


def explain_sql(
    ts: TargetSet,
    source: Any,
    con: duckdb.DuckDBPyConnection | None,
    dialect: str,
    time_type: str | None = None,
) -> str:
    """The statement for ``source`` (None: a table named ``transactions``, whose time column
    is of ``time_type``; by default an integer with ``time.unit``, else a naive TIMESTAMP)."""
    from ..compile.plan import TIME_KINDS

    if time_type is not None and time_type not in TIME_KINDS:
        raise SqlTargetsError(
            f"time_type: {time_type!r} is not allowed; expected one of: {', '.join(TIME_KINDS)}"
            f"{did_you_mean(time_type, TIME_KINDS)}"
        )
    if source is None:
        plan = build(ts, time_kind=time_type)
        rid = "" if ts.columns.id else "rowid"
        return render(plan, relation_source("transactions", rid_column=rid), dialect=dialect)
    con = con.cursor() if con is not None else connect(threads=1)
    try:
        inp = resolve(source, ts, con, absolute=False)
        inp.register(con)
        try:
            plan = prepare(ts, inp, con)
        finally:
            inp.unregister(con)
        if inp.arrow_table is not None:
            raise SourceError("explain: an Arrow input has no name the SQL could read; pass a path")
        return render(plan, inp.source, dialect=dialect)
    finally:
        con.close()


__all__ = ["COUNTING", "Input", "connect", "execute", "execute_batches", "explain_sql", "resolve"]
