"""Execution on DuckDB: plan, render and run a resolved input; Arrow out (both engines)."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..compile.plan import Plan, build
from ..compile.render import ident, literal, relation_source, render
from ..compile.spec import COUNTING, TargetSet
from ..errors import SourceError, SqlTargetsError, did_you_mean
from . import scan as scan_mod
from .connection import connect
from .connection import message as _msg
from .source import Input, check_rows, prepare, resolve

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
