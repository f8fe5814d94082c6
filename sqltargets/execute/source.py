"""Input sources: resolve a path, Arrow data or a table name into an :class:`Input` (how the
SQL reads it, the DuckDB types of its columns), and check the data against the spec.

Arrow inputs are registered on the connection under a private name while in use.
"""

from __future__ import annotations

import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..compile.aggregates import reads
from ..compile.plan import Plan, build
from ..compile.render import (
    ROW_ID_COLUMN,
    Source,
    ident,
    literal,
    parquet_source,
    relation_source,
    shard_condition,
)
from ..compile.spec import TargetSet
from ..errors import DataError, DroppedRowsWarning, SourceError, did_you_mean
from . import store as store_mod
from .connection import connect
from .connection import message as _msg
from .files import GLOB_CHARS, parquet_files

__all__ = ["Input", "connect", "resolve"]

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


def is_numeric(duck_type: str) -> bool:
    """Whether a DuckDB type name is numeric."""
    return duck_type in INTEGER_TYPES or duck_type in FLOAT_TYPES or duck_type.startswith("DECIMAL")


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
