"""The one error tree of sqltargets.

Every mistake a user can make ends in a subclass of :class:`SqlTargetsError`; the CLI prints
it as one ``Error: ...`` line and exits 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line ``Error: ...`` quotes of an error from below (DuckDB, pyarrow, the OS).

    >>> first_line(ValueError("bad value\\nsecond line")), first_line(KeyError())
    ('bad value', 'KeyError')
    """
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class SqlTargetsError(Exception):
    """Root of every error sqltargets raises on purpose."""


class SpecError(SqlTargetsError):
    """A target spec is invalid. Holds one or more :class:`SpecIssue` lines."""

    def __init__(self, issues: list[SpecIssue] | SpecIssue | str) -> None:
        if isinstance(issues, str):
            issues = [SpecIssue("", issues)]
        elif isinstance(issues, SpecIssue):
            issues = [issues]
        self.issues: list[SpecIssue] = list(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


class SpecIssue:
    """One problem in a spec: a dotted path, and what is wrong there."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"SpecIssue({self.path!r}, {self.message!r})"


class DataError(SqlTargetsError):
    """The input data does not fit the spec (missing column, null time, wrong type, ...)."""


class SourceError(SqlTargetsError):
    """The input cannot be found or read."""


class OutputError(SqlTargetsError):
    """The output cannot be written."""


class ArgumentError(SqlTargetsError, ValueError):
    """An argument of an API function (or a CLI option) is out of its range."""


class DroppedRowsWarning(UserWarning):
    """Rows with a null user or time were left out (``null_rows: drop``)."""


class SkippedOutputsWarning(UserWarning):
    """An input folder or glob holds sqltargets outputs, which are not read as input."""


class MccCodesWarning(UserWarning):
    """A string MCC column holds no MCC code (a string of digits) among its first values, so
    every MCC filter and slot matches nothing."""


class VerifyError(SqlTargetsError):
    """The SQL path and the NumPy reference disagree."""


def short(obj: object) -> str:
    """A repr of at most about a line: long strings and deep or long lists and mappings are
    shortened, so an error message never repeats a huge value.

    >>> short("x" * 200)[:12], short([[[[[1]]]]])
    ("'xxxxxxxxxxx", '[[[[...]]]]')
    """
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = 80
    r.maxlist = r.maxdict = r.maxtuple = r.maxset = r.maxfrozenset = 6
    r.maxlevel = 3
    try:
        return r.repr(obj)
    except Exception:  # a repr that fails: name the type only
        return f"<{type(obj).__name__}>"


def did_you_mean(value: object, allowed: Iterable[str]) -> str:
    """A ``did you mean`` hint for ``value`` among ``allowed``, or ``""``.

    >>> did_you_mean("mounth", ["day", "week", "month"])
    " (did you mean 'month'?)"
    >>> did_you_mean("xyz", ["day"])
    ''
    """
    allowed = list(allowed)
    if not isinstance(value, str) or len(value) > 100:
        return ""
    lowered = {a.lower(): a for a in allowed}
    match = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[match[0]]!r}?)" if match else ""


def one_of(field: str, value: object, allowed: Iterable[str]) -> SpecIssue:
    """The standard "not one of" issue, with the allowed values and a did-you-mean.

    >>> str(one_of("targets[0].agg", "summ", ["sum", "count"]))
    "targets[0].agg: 'summ' is not allowed; expected one of: sum, count (did you mean 'sum'?)"
    """
    allowed = list(allowed)
    return SpecIssue(
        field,
        f"{short(value)} is not allowed; expected one of: {', '.join(allowed)}"
        f"{did_you_mean(value, allowed)}",
    )


#: The largest seed (NumPy's generators take 0 to 2**63 - 1, as every seeded verb does).
MAX_SEED = 2**63 - 1


def whole(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """A whole-number argument in [lo, hi], or a one-line :class:`ArgumentError` naming it.

    >>> whole("users", 3, 1)
    3
    >>> whole("seed", True, 0)
    Traceback (most recent call last):
    ...
    sqltargets.errors.ArgumentError: seed: expected a whole number, got True
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{name}: expected a whole number, got {short(value)}")
    n = int(value)  # (a NumPy integer too, named as a number)
    if n < lo or (hi is not None and n > hi):
        upper = f" to {hi:,}" if hi is not None else " or more"
        raise ArgumentError(f"{name}: {n} is not allowed; expected {lo:,}{upper}")
    return n
