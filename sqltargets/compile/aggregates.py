"""The one table of aggregations: what each reads, what it outputs, what an empty window
gives, the SQL measures it is computed from, and the native kernel that computes it.

The planner, the renderer, the native executor and the Spark dialect read this table;
adding an aggregation is one entry here, its SQL spelling, its kernel, and its reference
(``sqltargets/verification/reference.py``, which shares nothing with this module).

>>> AGGREGATIONS["mean"].measures, AGGREGATIONS["mean"].empty
(('sum', 'count_value'), 'null')
>>> output_type("first", value_is_mcc=True), output_type("first", value_is_mcc=False)
('int64', 'double')
"""

from __future__ import annotations

from dataclasses import dataclass

#: Window kinds whose window is one event (the n-th next or previous one).
EVENT_WINDOWS = ("next", "previous")


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
    #: the primitive SQL aggregates it is computed from (see templates/macros.sql.j2)
    measures: tuple[str, ...]
    #: the native kernel family (see sqltargets/execute/program.py)
    kernel: str
    #: values a window needs for a result (std and var: 2); fewer count as empty
    least: int = 1
    #: spec keys it takes beyond the common ones
    params: tuple[str, ...] = ()
    #: "any" window kind but next/previous; "event": only next/previous; "all"
    windows: str = "any"


AGGREGATIONS: dict[str, Aggregation] = {
    a.name: a
    for a in (
        Aggregation("sum", "number", "double", "zero", ("sum",), "sum"),
        Aggregation(
            "count", "nothing", "int64", "zero", ("count_star",), "count", 0, windows="all"
        ),
        Aggregation("mean", "number", "double", "null", ("sum", "count_value"), "mean"),
        Aggregation("min", "number", "double", "null", ("min",), "min"),
        Aggregation("max", "number", "double", "null", ("max",), "max"),
        Aggregation("std", "number", "double", "null", ("std",), "std", 2),
        Aggregation("first", "number_or_code", "value", "null", ("first",), "first", windows="all"),
        Aggregation("last", "number_or_code", "value", "null", ("last",), "last", windows="all"),
        Aggregation("count_distinct", "raw", "int64", "zero", ("count_distinct",), "distinct"),
        Aggregation("top_k", "number", "list", "nulls", ("top_k",), "top_k", params=("k",)),
        Aggregation("var", "number", "double", "null", ("var",), "var", 2),
        Aggregation("median", "number", "double", "null", ("median",), "quantile"),
        Aggregation(
            "quantile", "number", "double", "null", ("quantile",), "quantile", params=("q",)
        ),
        Aggregation("mode", "number_or_code", "value", "null", ("mode",), "mode"),
        Aggregation(
            "distribution",
            "number",
            "list",
            "zeros",
            ("distribution",),
            "distribution",
            params=("by", "measure", "normalize"),
        ),
        Aggregation(
            "elapsed", "nothing", "double", "null", ("elapsed",), "elapsed", 0, windows="event"
        ),
    )
}

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
