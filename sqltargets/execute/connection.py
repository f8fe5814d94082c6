"""DuckDB connections opened by sqltargets, and DuckDB's error messages in one line."""

from __future__ import annotations

from typing import Any

import duckdb

from ..errors import SqlTargetsError


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
        raise SqlTargetsError(f"cannot open DuckDB with settings {config}: {message(e)}") from e
    con.execute("SET enable_progress_bar = false")
    return con


def message(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
