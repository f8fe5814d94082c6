"""Arrow columns as NumPy arrays and back, read from and written to Arrow buffers directly.

``to_numpy`` and ``pa.array`` would import pandas on first use (a quarter of a second), and
conflate nulls with NaN; these helpers keep values and validity apart.

>>> import pyarrow as pa
>>> col = pa.array([1.5, None, 3.0])
>>> doubles(col).tolist(), valid(col).tolist()
([1.5, 0.0, 3.0], [True, False, True])
>>> from_numpy(np.array([1.0, 2.0]), np.array([True, False])).to_pylist()
[1.0, None]
>>> user_starts(pa.array(["a", "a", "b"])).tolist()
[True, False, True]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _one(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def valid(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where the value is not null."""
    if col.null_count == 0:
        return np.ones(len(col), dtype=bool)
    return numpy(col.is_valid(), bool)


def numpy(col: pa.ChunkedArray | pa.Array, dtype: type, writable: bool = True) -> np.ndarray:
    """The values as a NumPy array (nulls arbitrary: combine with :func:`valid`); with
    ``writable=False``, read-only: a view of the Arrow buffer where the types allow.

    Read-only whatever the buffer (DuckDB's are, those of Arrow's own pool are not) and
    whether or not it had to be copied: the kernels compile once per array type, so one
    call site must always pass the same type (and a view must never be written)."""
    out = _numpy(col, dtype, writable)
    if not writable:
        out.flags.writeable = False
    return out


def _numpy(col: pa.ChunkedArray | pa.Array, dtype: type, writable: bool) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray) and col.num_chunks > 1 and _fixed(col.type):
        # chunk by chunk into one NumPy array: no combined copy from Arrow's pool first
        parts = [_numpy(c, dtype, False) for c in col.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    arr = _one(col)
    t = arr.type
    n, off = len(arr), arr.offset
    if pa.types.is_boolean(t):
        if not n:
            return np.zeros(0, dtype=dtype)
        bits = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
        flags = np.unpackbits(bits, count=off + n, bitorder="little")[off:]
        return flags.astype(dtype, copy=False)
    if pa.types.is_date32(t):
        arr, t = arr.view(pa.int32()), pa.int32()
    elif pa.types.is_timestamp(t) or pa.types.is_date64(t):
        arr, t = arr.view(pa.int64()), pa.int64()
    if (pa.types.is_integer(t) or pa.types.is_floating(t)) and n:
        raw = np.frombuffer(arr.buffers()[1], dtype=t.to_pandas_dtype(), count=off + n)[off:]
        if not writable and raw.dtype == np.dtype(dtype):
            return raw
        return np.array(raw, dtype=dtype)
    if not n:
        return np.zeros(0, dtype=dtype)
    return np.array(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _fixed(t: pa.DataType) -> bool:
    """Whether NumPy reads the type's values from its data buffer as they are."""
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)
            or pa.types.is_date(t))  # fmt: skip


def bools(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where true (null counts as false)."""
    out = numpy(col, bool)
    if col.null_count:
        out &= valid(col)
    return out


def doubles(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values as doubles, with 0.0 where null: read-only, a view where it can be (so
    that the kernels see one array type whether or not a column has nulls)."""
    out = numpy(col, np.float64, writable=bool(col.null_count))
    if col.null_count:
        out[~valid(col)] = 0.0
    out.flags.writeable = False
    return out


def user_starts(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True on the first row of each user, in rows sorted by user (any comparable type;
    NaN users are one user, as in SQL)."""
    n = len(col)
    new = np.ones(n, dtype=bool)
    if n < 2:
        return new
    arr = _one(col)
    if pa.types.is_floating(arr.type):
        a = numpy(arr, np.float64, writable=False)
        new[1:] = (a[1:] != a[:-1]) & ~(np.isnan(a[1:]) & np.isnan(a[:-1]))
    elif pa.types.is_integer(arr.type) and not arr.null_count:
        a = numpy(arr, arr.type.to_pandas_dtype(), writable=False)
        new[1:] = a[1:] != a[:-1]
    else:
        same = pc.fill_null(pc.equal(arr.slice(1), arr.slice(0, n - 1)), False)
        new[1:] = ~numpy(same, bool)
    return new


def ranks(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Dense codes of a column's values in ascending order (as DuckDB's ORDER BY sorts them:
    numbers by value, strings bytewise), nulls last; and how many codes there are.

    >>> ranks(pa.array(["b", "a", None, "b"]))[0].tolist()
    [1, 0, 2, 1]
    """
    enc = pc.dictionary_encode(_one(col))
    order = numpy(pc.sort_indices(enc.dictionary), np.int64)
    rank = np.empty(order.size + 1, np.int64)
    rank[order] = np.arange(order.size)
    rank[order.size] = order.size  # null
    idx = enc.indices
    codes = numpy(idx, np.int64)
    if idx.null_count:
        codes[~valid(idx)] = order.size
    return rank[codes], order.size + (1 if idx.null_count else 0)


def span_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int] | None:
    """Codes that sort as an integer column without nulls does, its values minus the
    smallest, and how many there can be, when they span at most twice as many values as
    there are rows (user ids usually do): a counting sort by them needs no
    :func:`ranks`, which hashes every value (a tenth of a second per two million rows).
    None otherwise.

    >>> codes, n = span_codes(pa.array([12, 10, 12, 15]))
    >>> codes.tolist(), n
    ([2, 0, 2, 5], 6)
    >>> span_codes(pa.array([1, 10**12])) is None, span_codes(pa.array([1, None])) is None
    (True, True)
    """
    t = col.type
    if not pa.types.is_integer(t) or t == pa.uint64() or col.null_count or not len(col):
        return None
    a = numpy(col, t.to_pandas_dtype(), writable=False)
    lo, hi = int(a.min()), int(a.max())
    if hi - lo >= 2 * len(a):
        return None
    return np.subtract(a, lo, dtype=np.int64), hi - lo + 1


def sort_key(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An int64 array that sorts as the column does, nulls last: integers and times as they
    are (a view of the column when it has no nulls), anything else by its rank."""
    t = col.type
    if (pa.types.is_integer(t) and t != pa.uint64()) or pa.types.is_temporal(t):
        if pa.types.is_time(t) or pa.types.is_duration(t) or pa.types.is_interval(t):
            return ranks(col)[0]
        if not col.null_count:  # a view where the type allows (no copy to hold)
            return numpy(col, np.int64, writable=False)
        out = numpy(col, np.int64)
        out[~valid(col)] = np.iinfo(np.int64).max
        return out
    return ranks(col)[0]


def from_numpy(values: np.ndarray, ok: np.ndarray | None = None) -> pa.Array:
    """A zero-copy Arrow array of int64 or float64 ``values``, null where ``ok`` is False."""
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.int64, np.float64):
        values = values.astype(np.float64)
    typ = pa.int64() if values.dtype == np.int64 else pa.float64()
    validity = None
    nulls = 0
    if ok is not None:
        nulls = int(ok.size - np.count_nonzero(ok))
        if nulls:
            validity = pa.py_buffer(np.packbits(ok, bitorder="little"))
    return pa.Array.from_buffers(
        typ, len(values), [validity, pa.py_buffer(values)], null_count=nulls
    )


def lists_from_numpy(values: np.ndarray, ok: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """A ``list<double>`` column from an (n, k) matrix; null items where ``ok`` is False.
    Chunked where one chunk's int32 offsets would overflow."""
    n, k = values.shape
    per_chunk = max(1, (2**31 - 1) // max(k, 1))
    chunks = []
    for a in range(0, max(n, 1), per_chunk):
        b = min(n, a + per_chunk)
        flat = from_numpy(values[a:b].reshape(-1), ok[a:b].reshape(-1))
        offsets = pa.py_buffer(np.arange(0, (b - a) * k + 1, k, dtype=np.int32))
        chunks.append(
            pa.ListArray.from_buffers(
                pa.list_(pa.float64()), b - a, [None, offsets], children=[flat]
            )
        )
    return chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks, pa.list_(pa.float64()))
