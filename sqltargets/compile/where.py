"""``where`` filters: parsed by sqlglot and checked against a short allow-list.

A ``where`` expression may use only the input's columns, literals, comparisons,
arithmetic, boolean logic, ``IN`` with a list of literals, ``BETWEEN``, ``IS [NOT] NULL``,
``LIKE`` and a few safe scalar functions. Anything else (subqueries, table functions,
``read_csv``, casts, statements) is refused before any SQL is composed.

>>> sorted(columns(parse("amount > 0 AND mcc IN (5411, 5412)")))
['amount', 'mcc']
>>> parse("amount > 0; DROP TABLE t")
Traceback (most recent call last):
...
sqltargets.errors.SpecError: where: 'amount > 0; DROP TABLE t' is not one boolean expression
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp

from ..errors import SpecError, SpecIssue, short
from ..errors import first_line as _first_line

#: Scalar functions a ``where`` may call, by sqlglot node class, with their SQL names.
SAFE_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.Abs: "abs",
    exp.Round: "round",
    exp.Floor: "floor",
    exp.Ceil: "ceil",
    exp.Sqrt: "sqrt",
    exp.Ln: "ln",
    exp.Lower: "lower",
    exp.Upper: "upper",
    exp.Length: "length",
    exp.Coalesce: "coalesce",
    exp.Least: "least",
    exp.Greatest: "greatest",
}

_ALLOWED: tuple[type[exp.Expression], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Paren,
    exp.Neg,
    exp.Not,
    exp.And,
    exp.Or,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    *SAFE_FUNCTIONS,
)

ALLOWED_TEXT = (
    "input columns, literals, comparisons, + - * / %, AND/OR/NOT, IN (literals), BETWEEN, "
    "IS [NOT] NULL, LIKE/ILIKE and the functions " + ", ".join(sorted(SAFE_FUNCTIONS.values()))
)


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> exp.Expression:
    if len(text) > MAX_CHARS:
        raise SpecError(
            SpecIssue("where", f"{short(text)} is longer than {MAX_CHARS:,} characters")
        )
    if _paren_depth(text) > MAX_DEPTH:
        raise SpecError(
            SpecIssue("where", f"{short(text)} nests parentheses more than {MAX_DEPTH} deep")
        )
    try:
        statements = sqlglot.parse(text, read="duckdb")
    except sqlglot.errors.SqlglotError as e:
        raise SpecError(
            SpecIssue("where", f"{short(text)} does not parse: {_first_line(e)}")
        ) from e
    except RecursionError as e:
        raise SpecError(SpecIssue("where", f"{short(text)} is nested too deeply")) from e
    if len(statements) != 1 or statements[0] is None:
        raise SpecError(SpecIssue("where", f"{short(text)} is not one boolean expression"))
    tree = statements[0]
    if _tree_depth(tree) > MAX_TREE_DEPTH:
        raise SpecError(
            SpecIssue(
                "where",
                f"{short(text)} is nested more than {MAX_TREE_DEPTH} operations deep; "
                "split it or use IN (...)",
            )
        )
    for node in tree.walk():
        if not isinstance(node, _ALLOWED):
            raise SpecError(
                SpecIssue(
                    "where",
                    f"{short(text)} uses {short(node.sql(dialect='duckdb'))} "
                    f"({type(node).__name__}), which is not allowed; allowed: {ALLOWED_TEXT}",
                )
            )
        if isinstance(node, exp.Column) and (
            node.table or not isinstance(node.this, exp.Identifier)
        ):
            raise SpecError(
                SpecIssue(
                    "where", f"{short(text)}: {short(node.sql())} must be a plain column name"
                )
            )
        if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
            raise SpecError(SpecIssue("where", f"{short(text)}: IN takes a list of literals only"))
        if isinstance(node, exp.In) and not all(
            isinstance(e, (exp.Literal, exp.Neg, exp.Null, exp.Boolean)) for e in node.expressions
        ):
            raise SpecError(SpecIssue("where", f"{short(text)}: IN takes a list of literals only"))
        if isinstance(node, exp.Is) and not isinstance(node.expression, exp.Null):
            raise SpecError(
                SpecIssue("where", f"{short(text)}: IS is allowed only as IS [NOT] NULL")
            )
        if isinstance(node, (exp.Like, exp.ILike)) and not isinstance(node.expression, exp.Literal):
            raise SpecError(
                SpecIssue("where", f"{short(text)}: LIKE needs a string literal pattern")
            )
        if isinstance(node, exp.Between) and node.args.get("symmetric"):
            # (DuckDB has no BETWEEN SYMMETRIC: sqlglot rewrote it into two BETWEENs)
            raise SpecError(
                SpecIssue(
                    "where",
                    f"{short(text)}: BETWEEN SYMMETRIC is not DuckDB SQL; order the bounds, "
                    "low AND high",
                )
            )
        if isinstance(node, (exp.Floor, exp.Ceil)) and any(
            node.args.get(k) is not None for k in node.args if k != "this"
        ):  # (DuckDB's floor and ceil take one argument: sqlglot made floor(x, n) of powers)
            raise SpecError(
                SpecIssue(
                    "where",
                    f"{short(text)}: {type(node).__name__.lower()}() takes one argument in "
                    "DuckDB; for decimals use round(x, n)",
                )
            )
        if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
            places = node.args["decimals"]
            if isinstance(places, exp.Neg):
                places = places.this
            if not (
                isinstance(places, exp.Literal)
                and not places.is_string
                and places.this.isdigit()
                and int(places.this) <= 400
            ):
                raise SpecError(
                    SpecIssue(
                        "where",
                        f"{short(text)}: round() takes whole-number literal decimals "
                        "from -400 to 400",
                    )
                )
    if isinstance(tree, (exp.Literal, exp.Column)) or _is_arithmetic(tree):
        raise SpecError(
            SpecIssue(
                "where", f"{short(text)} is not a boolean expression (compare it, e.g. '> 0')"
            )
        )
    return tree


#: Limits of a ``where``: characters, parenthesis depth, depth of the parsed tree (every
#: later step, DuckDB's parser included, walks it recursively).
MAX_CHARS = 10_000
MAX_DEPTH = 64
MAX_TREE_DEPTH = 256


def _paren_depth(text: str) -> int:
    """Deepest nesting of parentheses outside string literals."""
    depth = deepest = 0
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def _tree_depth(tree: exp.Expression) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in node.iter_expressions())
    return deepest


def _is_arithmetic(tree: exp.Expression) -> bool:
    return isinstance(tree, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, *SAFE_FUNCTIONS))


def parse(text: str) -> exp.Expression:
    """Parse and check a ``where`` expression; a fresh copy each call."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(SpecIssue("where", f"{short(text)} must be a non-empty string"))
    return _parse(text).copy()


def columns(tree: exp.Expression) -> set[str]:
    """Names of the input columns a checked ``where`` reads."""
    return {c.name for c in tree.find_all(exp.Column)}


def to_sql(
    tree: exp.Expression, rename: dict[str, str] | None = None, dialect: str = "duckdb"
) -> str:
    """SQL text of a checked ``where``, every identifier quoted by sqlglot.

    >>> to_sql(parse("amount > 0 and city = 'x'"))
    '"amount" > 0 AND "city" = \\'x\\''
    """
    tree = tree.copy()
    rename = rename or {}
    for col in list(tree.find_all(exp.Column)):
        col.replace(exp.column(rename.get(col.name, col.name), quoted=True))
    return tree.sql(dialect=dialect, identify=True, comments=False)
