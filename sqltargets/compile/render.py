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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import sqlglot
from sqlglot import exp

from ..errors import SqlTargetsError
from . import where as where_mod
from .plan import Frame, Plan
from .spec import UNIT_US

DIALECTS = ("duckdb", "spark")

PERIOD_STEP = {
    "day": "1 DAY",
    "week": "7 DAY",
    "month": "1 MONTH",
    "quarter": "3 MONTH",
    "year": "1 YEAR",
}

ROW_ID_COLUMN = "_st_rid"


def ident(name: str) -> str:
    """A quoted SQL identifier.

    >>> ident('we"ird')
    '"we""ird"'
    """
    return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


def literal(value: object) -> str:
    """A SQL literal for a string or number.

    >>> literal("it's"), literal(2.5), literal(-3)
    ("'it''s'", '2.5', '-3')
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no literal for {value!r}")
    if isinstance(value, (int, float)):
        return exp.convert(value).sql(dialect="duckdb")
    return exp.Literal.string(str(value)).sql(dialect="duckdb")


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
    options: str = ""  # more read_parquet options, each as ", name = value"
    columns: str = "f.*"  # the select list over the files (alias f): casts for mixed types
    rid_name: str = ROW_ID_COLUMN  # the row position's column: never an input column's name
    filename: str = "filename"  # the file name's column (read_parquet's filename option)

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
) -> Source:
    """Read Parquet files: an explicit list (each path escaped, so DuckDB globs nothing), with
    Hive partitioning off. ``columns`` are the input's column names (internal names avoid
    them); ``casts`` (column -> DuckDB type) read mixed types as one, and ``union`` matches
    the files' columns by name. ``rid_column`` names a column holding the input position (a
    prepared store's); else positions come from ``file_row_number`` and per-file offsets.

    >>> parquet_source(["d/tx[1].parquet"], multi=False).read
    "read_parquet(['d/tx[[]1].parquet'], hive_partitioning = FALSE)"
    """
    from ..execute.files import duckdb_path

    if isinstance(paths, str):
        paths = [paths]
    files = "[" + ", ".join(literal(duckdb_path(p)) for p in paths) + "]"
    names = list(columns)
    options = ", hive_partitioning = FALSE" + (", union_by_name = TRUE" if union else "")
    select = "f.*"
    casts = casts or {}
    if casts or explicit:
        select = ", ".join(
            f"CAST(f.{ident(c)} AS {casts[c]}) AS {ident(c)}" if c in casts else f"f.{ident(c)}"
            for c in names
        )
    taken = [*names, "filename", "file_row_number", "file_index"]
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
    )  # fmt: skip


def relation_source(
    name: str,
    *,
    schema: str | None = None,
    rid_column: str = "rowid",
    columns: Iterable[str] = (),
) -> Source:
    """Read a table or view by name; ``rid_column`` gives row positions ("" for none).
    ``columns``: the relation's columns, which the internal row-position name avoids."""
    rel = ident(name) if schema is None else f"{ident(schema)}.{ident(name)}"
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


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # SQL, not HTML: quoting is done in Python before rendering
        keep_trailing_newline=True,
        trim_blocks=False,
    )


def _frame_sql(fr: Frame, elapsed: str, order: str) -> str:
    if fr.kind in ("next", "previous"):  # LEAD / LAG over the user's events in event order
        return f"PARTITION BY _u ORDER BY {order}"
    if fr.kind == "expanding":
        return (
            f"PARTITION BY _u, _p_{fr.period} ORDER BY {order} "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
        )
    assert fr.length is not None
    if fr.kind == "rolling":
        # (t - length, t]: peers (same time) are inside, exactly `length` ago is not
        return (
            f"PARTITION BY _u ORDER BY {elapsed} "
            f"RANGE BETWEEN {fr.length - 1} PRECEDING AND CURRENT ROW"
        )
    # future: (t, t + length], written as a trailing frame over descending time, which
    # DuckDB evaluates about twice as fast as "1 FOLLOWING AND length FOLLOWING"
    return (
        f"PARTITION BY _u ORDER BY {elapsed} DESC "
        f"RANGE BETWEEN {fr.length} PRECEDING AND 1 PRECEDING"
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
    if source.shard is not None:
        where.append(shard_condition(cols.user, *source.shard))
    frames = list(plan.frames)
    groups = list(plan.groups)
    return {
        "groups": groups,
        "plan": plan,
        "frames": frames,
        "source": source,
        "base_where": where,
        "c": {
            "user": ident(cols.user),
            "time": ident(cols.time),
            "key": ident(ts.key_column()),
        },
        "tiebreak": ident(cols.id) if cols.id else rid,
        "second_tiebreak": rid if cols.id and rid != "NULL" else "",
        "q": {n: ident(n) for n in names},
        "tz": literal(ts.timezone),
        "origin": f"TIMESTAMP {literal(ts.time.origin.isoformat())}",
        "unit_us": str(UNIT_US[ts.time.unit]) if ts.time.unit else "1",
        "week_shift": ts.week_start_index,
        "period_step": PERIOD_STEP,
        "elapsed_differs": elapsed_differs,
        "filter_sql": {
            f.id: _filter_sql(f.mcc, f.where, ident(cols.mcc), plan.mcc_text) for f in plan.filters
        },
        "value_sql": {
            v.id: _value_sql(v.kind, ident(v.column), ident(cols.mcc), plan.mcc_text)
            for v in plan.values
        },
        "slot_sql": {s.id: _slot_sql(s.groups, ident(cols.mcc), plan.mcc_text) for s in plan.slots},
        "frame_sql": {
            fr.id: _frame_sql(
                fr,
                "_e" if elapsed_differs else "_o",
                "_o, _tb, _tb2" if cols.id and rid != "NULL" else "_o, _tb",
            )
            for fr in frames
        },
        "fills": {t.name: (literal(t.fill) if t.fill is not None else "") for t in ts.targets},
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


def render(plan: Plan, source: Source, dialect: str = "duckdb", pretty: bool = True) -> str:
    """The portable statement: one SQL statement for ``plan`` reading ``source``, in
    ``dialect`` (what ``explain --engine sql`` prints and the DuckDB shell and Spark run)."""
    if dialect not in DIALECTS:
        from ..errors import did_you_mean

        raise SqlTargetsError(
            f"dialect: {dialect!r} is not supported; expected one of: {', '.join(DIALECTS)}"
            f"{did_you_mean(dialect, DIALECTS)}"
        )
    tree = _parse(render_raw(plan, source), "targets.sql.j2")
    if dialect == "spark":
        from ..dialects.spark import to_spark

        return to_spark(tree, plan, pretty=pretty)
    return tree.sql(dialect=dialect, pretty=pretty)


def render_prologue(
    plan: Plan, source: Source, columns: list[str], *, sort: bool = True, pretty: bool = True
) -> str:
    """The native executor's prologue: the events of ``plan`` read from ``source``, with
    ``columns`` (internal names such as ``_u``, ``_v0``, ``_p_day``), sorted by user and
    event order unless ``sort`` is False (see :mod:`sqltargets.execute.program`)."""
    raw = render_raw(plan, source, "prologue.sql.j2", prologue_columns=columns, sort=sort)
    return _parse(raw, "prologue.sql.j2").sql(dialect="duckdb", pretty=pretty)
