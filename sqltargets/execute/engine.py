"""Execution: plan a resolved input, run it with an engine, Arrow out.

Two engines give the same values (both are proven against the NumPy reference):

- ``native`` (the default): the :class:`~sqltargets.execute.program.Program` — DuckDB runs
  the relational prologue (read, roles, values, filters, calendar keys, sorted by user and
  event order), then compiled window kernels compute every target
  (:mod:`sqltargets.execute.kernels`, :mod:`sqltargets.execute.runner`);
- ``sql``: DuckDB runs the portable statement, exactly as ``explain --engine sql`` prints it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..compile.plan import Plan, build
from ..compile.render import ident, literal, relation_source, render, unused_name
from ..compile.spec import COUNTING, TargetSet
from ..dialects import portable_sql
from ..errors import ArgumentError, DataError, SourceError, SqlTargetsError, did_you_mean
from . import program as program_mod
from .arrays import from_numpy
from .connection import connect, failure
from .runner import compute
from .source import Input, check_rows, prepare, resolve, where_failure

# ---------------------------------------------------------------------------------------------
# execution


def input_types(ts: TargetSet, inp: Input) -> dict[str, pa.DataType]:
    """The Arrow types the passthrough columns (user, time, id) had in the input, when
    DuckDB returns them otherwise: an Arrow input's own types; for Parquet files, the time
    column's type (DuckDB returns a zoned one in µs, labelled with the session's zone, the
    spec's; the instants are the same); for a store, its input's zone label and unit. A type that
    the values cannot take without loss (µs values into ms) is not restored."""
    schema = inp.arrow_schema
    if schema is not None:
        cols = (ts.columns.user, ts.columns.time, ts.columns.id)
        return {c: schema.field(c).type for c in cols if c is not None and c in schema.names}
    files = inp.file_schema.schema if inp.file_schema is not None else None
    if files is not None and ts.columns.time in files.names:
        t = files.field(ts.columns.time).type
        if pa.types.is_timestamp(t):  # its unit too (DuckDB returns zoned ones in µs)
            return {ts.columns.time: t}
    zone = inp.zones.get(ts.columns.time)  # a store: its input's label and unit
    unit = inp.units.get(ts.columns.time, "us")
    return {ts.columns.time: pa.timestamp(unit, tz=zone)} if zone or unit != "us" else {}


def restore_types(table: pa.Table, ts: TargetSet, inp: Input) -> pa.Table:
    """Give the passthrough columns (user, time, id) their input Arrow types back."""
    for col, want in input_types(ts, inp).items():
        i = table.schema.get_field_index(col)
        if i >= 0 and table.schema.field(i).type != want:
            try:
                table = table.set_column(i, col, table.column(i).cast(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    return table


#: Rows per Arrow batch of a whole result. DuckDB's default (131,072) made 64 chunks of
#: 8M rows, each column later combined into one array; one batch per DuckDB thread is
#: about a third faster to fetch and holds a third less memory (nothing is reserved ahead).
WHOLE_BATCH = 1 << 40


def run_table(sql: str, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Run a statement and return its result as one Arrow table."""
    try:
        return con.sql(sql).to_arrow_table(WHOLE_BATCH)
    except duckdb.Error as e:
        raise failure(e) from e


#: How targets are computed: ``native`` (the prologue in DuckDB, then compiled kernels; the
#: default) or ``sql`` (DuckDB runs the whole portable statement). ``scan`` is the name the
#: native engine's predecessor had, and still selects it.
ENGINES = ("native", "sql")
_ALIASES = {"scan": "native"}


def check_engine(engine: str) -> str:
    """The engine's canonical name; an unknown engine is an error."""
    engine = _ALIASES.get(engine, engine) if isinstance(engine, str) else engine
    if engine not in ENGINES:
        raise ArgumentError(
            f"engine: {engine!r} is not supported; expected one of: {', '.join(ENGINES)}"
            f"{did_you_mean(str(engine), ENGINES)}"
        )
    return engine


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    try:
        return str(con.execute(f"SELECT current_setting({literal(name)})").fetchall()[0][0])
    except duckdb.Error as e:
        raise failure(e) from e


def threads_of(con: duckdb.DuckDBPyConnection) -> int:
    """The connection's DuckDB threads (the kernels use as many)."""
    return int(_setting(con, "threads"))


def program(
    ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection, *, order_time: bool = False
) -> program_mod.Program:
    """Describe and check the input, plan, and build the native program."""
    return program_mod.build(prepare(ts, inp, con), inp.source, order_time=order_time)


def assemble(prog: program_mod.Program, events: pa.Table, targets: dict[str, pa.Array]) -> pa.Table:
    """The output table: the events' user, time and key columns (or one row per user and
    period), then the targets, from the prologue's ``events`` and the kernels' columns."""
    ts = prog.spec
    c = ts.columns
    if ts.output == "events":
        cols = [events.column("_u"), events.column("_time"), events.column("_tb")]
        names = [c.user, c.time, ts.key_column()]
        cols += [targets[n] for n in prog.names]
        return pa.Table.from_arrays(cols, names=names + prog.names)
    return _periods(prog, events, targets)


def _periods(prog: program_mod.Program, events: pa.Table, targets: dict[str, pa.Array]) -> pa.Table:
    """One row per user and calendar period present: the first row of each (user, period)
    segment, ordered by user and period."""
    from .runner import Events

    period = prog.spec.targets[0].window.period
    ev = Events(events, prog.derived)
    key, user = ev.key(f"_p_{period}"), ev.user
    order = np.lexsort((key, user))  # stable: rows keep event order within a segment
    u, k = user[order], key[order]
    first = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        first[1:] = (u[1:] != u[:-1]) | (k[1:] != k[:-1])
    rows = from_numpy(np.asarray(order[first], np.int64))
    names = [prog.spec.columns.user, "period_start", *prog.names]
    cols = [
        events.column("_u").take(rows),
        from_numpy(key[order[first]].astype(np.int64)).cast(pa.int32()).cast(pa.date32()),
    ]
    cols += [pa.chunked_array([targets[n]]).take(rows) for n in prog.names]
    return pa.Table.from_arrays(cols, names=names)


@functools.lru_cache(maxsize=1)
def _default_memory_limit() -> str:
    """DuckDB's own memory limit on this machine (a fresh connection's): asked once per
    process (a connection costs 15 ms); :func:`warm_up` asks, for forked workers."""
    c = duckdb.connect()
    try:
        return str(c.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    finally:
        c.close()


def _spills(
    con: duckdb.DuckDBPyConnection, prog: program_mod.Program | None = None, rows: int | None = None
) -> bool:
    """Whether the prologue runs as one statement that DuckDB can spill: when the run has a
    memory limit of its own, unless ``rows`` events of ``prog`` (when known) take less than
    half of it (8 bytes a column, at most: the unsorted events and their sorted copy fit)."""
    limit = _setting(con, "memory_limit")
    if limit == _default_memory_limit():
        return False
    size = _size_bytes(limit)
    if rows is None or prog is None or size is None:
        return True
    return rows * 8 * len(prog.columns) * 2 > size


def _size_bytes(text: str) -> int | None:
    """DuckDB's spelling of a memory size ('953.6 MiB', '1.0 GiB', '512 bytes') in bytes.

    >>> _size_bytes("953.6 MiB"), _size_bytes("2.0 GiB"), _size_bytes("512 bytes"), _size_bytes("x")
    (999922073, 2147483648, 512, None)
    """
    import re

    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTP]?i?B|bytes?)\s*", text, re.IGNORECASE)
    if m is None:
        return None
    unit = m.group(2).upper()
    power = "BKMGTP".index(unit[0]) if unit[0] in "KMGTP" else 0
    return int(float(m.group(1)) * (1024 if "I" in unit else 1000) ** power)


def _events_reader(
    prog: program_mod.Program, con: duckdb.DuckDBPyConnection, batch_size: int | None
) -> tuple[Any, str]:
    """Start the prologue: an Arrow table (``batch_size`` None) or a reader, and the name of
    the temporary table to drop when done ("" for none). Unsorted input is materialised as a
    temporary table first, then sorted: DuckDB sorts a table about twice as fast as the same
    rows streaming from Parquet through the projections."""
    name = ""
    if prog.presorted or _spills(con):
        sql = prog.prologue
    else:
        name = ident(f"_st_events_{uuid.uuid4().hex[:12]}")
        try:
            con.execute(f"CREATE TEMP TABLE {name} AS {prog.unsorted}")
        except duckdb.Error as e:
            raise failure(e) from e
        sql = prog.sorted_from(name)
    try:
        rel = con.sql(sql)
        return (
            rel.to_arrow_table(WHOLE_BATCH)
            if batch_size is None
            else rel.to_arrow_reader(batch_size)
        ), name
    except duckdb.Error as e:
        _drop(con, name)
        raise failure(e) from e
    except BaseException:
        _drop(con, name)
        raise


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    if name:
        try:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        except duckdb.Error:  # pragma: no cover - the connection is gone
            pass


def events_table(
    prog: program_mod.Program, con: duckdb.DuckDBPyConnection, rows: int | None = None
) -> pa.Table:
    """The prologue's result: the events sorted by user and event order.

    DuckDB computes the events unsorted, and :func:`~sqltargets.execute.kernels.event_order`
    sorts them: a counting sort by user, then each user's rows by time and tie-breaks, in
    parallel; this takes less time and about half the memory of DuckDB's sort of the same
    rows (no temporary table, no sort runs). A prepared store is in order already; under a
    memory limit set for the run, DuckDB sorts (it can spill), unless the ``rows`` expected
    fit well within it."""
    if prog.presorted or _spills(con, prog, rows):
        table, name = _events_reader(prog, con, None)
        _drop(con, name)
        return prog.complete(table)
    threads = threads_of(con)
    events = order_events(run_table(prog.unsorted, con), prog.sort_keys, threads)
    return prog.complete(events)


def order_events(table: pa.Table, keys: tuple[str, ...], threads: int = 2) -> pa.Table:
    """``table`` sorted by ``keys`` (the user first), stably, nulls last. Columns are taken
    into their new order ``threads`` at a time, and each unsorted column is let go as soon as
    its sorted copy exists (so the peak is the table and a few columns, not two tables)."""
    from . import kernels as K
    from .arrays import ranks, sort_key, span_codes

    if table.num_rows < 2:
        return table
    user, n_users = span_codes(table.column(keys[0])) or ranks(table.column(keys[0]))
    rest = [sort_key(table.column(k)) for k in keys[1:]]
    # a second key that increases from row to row already (the input position, as DuckDB
    # usually returns it) is unique, and stays in order within each user through the stable
    # counting sort: it (and any third) need not be laid out and compared (a key's copy
    # less at the peak)
    if len(rest) > 1 and K.is_increasing(rest[1]):
        rest = rest[:1]
    n_keys = len(rest)
    while len(rest) < 3:
        rest.append(rest[-1])
    if K.in_event_order(user, rest[0], rest[1], rest[2], n_keys):
        return table  # input written by user and time already (one pass, no sort)
    # (not in order already, so the permutation is no identity: tests/test_kernels.py)
    perm = K.event_order(user, n_users, rest[0], rest[1], rest[2], threads, n_keys)
    del user, rest
    order = from_numpy(perm)  # (pa.array would import pandas, when installed: 0.3 s)
    del perm
    schema = table.schema
    columns: list[Any] = list(table.columns)
    del table

    def take(j: int) -> None:  # (pyarrow's take releases the GIL)
        columns[j] = columns[j].take(order)

    K.on_threads(threads, take, len(columns))
    return pa.Table.from_arrays(columns, schema=schema)


_LOADING: set[threading.Thread] = set()  # Loading threads still running
_LOADING_LOCK = threading.Lock()


def _join_loading() -> None:
    """Before a fork: wait for every :class:`Loading` thread to end."""
    with _LOADING_LOCK:
        running = [t for t in _LOADING if t is not threading.current_thread()]
    for thread in running:
        thread.join()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(before=_join_loading)


class Loading:
    """The kernels of ``programs`` (:func:`warm_up`), or numba's runtime alone when there
    are none (:func:`warm_up_runtime`), loading on a thread of their own from now on, while
    DuckDB reads (it releases the GIL). The thread ends by itself; :meth:`wait` joins it and
    raises its error, and so does leaving a ``with`` block (which only joins when the block
    raised). A fork waits for it first (:func:`_join_loading`): a child must not inherit
    numba's compiler lock held by a thread that does not exist there, nor half-loaded
    kernels. It is not a daemon: the interpreter's exit waits for it too (a process that
    ends while a thread is inside numba's native code can abort, exit status 134)."""

    def __init__(self, *programs: program_mod.Program) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._load, args=(programs,), name="sqltargets-kernels", daemon=False
        )
        with _LOADING_LOCK:
            _LOADING.add(self._thread)
        self._thread.start()

    def _load(self, programs: tuple[program_mod.Program, ...]) -> None:
        try:
            for prog in programs:
                warm_up(prog)
            if not programs:
                warm_up_runtime()
        except BaseException as e:  # raised in the caller's thread by wait()
            self._error = e
        finally:
            with _LOADING_LOCK:
                _LOADING.discard(self._thread)

    def join(self) -> None:
        self._thread.join()

    def wait(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Loading:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.wait()
        else:  # (the block's own error wins)
            self.join()


def warm_up_runtime() -> None:
    """Start numba's runtime (0.2 s in a fresh process: its runtime library is compiled and
    its implementations imported, whatever kernel loads first) by loading one small kernel,
    and learn DuckDB's default memory limit: the part of :func:`warm_up` that needs no
    program, for a :class:`Loading` thread while the program is built."""
    from . import kernels as K

    _default_memory_limit()
    K.active_count(np.zeros(1, np.bool_), np.empty(2, np.int64))


def warm_up(prog: program_mod.Program) -> None:
    """Load the kernels ``prog`` runs (from numba's on-disk cache, or compile them) by
    running it, from the event sort on, over a few made-up events: a process pays this
    once, and forked DataLoader workers inherit what it loaded. Only these kernels load
    (each costs milliseconds); those that rare inputs need (sums re-added in event order,
    two-pass moments) load when first used. Also learns DuckDB's default memory limit."""
    _default_memory_limit()
    n = 6
    user = np.array([1, 0, 1, 0, 1, 0], np.int64)  # unsorted: the whole sort runs
    step = np.array([2, 2, 1, 1, 0, 0], np.int64) * 3_600_000_000
    columns = {}
    for name in dict.fromkeys((*prog.fetched, *prog.sort_keys)):
        if name == "_u":
            columns[name] = from_numpy(user)
        elif name.startswith("_f"):  # a filter, or a filter's `where` part
            columns[name] = from_numpy(np.arange(n) % 2).cast(pa.bool_())
        elif name == "_m":  # MCC codes (pa.array of a list would import pandas)
            codes = np.array([5411, 5812, 5411, 4111, 5999, 5411], np.int64)
            columns[name] = from_numpy(codes).cast(pa.int32())
        elif name.startswith("_v"):  # values
            columns[name] = from_numpy(np.arange(n, dtype=np.float64))
        elif name == "_time" and prog.plan.time_us:  # µs timestamps: _o is a view of them
            columns[name] = from_numpy(step + np.arange(n, dtype=np.int64)).cast(pa.timestamp("us"))
        else:  # times, clocks and tie-breaks (µs, row positions)
            columns[name] = from_numpy(step + np.arange(n, dtype=np.int64))
    events = order_events(pa.table(columns), prog.sort_keys, threads=1)
    compute(prog, prog.complete(events))


def presorted(ts: TargetSet, source: Any, inp: Input, con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``source`` is a prepared store whose rows are in event order already (sorted by
    user, time and input position, for a spec without an id column), read by a connection
    that keeps the file's order: then the prologue needs no sort."""
    from . import store as store_mod

    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str) or not store_mod.is_store(source):
        return False
    sorted_by = store_mod.read_manifest(source).get("sorted_by")
    if sorted_by != [ts.columns.user, ts.columns.time, store_mod.ROW_ID] or ts.columns.id:
        return False
    if inp.types.get(ts.columns.time) == "TIMESTAMP_NS":  # ties within a microsecond
        return False
    return _setting(con, "preserve_insertion_order").lower() == "true"


def _run(
    plan_or_prog: Any,
    inp: Input,
    con: duckdb.DuckDBPyConnection,
    engine: str,
    late_check: Callable[[pa.Table], None] | None = None,
    release: bool = False,
) -> pa.Table:
    if engine == "sql":
        return run_table(render(plan_or_prog, inp.source), con)
    prog = plan_or_prog
    with Loading(prog):  # the kernels load while DuckDB computes the prologue
        events = events_table(prog, con)
    if late_check is not None:
        late_check(events)
    threads = threads_of(con)
    if release:  # the kernels need no DuckDB: give its cached memory back (about 0.5 GB)
        inp.unregister(con)
        con.close()
    return assemble(prog, events, compute(prog, events, threads))


def execute(
    ts: TargetSet,
    source: Any,
    con: duckdb.DuckDBPyConnection,
    engine: str = "native",
    release: bool = False,
) -> pa.Table:
    """Check, plan and run; the Arrow result, rows out checked against rows in. With
    ``release``, ``con`` (the caller's own, not a user's) is closed as soon as the native
    engine's kernels no longer need it."""
    engine = check_engine(engine)
    inp = resolve(source, ts, con)
    inp.register(con)
    try:
        plan = prepare(ts, inp, con)
        # the native engine finds null users and times in the prologue's result, for free;
        # the rows in are then known from the input's metadata (else one more scan counts)
        late = engine == "native" and ts.null_rows == "error" and inp.source.shard is None
        total = inp.known_rows() if late else None
        if total is None:
            total = check_rows(ts, inp, con)
            late = False
        what = (
            plan
            if engine == "sql"
            else program_mod.build(plan, inp.source, presorted=presorted(ts, source, inp, con))
        )

        def nulls(events: pa.Table) -> None:
            if events.column("_u").null_count or events.column("_time").null_count:
                check_rows(ts, inp, con)  # raises, naming the count and the first such row

        try:
            table = _run(what, inp, con, engine, nulls if late else None, release)
        except SqlTargetsError as e:
            blame = where_failure(ts, inp, con, e)
            if blame is e:
                raise
            raise blame from e
    finally:
        inp.unregister(con)
    if ts.output == "events" and table.num_rows != total:
        raise SqlTargetsError(
            f"internal error: {total} rows in but {table.num_rows} rows out; please report this"
        )
    return restore_types(table, ts, inp)


def execute_batches(
    ts: TargetSet,
    source: Any,
    con: duckdb.DuckDBPyConnection,
    batch_size: int,
    own_connection: bool,
    on_total: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
    engine: str = "native",
) -> pa.RecordBatchReader:
    """Like :func:`execute`, streaming record batches. The connection stays busy until the
    reader is drained or closed. ``shard=(i, n)`` computes only the users of shard i of n.
    With the native engine, batches end at a user's last row (a batch holds at most
    ``batch_size`` rows, and may hold fewer)."""
    engine = check_engine(engine)
    inp = resolve(source, ts, con)
    if shard is not None:
        inp.source = dataclasses.replace(inp.source, shard=shard)
    inp.register(con)
    prog = None
    loading: Loading | None = None
    temp = ""
    try:
        plan = prepare(ts, inp, con)
        total = check_rows(ts, inp, con)
        if on_total:
            on_total(total)
        threads = threads_of(con)
        if engine == "sql":
            reader = con.sql(render(plan, inp.source)).to_arrow_reader(batch_size)
        else:
            prog = program_mod.build(plan, inp.source, presorted=presorted(ts, source, inp, con))
            loading = Loading(prog)  # while DuckDB reads and sorts the events
            reader, temp = _events_reader(prog, con, batch_size)
    except duckdb.Error as e:
        _abandon(loading, inp, con)
        raise failure(e) from e
    except SqlTargetsError as e:
        blame = where_failure(ts, inp, con, e)
        _abandon(loading, inp, con)
        if blame is e:
            raise
        raise blame from e
    except BaseException:
        _abandon(loading, inp, con)
        raise

    def raw() -> Iterator[pa.RecordBatch]:
        if prog is None:
            yield from reader
            return
        if ts.output != "events":  # one row per period: needs every row of a user at once
            yield from _native_batches(reader, prog, threads, batch_size, loading, whole=True)
            return
        yield from _native_batches(reader, prog, threads, batch_size, loading)

    def batches() -> Iterator[pa.RecordBatch]:
        seen = 0
        try:
            for batch in raw():
                seen += batch.num_rows
                yield _restore_batch(batch, ts, inp)
            if ts.output == "events" and seen != total:
                raise SqlTargetsError(f"internal error: {total} rows in but {seen} rows out")
        finally:
            try:
                reader.close()
            finally:
                try:
                    _drop(con, temp)
                    inp.unregister(con)
                finally:
                    if own_connection:
                        con.close()

    schema = reader.schema if prog is None else _native_schema(prog, reader.schema)
    schema = restore_types(schema.empty_table(), ts, inp).schema
    return pa.RecordBatchReader.from_batches(schema, batches())


def _abandon(loading: Loading | None, inp: Input, con: duckdb.DuckDBPyConnection) -> None:
    """A reader that failed before it began: its kernels' thread is joined (the error may
    end the process, which must not happen while that thread is inside numba) and its input
    let go."""
    try:
        if loading is not None:
            loading.join()
    finally:
        inp.unregister(con)


def _restore_batch(batch: pa.RecordBatch, ts: TargetSet, inp: Input) -> pa.RecordBatch:
    wanted = input_types(ts, inp)
    if all(batch.schema.field(c).type == t for c, t in wanted.items() if c in batch.schema.names):
        return batch
    table = restore_types(pa.Table.from_batches([batch]), ts, inp)
    # (one batch, also when empty: an empty table has no batches)
    return pa.record_batch([c.combine_chunks() for c in table.columns], schema=table.schema)


def _native_schema(prog: program_mod.Program, prologue: pa.Schema) -> pa.Schema:
    types = {"int64": pa.int64(), "double": pa.float64(), "list": pa.list_(pa.float64())}
    ts = prog.spec
    if ts.output == "events":
        head = [
            pa.field(ts.columns.user, prologue.field("_u").type),
            pa.field(ts.columns.time, prologue.field("_time").type),
            pa.field(ts.key_column(), prologue.field("_tb").type),
        ]
    else:
        head = [
            pa.field(ts.columns.user, prologue.field("_u").type),
            pa.field("period_start", pa.date32()),
        ]
    return pa.schema(head + [pa.field(c.name, types[c.type]) for c in prog.calls])


def _native_batches(
    reader: pa.RecordBatchReader,
    prog: program_mod.Program,
    threads: int,
    batch_size: int,
    loading: Loading | None = None,
    whole: bool = False,
) -> Iterator[pa.RecordBatch]:
    """The kernels over a stream: rows are held back until their user's last row has
    arrived (a user's windows never cross users), then computed and cut into batches.
    ``loading``: the kernels loading on a thread, waited for before the first compute."""
    from .arrays import user_starts

    def finish(events: pa.Table) -> Iterator[pa.RecordBatch]:
        if loading is not None:
            loading.wait()
        events = prog.complete(events)
        out = assemble(prog, events, compute(prog, events, threads))
        yield from out.to_batches(batch_size)

    held: pa.Table | None = None  # rows of users that may go on in the next batch
    for batch in reader:
        if batch.num_rows == 0:
            continue
        part = pa.Table.from_batches([batch])
        if whole:
            held = part if held is None else pa.concat_tables([held, part])
            continue
        starts = np.flatnonzero(user_starts(part.column("_u")))
        last = int(starts[-1])  # first row of the batch's last user
        if held is not None:
            pair = pa.chunked_array(
                [held.column("_u").slice(held.num_rows - 1), batch.column("_u").slice(0, 1)]
            )
            continues = not user_starts(pair)[1]
            if continues and last == 0:
                held = pa.concat_tables([held, part])
                continue
        done = [held] if held is not None else []
        if last:
            done.append(part.slice(0, last))
        if done:
            ready = pa.concat_tables(done) if len(done) > 1 else done[0]
            yield from finish(ready.combine_chunks())
        held = part.slice(last)
    if held is not None and held.num_rows:
        yield from finish(held.combine_chunks())


def explain_sql(
    ts: TargetSet,
    source: Any,
    con: duckdb.DuckDBPyConnection | None,
    dialect: str,
    time_type: str | None = None,
    engine: str | None = None,
) -> str:
    """The native program (``engine="native"``, the default for DuckDB) or the portable
    statement (``engine="sql"``, the only one for Spark) for ``source`` (None: a table named
    ``transactions``, whose time column is of ``time_type``; by default an integer with
    ``time.unit``, else a naive TIMESTAMP)."""
    from ..compile.plan import TIME_KINDS
    from ..dialects import check_dialect

    check_dialect(dialect)  # (before "the native program runs on DuckDB only")
    if engine is None:
        engine = "sql" if dialect != "duckdb" else "native"
    engine = check_engine(engine)
    if engine == "native" and dialect != "duckdb":
        raise ArgumentError(
            f"engine: the native program runs on DuckDB only; for dialect {dialect!r} use "
            "engine 'sql' (the portable statement)"
        )

    def text(plan: Plan, source: Any) -> str:
        if engine == "native":
            return program_mod.build(plan, source).explain()
        return portable_sql(plan, source, dialect=dialect)

    if time_type is not None and time_type not in TIME_KINDS:
        raise ArgumentError(
            f"time_type: {time_type!r} is not allowed; expected one of: {', '.join(TIME_KINDS)}"
            f"{did_you_mean(time_type, TIME_KINDS)}"
        )
    if source is None:
        plan = build(ts, time_kind=time_type)
        rid = "" if ts.columns.id else "rowid"
        return text(plan, relation_source("transactions", rid_column=rid))
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
        if time_type is not None and time_type != plan.time_kind:  # (it was ignored unsaid)
            raise ArgumentError(
                f"time_type: {time_type!r} is not the input's: its time column "
                f"{ts.columns.time!r} is {plan.time_kind}; with an input, leave time_type out"
            )
        return text(plan, inp.source)
    finally:
        con.close()


__all__ = ["COUNTING", "Input", "connect", "execute", "execute_batches", "explain_sql", "resolve"]


# ---------------------------------------------------------------------------------------------
# pieces the torch datasets run (they compose no SQL of their own)


def run_prologue(
    prog: program_mod.Program, con: duckdb.DuckDBPyConnection, rows: int | None = None
) -> pa.Table:
    """The program's prologue: the events, sorted by user and event order, as Arrow
    (``rows``: how many are expected, when known; see :func:`events_table`)."""
    con.execute(f"SET TimeZone = {literal(prog.spec.timezone)}")
    return events_table(prog, con, rows)


def user_counts(
    ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection
) -> tuple[pa.Array, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Every user of the input, sorted as the prologue sorts them, and its events: rows with
    a null user or time are errors, or left out (``null_rows: drop``), as in
    :func:`~sqltargets.execute.source.check_rows` (one scan for both, when there are none).
    Third: for Parquet files whose positions are known from their footers, the rows of
    each file when every user's rows lie in one file (else None); fourth, then, the users
    of each file."""
    u, t = ident(ts.columns.user), ident(ts.columns.time)
    s = inp.source
    by_file = s.kind == "parquet" and bool(s.offsets)
    scan = inp.scan_sql()
    spans = ""
    if by_file:  # (rid_name is no input column's name)
        scan = f"(SELECT {s.columns}, f.file_index AS {s.rid_name} FROM {s.read} AS f)"
        spans = (
            f", min({s.rid_name}) = max({s.rid_name}) AS one_file, min({s.rid_name}) AS first_file"
        )
    ids = f", count(*) - count({ident(ts.columns.id)}) AS null_ids" if ts.columns.id else ""
    table = run_table(
        f"SELECT {u} AS u, count({t}) AS n, count(*) - count({t}) AS nulls{spans}{ids} "
        f"FROM {scan} GROUP BY {u} ORDER BY {u} NULLS LAST",
        con,
    )
    from .arrays import bools
    from .arrays import numpy as to_numpy

    users = table.column("u").combine_chunks()
    counts = to_numpy(table.column("n"), np.int64)
    if ids and (missing := int(to_numpy(table.column("null_ids"), np.int64).sum())):
        raise DataError(  # (a tensor has no null: they were row_id 0, like a real id 0)
            f"columns.id: {missing} rows have a null id in column {ts.columns.id!r}; the "
            "datasets' row_id tensor cannot hold a null: fill the ids, or leave columns.id out "
            "(row_id is then the input position)"
        )
    one_file = bools(table.column("one_file")) if by_file else None
    in_file = to_numpy(table.column("first_file"), np.int64) if by_file else None
    if users.null_count or to_numpy(table.column("nulls"), np.int64).any():
        check_rows(ts, inp, con)  # raises, or warns of the rows left out
        if users.null_count:  # sorted last: the rows of the null user
            users, counts = users.slice(0, len(users) - 1), counts[:-1]
            one_file = None if one_file is None else one_file[:-1]
            in_file = None if in_file is None else in_file[:-1]
        keep = counts > 0  # users whose every time is null have no events
        if not keep.all():
            users = users.take(from_numpy(np.flatnonzero(keep).astype(np.int64)))
            counts = counts[keep]
            one_file = None if one_file is None else one_file[keep]
            in_file = None if in_file is None else in_file[keep]
    per_file = inp.file_rows() if one_file is not None and one_file.all() else None
    if per_file is None or in_file is None:
        return users, counts, None, None
    return (
        users,
        counts,
        np.array(per_file, np.int64),
        np.bincount(in_file, minlength=len(per_file)),
    )


def materialize(ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection) -> Input:
    """A table or view of a connection as an Arrow input (with its row positions), for
    processes that cannot reach the connection."""
    if inp.arrow_table is not None or inp.source.kind != "relation":
        return inp
    columns = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {inp.source.relation}").fetchall()]
    rid = unused_name("_st_pos", columns)
    pos = f", {inp.source.rid_column} AS {ident(rid)}" if inp.source.rid else ""
    table = run_table(f"SELECT *{pos} FROM {inp.source.relation}", con)
    name = f"_sqltargets_input_{uuid.uuid4().hex[:12]}"
    src = relation_source(
        name, rid_column=rid if inp.source.rid else "", columns=table.column_names
    )
    schema = (
        table.schema.remove(table.schema.get_field_index(rid)) if inp.source.rid else table.schema
    )
    return Input(src, label=inp.label, arrow_table=table, name=name, arrow_schema=schema)
