"""DuckDB connections opened by sqltargets, and DuckDB's error messages in one line."""

from __future__ import annotations

import os
import threading
from typing import Any

import duckdb

from ..errors import ArgumentError, DataError, SqlTargetsError, first_line, short

#: More DuckDB threads than this is a mistake (each thread is an OS thread).
MAX_THREADS = 1024


def connect(
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with the given resource settings."""
    config: dict[str, Any] = {}
    if threads is not None:
        if (
            isinstance(threads, bool)
            or not isinstance(threads, int)
            or not 1 <= threads <= MAX_THREADS
        ):
            raise ArgumentError(
                f"threads: {short(threads)} is not allowed; expected a whole number from 1 to "
                f"{MAX_THREADS}"
            )
        config["threads"] = threads
    if memory_limit is not None:
        if not isinstance(memory_limit, str) or not memory_limit.strip():
            raise ArgumentError(
                f"memory_limit: {short(memory_limit)} is not allowed; expected a size such as "
                "'4GB' or '512MB'"
            )
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        if not isinstance(temp_directory, (str, os.PathLike)) or not os.fspath(temp_directory):
            raise ArgumentError(
                f"temp_directory: {short(temp_directory)} is not allowed; expected a folder path"
            )
        if os.path.lexists(temp_directory) and not os.path.isdir(temp_directory):
            raise ArgumentError(  # (DuckDB said so only when it first spilled)
                f"temp_directory: {short(os.fspath(temp_directory))} is a file; expected a "
                "folder (DuckDB makes it when it first spills)"
            )
        config["temp_directory"] = os.fspath(temp_directory)
    if memory_limit is not None:
        # lets DuckDB spill more freely; results keep their ORDER BY order regardless
        config["preserve_insertion_order"] = False
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as e:
        said = message(e)
        if memory_limit is not None and "memory" in said.lower():
            raise ArgumentError(
                f"memory_limit: {short(memory_limit)} is not allowed; expected a size such as "
                f"'4GB' or '512MB' (DuckDB: {said})"
            ) from e
        raise ArgumentError(f"cannot open DuckDB with settings {config}: {said}") from e
    con.execute("SET enable_progress_bar = false")
    return con


#: Inputs up to this many bytes run on a cursor of one shared database (:func:`light`).
LIGHT_BYTES = 16 << 20

#: The shared databases (by their DuckDB threads), opened in this process id.
_light: dict[int | None, duckdb.DuckDBPyConnection] = {}
_light_pid = os.getpid()
_light_lock = threading.Lock()
_inherited: list[duckdb.DuckDBPyConnection] = []


def light(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A new cursor on this process's shared in-memory database with ``threads`` DuckDB
    threads, for small work (a small Arrow input, DESCRIBE): opening a database costs 35-50
    ms here, a cursor microseconds, which was half of ``generate``'s time on a small table.
    A cursor is a connection of its own (its session settings, registered tables and
    temporary tables are its own). Large inputs get a database of their own
    (:func:`connect`), closed as soon as the kernels no longer need it, which gives DuckDB's
    cached memory back. DuckDB does not survive a fork: the shared databases are closed
    before each fork (:func:`_close_light`), and a child opens its own."""
    global _light_pid
    with _light_lock:
        if _light_pid != os.getpid():  # (forked without the hook: never let go of the
            _inherited.extend(_light.values())  # parent's, whose threads are not here)
            _light.clear()
            _light_pid = os.getpid()
        if threads not in _light:
            _light[threads] = connect(threads=threads)
        return _light[threads].cursor()


def _close_light() -> None:
    """Close the shared databases before a fork: a child that inherited one open hung when it
    let go of it (DuckDB joins threads the child does not have). A cursor still in use
    keeps its database open, as any connection of the caller's would be."""
    with _light_lock:
        if _light_pid == os.getpid():
            for con in _light.values():
                con.close()
        _light.clear()


os.register_at_fork(before=_close_light)


def small(source: object) -> bool:
    """Whether ``source`` is an in-memory Arrow input of at most :data:`LIGHT_BYTES`."""
    import pyarrow as pa

    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return source.nbytes <= LIGHT_BYTES
    return False


message = first_line  # (its name here, for the modules that quote DuckDB's errors)

#: How the errors the statements raise on purpose (DuckDB's ``error()``) begin, after
#: DuckDB's own "Invalid Input Error: ".
RAISED = ("time.unit: ",)


def failure(
    e: BaseException, what: str = "DuckDB failed", kind: type[SqlTargetsError] = SqlTargetsError
) -> SqlTargetsError:
    """The error to raise for DuckDB's ``e``: one the statement raised on purpose, as a
    :class:`DataError` in its own words; any other as a ``kind`` saying ``what: <DuckDB's
    first line>``.

    >>> import duckdb
    >>> try:
    ...     duckdb.sql("SELECT error('time.unit: column ''t'' holds 9')").fetchall()
    ... except duckdb.Error as e:
    ...     print(repr(failure(e)))
    DataError("time.unit: column 't' holds 9")
    """
    text = message(e)
    head = "Invalid Input Error: "
    if text.startswith(head) and text[len(head) :].startswith(RAISED):
        return DataError(text[len(head) :])
    return kind(f"{what}: {text}")
