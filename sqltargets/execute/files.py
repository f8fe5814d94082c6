"""Files: the one listing of an input's Parquet files, the common schema of those files,
and the safe placement of outputs.

Every reader of a Parquet input (the run, ``verify``, the reference, stores, shards and the
torch datasets) takes its files from :func:`list_input`, and DuckDB gets them as an explicit
list (:func:`duckdb_list`): no user path is ever globbed by DuckDB, and no folder name is read
as a Hive partition.

The rules (also in the README, "Errors and edge cases"):

- A path that exists is taken literally, whatever characters it holds (``tx[1].parquet``,
  ``exports [2024]``). A path that does not exist and holds ``*``, ``?`` or ``[`` is a glob,
  expanded here: ``*`` and ``?`` within one name, ``[...]`` a character class, ``**`` any
  number of folders.
- A folder is walked recursively for ``*.parquet`` files, entries in name order, depth first;
  a folder whose name ends in ``.parquet`` (as Spark writes them) is a folder. A glob's
  matches are walked the same way.
- Names that start with ``.`` or ``_`` are hidden (``.staging``, ``_SUCCESS``, ``_temporary``,
  as pyarrow, Spark and Hive skip them) and are skipped below the path given; a glob
  matches them only where its own name pattern starts with that character. A file named
  exactly is always read.
- Symbolic links are followed. A folder or file reached a second time (a loop, or two links
  to one place) is skipped: each is read once, at its first path in the order below. A
  broken link named ``*.parquet`` is an error.
- sqltargets' own outputs found inside are skipped: prepared stores, sharded outputs and
  Parquet files that sqltargets wrote (they carry ``sqltargets`` metadata).
- Order: files sorted by their path as a string (code points), which is the order of the
  input positions (``row_id``): files in name order, rows in file order.

>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b.parquet", "a/x.parquet", ".hidden/y.parquet", "_SUCCESS", "tx[1].parquet"):
...     (d / name).parent.mkdir(parents=True, exist_ok=True)
...     pq.write_table(pa.table({"x": [1]}), d / name)
>>> [str(pathlib.Path(f).relative_to(d)) for f in list_input(str(d)).files]
['a/x.parquet', 'b.parquet', 'tx[1].parquet']
>>> list_input(str(d / "tx[1].parquet")).files == (str(d / "tx[1].parquet"),)
True
>>> duckdb_path("/data/tx[1]*.parquet")
'/data/tx[[]1][*].parquet'
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DataError, OutputError, SourceError
from ..errors import first_line as _first_line

GLOB_CHARS = frozenset("*?[")
HIDDEN_PREFIXES = (".", "_")
#: The manifest of a prepared store (the folder is a store when it holds this file).
STORE_MANIFEST = "sqltargets-store.json"
#: The marker in folders sqltargets writes (sharded outputs, demo data): what and who.
MARKER = "_sqltargets.json"
#: Key of the Parquet key-value metadata on every file sqltargets writes as output.
OUTPUT_KEY = b"sqltargets"
#: Key of the Parquet key-value metadata on every Parquet file sqltargets writes (targets,
#: shards, demo data): the file's rows, columns and row groups as written. Schema metadata
#: survives pyarrow's filter, select, concat and append_column, so a user's file made from
#: an output still carries OUTPUT_KEY; this key tells it from the file sqltargets wrote.
FILE_KEY = b"sqltargets.file"
#: Rows per row group at most, in files sqltargets writes (below every writer's own cap).
MAX_ROW_GROUP = 1 << 20
#: Largest expanded glob or folder listing we follow before calling it a mistake.
MAX_FILES = 1_000_000


def has_glob(path: str) -> bool:
    """Whether ``path`` holds glob characters."""
    return bool(GLOB_CHARS & set(path))


def looks_like_path(source: str) -> bool:
    """A string is a path (not a table name) when it has a slash, a glob, a .parquet
    suffix, or exists on disk."""
    return (
        "/" in source
        or os.sep in source
        or has_glob(source)
        or source.lower().endswith(".parquet")
        or os.path.lexists(source)
    )


def is_hidden(name: str) -> bool:
    """Names starting with ``.`` or ``_`` are hidden from listings."""
    return name.startswith(HIDDEN_PREFIXES)


@dataclass(frozen=True)
class Listing:
    """The Parquet files of an input, in read order."""

    path: str  # as given
    kind: str  # "file" | "folder" | "glob"
    files: tuple[str, ...]  # each the given path joined with the file's relative path
    folders: tuple[str, ...] = ()  # real paths of the folders walked
    skipped: tuple[str, ...] = field(default=(), compare=False)  # sqltargets outputs left out

    @property
    def multi(self) -> bool:
        """Several files: row positions need per-file offsets."""
        return len(self.files) > 1


def list_input(path: str | os.PathLike[str]) -> Listing:
    """The Parquet files of ``path`` (a file, a folder or a glob), in read order."""
    p = os.fspath(path)
    if not isinstance(p, str) or not p:
        raise SourceError(f"input: expected a path, got {p!r}")
    if "\x00" in p:
        raise SourceError(f"input {p!r}: a path cannot contain a NUL character")
    if os.path.lexists(p):
        try:
            st = os.stat(p)
        except OSError as e:
            raise SourceError(f"input {p!r} cannot be read: {_reason(e)}") from e
        if stat.S_ISDIR(st.st_mode):
            walker = _Walker()
            walker.seen_dirs.add(os.path.realpath(p))
            walker.walk(p, root=True)
            if not walker.files:
                raise SourceError(
                    f"input {p!r} is a folder with no .parquet files{walker.note()}"
                    " (hidden names starting with '.' or '_' are skipped)"
                )
            return Listing(p, "folder", walker.ordered(), walker.folder_list(p), walker.skip)
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"input {p!r} is not a regular file or a folder")
        if not os.access(p, os.R_OK):
            raise SourceError(f"input {p!r} cannot be read: permission denied")
        return Listing(p, "file", (p,))
    if has_glob(p):
        walker = _Walker()
        for match in _glob(p):
            walker.take(match, matched=True)
        if not walker.files:
            raise SourceError(f"input {p!r} matches no files{walker.note()}")
        return Listing(p, "glob", walker.ordered(), walker.folder_list(None), walker.skip)
    if os.path.islink(p):
        raise SourceError(f"input {p!r} is a broken symbolic link")
    raise SourceError(f"input {p!r} does not exist")


def parquet_files(path: str) -> tuple[str, list[str], bool]:
    """(the path, its files in read order, several files?): :func:`list_input` in short."""
    listing = list_input(path)
    return listing.path, list(listing.files), listing.multi


class _Walker:
    """Collects files, following links once, skipping hidden names and our own outputs."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.seen_dirs: set[str] = set()
        self.seen_files: set[str] = set()
        self.walked: list[str] = []
        self.skip: list[str] = []

    def note(self) -> str:
        if not self.skip:
            return ""
        return f" ({len(self.skip)} sqltargets output(s) skipped, e.g. {self.skip[0]!r})"

    def ordered(self) -> tuple[str, ...]:
        return tuple(sorted(self.files))

    def folder_list(self, root: str | None) -> tuple[str, ...]:
        real = [os.path.realpath(root)] if root is not None else []
        return tuple(dict.fromkeys(real + self.walked))

    def take(self, path: str, *, matched: bool = False) -> None:
        """A path met in a folder or matched by a glob: walk a folder, keep a Parquet file
        (any file a glob matches; a ``*.parquet`` file in a folder)."""
        try:
            st = os.stat(path)
        except OSError as e:
            if os.path.islink(path):
                if path.endswith(".parquet"):
                    raise SourceError(
                        f"input file {path!r} is a broken symbolic link ({_reason(e)})"
                    ) from e
                return  # a dangling or looping link to something else: not input
            raise SourceError(f"input {path!r} cannot be read: {_reason(e)}") from e
        if stat.S_ISDIR(st.st_mode):
            real = os.path.realpath(path)
            if real in self.seen_dirs:
                return  # a loop, or a second link to a folder already read
            self.seen_dirs.add(real)
            self.walk(path)
            return
        if not stat.S_ISREG(st.st_mode):
            return
        if not (matched or path.endswith(".parquet")):
            return
        real = os.path.realpath(path)
        if real in self.seen_files:
            return
        self.seen_files.add(real)
        if _is_output_file(path):
            self.skip.append(path)
            return
        self.files.append(path)
        if len(self.files) > MAX_FILES:
            raise SourceError(f"input: more than {MAX_FILES:,} files; point at fewer")

    def walk(self, folder: str, root: bool = False) -> None:
        ours = os.path.isfile(os.path.join(folder, STORE_MANIFEST)) or (
            _marker(folder).get("kind") == "targets"
        )
        if ours and not root:  # a store or sharded output inside the input: not input
            self.skip.append(folder)
            return
        self.walked.append(os.path.realpath(folder))
        try:
            names = sorted(os.listdir(folder))
        except OSError as e:
            raise SourceError(f"input folder {folder!r} cannot be read: {_reason(e)}") from e
        for name in names:
            if is_hidden(name):
                continue
            self.take(os.path.join(folder, name))


def _glob(pattern: str) -> Iterator[str]:
    """Paths matching ``pattern``: ``*``/``?``/``[...]`` within one name, ``**`` any number
    of folders; hidden names only where the name pattern starts with '.' or '_'. The literal
    folders before the first wildcard are taken as they are."""
    absolute = pattern.startswith(os.sep)
    parts = [p for p in pattern.split(os.sep) if p not in ("", ".")]
    i = 0
    while i < len(parts) and not has_glob(parts[i]):
        i += 1
    prefix = os.path.join(os.sep if absolute else "", *parts[:i])
    on_stack: set[str] = set()

    def join(folder: str, name: str) -> str:
        return os.path.join(folder, name) if folder else name

    def listdir(folder: str) -> list[str]:
        try:
            return sorted(os.listdir(folder or os.curdir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise SourceError(f"input folder {folder!r} cannot be read: {_reason(e)}") from e

    def step(folder: str, rest: list[str]) -> Iterator[str]:
        if not rest:
            yield folder
            return
        head, tail = rest[0], rest[1:]
        if head == "**":
            loop = os.path.realpath(folder or os.curdir)
            if loop in on_stack:
                return  # a link back up: this folder is being walked already
            on_stack.add(loop)
            yield from step(folder, tail)
            for name in listdir(folder):
                child = join(folder, name)
                if not is_hidden(name) and os.path.isdir(child):
                    yield from step(child, rest)
            on_stack.discard(loop)
            return
        if not has_glob(head):
            child = join(folder, head)
            if os.path.lexists(child):
                yield from step(child, tail)
            return
        for name in listdir(folder):
            if is_hidden(name) and not head.startswith(name[0]):
                continue
            if fnmatch.fnmatchcase(name, head):
                yield from step(join(folder, name), tail)

    if prefix and not os.path.isdir(prefix):
        return
    yield from step(prefix, parts[i:])


def duckdb_path(path: str) -> str:
    """``path`` escaped for DuckDB, which expands every file name it gets as a glob:
    ``*``, ``?`` and ``[`` become one-character classes."""
    return "".join(f"[{c}]" if c in GLOB_CHARS else c for c in path)


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


# ---------------------------------------------------------------------------------------------
# footers and the common schema


@functools.lru_cache(maxsize=4096)
def _footer_cached(path: str, size: int, mtime: int, ino: int) -> Any:
    import pyarrow.parquet as pq

    return pq.read_metadata(path)


def footer(path: str) -> Any:
    """The Parquet footer (``pyarrow.parquet.FileMetaData``) of ``path``; one line errors."""
    try:
        st = os.stat(path)
        return _footer_cached(path, st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError as e:
        raise SourceError(f"input file {path!r} cannot be read: {_reason(e)}") from e
    except (pa.ArrowException, ValueError) as e:
        raise SourceError(
            f"input file {path!r} is not a readable Parquet file: {_first_line(e)}"
        ) from e


def _identity(rows: int, columns: list[str], groups: list[int]) -> dict[str, Any]:
    import hashlib

    digest = hashlib.sha256(",".join(map(str, groups)).encode()).hexdigest()[:16]
    return {"rows": rows, "columns": columns, "row_groups": digest}


class ParquetWriter:
    """``pyarrow.parquet.ParquetWriter`` for the files sqltargets writes: each batch is one
    row group (up to :data:`MAX_ROW_GROUP` rows), and closing records the file's identity
    under :data:`FILE_KEY` (:func:`as_written` checks it)."""

    def __init__(self, path: str | Path, schema: pa.Schema, **options: Any) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(path, schema, **options)
        self._columns = list(schema.names)
        self._groups: list[int] = []

    def write_batch(self, batch: pa.RecordBatch) -> None:
        for start in range(0, batch.num_rows, MAX_ROW_GROUP):
            part = batch.slice(start, MAX_ROW_GROUP)
            self._writer.write_batch(part, row_group_size=part.num_rows)
            self._groups.append(part.num_rows)

    def write_table(self, table: pa.Table) -> None:
        for batch in table.to_batches(max_chunksize=MAX_ROW_GROUP):
            self.write_batch(batch)

    def close(self) -> None:
        identity = _identity(sum(self._groups), self._columns, self._groups)
        self._writer.add_key_value_metadata({FILE_KEY: json.dumps(identity).encode()})
        self._writer.close()

    def __enter__(self) -> ParquetWriter:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.close()
        else:  # (the caller removes the unfinished file)
            self._writer.close()


def _carries_output_key(path: str) -> bool:
    try:
        return OUTPUT_KEY in (footer(path).metadata or {})
    except SourceError:
        return False


def as_written(path: str, output: bool = False) -> bool:
    """Whether the Parquet file at ``path`` is one sqltargets wrote, as it wrote it (rows,
    columns and row groups as recorded under :data:`FILE_KEY`); with ``output``, also one
    of its outputs (:data:`OUTPUT_KEY`). A file made from it by pyarrow (filtered, with a
    column added, concatenated, rewritten) keeps the keys but not the identity."""
    try:
        meta = footer(path)
    except SourceError:
        return False
    kv = meta.metadata or {}
    if FILE_KEY not in kv or (output and OUTPUT_KEY not in kv):
        return False
    try:
        recorded = json.loads(kv[FILE_KEY])
        columns = meta.schema.to_arrow_schema().names
    except (ValueError, pa.ArrowException):
        return False
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return bool(recorded == _identity(meta.num_rows, columns, groups))


#: The line that marks an HTML report as sqltargets' own (``describe --html``).
HTML_MARKER = '<meta name="generator" content="sqltargets">'


def _is_output_file(path: str, kind: str | None = None) -> bool:
    """Whether sqltargets wrote this file (of ``kind`` when given): ``"parquet"``, targets
    as written (:func:`as_written`), or ``"html"``, a report whose head holds
    :data:`HTML_MARKER`.
    Read from the file's content, whatever its name: a report named ``t.parquet`` is no
    targets file, and a run must not replace a report (nor a report a run's targets)."""
    found = output_kind(path)
    return found is not None and (kind is None or found == kind)


def output_kind(path: str) -> str | None:
    """``"parquet"`` or ``"html"`` for a file sqltargets wrote (see :func:`_is_output_file`),
    else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"PAR1"):
        return "parquet" if as_written(path, output=True) else None
    return "html" if HTML_MARKER.encode() in head else None


@dataclass(frozen=True)
class InputSchema:
    """The columns of a multi-file input, with one type each that holds every file's values."""

    schema: pa.Schema  # the common columns (in every file), in the first file's order
    casts: dict[str, pa.DataType]  # columns whose files disagree: the common type
    partial: dict[str, str]  # columns some files lack -> the first file lacking it
    same: bool  # every file has exactly the same columns and types

    def cast(self, table: pa.Table) -> pa.Table:
        """One file's table (read by pyarrow) with the common columns and types."""
        columns = []
        for f in self.schema:
            col = table.column(f.name)
            if col.type != f.type:
                col = cast_as_duckdb(col, f.type)
            columns.append(col)
        return pa.Table.from_arrays(columns, schema=self.schema)


def cast_as_duckdb(col: pa.ChunkedArray, want: pa.DataType) -> pa.ChunkedArray:
    """``col.cast(want)``, except that a decimal becomes the nearest double, as DuckDB casts
    it (pyarrow's own cast can be a bit off: 14.45 became 14.450000000000001): through its
    exact text.

    >>> import decimal
    >>> cast_as_duckdb(pa.chunked_array([pa.array([decimal.Decimal("14.45")], pa.decimal128(12, 2))]),
    ...                pa.float64()).to_pylist()
    [14.45]
    """
    if pa.types.is_decimal(col.type) and pa.types.is_floating(want):
        return col.cast(pa.string()).cast(want)
    return col.cast(want)


def input_schema(files: tuple[str, ...] | list[str]) -> InputSchema:
    """Read every file's schema (footers only) and find a common type per column that loses
    nothing: integers widen, integers and decimals with floats become double, integers with
    decimals a wider decimal, dates with timestamps timestamps, string kinds strings. Any
    other mix is an error naming the files and the column."""
    schemas = []
    for f in files:
        try:
            schemas.append(footer(f).schema.to_arrow_schema())
        except (pa.ArrowException, ValueError) as e:
            raise SourceError(
                f"input file {f!r}: unsupported Parquet schema: {_first_line(e)}"
            ) from e
    first = schemas[0]
    for f, s in zip(files, schemas):
        dup = sorted({n for n in s.names if s.names.count(n) > 1})
        if dup:
            raise DataError(f"input file {f!r} has two columns named {dup[0]!r}")
    if all(s.equals(first) for s in schemas[1:]):
        return InputSchema(first, {}, {}, True)
    names = list(dict.fromkeys(n for s in schemas for n in s.names))
    partial: dict[str, str] = {}
    fields = []
    casts: dict[str, pa.DataType] = {}
    for name in names:
        lacking = [f for f, s in zip(files, schemas) if name not in s.names]
        if lacking:
            partial[name] = lacking[0]
            continue
        types = [(f, s.field(name).type) for f, s in zip(files, schemas)]
        common = common_type(name, types)
        fields.append(pa.field(name, common))
        if any(t != common for _, t in types):
            casts[name] = common
    order = [n for n in first.names if n not in partial]
    by_name = {f.name: f for f in fields}
    return InputSchema(pa.schema([by_name[n] for n in order]), casts, partial, False)


_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}


def _normal(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _normal(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_date64(t):
        return pa.date32()
    return t


def common_type(name: str, types: list[tuple[str, pa.DataType]]) -> pa.DataType:
    """The type that holds every file's values of column ``name``, or a DataError.

    >>> common_type("a", [("x", pa.int64()), ("y", pa.float64())])
    DataType(double)
    >>> common_type("t", [("x", pa.date32()), ("y", pa.timestamp("us"))])
    TimestampType(timestamp[us])
    """
    real = [(f, _normal(t)) for f, t in types if not pa.types.is_null(t)]
    if not real:
        return pa.null()
    kinds = {t for _, t in real}
    if len(kinds) == 1:
        return next(iter(kinds))

    def refuse(why: str = "") -> DataError:
        seen: dict[str, str] = {}
        for f, t in real:
            seen.setdefault(str(t), f)
        (ta, fa), (tb, fb) = list(seen.items())[:2]
        return DataError(
            f"input column {name!r} is {ta} in {fa!r} but {tb} in {fb!r}{why}; sqltargets reads "
            "a column with one type that holds every value (integers widen; integers, decimals "
            "and floats become double; dates and timestamps become timestamps)"
        )

    ts = [t for t in kinds]
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in ts):
        if any(pa.types.is_floating(t) for t in ts):
            return pa.float64()
        ints = [t for t in ts if pa.types.is_integer(t)]
        decs = [t for t in ts if pa.types.is_decimal(t)]
        if decs:
            scale = max(d.scale for d in decs)
            digits = max(
                [d.precision - d.scale for d in decs]
                + [_INT_DIGITS[t.bit_width] + (not pa.types.is_signed_integer(t)) for t in ints]
            )
            if digits + scale > 38:
                raise refuse(" (no decimal holds both)")
            return pa.decimal128(digits + scale, scale)
        signed = [t.bit_width for t in ints if pa.types.is_signed_integer(t)]
        unsigned = [t.bit_width for t in ints if not pa.types.is_signed_integer(t)]
        if not signed:
            return getattr(pa, f"uint{max(unsigned)}")()
        width = max(signed + [2 * w for w in unsigned])
        if width > 64:
            raise refuse(" (no integer type holds both)")
        return getattr(pa, f"int{width}")()
    if all(pa.types.is_date(t) or pa.types.is_timestamp(t) for t in ts):
        stamps = [t for t in ts if pa.types.is_timestamp(t)]
        zones = {t.tz for t in stamps}
        if len({z is None for z in zones}) > 1:
            raise refuse(" (times with and without a time zone)")
        zoned = next(iter(zones)) is not None
        if zoned and any(pa.types.is_date(t) for t in ts):
            raise refuse(" (dates and times with a time zone)")
        units = {t.unit for t in stamps}
        unit = next(u for u in ("ns", "us") if u in units) if units & {"ns", "us"} else "us"
        tz = next(t.tz for f, t in real if pa.types.is_timestamp(t)) if zoned else None
        return pa.timestamp(unit, tz=tz)
    raise refuse()


# ---------------------------------------------------------------------------------------------
# outputs: overlaps, markers, temporaries, umask and atomic placement


def umask() -> int:
    """The process's umask (read without changing it where the system allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def give_umask(path: str | Path, folder: bool = False) -> None:
    """Permissions as a plain ``open``/``mkdir`` would give: ``0o666``/``0o777`` less the
    umask (``mkstemp`` and ``mkdtemp`` create ``0o600`` and ``0o700``)."""
    mode = (0o777 if folder else 0o666) & ~umask()
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def real(path: str | Path) -> str:
    """The real path of ``path``, also when it does not exist yet (its folder resolved)."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _inside(child: str, parent: str) -> bool:
    """Whether real path ``child`` is ``parent`` or lies below it."""
    if child == parent:
        return True
    return child.startswith(parent.rstrip(os.sep) + os.sep)


def input_paths(source: Any) -> list[str]:
    """Real paths an output must keep clear of: the input path itself, each of its files,
    and every folder walked to find them (empty for in-memory inputs and table names). A
    store adds the input it was prepared from. Listing errors are the input's errors."""
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str):
        return []
    if not looks_like_path(source):
        return []  # a table name
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, STORE_MANIFEST)):
        try:
            with open(os.path.join(source, STORE_MANIFEST), encoding="utf-8") as f:
                recorded = json.load(f)["fingerprint"]["input"]
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        extra: list[str] = []
        if isinstance(recorded, str):
            try:
                extra = input_paths(recorded)
            except SourceError:
                extra = [real(recorded)]
        return [real(source), *extra]
    listing = list_input(source)
    paths = [real(source)] if os.path.lexists(source) else []
    paths += list(listing.folders)
    paths += [os.path.realpath(f) for f in listing.files]
    return list(dict.fromkeys(paths))


def check_output(
    output: str | Path,
    *,
    inputs: list[str] = (),  # type: ignore[assignment]
    folder: bool,
    what: str = "output",
    kinds: tuple[str, ...] = ("targets",),
    file_kind: str = "parquet",
    temp_directory: str | os.PathLike | None = None,
) -> Path:
    """Refuse an output that would destroy data; returns it as an absolute path.

    Refused: an output that is, contains or lies inside an input (``inputs`` are real paths),
    a store or another folder sqltargets wrote; a folder output that is or contains the
    working folder; an existing file or folder that sqltargets did not write (a folder's
    marker must name one of ``kinds``; a file must be sqltargets' own of ``file_kind``,
    ``"parquet"`` targets or an ``"html"`` report); a ``temp_directory`` (DuckDB's spill
    folder, made when it first spills) that is or lies inside the output, which replaces
    it when done or cannot be placed where DuckDB made a folder.
    """
    if not isinstance(output, (str, os.PathLike)):
        raise OutputError(f"{what}: expected a path, got {type(output).__name__}")
    text = os.fspath(output)
    if not isinstance(text, str) or not text.strip():
        raise OutputError(f"{what}: expected a path, got {text!r}")
    if "\x00" in text:
        raise OutputError(f"{what} {text!r}: a path cannot contain a NUL character")
    if not folder and text.endswith(("/", os.sep)):  # (abspath would drop the slash)
        raise OutputError(
            f"{what} {text!r} ends with '/', which names a folder; expected a file name"
        )
    out = Path(os.path.abspath(text))
    if out.name in ("", ".", ".."):
        raise OutputError(f"{what} {text!r} names no file or folder of its own")
    parent = out.parent
    if not parent.is_dir():
        above = next((p for p in [parent, *parent.parents] if os.path.lexists(p)), None)
        if above is not None and not above.is_dir():
            raise OutputError(f"{what} {text!r}: {str(above)!r} is a file, not a folder")
        raise OutputError(f"{what} {text!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {text!r}: folder {str(parent)!r} is not writable")
    r = real(out)
    if isinstance(temp_directory, (str, os.PathLike)) and os.fspath(temp_directory):
        spill = real(temp_directory)
        if _inside(spill, r):
            raise OutputError(
                f"temp_directory {os.fspath(temp_directory)!r} {'is' if spill == r else 'lies inside'} "
                f"the {what} {text!r}, which replaces it when done; choose a folder outside it"
            )
    for p in inputs:
        if _inside(r, p) or _inside(p, r):
            relation = "is" if r == p else ("lies inside" if _inside(r, p) else "contains")
            raise OutputError(
                f"{what} {text!r} {relation} the input {p!r}; write it somewhere else"
            )
    for anc in [r, *_ancestors(r)]:
        if os.path.isfile(os.path.join(anc, STORE_MANIFEST)) and not (
            anc == r and "store" in kinds
        ):
            raise OutputError(
                f"{what} {text!r} {'is' if anc == r else 'lies inside'} the prepared store "
                f"{anc!r}; write it somewhere else"
            )
        marked = _marker(anc).get("kind") if anc != r else None
        if marked in _FOLDER_NAMES:  # (demo data inside demo data would be read as one)
            raise OutputError(
                f"{what} {text!r} lies inside {anc!r}, {_FOLDER_NAMES[marked]} that "
                "sqltargets replaces as a whole; write it somewhere else"
            )
    if folder:
        cwd = os.path.realpath(os.getcwd())
        if _inside(cwd, r):
            raise OutputError(
                f"{what} {text!r} is or contains the working folder {cwd!r}; "
                "choose a new folder for it"
            )
    if os.path.islink(out):
        raise OutputError(f"{what} {text!r} is a symbolic link; sqltargets does not replace it")
    if not os.path.lexists(out):
        return out
    if folder:
        if not out.is_dir():
            raise OutputError(f"{what} {text!r} is a file; expected a folder")
        owned(out, kinds, what=what, text=text)
    else:
        if out.is_dir():
            raise OutputError(f"{what} {text!r} is a folder; expected a file name")
        found = output_kind(str(out))
        if found is None:
            raise OutputError(
                f"{what} {text!r} exists and was not written by sqltargets"
                + (" as it is now (it carries sqltargets' metadata, but its rows, columns or "
                   "row groups changed since)" if _carries_output_key(str(out)) else "")
                + "; remove it or choose another name"
            )  # fmt: skip
        if found != file_kind:
            raise OutputError(
                f"{what} {text!r} is {_KIND_NAMES[found]}, not {_KIND_NAMES[file_kind]}; "
                "choose another name"
            )
    return out


#: Folders sqltargets writes and replaces as a whole, by their marker's kind.
_FOLDER_NAMES = {
    "targets": "a folder of sharded targets",
    "demo-data": "a folder of demo data",
    "store": "a prepared store",
}
_KIND_NAMES = {"parquet": "a targets file sqltargets wrote", "html": "a report sqltargets wrote"}


def _ancestors(path: str) -> Iterator[str]:
    p = os.path.dirname(path)
    while True:
        yield p
        q = os.path.dirname(p)
        if q == p:
            return
        p = q


def _marker(folder: str | Path) -> dict[str, Any]:
    path = os.path.join(os.fspath(folder), MARKER)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_marker(folder: str | Path, kind: str, files: list[str]) -> None:
    """Mark a folder sqltargets wrote: its kind and the files it holds."""
    from .. import __version__

    data = {"written_by": "sqltargets", "version": __version__, "kind": kind, "files": files}
    path = os.path.join(os.fspath(folder), MARKER)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    give_umask(path)


def owned(folder: Path, kinds: tuple[str, ...], *, what: str, text: str) -> None:
    """Refuse to replace an existing folder that sqltargets did not write (an empty folder is
    fine), or one holding files sqltargets did not put there."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError as e:
        raise OutputError(f"{what} {text!r} cannot be read: {_reason(e)}") from e
    if not entries:
        return
    kind = "store" if os.path.isfile(folder / STORE_MANIFEST) else _marker(folder).get("kind")
    if kind in _FOLDER_NAMES and kind not in kinds:
        raise OutputError(
            f"{what} {text!r} is {_FOLDER_NAMES[kind]} that sqltargets wrote, not "
            f"{' or '.join(_FOLDER_NAMES.get(k, k) for k in kinds)}; choose another name"
        )
    if kind not in kinds:
        raise OutputError(
            f"{what} {text!r} is a folder that sqltargets did not write"
            + (f" (it holds {entries[0]!r})" if entries else "")
            + "; remove it or choose another name"
        )
    if kind == "store":
        expected = {STORE_MANIFEST, "data.parquet"}
    else:
        expected = {MARKER, *(_marker(folder).get("files") or [])}
    extra = [e for e in entries if e not in expected]
    if extra:
        raise OutputError(
            f"{what} {text!r} holds {extra[0]!r}, which sqltargets did not write; "
            "move it out or choose another name"
        )
    if kind != "store":  # (a store is a cache of its input: replaced when stale)
        changed = [
            e for e in entries if e != MARKER and not as_written(str(folder / e), kind == "targets")
        ]
        if changed:
            raise OutputError(
                f"{what} {text!r} holds {changed[0]!r}, which is not the file sqltargets "
                "wrote there (it was changed or replaced since); move it out or choose "
                "another name"
            )


def temp_file(dest: Path, suffix: str = ".tmp") -> str:
    """A new hidden temporary file beside ``dest`` (same folder, so a rename places it)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    except OSError as e:
        raise OutputError(f"output {str(dest)!r}: cannot create a file: {_reason(e)}") from e
    os.close(fd)
    give_umask(tmp)
    return tmp


def temp_dir(dest: Path) -> Path:
    """A new hidden temporary folder beside ``dest``."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as e:
        raise OutputError(f"output {str(dest)!r}: cannot create a folder: {_reason(e)}") from e
    give_umask(tmp, folder=True)
    return tmp


def remove(path: str | Path) -> None:
    """Remove a temporary file or folder of ours, ignoring what is already gone."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def place_file(
    tmp: str | Path, dest: Path, what: str = "output", file_kind: str = "parquet"
) -> None:
    """Rename the finished file ``tmp`` to ``dest``. A file already there is replaced only
    when sqltargets wrote it, of the same ``file_kind``: checked by :func:`check_output`
    before the work, and again here, since the work may have taken minutes."""
    if os.path.lexists(dest) and (
        os.path.islink(dest) or os.path.isdir(dest) or not _is_output_file(str(dest), file_kind)
    ):
        raise OutputError(
            f"{what} {str(dest)!r} now exists and was not written by sqltargets; nothing replaced"
        )
    os.replace(tmp, dest)


def replace_dir(tmp: Path, dest: Path, kinds: tuple[str, ...]) -> None:
    """Move the finished folder ``tmp`` to ``dest``, replacing a folder there. The caller
    checked with :func:`check_output` before its work that ``dest`` is ours; it is checked
    again here, since the work may have taken minutes (a folder of ``kinds`` holding only
    what sqltargets put there, or an empty one).

    Both live in the same parent folder, so each step is a rename: at every moment ``dest``
    is either the old complete folder or the new complete one.
    """
    if os.path.lexists(dest):
        if os.path.islink(dest) or not os.path.isdir(dest):
            raise OutputError(f"output {str(dest)!r} is no longer a folder; nothing replaced")
        owned(dest, kinds, what="output", text=str(dest))
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        try:
            os.replace(dest, old / "previous")
            os.replace(tmp, dest)
        except OSError as e:
            if not os.path.lexists(dest) and os.path.lexists(old / "previous"):
                os.replace(old / "previous", dest)
            remove(old)
            raise OutputError(f"output {str(dest)!r}: cannot be placed: {_reason(e)}") from e
        remove(old)
    else:
        try:
            os.replace(tmp, dest)
        except OSError as e:
            raise OutputError(f"output {str(dest)!r}: cannot be placed: {_reason(e)}") from e
