"""Input sources: resolve a path, Arrow data or a table name into an :class:`Input` (how the
SQL reads it, the DuckDB types of its columns), and check the data against the spec.

Arrow inputs are registered on the connection under a private name while in use.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..compile import where as where_mod
from ..compile.aggregates import reads
from ..compile.plan import Plan, build
from ..compile.render import (
    ident,
    literal,
    mcc_code_sql,
    relation_source,
    source_conditions,
    unused_name,
)
from ..compile.spec import TargetSet
from ..errors import (
    DataError,
    DroppedRowsWarning,
    MccCodesWarning,
    SourceError,
    SqlTargetsError,
    did_you_mean,
)
from . import store as store_mod
from .connection import connect
from .connection import message as _msg
from .files import Listing, cast_as_duckdb, has_glob, list_input, looks_like_path
from .inputs import Input, parquet_input

__all__ = ["Input", "connect", "resolve"]

INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip
FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
TIME_TYPES = {
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMPTZ_NS": "timestamptz",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "DATE": "date",
}


def is_numeric(duck_type: str) -> bool:
    """Whether a DuckDB type name is numeric."""
    return duck_type in INTEGER_TYPES or duck_type in FLOAT_TYPES or duck_type.startswith("DECIMAL")


#: DuckDB's names for a Parquet file's row position, which an input column would hide.
def resolve(
    source: Any,
    ts: TargetSet,
    con: duckdb.DuckDBPyConnection | None,
    *,
    absolute: bool = True,
) -> Input:
    """Resolve ``source`` (Parquet path/glob/folder, Arrow table or reader, pandas frame,
    or a table/view name in ``con``). A ``pathlib.Path`` is always a path; a string that
    names both a table of ``con`` and a path on disk is an error."""
    if isinstance(source, Path):
        return _path_input(os.fspath(source), absolute)
    if isinstance(source, str):
        if con is not None and _is_relation(source, con):
            if os.path.lexists(source) or (has_glob(source) and list_input_or_none(source)):
                raise SourceError(
                    f"input {source!r} is both a table in the connection and a path on disk; "
                    "pass pathlib.Path(...) for the files, or the table's schema-qualified "
                    "name (main.<table>)"
                )
            return _relation_input(source, ts, con)
        if con is not None and not looks_like_path(source):
            return _relation_input(source, ts, con)  # an error with a did-you-mean
        if not looks_like_path(source):
            # a bare name with no connection and no such file
            raise SourceError(
                f"input {source!r} does not exist (to read a table, pass connection=)"
            )
        return _path_input(source, absolute)
    source = as_arrow(source)
    if isinstance(source, pa.Table):
        schema = source.schema
        pos = unused_name("_st_pos", schema.names)
        table = for_duckdb(source)
        table = table.append_column(pos, pa.array(range(table.num_rows), type=pa.int64()))
        name = f"_sqltargets_input_{uuid.uuid4().hex[:12]}"
        src = relation_source(name, rid_column=pos, columns=table.column_names)
        return Input(src, label="Arrow table", arrow_table=table, name=name, arrow_schema=schema)
    raise SourceError(
        "input: expected a Parquet path, glob or folder, a pyarrow Table or RecordBatchReader, "
        f"or a table name with connection=; got {type(source).__name__}"
    )


def list_input_or_none(path: str) -> Listing | None:
    """:func:`files.list_input`, or None when the path lists nothing."""
    try:
        return list_input(path)
    except SourceError:
        return None


def _path_input(source: str, absolute: bool) -> Input:
    if store_mod.is_store(source):
        reason = store_mod.stale_reason(source)
        if reason:
            raise SourceError(
                f"store {source!r} is stale: {reason}; run 'sqltargets prepare' again"
            )
        return store_mod.store_input(source, absolute=absolute)
    return parquet_input(source, absolute=absolute)


def _find_relation(
    name: str, con: duckdb.DuckDBPyConnection
) -> tuple[str, str, str, str, tuple[str, str]] | None:
    """The (catalog, schema, table, type) a table or view name means in ``con``, and the
    current (catalog, schema) it was looked up from: ``t`` in the
    current database and schema, ``s.t`` in schema s of the current database or else in
    the default schema of attached database s, ``d.s.t`` exactly (a name is looked up in
    one place: a table of that name elsewhere, in another schema or an attached database,
    was taken for it). None when there is none."""
    parts = name.split(".")
    try:
        here = con.execute("SELECT current_database(), current_schema()").fetchall()[0]
        if len(parts) == 1:
            places = [(here[0], here[1], parts[0])]
        elif len(parts) == 2:
            places = [(here[0], parts[0], parts[1]), (parts[0], "main", parts[1])]
        elif len(parts) == 3:
            places = [(parts[0], parts[1], parts[2])]
        else:
            return None
        for catalog, schema, table in places:
            rows = con.execute(
                "SELECT table_catalog, table_schema, table_name, table_type "
                "FROM information_schema.tables "
                "WHERE table_catalog = ? AND table_schema = ? AND table_name = ?",
                [catalog, schema, table],
            ).fetchall()
            if rows:
                return (*rows[0], (here[0], here[1]))
    except duckdb.Error as e:
        raise SourceError(f"input {name!r}: the connection cannot be used: {_msg(e)}") from e
    return None


def _is_relation(name: str, con: duckdb.DuckDBPyConnection) -> bool:
    return _find_relation(name, con) is not None


def for_duckdb(table: pa.Table) -> pa.Table:
    """An Arrow table with the types DuckDB cannot take from Arrow made readable, as DuckDB
    reads the same types from Parquet: half floats as float32, 256-bit decimals of up to 38
    digits as 128-bit ones and longer ones as double, string and binary views as plain."""
    changed = False
    columns = []
    for f, col in zip(table.schema, table.columns):
        t = f.type
        want = t
        if pa.types.is_float16(t):
            want = pa.float32()
        elif pa.types.is_decimal(t) and t.bit_width == 256:
            want = pa.decimal128(t.precision, t.scale) if t.precision <= 38 else pa.float64()
        elif pa.types.is_string_view(t):
            want = pa.string()
        elif pa.types.is_binary_view(t):
            want = pa.binary()
        elif pa.types.is_timestamp(t) and t.unit == "ns" and t.tz is not None:
            # DuckDB's TIMESTAMPTZ_NS has few functions: microseconds, rounded down as
            # DuckDB casts them (and as the reference reads nanoseconds)
            col = _floor_to_us(col, t.tz)
            changed = True
        if want != t:
            try:
                col = col.cast(want, safe=not pa.types.is_floating(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise DataError(f"input column {f.name!r} of type {t} cannot be read: {e}") from e
            changed = True
        columns.append(col)
    if not changed:
        return table
    return pa.Table.from_arrays(columns, names=table.column_names)


def _floor_to_us(col: pa.ChunkedArray | pa.Array, tz: str) -> pa.Array:
    import numpy as np

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    ns = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    us = np.floor_divide(ns, 1000)
    mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    return pa.array(us, pa.int64(), mask=mask).cast(pa.timestamp("us", tz=tz))


def align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` (read by pyarrow) with each column cast to the type DuckDB reads it as
    (``schema``), where the two differ and the cast keeps every value; so that the reference
    and ``verify`` see the values the run sees (a Parquet duration is an integer to DuckDB,
    a categorical a string, a 40-digit decimal a double)."""
    columns = []
    for f, col in zip(table.schema, table.columns):
        if f.name in schema.names:
            want = schema.field(f.name).type
            zoned_ns = pa.types.is_timestamp(f.type) and f.type.unit == "ns" and f.type.tz
            if zoned_ns and pa.types.is_timestamp(want) and want.unit != "ns":
                # a zoned nanosecond column: read as µs rounded down (FLOORED_TIMESTAMPTZ)
                columns.append(_floor_to_us(col, f.type.tz))
                continue
            if _kind(want) != _kind(f.type):
                try:
                    col = cast_as_duckdb(col, want)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    if pa.types.is_dictionary(f.type):
                        col = col.cast(f.type.value_type)
            columns.append(col)
        else:
            columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _kind(t: pa.DataType) -> str:
    """A type's family, where a difference in family changes values (a duration read as an
    integer), and a difference within it does not (a time zone's name, a string's width)."""
    for name, test in (
        ("timestamp", pa.types.is_timestamp),
        ("string", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
        ("binary", lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x)),
        ("list", lambda x: pa.types.is_list(x) or pa.types.is_large_list(x)),
        ("struct", pa.types.is_struct),
        ("map", pa.types.is_map),
    ):
        if test(t):
            return name
    return str(t)


def duckdb_schema(inp: Input, con: duckdb.DuckDBPyConnection) -> pa.Schema:
    """The Arrow schema of the input as DuckDB reads it."""
    inp.register(con)
    try:
        return con.sql(f"SELECT * FROM {inp.scan_sql()} LIMIT 0").to_arrow_table().schema
    except duckdb.Error as e:
        raise SourceError(f"cannot read input {inp.label!r}: {_msg(e)}") from e
    finally:
        inp.unregister(con)


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


def _relation_input(name: str, ts: TargetSet | None, con: duckdb.DuckDBPyConnection) -> Input:
    found = _find_relation(name, con)
    if found is None:
        known = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_schema = current_schema()"
            ).fetchall()
        ]
        raise SourceError(
            f"input {name!r} is neither a file nor a table or view in the connection"
            f"{did_you_mean(name.split('.')[-1], known)} (a temporary table, or an object "
            "registered with con.register, is seen by its own connection only, and sqltargets "
            "reads through a cursor of it: make it a table or a view)"
        )
    catalog, schema, table, kind, here = found
    is_view = kind == "VIEW"
    if is_view and ts is not None and ts.columns.id is None:
        raise SourceError(
            f"input {name!r} is a view, whose row order is not defined; set columns.id "
            "(a unique transaction id) in the spec, or pass a table"
        )
    rid_column = "" if is_view else "rowid"
    cols = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [catalog, schema, table],
        ).fetchall()
    ]
    if rid_column and "rowid" in {c.lower() for c in cols}:
        raise DataError(
            f"input {name!r} has a column named 'rowid', which hides the table's row "
            "positions that sqltargets needs for row_id; rename the column"
        )
    src = relation_source(
        table,
        schema=None if (catalog, schema) == here else schema,
        catalog=None if catalog == here[0] else catalog,
        rid_column=rid_column,
        columns=cols,
    )
    return Input(src, label=name)


# ---------------------------------------------------------------------------------------------
# checks against the data


def describe(inp: Input, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column → DuckDB type name of the input."""
    try:
        rows = con.sql(f"DESCRIBE SELECT * FROM {inp.scan_sql()}").fetchall()
    except duckdb.Error as e:
        raise SourceError(f"cannot read input {inp.label!r}: {_msg(e)}") from e
    internal = {inp.source.rid_column} if inp.source.rid_column != "rowid" else set()
    inp.types = {r[0]: r[1] for r in rows if ident(r[0]) not in internal}
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
    user_type = need(c.user, "columns.user")
    if user_type not in INTEGER_TYPES and user_type != "VARCHAR":
        raise DataError(
            f"columns.user: column {c.user!r} has type {user_type}; expected an integer or a "
            "string (a user id)"
        )
    time_type = need(c.time, "columns.time")
    need(c.amount, "columns.amount")
    mcc_type = need(c.mcc, "columns.mcc")
    if c.id:
        id_type = need(c.id, "columns.id")
        if id_type not in INTEGER_TYPES and id_type != "VARCHAR":
            raise DataError(
                f"columns.id: column {c.id!r} has type {id_type}; expected an integer or a "
                "string (a transaction id)"
            )
    if mcc_type not in INTEGER_TYPES and mcc_type != "VARCHAR":
        raise DataError(
            f"columns.mcc: column {c.mcc!r} has type {mcc_type}; expected an integer or a "
            "string of digits"
        )
    for i, t in enumerate(ts.targets):
        vtype = need(t.value, f"targets[{i}].value")
        if reads(t.agg, t.value == c.mcc) == "number" and not is_numeric(vtype):
            raise DataError(
                f"targets[{i}].value: column {t.value!r} has type {vtype}; agg {t.agg!r} needs "
                "a numeric column (count and count_distinct take any type; first, last and "
                "mode also the MCC column)"
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


def check_case(ts: TargetSet, inp: Input) -> None:
    """Columns whose names differ only in case (Arrow and Parquet allow them; DuckDB's names
    are case-insensitive): refused when the spec reads one (TargetSet.check_column_case)."""
    if inp.arrow_schema is not None:
        ts.check_column_case(inp.arrow_schema.names)
    elif inp.file_schema is not None:
        ts.check_column_case(inp.file_schema.schema.names)


def _wheres(ts: TargetSet) -> list[tuple[int, str]]:
    """Each distinct ``where`` of the spec, with the index of the first target that has it."""
    first = {t.where: i for i, t in reversed(list(enumerate(ts.targets))) if t.where}
    return sorted((i, text) for text, i in first.items())


def _failing_where(
    wheres: list[tuple[int, str]], run: Callable[[list[str]], None], said: str
) -> DataError | None:
    """The first ``where`` that ``run`` (a DuckDB query over those texts) fails on, as an
    error naming its target and ``said`` of it; None when each runs alone."""
    for i, text in wheres:
        try:
            run([text])
        except duckdb.ConnectionException:  # (a closed connection: no where's fault)
            raise
        except duckdb.Error as e:
            return DataError(f"targets[{i}].where: {text!r} {said}: {_msg(e)}")
    return None


def check_wheres(ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection) -> None:
    """Evaluate every target's ``where`` on the input's first row: a comparison of a string
    column with a number, a function of the wrong type (binder errors), a literal that does
    not convert to its column's type (``int_col = 'abc'``, an error only when evaluated) is
    an error naming the target's field and its expression, not a DuckDB error in the middle
    of a run. One query for all of them (a few ms); each on its own only when that fails.
    (Values that fail on later rows only are found by the run: :func:`where_failure`.)"""
    wheres = _wheres(ts)
    if not wheres:
        return

    def bind(texts: list[str]) -> None:
        items = ", ".join(f"({where_mod.to_sql(where_mod.parse(w))})" for w in texts)
        con.sql(f"SELECT {items} FROM {inp.scan_sql()} LIMIT 1").fetchall()

    try:
        bind([text for _, text in wheres])
    except duckdb.Error as e:
        blame = _failing_where(wheres, bind, "cannot be evaluated on the input")
        if blame is not None:
            raise blame from e
        raise


def where_failure(
    ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection, e: SqlTargetsError
) -> SqlTargetsError:
    """DuckDB's error ``e`` from a run, blamed on the target whose ``where`` fails on some
    row (``m % i`` where a later row's ``i`` is 0: :func:`check_wheres` reads only the
    first row), as a :class:`DataError` naming it; else ``e``. Each ``where`` is evaluated
    on every row, one at a time (on this error path only)."""
    wheres = _wheres(ts)
    if type(e) is not SqlTargetsError or not wheres:
        return e

    def count(texts: list[str]) -> None:
        sql = where_mod.to_sql(where_mod.parse(texts[0]))
        con.sql(f"SELECT sum(CASE WHEN ({sql}) THEN 1 ELSE 0 END) FROM {inp.scan_sql()}").fetchall()

    try:
        return _failing_where(wheres, count, "fails on a row of the input") or e
    except duckdb.ConnectionException:  # (closed after the prologue: not a where's)
        return e


def numeric_columns(types: dict[str, str]) -> dict[str, bool]:
    """Column → whether it is numeric."""
    return {k: is_numeric(v) for k, v in types.items()}


def check_rows(ts: TargetSet, inp: Input, con: duckdb.DuckDBPyConnection) -> int:
    """Count input rows (of the shard); null users or times are errors with a count and an
    example, or left out and counted with ``null_rows: drop``."""
    u, t = ident(ts.columns.user), ident(ts.columns.time)
    key = ident(ts.columns.id) if ts.columns.id else None
    src = inp.scan_sql()
    keep = source_conditions(ts.columns.user, inp.source)
    if keep:
        src = f"(SELECT * FROM {src} WHERE {' AND '.join(keep)})"
    try:
        row = con.sql(
            f"SELECT count(*), count(*) FILTER (WHERE {u} IS NULL), "
            f"count(*) FILTER (WHERE {t} IS NULL), "
            f"count(*) FILTER (WHERE {u} IS NULL OR {t} IS NULL) FROM {src}"
        ).fetchall()[0]
    except duckdb.Error as e:  # (a damaged file: its pages are read here first)
        raise SourceError(f"cannot read input {inp.label!r}: {_msg(e)}") from e
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
    partial = inp.file_schema.partial if inp.file_schema is not None else {}
    for col in ts.input_columns():
        if col in partial:
            raise DataError(
                f"column {col!r}, which the spec reads, is missing from input file "
                f"{partial[col]!r} (a column must be in every file of the input)"
            )
    check_case(ts, inp)
    types = describe(inp, con)
    time_kind = check_columns(ts, types)
    check_wheres(ts, inp, con)
    plan = build(
        ts,
        time_kind=time_kind,
        numeric=numeric_columns(types),
        time_type=types.get(ts.columns.time),
    )
    check_mcc_codes(plan, inp, con)
    return plan


#: Non-null values of a string MCC column that :func:`check_mcc_codes` reads (the first).
MCC_SAMPLE = 10_000


def check_mcc_codes(plan: Plan, inp: Input, con: duckdb.DuckDBPyConnection) -> None:
    """Warn when a string MCC column that the targets read as codes holds no code among its
    first :data:`MCC_SAMPLE` values (``'5411.0'``, as a float column written as text gives,
    is no code): every MCC filter and slot would match nothing, without a word."""
    uses = plan.slots or any(f.mcc is not None for f in plan.filters)
    if not plan.mcc_text or not (uses or any(v.kind == "code" for v in plan.values)):
        return
    m = ident(plan.spec.columns.mcc)
    try:
        n, codes, example = con.sql(
            f"SELECT count(*), count({mcc_code_sql(m, True)}), any_value({m}) FROM "
            f"(SELECT {m} FROM {inp.scan_sql()} WHERE {m} IS NOT NULL LIMIT {MCC_SAMPLE})"
        ).fetchall()[0]
    except duckdb.Error:  # (an unreadable input: the run says so)
        return
    if n and not codes:
        warnings.warn(
            f"columns.mcc: none of the first {n:,} values of column {plan.spec.columns.mcc!r} "
            f"is an MCC code (a string of digits), such as {example!r}: every mcc filter "
            "matches no row, and MCCs read as codes are null",
            MccCodesWarning,
            stacklevel=2,
        )
