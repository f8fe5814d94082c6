"""How SQL reads an input: :class:`Input` (a :class:`~sqltargets.compile.render.Source`, the
DuckDB types of its columns, how to register it), and :func:`parquet_input`, the one way
Parquet paths are read (their files listed once, their common column types).

Below both :mod:`~sqltargets.execute.source` (which resolves any source) and
:mod:`~sqltargets.execute.store` (which writes and reads prepared stores).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from ..compile.render import FLOORED_TIMESTAMPTZ, Source, ident, parquet_source
from ..errors import DataError, SkippedOutputsWarning
from .files import InputSchema, Listing, footer, input_schema, list_input

__all__ = ["Input", "duck_type", "parquet_input"]


@dataclass
class Input:
    """A resolved source: how SQL reads it and what its columns are."""

    source: Source
    label: str  # for messages
    arrow_table: pa.Table | None = None  # registered under `name` while in use
    name: str = ""
    types: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type
    arrow_schema: pa.Schema | None = None  # the input's own Arrow types, when known
    listing: Listing | None = None  # a Parquet input's files, in read order
    file_schema: InputSchema | None = None  # their common columns and types
    #: zoned timestamp columns -> the zone they were labelled with in the input a store was
    #: prepared from (the store's copy is labelled UTC)
    zones: dict[str, str] = field(default_factory=dict)
    #: timestamp columns -> their unit in that input, when not µs (the store's copy is µs,
    #: but for nanoseconds without a zone)
    units: dict[str, str] = field(default_factory=dict)

    def known_rows(self) -> int | None:
        """The input's rows when known without reading it (Parquet footers, an Arrow
        table's length), else None."""
        if self.arrow_table is not None:
            return self.arrow_table.num_rows
        if self.listing is not None:
            return sum(file_rows(self.listing.files))
        return None

    def file_rows(self) -> list[int] | None:
        """Each input file's rows (from its footer), in read order; None for other inputs."""
        return None if self.listing is None else file_rows(self.listing.files)

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
            if s.columns == "f.*":
                return s.read
            return f"(SELECT {s.columns} FROM {s.read} AS f)"
        return s.relation

    def positions_sql(self, name: str) -> str:
        """A FROM-clause item reading the input with its input position as column ``name``
        (files in name order, rows in file order; a table's rowid; a store's recorded
        positions): the same positions as ``row_id``. ``name`` must not be an input column."""
        from ..compile.render import render_source

        s = self.source
        drop = [s.rid_name]
        if s.kind == "parquet" and s.columns == "f.*":  # f.* carries read_parquet's columns
            if s.rid_column:
                drop.append(s.rid_column)
            else:
                drop += [s.filename] if s.multi else []
                drop.append("file_row_number")
        elif s.kind == "relation" and s.rid_column not in ("", "rowid"):
            drop.append(s.rid_column)
        return (
            f"(WITH {render_source(s)} "
            f"SELECT * EXCLUDE ({', '.join(drop)}), {s.rid_name} AS {ident(name)} FROM src)"
        )


ROW_NUMBER_NAMES = ("file_row_number",)


def parquet_input(path: str, *, absolute: bool = True, label: str | None = None) -> Input:
    """A Parquet file, folder or glob: its files listed once (:func:`files.list_input`), their
    common column types (:func:`files.input_schema`), read by DuckDB as an explicit list."""
    listing = list_input(path)
    if listing.skipped:  # (documented; said, since those rows are not in the targets)
        n = len(listing.skipped)
        warnings.warn(
            SkippedOutputsWarning(
                f"input {path!r}: {n} sqltargets output{'s' if n > 1 else ''} inside it "
                f"{'are' if n > 1 else 'is'} not read as input (e.g. {listing.skipped[0]!r}); "
                "name a file exactly to read it"
            ),
            stacklevel=2,
        )
    schema = input_schema(listing.files)
    clash = [n for n in schema.schema.names if n.lower() in ROW_NUMBER_NAMES]
    if clash:
        raise DataError(
            f"input column {clash[0]!r} has the name DuckDB gives each row's position in its "
            "file, which sqltargets needs for row_id; rename the column"
        )
    files = [os.path.abspath(f) if absolute else f for f in listing.files]
    casts = {c: duck_type(t) for c, t in schema.casts.items()}
    for f in schema.schema:  # zoned nanoseconds: as microseconds (see for_duckdb)
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns" and f.type.tz is not None:
            casts[f.name] = FLOORED_TIMESTAMPTZ
    rows = file_rows(listing.files) if listing.multi else None
    src = parquet_source(
        files, multi=listing.multi, rid=True, columns=schema.schema.names, casts=casts,
        union=not schema.same, explicit=not schema.same, rows=rows,
    )  # fmt: skip
    return Input(src, label=label or path, listing=listing, file_schema=schema)


def file_rows(files: tuple[str, ...] | list[str]) -> list[int]:
    """Each file's rows, from its (cached) footer."""
    return [footer(f).num_rows for f in files]


def duck_type(t: pa.DataType) -> str:
    """The DuckDB type name of a common column type (:func:`files.common_type`'s results).

    >>> duck_type(pa.decimal128(12, 3)), duck_type(pa.timestamp("ms", tz="UTC"))
    ('DECIMAL(12,3)', 'TIMESTAMPTZ')
    """
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        if t.tz is not None:  # (zoned nanoseconds: µs rounded down, see for_duckdb)
            return FLOORED_TIMESTAMPTZ if t.unit == "ns" else "TIMESTAMPTZ"
        return "TIMESTAMP_NS" if t.unit == "ns" else "TIMESTAMP"
    names = {
        pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER",
        pa.int64(): "BIGINT", pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT",
        pa.uint32(): "UINTEGER", pa.uint64(): "UBIGINT", pa.float64(): "DOUBLE",
        pa.string(): "VARCHAR", pa.binary(): "BLOB", pa.date32(): "DATE",
    }  # fmt: skip
    if t in names:
        return names[t]
    raise DataError(f"internal error: no DuckDB type for {t}; please report this")
