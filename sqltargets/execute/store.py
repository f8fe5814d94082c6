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
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .files import parquet_files, replace_dir

MANIFEST = "sqltargets-store.json"
DATA = "data.parquet"
ROW_ID = "_sqltargets_row_id"
FORMAT = 1


def fingerprint(source: str | Path) -> dict[str, Any]:
    """What identifies the input's content cheaply: its files, sizes and mtimes."""
    _pattern, files, _ = parquet_files(str(source))
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
    return {"input": os.path.abspath(str(source)), "files": stats}


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a prepared store folder."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(store: str | Path) -> dict[str, Any]:
    """The store's manifest."""
    try:
        manifest = json.loads((Path(store) / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise SourceError(f"store {str(store)!r}: unreadable manifest: {e}") from e
    if manifest.get("format") != FORMAT:
        raise SourceError(
            f"store {str(store)!r} has format {manifest.get('format')}; prepare it again"
        )
    return manifest


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
    if not os.path.exists(old["input"]) and not any(c in old["input"] for c in "*?["):
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
    failed prepare leaves any earlier store untouched.
    """
    from ..compile.render import ident, literal
    from .connection import connect

    store = Path(store)
    if store.exists() and not is_store(store):
        raise SourceError(f"store {str(store)!r} exists and is not a sqltargets store")
    before = fingerprint(source)
    pattern, files, _multi = parquet_files(str(source))
    con = connect(threads=threads, memory_limit=memory_limit, temp_directory=temp_directory)
    parent = store.parent if str(store.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{store.name}.", dir=parent))
    try:
        cols = [
            r[0]
            for r in con.sql(
                f"DESCRIBE SELECT * FROM read_parquet({literal(os.path.abspath(pattern))})"
            ).fetchall()
        ]
        for c, role in ((user, "user"), (time, "time")):
            if c not in cols:
                raise SourceError(
                    f"prepare: the {role} column {c!r} is not in the input; columns are: {', '.join(cols)}"
                )
        if ROW_ID in cols:
            raise SourceError(f"prepare: the input already has a column named {ROW_ID!r}")
        src = literal(os.path.abspath(pattern))
        query = (
            "SELECT f.* EXCLUDE (filename, file_row_number), "
            f"CAST(o._off + f.file_row_number AS BIGINT) AS {ident(ROW_ID)} "
            f"FROM read_parquet({src}, filename = TRUE, file_row_number = TRUE) AS f "
            "JOIN (SELECT filename, SUM(n) OVER (ORDER BY filename ROWS BETWEEN UNBOUNDED "
            "PRECEDING AND CURRENT ROW) - n AS _off FROM (SELECT filename, COUNT(*) AS n "
            f"FROM read_parquet({src}, filename = TRUE) GROUP BY filename)) AS o "
            "ON f.filename = o.filename "
            f"ORDER BY {ident(user)}, {ident(time)}, {ident(ROW_ID)}"
        )
        con.execute(
            f"COPY ({query}) TO {literal(str(tmp / DATA))} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
        )
        rows = con.sql(f"SELECT count(*) FROM read_parquet({literal(str(tmp / DATA))})").fetchall()[
            0
        ][0]
        if fingerprint(source) != before:
            raise SourceError(f"prepare: input {str(source)!r} changed while it was being read")
        manifest = {
            "format": FORMAT,
            "fingerprint": before,
            "sorted_by": [user, time, ROW_ID],
            "rows": rows,
            "files": len(files),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        replace_dir(tmp, store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    return store
