"""Plan → SQL text: Jinja templates (``templates/``), then sqlglot parses and pretty-prints.

Identifiers and literals are quoted here, with sqlglot, before they reach a template; the
templates only arrange them. The rendered text is parsed straight away, so a template bug
fails at render time with the template's name in the error.

>>> from sqltargets.compile.spec import load
>>> from sqltargets.compile.plan import build
>>> ts = load({"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [
...     {"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}}]})
>>> sql = render(build(ts), relation_source("transactions"))
>>> "PARTITION BY _u, _p_day" in sql
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2
import sqlglot
from sqlglot import exp

from ..errors import SqlTargetsError
from . import where as where_mod
from .aggregates import AGGREGATIONS, EVENT_WINDOWS, MEASURES
from .plan import Frame, Grouped, Measure, Output, Plan, next_relation
from .spec import UNIT_US, TargetSet

#: One calendar period as an interval: (amount, unit).
PERIOD_STEP = {
    "day": (1, "DAY"),
    "week": (7, "DAY"),
    "month": (1, "MONTH"),
    "quarter": (3, "MONTH"),
    "year": (1, "YEAR"),
}
#: SQL types of the output types.
SQL_TYPES = {"int64": "BIGINT", "double": "DOUBLE", "list": "DOUBLE[]"}

ROW_ID_COLUMN = "_st_rid"


def ident(name: str) -> str:
    """A quoted SQL identifier.

    >>> ident('we"ird')
    '"we""ird"'
    """
    return '"' + name.replace('"', '""') + '"'  # (as sqlglot's DuckDB generator spells it)


def double_literal(value: float) -> str:
    """A SQL literal that reads back as exactly the double ``value``: a plain decimal where
    its digits convert exactly (DuckDB and Spark read ``0.25`` as a DECIMAL, then divide by
    a power of ten, which rounds once), else a cast of its shortest text.

    >>> double_literal(0.25), double_literal(1 / 3), double_literal(0.1 + 0.2)
    ('0.25', '0.3333333333333333', "CAST('0.30000000000000004' AS DOUBLE)")
    """
    text = repr(float(value))
    digits = text.lstrip("-").replace(".", "").lstrip("0")
    if "e" not in text and "n" not in text and int(digits or "0") < 2**53 and len(text) < 24:
        return literal(float(value))
    return f"CAST({literal(text)} AS DOUBLE)"


def literal(value: object) -> str:
    """A SQL literal for a string or number.

    >>> literal("it's"), literal(2.5), literal(-3)
    ("'it''s'", '2.5', '-3')
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no literal for {value!r}")
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value) or (value == 0 and math.copysign(1, value) < 0):
            return f"CAST('{value!r}' AS DOUBLE)"  # (DuckDB reads -0.0 as a DECIMAL: 0)
        return repr(value)
    # ident() and this are written by hand rather than through sqlglot: its DuckDB generator
    # loads lazily, and that first load (0.15 s) fell on the first run of every fresh process.
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Source:
    """How the statement reads its input: Parquet files, or a named relation."""

    kind: str  # "parquet" | "relation"
    files: str = ""  # SQL literal: a list of paths (each escaped against DuckDB's globbing)
    multi: bool = False  # several files: row positions need per-file offsets
    relation: str = ""  # quoted (schema-qualified) name
    rid_column: str = ""  # column or pseudo-column giving the row position ("rowid", ...)
    rid: bool = True  # whether the plan needs the input position
    shard: tuple[int, int] | None = None  # (i, n): only users whose hash % n == i
    #: (lo, hi) SQL literals: only users from lo to hi (both NULL: none)
    users: tuple[str, str] | None = None
    options: str = ""  # more read_parquet options, each as ", name = value"
    columns: str = "f.*"  # the select list over the files (alias f): casts for mixed types
    rid_name: str = ROW_ID_COLUMN  # the row position's column: never an input column's name
    filename: str = "filename"  # the file name's column (read_parquet's filename option)
    #: each file's first row position (the rows of the files before it in name order), in
    #: ``files`` order: the native prologue reads them instead of counting (empty: none)
    offsets: tuple[int, ...] = ()
    paths: tuple[str, ...] = ()  # SQL literals, one per file of ``files``

    def only_files(self, keep: list[int]) -> Source:
        """This source reading only the files at ``keep`` (positions in ``files``), with
        their rows' positions in the whole input (needs ``offsets``)."""
        if not self.offsets:
            raise ValueError("only_files: the source has no file offsets")
        return replace(
            self,
            files="[" + ", ".join(self.paths[k] for k in keep) + "]",
            paths=tuple(self.paths[k] for k in keep),
            offsets=tuple(self.offsets[k] for k in keep),
        )

    @property
    def read(self) -> str:
        """``read_parquet(...)`` of the files, with their options."""
        return f"read_parquet({self.files}{self.options})"

    @property
    def filename_option(self) -> str:
        """The ``filename`` option, named so that it never meets an input column."""
        if self.filename == "filename":
            return "filename = TRUE"
        return f"filename = {literal(self.filename)}"


def unused_name(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base_2``, ``base_3``...: the first not in ``taken`` (ignoring case, as
    DuckDB matches identifiers).

    >>> unused_name("_st_rid", ["a", "_ST_RID"])
    '_st_rid_2'
    """
    lower = {t.lower() for t in taken}
    name, i = base, 1
    while name.lower() in lower:
        i += 1
        name = f"{base}_{i}"
    return name


def parquet_source(
    paths: str | list[str],
    *,
    multi: bool,
    rid: bool = True,
    rid_column: str = "",
    columns: Iterable[str] = (),
    casts: dict[str, str] | None = None,
    union: bool = False,
    explicit: bool = False,
    rows: list[int] | None = None,
) -> Source:
    """Read Parquet files: an explicit list (each path escaped, so DuckDB globs nothing), with
    Hive partitioning off. ``columns`` are the input's column names (internal names avoid
    them); ``casts`` (column -> DuckDB type) read mixed types as one, and ``union`` matches
    the files' columns by name. ``rid_column`` names a column holding the input position (a
    prepared store's); else positions come from ``file_row_number`` and per-file offsets:
    computed from the data, or, given each file's ``rows`` (from its footer), written in
    for the native prologue (see :func:`file_offsets`).

    >>> parquet_source(["d/tx[1].parquet"], multi=False).read
    "read_parquet(['d/tx[[]1].parquet'], hive_partitioning = FALSE)"
    """
    from ..execute.files import duckdb_path

    if isinstance(paths, str):
        paths = [paths]
    literals = tuple(literal(duckdb_path(p)) for p in paths)
    files = "[" + ", ".join(literals) + "]"
    names = list(columns)
    options = ", hive_partitioning = FALSE" + (", union_by_name = TRUE" if union else "")
    select = "f.*"
    casts = casts or {}
    if casts or explicit:
        select = ", ".join(
            f"{cast_sql(f'f.{ident(c)}', casts[c])} AS {ident(c)}"
            if c in casts
            else f"f.{ident(c)}"
            for c in names
        )
    taken = [*names, "filename", "file_row_number", "file_index"]
    offsets: tuple[int, ...] = ()
    if multi and rows is not None and "file_index" not in {n.lower() for n in names}:
        offsets = tuple(file_offsets(paths, rows))
    return Source(
        "parquet",
        files=files,
        multi=multi,
        rid=rid,
        rid_column=ident(rid_column) if rid_column else "",
        options=options,
        columns=select,
        rid_name=unused_name(ROW_ID_COLUMN, taken),
        filename=unused_name("filename", names) if "filename" in {n.lower() for n in names}
        else "filename",
        offsets=offsets,
        paths=literals,
    )  # fmt: skip


def file_offsets(paths: list[str], rows: list[int]) -> list[int]:
    """Each file's first row position: the rows of the files whose path sorts before its
    own, as DuckDB's ``ORDER BY filename`` sorts them (bytewise), in ``paths`` order.

    >>> file_offsets(["b", "a", "c"], [5, 3, 2])
    [3, 0, 8]
    """
    if len(paths) != len(rows):
        raise ValueError("file_offsets: one row count per path")
    offsets = [0] * len(paths)
    total = 0
    for i in sorted(range(len(paths)), key=lambda i: paths[i].encode("utf-8")):
        offsets[i] = total
        total += rows[i]
    return offsets


def relation_source(
    name: str,
    *,
    schema: str | None = None,
    catalog: str | None = None,
    rid_column: str = "rowid",
    columns: Iterable[str] = (),
) -> Source:
    """Read a table or view by name (in ``schema`` of ``catalog`` when given); ``rid_column``
    gives row positions ("" for none). ``columns``: the relation's columns, which the
    internal row-position name avoids."""
    parts = [catalog, schema or ("main" if catalog else None), name]
    rel = ".".join(ident(p) for p in parts if p is not None)
    rid = rid_column if rid_column in ("", "rowid") else ident(rid_column)
    return Source(
        "relation", relation=rel, rid_column=rid, rid=bool(rid_column),
        rid_name=unused_name(ROW_ID_COLUMN, columns),
    )  # fmt: skip


def shard_condition(user: str, i: int, n: int) -> str:
    """SQL keeping the users of shard ``i`` of ``n`` (by a hash of the user column).

    >>> shard_condition("u", 1, 4)
    'hash("u") % 4 = 1'
    """
    return f"hash({ident(user)}) % {int(n)} = {int(i)}"


def source_conditions(user: str, source: Source) -> list[str]:
    """SQL conditions keeping the users ``source`` reads (its hash shard, its user range).

    >>> source_conditions("u", Source("relation", shard=(1, 4), users=("3", "7")))
    ['hash("u") % 4 = 1', '"u" BETWEEN 3 AND 7']
    """
    where = []
    if source.shard is not None:
        where.append(shard_condition(user, *source.shard))
    if source.users is not None:
        where.append(f"{ident(user)} BETWEEN {source.users[0]} AND {source.users[1]}")
    return where


def render_source(source: Source) -> str:
    """The ``src AS (...)`` CTE that reads ``source`` (``templates/source.sql.j2``)."""
    try:
        return _env().get_template("source.sql.j2").render(source=source)
    except jinja2.TemplateError as e:
        raise SqlTargetsError(f"template source.sql.j2 failed: {e}") from e


def _template_dir() -> Path:
    package = Path(__file__).resolve().parent.parent  # sqltargets/
    # installed: sqltargets/templates (the wheel's copy); a checkout: templates/ beside it
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "targets.sql.j2").exists():
            return candidate
    raise SqlTargetsError(f"templates not found next to {package}; the installation is broken")


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled templates kept on disk between processes (in its own per-user
    folder under the temporary directory, mode 0700, checked by Jinja): compiling the four
    templates took 0.07 s of every fresh process's first run. Jinja checks each entry
    against its template's source and Python's version; an entry that cannot be read or
    written only costs the compile."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable, or cut short (pickle's and marshal's errors vary)
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _template_cache() -> jinja2.BytecodeCache | None:
    try:
        return _TemplateCache()
    except (OSError, RuntimeError):  # no safe folder for it (Jinja refuses a shared one)
        return None


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # SQL, not HTML: quoting is done in Python before rendering
        keep_trailing_newline=True,
        trim_blocks=False,
        bytecode_cache=_template_cache(),
    )


#: Frame offsets (µs) above this are written as HUGEINT: DuckDB computes a RANGE frame's
#: bounds in the type of its literal, and key - offset would overflow BIGINT near its ends.
MAX_BIGINT_OFFSET = 2**62


def _offset(us: int) -> str:
    """A RANGE frame offset in µs: a BIGINT literal, or a HUGEINT beyond ``MAX_BIGINT_OFFSET``.

    >>> _offset(86_400_000_000), _offset(2**63)
    ('86400000000', 'CAST(9223372036854775808 AS HUGEINT)')
    """
    return str(us) if us <= MAX_BIGINT_OFFSET else f"CAST({us} AS HUGEINT)"


def _frame_sql(fr: Frame, elapsed: str, order: str) -> str:
    w = fr.window
    if fr.kind in EVENT_WINDOWS:  # LEAD / LAG over the user's events in event order
        return f"PARTITION BY _u ORDER BY {order}"
    # include_current: false ends the frame one row (expanding) or one µs (rolling) earlier
    end = "CURRENT ROW" if w.include_current else "1 PRECEDING"
    if fr.kind == "expanding":
        return (
            f"PARTITION BY _u, _p_{fr.period} ORDER BY {order} "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND {end}"
        )
    assert fr.length is not None
    if fr.kind == "rolling":
        # (t - length, t]: peers (same time) are inside, exactly `length` ago is not;
        # (t - length, t) without the current time: on integer µs, up to t - 1
        return (
            f"PARTITION BY _u ORDER BY {elapsed} "
            f"RANGE BETWEEN {_offset(fr.length - 1)} PRECEDING AND {end}"
        )
    # future: (t + offset, t + offset + length], written as a trailing frame over descending
    # time, which DuckDB evaluates about twice as fast as "... FOLLOWING AND ... FOLLOWING"
    return (
        f"PARTITION BY _u ORDER BY {elapsed} DESC "
        f"RANGE BETWEEN {_offset(w.offset + fr.length)} PRECEDING "
        f"AND {_offset(w.offset + 1)} PRECEDING"
    )


def mcc_code_sql(mcc_col: str, text: bool) -> str:
    """The MCC code of a row as an INTEGER (NULL when it is not one). A string MCC counts
    only when it is digits (spaces around allowed): a plain TRY_CAST would also read
    '5411.7', '1e3' or '0x10' as codes."""
    if text:
        return (
            f"TRY_CAST(CASE WHEN regexp_full_match({mcc_col}, ' *[0-9]+ *') "
            f"THEN {mcc_col} END AS INTEGER)"
        )
    return f"TRY_CAST({mcc_col} AS INTEGER)"


def _filter_sql(
    mcc: tuple[tuple[int, int], ...] | None, where: str | None, mcc_col: str, text: bool
) -> str:
    parts = []
    if mcc is not None:
        code = mcc_code_sql(mcc_col, text)
        singles = [lo for lo, hi in mcc if lo == hi]
        ranges = [(lo, hi) for lo, hi in mcc if lo != hi]
        terms = []
        if singles:
            terms.append(f"{code} IN ({', '.join(str(s) for s in singles)})")
        terms.extend(f"{code} BETWEEN {lo} AND {hi}" for lo, hi in ranges)
        parts.append("(" + " OR ".join(terms) + ")")
    if where is not None:
        parts.append("(" + where_mod.to_sql(where_mod.parse(where)) + ")")
    return " AND ".join(parts)


def _slot_sql(groups: tuple[tuple[tuple[int, int], ...], ...], mcc_col: str, text: bool) -> str:
    """The slot of a row: the first group holding its MCC code, else ``len(groups)``."""
    whens = " ".join(
        f"WHEN {_filter_sql(g, None, mcc_col, text)} THEN {i}" for i, g in enumerate(groups)
    )
    return f"CAST(CASE {whens} ELSE {len(groups)} END AS SMALLINT)"


def _value_sql(kind: str, column: str, mcc_col: str, text: bool) -> str:
    if kind == "number":
        return f"CAST({column} AS DOUBLE)"
    if kind == "code":
        return f"CAST({mcc_code_sql(column, text)} AS BIGINT)"
    return column


def measure_sql(m: Measure, fr: Frame | None, clock: str, order: str = "") -> str:
    """The primitive aggregate ``m`` (``aggregates.MEASURES``) with its filters, without the
    window (``fr`` is the frame it is computed over, None for a GROUP BY); ``clock`` is the
    column of elapsed time (µs). ``order``: the event order's columns, for a GROUP BY's
    ``SUM``, which then adds a period's values in event order, as the contract's sequential
    sum does (DuckDB honours an aggregate's ORDER BY; without it, it adds in input order,
    and values that cancel, such as -1e300, 1e300, 1, gave 0 where the sum is 1).

    >>> from sqltargets.compile.plan import Filter, Value
    >>> v, f = Value("v0", "amount", "number"), Filter("f0", ((5411, 5411),), None)
    >>> measure_sql(Measure("m0", "first", v, f), None, "_o")
    'ARG_MIN(_v0, _ord) FILTER (WHERE _f0 AND _v0 IS NOT NULL)'
    >>> measure_sql(Measure("m1", "quantile", v, None, q=0.25), None, "_o")
    'QUANTILE_CONT(_v0, 0.25)'
    """
    spell = MEASURES[m.fn]
    v = f"_{m.value.id}" if m.value is not None else ""
    conds = [f"_{m.filter.id}"] if m.filter is not None else []
    if m.slot is not None:
        conds.append(f"_{m.slot.id} = {int(m.group or 0)}")
    if spell.event:  # LEAD / LAG: the filter inside; a passing event is never NULL
        assert fr is not None
        item = f"{{'v': {v}}}" if m.value is not None else clock
        x = f"CASE WHEN {' AND '.join(conds)} THEN {item} END" if conds else item
        return spell.call.format(x=x, n=int(fr.window.n))
    if spell.skip_nulls:
        conds.append(f"{v} IS NOT NULL")
    q = double_literal(m.q) if m.q is not None else ""
    call = spell.call.format(v=v, k=m.k, q=q)
    if fr is None and order and m.fn == "sum":
        call = f"SUM({v} ORDER BY {order})"
    return f"{call} FILTER (WHERE {' AND '.join(conds)})" if conds else call


def output_sql(o: Output, fill: str, clock: str) -> str:
    """A target's value from its measures (``aggregates.AGGREGATIONS``): what an empty window
    gives, the ``fill`` (a SQL literal, or ""), and the output type.

    >>> from sqltargets.compile.spec import load
    >>> from sqltargets.compile.plan import build
    >>> ts = load({"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [
    ...     {"name": "c", "agg": "count", "window": {"kind": "rolling", "length": "1d"}}]})
    >>> output_sql(build(ts).outputs[0], "7", "_o")
    'CAST(COALESCE(NULLIF(e._m0, 0), 7) AS BIGINT)'
    """
    t = o.target
    agg = AGGREGATIONS[t.agg]
    r = o.relation
    cols = {name: f"{r}._{m.id}" for name, m in o.measures.items()}
    sql_type = SQL_TYPES[o.type]
    if t.agg == "distribution":
        return _distribution_sql(o, cols)
    zero_when_empty = all(MEASURES[m.fn].zero_when_empty for m in o.measures.values())
    if t.window.kind in EVENT_WINDOWS:
        event, now = cols[t.window.kind], f"{r}.{clock}"
        later, earlier = (event, now) if t.window.kind == "next" else (now, event)
        x = agg.event_sql.format(event=event, later=later, earlier=earlier)
        zero_when_empty = False
    elif agg.solo and agg.solo in cols:
        x = cols[agg.solo]
    elif agg.sql:
        x = agg.sql.format(**cols)
    else:
        (x,) = cols.values()
    if agg.empty == "nulls":  # top_k: a list of k, padded with nulls or the fill
        pad = f", {fill}" if fill else ""
        return f"CAST(list_resize(COALESCE({x}, []), {int(t.k or 0)}{pad}) AS {sql_type})"
    if agg.empty == "zero" and zero_when_empty:  # COUNT: 0 is the empty window
        x = f"COALESCE(NULLIF({x}, 0), {fill})" if fill else f"COALESCE({x}, 0)"
    elif agg.empty == "zero":
        x = f"COALESCE({x}, {fill or '0'})"
    elif fill:
        x = f"COALESCE({x}, {fill})"
    return f"CAST({x} AS {sql_type})"


def _distribution_sql(o: Output, cols: dict[str, str]) -> str:
    """The slots in order (0 where a group has nothing); normalised, each divided by their
    total, added in slot order, and all null when that total is 0."""
    slots = [f"COALESCE({cols[f'slot{g}']}, 0)" for g in range(len(cols))]
    if o.target.normalize:
        total = " + ".join(slots)
        slots = [f"{s} / NULLIF({total}, 0)" for s in slots]
    return f"CAST([{', '.join(slots)}] AS {SQL_TYPES[o.type]})"


def _next_joins(g: Grouped) -> list[tuple[str, str, str]]:
    """Per next_period offset of ``g``: the join alias, the key column it matches the events'
    period on, and that key (the period ``1 + offset`` periods before the group's)."""
    amount, unit = PERIOD_STEP[g.period]
    return [
        (
            next_relation(g.period, o),
            "_p_prev" if o == 0 else f"_p_prev_plus{o}",
            f"CAST(_p_{g.period} - INTERVAL {amount * (1 + o)} {unit} AS DATE)",
        )
        for o in g.next_offsets
    ]


#: A cast (see :func:`cast_sql`) of a zoned nanosecond timestamp to a µs TIMESTAMPTZ,
#: rounded down: DuckDB's own cast rounds to the nearest µs.
FLOORED_TIMESTAMPTZ = "TIMESTAMPTZ (ns, rounded down)"


def cast_sql(expr: str, to: str) -> str:
    """``expr`` as DuckDB type ``to``, or as :data:`FLOORED_TIMESTAMPTZ`.

    >>> cast_sql("x", "DOUBLE")
    'CAST(x AS DOUBLE)'
    """
    if to == FLOORED_TIMESTAMPTZ:
        return f"timezone('UTC', make_timestamp({_floor_us(expr)}))"
    return f"CAST({expr} AS {to})"


def _floor_us(ns_time: str) -> str:
    # epoch µs of a nanosecond timestamp, rounded down: exact integer floor division
    # (DuckDB's // and % truncate toward zero)
    return f"(epoch_ns({ns_time}) - (epoch_ns({ns_time}) % 1000 + 1000) % 1000) // 1000"


def _clock(time: str, plan: Plan) -> str:
    """The time column as the events read it: a nanosecond timestamp rounded down to the
    µs (DuckDB's casts round it to the nearest, which can move an event into the next day),
    of the same kind (naive, or an instant); any other column as it is.

    >>> from types import SimpleNamespace as P
    >>> _clock('"t"', P(time_ns=True, time_kind="timestamp"))
    'make_timestamp((epoch_ns("t") - (epoch_ns("t") % 1000 + 1000) % 1000) // 1000)'
    """
    if not plan.time_ns:
        return time
    if plan.time_kind == "timestamptz":
        return cast_sql(time, FLOORED_TIMESTAMPTZ)
    return f"make_timestamp({_floor_us(time)})"


def _steps(ts: TargetSet) -> str:
    """An integer time column as BIGINT steps (null stays null), or a one-line error naming
    the value when its date falls outside years 1 to 9999 (``TimeSpec.steps_allowed``).
    Without it, a time in a smaller unit than the spec's overflowed DuckDB's multiplication
    or became a date in year 55,000."""
    t = ident(ts.columns.time)
    low, high = ts.time.steps_allowed()
    before, after = ts.time.outside(ts.columns.time)
    return (
        f"CASE WHEN NOT {t} BETWEEN {low} AND {high} THEN "
        f"error(concat({literal(before)}, CAST({t} AS VARCHAR), {literal(after)})) "
        f"ELSE CAST({t} AS BIGINT) END"
    )


def context(plan: Plan, source: Source) -> dict[str, object]:
    """Everything the templates see, quoted."""
    ts = plan.spec
    cols = ts.columns
    elapsed_differs = plan.time_kind == "timestamp" and ts.timezone != "UTC"
    names = set(ts.input_columns()) | {t.name for t in ts.targets}
    rid = source.rid_name if source.rid else "NULL"
    where = []
    if ts.null_rows == "drop":
        where += [f"{ident(cols.user)} IS NOT NULL", f"{ident(cols.time)} IS NOT NULL"]
    where += source_conditions(cols.user, source)
    frames = list(plan.frames)
    groups = list(plan.groups)
    # the elapsed clock (µs) of rolling and future frames and elapsed times
    clock = "_e" if elapsed_differs and plan.needs_elapsed else "_o"
    fills = {t.name: (literal(t.fill) if t.fill is not None else "") for t in ts.targets}
    order = "_o, _tb, _tb2" if cols.id and rid != "NULL" else "_o, _tb"
    return {
        "groups": groups,
        "plan": plan,
        "frames": frames,
        "source": source,
        "base_where": where,
        "c": {
            "user": ident(cols.user),
            "time": ident(cols.time),
            "clock": _clock(ident(cols.time), plan),
            "steps": _steps(ts) if plan.time_kind == "integer" else "",
            "key": ident(ts.key_column()),
        },
        "tiebreak": ident(cols.id) if cols.id else rid,
        "second_tiebreak": rid if cols.id and rid != "NULL" else "",
        "q": {n: ident(n) for n in names},
        "tz": literal(ts.timezone),
        "origin": f"TIMESTAMP {literal(ts.time.origin.isoformat())}",
        "unit_us": str(UNIT_US[ts.time.unit]) if ts.time.unit else "1",
        "week_shift": ts.week_start_index,
        "elapsed_differs": elapsed_differs,
        "filter_sql": {
            f.id: _filter_sql(f.mcc, f.where, ident(cols.mcc), plan.mcc_text) for f in plan.filters
        },
        # the native prologue (prologue_text): MCC codes and `where` parts of filters
        "native": False,
        "native_mcc": needs_mcc_codes(plan),
        "native_lus": needs_local_clock(plan),
        "mcc_code": mcc_code_sql(ident(cols.mcc), plan.mcc_text),
        "where_sql": {
            f.id: _filter_sql(None, f.where, ident(cols.mcc), plan.mcc_text)
            for f in plan.filters
            if f.where is not None
        },
        "value_sql": {
            v.id: _value_sql(v.kind, ident(v.column), ident(cols.mcc), plan.mcc_text)
            for v in plan.values
        },
        "slot_sql": {s.id: _slot_sql(s.groups, ident(cols.mcc), plan.mcc_text) for s in plan.slots},
        "frame_sql": {
            fr.id: _frame_sql(fr, "_e" if elapsed_differs else "_o", order) for fr in frames
        },
        "measure_sql": {
            **{m.id: measure_sql(m, fr, clock) for fr in frames for m in fr.measures},
            **{m.id: measure_sql(m, None, clock, order) for g in groups for m in g.measures},
        },
        "next_joins": {g.id: _next_joins(g) for g in groups},
        "output_sql": {
            o.target.name: output_sql(o, fills[o.target.name], clock) for o in plan.outputs
        },
    }


def render_raw(
    plan: Plan, source: Source, template: str = "targets.sql.j2", **extra: object
) -> str:
    """The template output, before sqlglot."""
    ctx = context(plan, source)
    ctx.update(extra)
    try:
        return _env().get_template(template).render(**ctx)
    except jinja2.TemplateError as e:
        name = getattr(e, "name", None) or template
        raise SqlTargetsError(f"template {name} failed: {e}") from e


def _parse(raw: str, template: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(raw, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise SqlTargetsError(f"template {template} rendered SQL that does not parse: {e}") from e


def statement(plan: Plan, source: Source) -> exp.Expression:
    """The portable statement as a sqlglot tree (DuckDB's), for a dialect to translate."""
    return _parse(render_raw(plan, source), "targets.sql.j2")


def render(plan: Plan, source: Source, pretty: bool = True) -> str:
    """The portable statement: one DuckDB SQL statement for ``plan`` reading ``source``
    (what ``explain --engine sql`` prints and the DuckDB shell runs; the Spark dialect,
    :mod:`sqltargets.dialects.spark`, translates :func:`statement`)."""
    return statement(plan, source).sql(dialect="duckdb", pretty=pretty)


def needs_mcc_codes(plan: Plan) -> bool:
    """Whether the native prologue carries ``_m``, each row's MCC code (INTEGER, NULL when it
    is not one), from which the executor derives MCC filters and distribution slots."""
    return bool(plan.slots) or any(f.mcc is not None for f in plan.filters)


def needs_local_clock(plan: Plan) -> bool:
    """Whether the native prologue carries ``_lus``, the wall clock in the spec's zone in µs,
    from which the executor derives calendar keys; naive timestamps and dates have it as
    the order key ``_o`` already (both are ``epoch_us(CAST(time AS TIMESTAMP))``)."""
    return bool(plan.periods) and plan.time_kind not in LOCAL_IS_ORDER


#: Time kinds whose wall clock in µs is the order key ``_o``.
LOCAL_IS_ORDER = ("timestamp", "date")


def prologue_text(plan: Plan, source: Source, columns: list[str], *, sort: bool = True) -> str:
    """The prologue as the template renders it: what the executor runs. Not parsed here:
    sqlglot's DuckDB dialect loads lazily, and its first load (0.15 s) fell on the first
    run of every fresh process for a spec without ``where``; DuckDB parses it anyway, and
    ``explain`` (:func:`format_prologue`) and the golden tests check it with sqlglot."""
    return render_raw(
        plan, source, "prologue.sql.j2", prologue_columns=columns, sort=sort, native=True
    )


def format_prologue(text: str, pretty: bool = True) -> str:
    """:func:`prologue_text`'s SQL checked and printed by sqlglot (the same statement)."""
    return _parse(text, "prologue.sql.j2").sql(dialect="duckdb", pretty=pretty)
