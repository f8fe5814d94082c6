"""Prepared stores: a sorted copy of the input that later runs reuse.

Data scientists regenerate targets many times over the same data while tuning specs. A
store holds the input once more, sorted by user and time, with each row's input position
(``row_id``) as a column, so that later runs skip the per-file offset join and DuckDB's
window sorts start from sorted runs. A manifest records the input's files (name, size,
modification time); a run through the store notices when the input changed.

>>> import pyarrow as pa, tempfile, pathlib, sqltargets
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> import pyarrow.parquet as pq
>>> pq.write_table(pa.table({"u": [2, 1], "t": pa.array([5, 3], pa.int64()),
...                          "a": [1.0, 2.0], "m": [1, 1]}), d / "in.parquet")
>>> store = prepare(d / "in.parquet", d / "store", user="u", time="t")
>>> is_store(store), is_fresh(store, d / "in.parquet")
(True, True)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import DataError, SourceError
from .files import (
    STORE_MANIFEST,
    check_output,
    footer,
    give_umask,
    has_glob,
    input_paths,
    list_input,
    remove,
    replace_dir,
    temp_dir,
)

MANIFEST = STORE_MANIFEST
DATA = "data.parquet"
#: The input-position column of stores written before the name was chosen per input.
ROW_ID = "_sqltargets_row_id"
FORMAT = 1


def fingerprint(source: str | Path) -> dict[str, Any]:
    """What identifies the input's content cheaply: its files (the one listing of
    :func:`files.list_input`), sizes and mtimes."""
    stats = []
    for f in list_input(str(source)).files:
        try:
            st = os.stat(f)
        except OSError as e:
            raise SourceError(f"input file {f!r} cannot be read: {e.strerror or e}") from e
        stats.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
    return {"input": os.path.abspath(str(source)), "files": stats}


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a prepared store folder."""
    try:
        return (Path(path) / MANIFEST).is_file()
    except (OSError, ValueError):
        return False


def read_manifest(store: str | Path) -> dict[str, Any]:
    """The store's manifest."""
    try:
        manifest = json.loads((Path(store) / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise SourceError(f"store {str(store)!r}: unreadable manifest: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SourceError(
            f"store {str(store)!r} has format "
            f"{manifest.get('format') if isinstance(manifest, dict) else None}; prepare it again"
        )
    return manifest


def row_id_column(manifest: dict[str, Any]) -> str:
    """The store's input-position column."""
    return str(manifest.get("row_id_column", ROW_ID))


def store_input(store: str | Path, *, absolute: bool = True) -> Any:
    """An :class:`~sqltargets.execute.source.Input` reading the store's sorted copy, with its
    recorded input positions (the store's own position column is not an input column)."""
    from ..compile.render import parquet_source
    from .inputs import Input

    manifest = read_manifest(store)
    rid = row_id_column(manifest)
    data = os.path.join(os.fspath(store), DATA)
    schema = footer(data).schema.to_arrow_schema()
    columns = [n for n in schema.names if n != rid]
    src = parquet_source(
        os.path.abspath(data) if absolute else data, multi=False, rid=True, rid_column=rid,
        columns=columns, explicit=True,
    )  # fmt: skip
    zones, units = manifest.get("zones"), manifest.get("time_units")
    return Input(
        src,
        label=str(store),
        zones=dict(zones) if isinstance(zones, dict) else {},
        units=dict(units) if isinstance(units, dict) else {},
    )


def read_store(store: str | Path) -> Any:
    """The store's rows as an Arrow table in input order, without its position column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    manifest = read_manifest(store)
    rid = row_id_column(manifest)
    data = os.path.join(os.fspath(store), DATA)
    try:
        table = pq.read_table(data)
    except (OSError, ValueError) as e:
        raise SourceError(f"store {str(store)!r} cannot be read: {e}") from e
    order = pc.sort_indices(table.column(rid))
    table = table.take(order).drop_columns([rid])
    zones, units = manifest.get("zones"), manifest.get("time_units")
    zones = zones if isinstance(zones, dict) else {}
    units = units if isinstance(units, dict) else {}
    for name in {*zones, *units}:
        i = table.schema.get_field_index(name)
        t = table.schema.field(i).type if i >= 0 else None
        if t is not None and pa.types.is_timestamp(t):
            want = pa.timestamp(units.get(name, t.unit), zones.get(name, t.tz))
            try:  # (the input's unit holds the copy's values: they came from it)
                table = table.set_column(i, name, table.column(i).cast(want))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    return table


def is_fresh(store: str | Path, source: str | Path | None = None) -> bool:
    """Whether the store still matches its input (or ``source``)."""
    if not is_store(store):
        return False
    manifest = read_manifest(store)
    source = source if source is not None else manifest["fingerprint"]["input"]
    try:
        return bool(fingerprint(source) == manifest["fingerprint"])
    except SourceError:
        return False


def stale_reason(store: str | Path) -> str | None:
    """Why a store no longer matches its input, or None when it does (or the input is gone)."""
    manifest = read_manifest(store)
    old = manifest["fingerprint"]
    if not os.path.exists(old["input"]) and not has_glob(old["input"]):
        return None
    try:
        new = fingerprint(old["input"])
    except SourceError:
        return None
    if new == old:
        return None
    before = {f[0]: f[1:] for f in old["files"]}
    after = {f[0]: f[1:] for f in new["files"]}
    for name in sorted(set(before) | set(after)):
        if name not in after:
            return f"{name} was removed"
        if name not in before:
            return f"{name} was added"
        if before[name] != after[name]:
            return f"{name} was modified"
    return "the input changed"


def _check_role_types(schema: Any, user: str, time: str) -> None:
    """The store sorts by ``user`` and ``time``: refuse the types no spec could read them
    as (TARGETS.md: a user is an integer or a string; a time a timestamp, a date or an
    integer), before the sort is paid for."""
    import pyarrow as pa

    def kind(name: str) -> Any:
        t = schema.field(name).type
        return t.value_type if pa.types.is_dictionary(t) else t

    u, t = kind(user), kind(time)
    if not (
        pa.types.is_integer(u)
        or pa.types.is_string(u)
        or pa.types.is_large_string(u)
        or pa.types.is_string_view(u)
    ):
        raise DataError(
            f"prepare: the user column {user!r} has type {u}; expected an integer or a string"
        )
    if not (pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_integer(t)):
        raise DataError(
            f"prepare: the time column {time!r} has type {t}; expected a timestamp, a date "
            "or an integer"
        )


def prepare(
    source: str | Path,
    store: str | Path,
    *,
    user: str,
    time: str,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> Path:
    """Write a store of the Parquet ``source`` sorted by ``user``, ``time`` and input position.

    The store is written to a temporary folder beside ``store`` and renamed into place, so a
    failed prepare leaves any earlier store untouched. A store may not be, contain or lie
    inside its input (nor replace a folder that is not a store).
    """
    import duckdb
    import pyarrow as pa

    from ..compile.render import ident, literal, unused_name
    from ..compile.spec import case_twins
    from .connection import connect, failure
    from .inputs import parquet_input

    if not isinstance(source, (str, Path)):
        raise SourceError("prepare: the input must be a Parquet path (file, folder or glob)")
    if is_store(source):
        raise SourceError(f"prepare: input {str(source)!r} is a store already")
    store = check_output(
        store,
        inputs=input_paths(source),
        folder=True,
        what="store",
        kinds=("store",),
        temp_directory=temp_directory,
    )
    before = fingerprint(source)
    inp = parquet_input(str(source))
    assert inp.file_schema is not None and inp.listing is not None
    cols = inp.file_schema.schema.names
    same = next(iter(case_twins(cols).values()), None)
    if same:  # (the store's copy would hold DuckDB's renamed 'A_1' for the second)
        raise DataError(
            f"prepare: the input has columns {' and '.join(map(repr, same))}, whose names "
            "differ only in case; DuckDB's names are case-insensitive, so it cannot tell "
            "them apart: rename one"
        )
    for c, role in ((user, "user"), (time, "time")):
        if c not in cols:
            raise SourceError(
                f"prepare: the {role} column {c!r} is not in the input; columns are: "
                f"{', '.join(cols)}"
            )
    _check_role_types(inp.file_schema.schema, user, time)
    rid = unused_name(ROW_ID, cols)
    con = connect(threads=threads, memory_limit=memory_limit, temp_directory=temp_directory)
    tmp = temp_dir(store)
    try:
        query = (
            f"SELECT * FROM {inp.positions_sql(rid)} "
            f"ORDER BY {ident(user)}, {ident(time)}, {ident(rid)}"
        )
        try:
            con.execute(
                f"COPY ({query}) TO {literal(str(tmp / DATA))} "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
            )
            rows = con.sql(
                f"SELECT count(*) FROM read_parquet({literal(str(tmp / DATA))})"
            ).fetchall()[0][0]
        except duckdb.Error as e:
            raise failure(e, "prepare: DuckDB failed", SourceError) from e
        if fingerprint(source) != before:
            raise SourceError(f"prepare: input {str(source)!r} changed while it was being read")
        manifest = {
            "format": FORMAT,
            "fingerprint": before,
            "sorted_by": [user, time, rid],
            "row_id_column": rid,
            "rows": rows,
            "files": len(inp.listing.files),
            # the zones zoned timestamps are labelled with in the input ("as input" in the
            # output; the store's copy is labelled UTC)
            "zones": {
                f.name: f.type.tz
                for f in inp.file_schema.schema
                if pa.types.is_timestamp(f.type) and f.type.tz is not None
            },
            # and the units of timestamps the copy holds in µs (DuckDB writes ms, s and
            # zoned ns as µs): the output's time column gets the input's type back
            "time_units": {
                f.name: f.type.unit
                for f in inp.file_schema.schema
                if pa.types.is_timestamp(f.type) and f.type.unit != "us"
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        give_umask(tmp / DATA)
        give_umask(tmp / MANIFEST)
        replace_dir(tmp, store, ("store",))
    except BaseException:
        remove(tmp)
        raise
    finally:
        con.close()
    return store
