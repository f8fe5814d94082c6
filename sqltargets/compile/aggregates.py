"""The one table of aggregations: what each reads, what it outputs, what an empty window
gives, the primitive SQL aggregates (measures) it is computed from and how they are spelled,
how its value is spelled from them, and the native kernel that computes it.

The planner, the renderer, the native executor and the Spark dialect read this table;
adding an aggregation is one entry here (and in ``MEASURES`` for a new primitive), its
kernel, and its reference (``sqltargets/verification/reference.py``, which shares nothing
with this module). The renderer (``render.py``) adds filters, windows, the empty window's
value and the fill from these entries; the templates only place the results.

>>> AGGREGATIONS["mean"].measures, AGGREGATIONS["mean"].empty
(('sum', 'count_value'), 'null')
>>> MEASURES["quantile"].call, AGGREGATIONS["var"].measures
('QUANTILE_CONT({v}, {q})', ('var',))
>>> output_type("first", value_is_mcc=True), output_type("first", value_is_mcc=False)
('int64', 'double')
"""

from __future__ import annotations

from dataclasses import dataclass

#: Window kinds whose window is one event (the n-th next or previous one).
EVENT_WINDOWS = ("next", "previous")


@dataclass(frozen=True)
class MeasureSql:
    """The portable SQL (DuckDB) spelling of one primitive aggregate: a plan ``Measure``'s
    ``fn``. The renderer adds the filters and the window; the Spark dialect translates the
    result node by node."""

    #: the call, a format string: ``{v}`` the value column, ``{k}`` top_k's k, ``{q}`` the
    #: quantile (a DOUBLE literal), ``{n}`` the event's rank and ``{x}`` what LEAD/LAG return
    call: str
    #: its filter also asks for a present value (ARG_MIN and MAX(x, k) would keep nulls)
    skip_nulls: bool = False
    #: an empty window gives 0, not NULL (COUNT): a fill replaces 0
    zero_when_empty: bool = False
    #: a window function taking no FILTER (LEAD/LAG): the filter goes into its argument, and
    #: an event that passes is never NULL there (a struct of its value, or its time)
    event: bool = False


#: The primitive aggregates, by ``Measure.fn``.
MEASURES: dict[str, MeasureSql] = {
    "sum": MeasureSql("SUM({v})"),
    "count_star": MeasureSql("COUNT(*)", zero_when_empty=True),
    "count_value": MeasureSql("COUNT({v})", zero_when_empty=True),
    "avg": MeasureSql("AVG({v})"),
    "min": MeasureSql("MIN({v})"),
    "max": MeasureSql("MAX({v})"),
    "std": MeasureSql("STDDEV_SAMP({v})"),
    "var": MeasureSql("VAR_SAMP({v})"),
    "first": MeasureSql("ARG_MIN({v}, _ord)", skip_nulls=True),
    "last": MeasureSql("ARG_MAX({v}, _ord)", skip_nulls=True),
    "count_distinct": MeasureSql("COUNT(DISTINCT {v})", zero_when_empty=True),
    "top_k": MeasureSql("MAX({v}, {k})", skip_nulls=True),
    # linear interpolation between order statistics, NaN the largest value
    "quantile": MeasureSql("QUANTILE_CONT({v}, {q})"),
    # a MAP value -> count, keys ascending (NaN last, -0.0 merged with 0.0); see `mode` below
    "mode": MeasureSql("HISTOGRAM({v})"),
    # the n-th passing event after / before this row in event order (IGNORE NULLS skips the
    # rows that do not pass)
    "next": MeasureSql("LEAD({x}, {n} IGNORE NULLS)", event=True),
    "previous": MeasureSql("LAG({x}, {n} IGNORE NULLS)", event=True),
}


@dataclass(frozen=True)
class Aggregation:
    """One aggregation of the spec language."""

    name: str
    #: what it reads of the value column: "nothing" (count), "number" (as DOUBLE), "raw"
    #: (any type, count_distinct), "number_or_code" (DOUBLE, or MCC codes for the MCC column)
    reads: str
    #: "int64", "double", "list" (list<double>), or "value" (int64 MCC codes for the MCC
    #: column, else double)
    output: str
    #: an empty window: "zero", "null", "nulls" (a list of nulls), "zeros" (a list of zeros)
    empty: str
    #: the primitive aggregates (``MEASURES``) it is computed from over a frame or a calendar
    #: period; a distribution takes one per slot (``sum`` or, for ``measure: count``,
    #: ``count_star``), an event window one LEAD / LAG (``next`` / ``previous``)
    measures: tuple[str, ...]
    #: the native kernel family (see sqltargets/execute/program.py)
    kernel: str
    #: values a window needs for a result (std and var: 2); fewer count as empty
    least: int = 1
    #: spec keys it takes beyond the common ones
    params: tuple[str, ...] = ()
    #: "any" window kind but next/previous; "event": only next/previous; "all"
    windows: str = "any"
    #: the target's value in SQL from its measures' columns (``{sum}``, ...), before the
    #: empty window and the fill are handled; "" is its one measure as it is
    sql: str = ""
    #: over a next / previous window, from ``{event}`` (the LEAD / LAG column) and, for
    #: times, ``{later}`` and ``{earlier}`` (the event's time and this row's, in order)
    event_sql: str = ""
    #: one measure that computes it alone where no other target shares ``measures`` (a
    #: mean's AVG, cheaper than SUM and COUNT)
    solo: str = ""


AGGREGATIONS: dict[str, Aggregation] = {
    a.name: a
    for a in (
        Aggregation("sum", "number", "double", "zero", ("sum",), "sum"),
        Aggregation(
            "count", "nothing", "int64", "zero", ("count_star",), "count", 0, windows="all",
            event_sql="CASE WHEN {event} IS NOT NULL THEN 1 END",
        ),
        Aggregation(
            "mean", "number", "double", "null", ("sum", "count_value"), "mean",
            sql="{sum} / NULLIF({count_value}, 0)", solo="avg",
        ),
        Aggregation("min", "number", "double", "null", ("min",), "min"),
        Aggregation("max", "number", "double", "null", ("max",), "max"),
        Aggregation("std", "number", "double", "null", ("std",), "std", 2),
        Aggregation(
            "first", "number_or_code", "value", "null", ("first",), "first", windows="all",
            event_sql="struct_extract({event}, 'v')",
        ),
        Aggregation(
            "last", "number_or_code", "value", "null", ("last",), "last", windows="all",
            event_sql="struct_extract({event}, 'v')",
        ),
        Aggregation("count_distinct", "raw", "int64", "zero", ("count_distinct",), "distinct"),
        Aggregation("top_k", "number", "list", "nulls", ("top_k",), "top_k", params=("k",)),
        Aggregation("var", "number", "double", "null", ("var",), "var", 2),
        Aggregation("median", "number", "double", "null", ("quantile",), "quantile"),
        Aggregation(
            "quantile", "number", "double", "null", ("quantile",), "quantile", params=("q",)
        ),
        # the smallest key of the histogram with the largest count
        Aggregation(
            "mode", "number_or_code", "value", "null", ("mode",), "mode",
            sql="map_keys({mode})[list_position(map_values({mode}), list_max(map_values({mode})))]",
        ),
        Aggregation(
            "distribution", "number", "list", "zeros", ("sum",), "distribution",
            params=("by", "measure", "normalize"),
        ),
        Aggregation(
            "elapsed", "nothing", "double", "null", (), "elapsed", 0, windows="event",
            event_sql="CAST({later} - {earlier} AS DOUBLE) / 1000000",
        ),
    )
}  # fmt: skip

#: The aggregations a one-event window (``next`` / ``previous``) takes.
EVENT_AGGS = tuple(a.name for a in AGGREGATIONS.values() if a.windows in ("all", "event"))
#: Aggregations that output MCC codes (int64) when their value is the spec's MCC column.
MCC_LABEL_AGGS = tuple(a.name for a in AGGREGATIONS.values() if a.reads == "number_or_code")


def output_type(agg: str, value_is_mcc: bool) -> str:
    """The output type of ``agg``: ``int64``, ``double`` or ``list`` (list<double>)."""
    out = AGGREGATIONS[agg].output
    if out == "value":
        return "int64" if value_is_mcc else "double"
    return out


def reads(agg: str, value_is_mcc: bool) -> str:
    """What ``agg`` reads of its value column: ``nothing``, ``number``, ``raw`` or ``code``."""
    r = AGGREGATIONS[agg].reads
    if r == "number_or_code":
        return "code" if value_is_mcc else "number"
    return r
