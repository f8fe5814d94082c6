"""Synthetic card transactions for demos, tests and benchmarks.

:func:`make_transactions` builds a realistic, seeded table of card transactions:
heavy-tailed activity per user, MCC popularity like real card data (codes from the
:mod:`sqltargets.compile.mcc` catalog plus a long tail of other codes), log-normal amounts per
merchant kind, monthly bills (rent, utilities, telecom, insurance, subscriptions) on a
user's own billing day, ~3% refunds, daily and weekly rhythms and an optional share of
same-second ties. :func:`write_demo` writes such a table as Parquet files, each user in
exactly one file. Everything is numpy-vectorised: 2000 users × 4096 transactions (8M
rows) take a few seconds.

The same arguments give the same table, bit for bit. ``ties`` and ``shuffle`` draw from
their own random streams, so they change only the timestamps they tie and the row order:
``shuffle=True`` gives the very same rows as ``shuffle=False``, in a random order.

>>> t = make_transactions(3, seed=1, tx_per_user=5)
>>> t.num_rows, t.column_names
(15, ['user_id', 'ts', 'amount', 'mcc', 'tx_id', 'channel'])
>>> str(t.schema.field("ts").type), str(t.schema.field("mcc").type)
('timestamp[us]', 'int32')
>>> make_transactions(50, seed=7).equals(make_transactions(50, seed=7))
True
>>> sorted(set(t.column("channel").to_pylist()) - {"pos", "online", "atm"})
[]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["SCHEMA", "make_transactions", "write_demo"]

#: The columns of :func:`make_transactions`' table.
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("amount", pa.float64()),
        ("mcc", pa.int32()),
        ("tx_id", pa.int64()),
        ("channel", pa.string()),
    ]
)

CHANNELS = ("pos", "online", "atm")

_DAY_S = 86_400
_REFUND_SHARE = 0.03


# --------------------------------------------------------------------------- rhythms


def _hours(*bumps: tuple[float, float, float], floor: float = 0.02) -> np.ndarray:
    """24 hourly weights: a floor plus circular Gaussian bumps ``(hour, width, height)``."""
    h = np.arange(24) + 0.5
    w = np.full(24, floor)
    for center, width, height in bumps:
        d = np.abs(h - center)
        d = np.minimum(d, 24 - d)
        w += height * np.exp(-0.5 * (d / width) ** 2)
    return w / w.sum()


#: Hour-of-day profiles (local time).
_HOURS: dict[str, np.ndarray] = {
    "retail": _hours((11, 2, 0.6), (15, 2.5, 0.8), (18.5, 2, 1.0)),
    "grocery": _hours((10, 2, 0.7), (13, 1.5, 0.5), (17.5, 1.8, 1.0)),
    "meal": _hours((8, 1, 0.2), (12.7, 1.0, 1.0), (19.3, 1.3, 1.0)),
    "fast": _hours((8, 1.2, 0.5), (12.5, 1.1, 1.0), (18.5, 1.5, 0.7), (22.5, 1.5, 0.25)),
    "bar": _hours((18, 1.5, 0.4), (21.5, 2.0, 1.0), (0.5, 1.5, 0.6), floor=0.01),
    "commute": _hours((8, 1.0, 1.0), (17.8, 1.2, 0.9), (13, 3, 0.3), (23, 1.5, 0.15)),
    "fuel": _hours((8, 1.5, 0.6), (12.5, 2.5, 0.6), (17.5, 1.5, 1.0)),
    "online": _hours((12, 3, 0.5), (21, 2.5, 1.0), floor=0.08),
    "office": _hours((10.5, 2, 1.0), (15, 2, 0.8), floor=0.005),
    "cash": _hours((12, 3, 0.7), (18, 2, 1.0), (1, 1.5, 0.12)),
    "batch": _hours((5, 2.0, 1.0), (9, 2.0, 0.5), floor=0.01),
}

#: Day-of-week profiles, Monday first.
_WEEK: dict[str, tuple[float, ...]] = {
    "flat": (1, 1, 1, 1, 1, 1, 1),
    "retail": (0.95, 0.95, 1, 1, 1.1, 1.4, 1.15),
    "grocery": (0.95, 0.9, 0.9, 0.95, 1.1, 1.35, 1.0),
    "meal": (0.8, 0.85, 0.9, 1.0, 1.3, 1.4, 1.1),
    "bar": (0.4, 0.5, 0.6, 0.9, 1.8, 2.0, 0.8),
    "commute": (1.2, 1.2, 1.2, 1.2, 1.15, 0.6, 0.45),
    "fast": (1.05, 1, 1, 1, 1.1, 1.05, 0.9),
    "fuel": (1, 1, 1, 1, 1.15, 1.05, 0.85),
    "fun": (0.6, 0.6, 0.7, 0.8, 1.3, 1.8, 1.4),
    "office": (1.2, 1.2, 1.2, 1.2, 1.1, 0.4, 0.2),
}


# --------------------------------------------------------------------------- merchants


@dataclass(frozen=True)
class _Cat:
    """One kind of merchant: how popular, which codes, how much, when and how."""

    name: str
    weight: float  # share of everyday transactions (0 for bills)
    codes: tuple[tuple[int, float], ...]  # (mcc, weight)
    median: float  # median amount
    sigma: float  # log-normal sigma of the amount
    online: float = 0.1  # share of online (card-not-present) transactions
    hours: str = "retail"
    week: str = "retail"
    refund: float = 0.0  # relative refund rate, scaled so that ~3% of all rows are refunds
    loyalty: float = 0.5  # chance a transaction goes to the user's usual code of the kind
    bill: float = 0.0  # chance a user pays this kind as a monthly bill
    noise: float = 0.0  # month-to-month log-normal noise of a bill
    prices: tuple[float, ...] = ()  # fixed price points (subscriptions)
    cash: bool = False


def _spread(lo: int, hi: int, k: int, total: float) -> tuple[tuple[int, float], ...]:
    """``k`` codes spread over ``[lo, hi]`` sharing ``total`` weight, the first ones heavier."""
    codes = np.linspace(lo, hi, k).round().astype(int)
    w = 1.0 / np.arange(1, k + 1)
    w = total * w / w.sum()
    return tuple((int(c), float(x)) for c, x in zip(codes, w, strict=True))


#: Codes outside every catalog group: the long tail of real card data (Zipf-like weights).
_TAIL_CODES = (
    5999, 5942, 5945, 5977, 7230, 5995, 742, 5921, 5993, 5947, 5992, 5941, 5944, 7210,
    7298, 8999, 7399, 5970, 5943, 5949, 5964, 5969, 7216, 7221, 7251, 7333, 7338, 7372,
    7392, 7631, 7641, 7699, 8111, 8931, 5399, 5713, 5714, 5719, 5931, 5948, 5950, 5996,
    5997, 5998, 7273, 7297, 7311, 7342, 7349, 7361, 7379, 7394, 7395, 7622, 7629, 7692,
    7841, 5094, 5192, 5193, 5935, 5937, 5940, 5971, 5972, 5973, 5975, 5976, 5978, 7217,
    7261, 7276, 7277, 7278, 7296, 7393, 7623, 7829, 8351, 8641, 8651, 8661, 8675, 8699,
    8734, 8911, 780, 1520, 1711, 1731, 1740, 1750, 1761, 1771, 2741, 2791, 2842,
)  # fmt: skip

# fmt: off
_CATS: tuple[_Cat, ...] = (
    _Cat(
        "grocery", 0.20,
        ((5411, 0.80), (5499, 0.09), (5462, 0.05), (5451, 0.02), (5441, 0.02), (5422, 0.02)),
        32, 0.85, online=0.06, hours="grocery", week="grocery", refund=0.6, loyalty=0.7,
    ),
    _Cat(
        "restaurants", 0.09, ((5812, 0.9), (5811, 0.1)), 38, 0.6,
        online=0.08, hours="meal", week="meal", refund=0.3, loyalty=0.3,
    ),
    _Cat(
        "fast_food", 0.12, ((5814, 1.0),), 11, 0.45,
        online=0.12, hours="fast", week="fast", refund=0.3, loyalty=1.0,
    ),
    _Cat(
        "bars", 0.02, ((5813, 1.0),), 26, 0.65,
        online=0.0, hours="bar", week="bar", refund=0.1, loyalty=1.0,
    ),
    _Cat(
        "fuel", 0.07, ((5541, 0.55), (5542, 0.42), (5983, 0.02), (5552, 0.01)), 45, 0.45,
        online=0.0, hours="fuel", week="fuel", refund=0.2, loyalty=0.8,
    ),
    _Cat(
        "drug_stores", 0.04, ((5912, 0.95), (5122, 0.05)), 18, 0.8,
        online=0.08, refund=1.0, loyalty=0.9,
    ),
    _Cat(
        "digital_goods", 0.05, ((5815, 0.3), (5816, 0.25), (5817, 0.25), (5818, 0.2)), 7, 0.8,
        online=1.0, hours="online", week="flat", refund=1.5, loyalty=0.5,
    ),
    _Cat(
        "transit", 0.05, ((4111, 0.45), (4121, 0.3), (7523, 0.12), (4784, 0.1), (4131, 0.03)),
        6, 0.8, online=0.3, hours="commute", week="commute", refund=0.4, loyalty=0.6,
    ),
    _Cat(
        "clothing", 0.035,
        ((5651, 0.3), (5691, 0.2), (5661, 0.15), (5621, 0.1), (5699, 0.08), (5611, 0.05),
         (5641, 0.04), (5631, 0.03), (5655, 0.02), (5697, 0.01), (5698, 0.01), (5681, 0.01)),
        55, 0.8, online=0.35, refund=5.0, loyalty=0.4,
    ),
    _Cat(
        "department_stores", 0.06, ((5310, 0.35), (5311, 0.3), (5331, 0.2), (5300, 0.15)),
        42, 0.85, online=0.25, refund=2.5, loyalty=0.6,
    ),
    _Cat(
        "electronics", 0.015, ((5732, 0.5), (5734, 0.2), (5045, 0.1), (5946, 0.1), (5722, 0.1)),
        110, 1.05, online=0.45, refund=4.0, loyalty=0.4,
    ),
    _Cat(
        "home", 0.02, ((5200, 0.4), (5251, 0.2), (5712, 0.15), (5211, 0.15), (5261, 0.1)),
        60, 1.0, online=0.2, refund=3.0, loyalty=0.6,
    ),
    _Cat(
        "entertainment", 0.02,
        ((7832, 0.35), (7922, 0.15), (7997, 0.15), (7996, 0.1), (7999, 0.1), (7941, 0.05),
         (7991, 0.05), (7929, 0.05)),
        30, 0.7, online=0.45, hours="retail", week="fun", refund=1.0, loyalty=0.3,
    ),
    _Cat(
        "health", 0.015, ((8011, 0.3), (8021, 0.25), (8099, 0.15), (8062, 0.1), (8042, 0.1),
                          (8043, 0.1)),
        90, 0.9, online=0.1, hours="office", week="office", refund=1.5, loyalty=0.7,
    ),
    _Cat(
        "automotive", 0.01, ((7542, 0.35), (5533, 0.2), (7538, 0.2), (5531, 0.1), (7531, 0.05),
                             (7549, 0.05), (5511, 0.05)),
        70, 1.1, online=0.1, hours="office", week="retail", refund=1.5, loyalty=0.6,
    ),
    _Cat(
        "cash", 0.03, ((6011, 0.95), (6010, 0.05)), 0, 0,
        online=0.0, hours="cash", week="retail", loyalty=0.9, cash=True,
    ),
    _Cat(
        "airlines", 0.004, ((4511, 0.55), *_spread(3000, 3300, 12, 0.45)), 320, 0.7,
        online=0.85, hours="online", week="flat", refund=6.0, loyalty=0.4,
    ),
    _Cat(
        "hotels", 0.004, ((7011, 0.65), *_spread(3501, 3800, 12, 0.35)), 240, 0.7,
        online=0.6, hours="online", week="fun", refund=4.0, loyalty=0.3,
    ),
    _Cat(
        "car_rental", 0.0015, ((7512, 0.6), *_spread(3351, 3440, 6, 0.4)), 180, 0.6,
        online=0.5, hours="office", week="fun", refund=3.0, loyalty=0.5,
    ),
    _Cat(
        "travel_other", 0.002, ((4722, 0.6), (4112, 0.3), (4411, 0.1)), 150, 0.9,
        online=0.7, hours="online", week="flat", refund=4.0, loyalty=0.5,
    ),
    _Cat(
        "education", 0.002, ((8220, 0.4), (8299, 0.35), (8211, 0.15), (8241, 0.1)), 150, 1.0,
        online=0.5, hours="office", week="office", refund=1.0, loyalty=0.9,
    ),
    _Cat(
        "government", 0.002, ((9399, 0.5), (9311, 0.3), (9222, 0.15), (9402, 0.05)), 60, 1.0,
        online=0.5, hours="office", week="office", loyalty=0.5,
    ),
    _Cat(
        "charity", 0.002, ((8398, 1.0),), 30, 0.8,
        online=0.7, hours="online", week="flat", loyalty=1.0,
    ),
    _Cat(
        "financial", 0.004, ((4829, 0.6), (6051, 0.2), (6540, 0.15), (6012, 0.05)), 150, 1.0,
        online=0.7, hours="online", week="flat", refund=0.5, loyalty=0.8,
    ),
    _Cat(
        "telecom_topup", 0.005, ((4814, 0.8), (4812, 0.2)), 20, 0.5,
        online=0.7, hours="online", week="flat", loyalty=0.9,
    ),
    _Cat(
        "other", 0.10, tuple((c, 1.0 / (i + 1)) for i, c in enumerate(_TAIL_CODES)), 25, 1.0,
        online=0.3, refund=2.0, loyalty=0.3,
    ),
    # Monthly bills: one a month on the user's billing day, charged in the early morning.
    _Cat(
        "rent", 0, ((6513, 1.0),), 1300, 0.35, online=1.0, hours="batch", week="flat",
        refund=0.02, loyalty=1.0, bill=0.3,
    ),
    _Cat(
        "utilities", 0, ((4900, 1.0),), 95, 0.4, online=1.0, hours="batch", week="flat",
        refund=0.2, loyalty=1.0, bill=0.55, noise=0.2,
    ),
    _Cat(
        "telecom", 0, ((4814, 0.5), (4812, 0.2), (4899, 0.2), (4816, 0.1)), 55, 0.35,
        online=1.0, hours="batch", week="flat", refund=0.2, loyalty=1.0, bill=0.7,
    ),
    _Cat(
        "insurance", 0, ((6300, 0.7), (6399, 0.2), (6381, 0.1)), 110, 0.5,
        online=1.0, hours="batch", week="flat", loyalty=1.0, bill=0.25,
    ),
    _Cat(
        "streaming", 0, ((4899, 0.4), (5815, 0.3), (5818, 0.3)), 0, 0,
        online=1.0, hours="batch", week="flat", refund=0.2, loyalty=1.0, bill=0.55,
        prices=(6.99, 9.99, 10.99, 12.99, 15.49, 17.99, 22.99),
    ),
    _Cat(
        "apps", 0, ((5817, 0.5), (5818, 0.5)), 0, 0,
        online=1.0, hours="batch", week="flat", refund=0.5, loyalty=1.0, bill=0.35,
        prices=(0.99, 2.99, 4.99, 9.99, 11.99),
    ),
)
# fmt: on

_CASH_AMOUNTS = np.array([20, 40, 50, 60, 80, 100, 120, 150, 200, 300, 400, 500], float)
_CASH_WEIGHTS = np.array([10, 12, 8, 7, 6, 14, 3, 3, 8, 3, 2, 2], float)


_R = 1 << 16  # resolution of the inverse-CDF lookup tables (and of the 16-bit draws)
_R_DAYS = 1 << 18  # resolution of the day tables


def _cum(weights: Any) -> np.ndarray:
    """Cumulative probabilities ending in exactly 1.0."""
    w = np.asarray(weights, float)
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return c


def _table(weights: Any, values: Any, dtype: Any) -> np.ndarray:
    """An inverse-CDF table: entry ``i`` is the value drawn by a 16-bit uniform ``i``."""
    i = np.searchsorted(_cum(weights), (np.arange(_R) + 0.5) / _R, side="right")
    return np.asarray(values, dtype)[np.minimum(i, len(values) - 1)]


class _Tables:
    """The merchant kinds as flat numpy arrays, for vectorised lookups."""

    def __init__(self, cats: tuple[_Cat, ...]) -> None:
        self.k = len(cats)
        f = np.array
        self.weight = f([c.weight for c in cats], float)
        self.median = f([c.median for c in cats], float)
        self.sigma = f([c.sigma for c in cats], float)
        self.online = f([c.online for c in cats], float)
        self.refund = f([c.refund for c in cats], float)
        self.loyalty = f([c.loyalty for c in cats], float)
        self.noise = f([c.noise for c in cats], float)
        self.is_cash = f([c.cash for c in cats], bool)
        self.is_priced = f([bool(c.prices) for c in cats], bool)
        self.is_bill = f([c.bill > 0 for c in cats], bool)
        self.bill_ids = np.flatnonzero(self.is_bill)
        self.bill_prob = f([c.bill for c in cats if c.bill > 0], float)
        self.utilities = [c.name for c in cats].index("utilities")
        # per kind, a table from a 16-bit uniform to a code: ``code[kind * _R + r]``
        self.code = np.concatenate(
            [_table([w for _, w in c.codes], [m for m, _ in c.codes], np.int32) for c in cats]
        )
        hour_names, week_names = list(_HOURS), list(_WEEK)
        self.hour_of = f([hour_names.index(c.hours) for c in cats], np.int64)
        self.week_of = f([week_names.index(c.week) for c in cats], np.int64)
        self.hour = np.concatenate([_table(_HOURS[h], np.arange(24), np.int64) for h in _HOURS])
        self.week = f([_WEEK[w] for w in week_names], float)
        width = max(len(c.prices) for c in cats)
        self.n_prices = f([max(len(c.prices), 1) for c in cats], np.int64)
        self.prices = np.zeros((self.k, width))
        for i, c in enumerate(cats):
            self.prices[i, : len(c.prices)] = c.prices
        self.cash = _table(_CASH_WEIGHTS, _CASH_AMOUNTS, float)


_T = _Tables(_CATS)


def _u16(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform 16-bit integers, as int64 for indexing."""
    return rng.integers(0, _R, n, dtype=np.uint16).astype(np.int64)


# --------------------------------------------------------------------------- generator


#: Limits of one demo table (it is built in memory).
MAX_USERS = 1_000_000
MAX_ROWS = 500_000_000


def make_transactions(
    users: int,
    *,
    seed: int = 0,
    start: str = "2024-01-01",
    days: int = 365,
    tx_per_user: int | None = None,
    ties: float = 0.0,
    shuffle: bool = False,
) -> pa.Table:
    """A seeded table of synthetic card transactions (see :data:`SCHEMA`).

    ``users`` users are active between ``start`` (a date, the first day) and ``days`` days
    later; about 10% join late and 10% leave early. Each user makes a heavy-tailed
    (log-normal) number of transactions, or exactly ``tx_per_user`` when given. ``ts`` is
    naive local time at whole seconds. ``ties`` is the fraction of rows that copy the
    timestamp of the same user's previous transaction. Rows come sorted by ``user_id``,
    then ``ts``, then ``tx_id``; ``tx_id`` is unique and increases in that order, so
    ordering by (user, time, id) recovers it after ``shuffle=True`` (a random row order).
    """
    from .errors import MAX_SEED, ArgumentError, whole

    whole("users", users, 0, MAX_USERS)
    whole("days", days, 1, 100_000)
    if tx_per_user is not None:
        whole("tx_per_user", tx_per_user, 0, MAX_ROWS)
    whole("seed", seed, 0, MAX_SEED)
    if isinstance(ties, bool) or not isinstance(ties, (int, float)) or not 0.0 <= ties <= 1.0:
        raise ArgumentError(f"ties: {ties!r} is not allowed; expected a fraction from 0 to 1")
    if tx_per_user is not None and users * tx_per_user > MAX_ROWS:
        raise ArgumentError(
            f"users x tx_per_user: {users * tx_per_user:,} transactions; at most {MAX_ROWS:,}"
        )
    try:
        np.datetime64(start, "D")
    except (ValueError, TypeError) as e:
        raise ArgumentError(f"start: {start!r} is not a date; expected YYYY-MM-DD") from e

    rng = np.random.default_rng(seed)
    t = _T
    k = t.k
    n_users = int(users)
    start_day = int(np.datetime64(start, "D").astype(np.int64))  # days since 1970-01-01
    span_s = days * _DAY_S

    # --- users: ids, active window [a, b) in days from start, activity, spend level
    user_ids = 1000 + np.cumsum(rng.integers(1, 16, n_users))
    min_len = max(1, days // 8)
    kind = rng.random(n_users)
    a = np.where(kind < 0.1, rng.integers(0, days - min_len + 1, n_users), 0)
    b = np.where(kind > 0.9, rng.integers(min_len, days + 1, n_users), days)
    b = np.maximum(b, a + 1)
    rate = np.exp(rng.normal(np.log(0.6), 1.0, n_users))  # transactions per day
    if tx_per_user is None:
        counts = np.clip(np.rint(rate * (b - a)), 1, 40 * (b - a)).astype(np.int64)
    else:
        counts = np.full(n_users, int(tx_per_user), np.int64)
    spend = np.exp(rng.normal(0.0, 0.35, n_users))
    taste = rng.gamma(1.2, 1.0, (n_users, k))  # how much each user likes each kind
    fav = _u16(rng, n_users * k)  # the user's usual code / price point of each kind
    bill_z = rng.standard_normal(n_users * k)  # the user's bill amount of each kind
    bill_day = rng.integers(1, 29, n_users * k)  # the user's billing day of each kind

    # --- monthly bills: the first n_bill_rows[u] rows of user u
    day_month = (start_day + np.arange(days)).astype("datetime64[D]").astype("datetime64[M]")
    month_of_day = day_month.astype(np.int64)  # months since 1970-01
    m0 = month_of_day[a]
    months = month_of_day[b - 1] - m0 + 1
    n_bill_kinds = len(t.bill_ids)
    has_bill = rng.random((n_users, n_bill_kinds)) < t.bill_prob
    prio = rng.random((n_users, n_bill_kinds)) + 2.0 * ~has_bill
    bill_order = np.argsort(prio, axis=1)  # the user's bills first, in a random order
    n_bills = np.minimum(has_bill.sum(axis=1), counts // (3 * months))  # bills <= 1/3 of rows
    n_bill_rows = n_bills * months

    n = int(counts.sum())
    if n > MAX_ROWS:
        raise ArgumentError(f"{users:,} users make {n:,} transactions; at most {MAX_ROWS:,}")
    sec_bits = max(int(span_s - 1).bit_length(), 1)
    cat_bits = int(k - 1).bit_length()
    if n_users and (n_users - 1).bit_length() + sec_bits + cat_bits > 63:
        raise ArgumentError(f"too many users and days for one table: {users} users, {days} days")

    # Rows are made in any order and sorted by one bit-packed int64 key (user, second since
    # the start, kind); the kind is all a row needs to get its code and amount after that.
    def pack(user: np.ndarray, sec: np.ndarray, cat: np.ndarray) -> np.ndarray:
        sec = sec + rng.integers(0, 3600, sec.size)  # the seconds within the hour
        return (((user << sec_bits) | sec) << cat_bits) | cat

    ub = np.repeat(np.arange(n_users), n_bill_rows)
    jb = np.arange(ub.size) - (np.cumsum(n_bill_rows) - n_bill_rows)[ub]
    mb = months[ub]
    bcat = t.bill_ids[bill_order[ub, jb // mb]]
    month = m0[ub] + jb % mb
    month_start = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    bday = month_start - start_day + bill_day[ub * k + bcat] - 1
    bday = np.minimum(np.maximum(bday, a[ub]), b[ub] - 1)
    bsec = bday * _DAY_S + t.hour[t.hour_of[bcat] * _R + _u16(rng, ub.size)] * 3600
    bill_key = pack(ub, bsec, bcat)
    del ub, jb, mb, bcat, month, month_start, bday, bsec

    # --- everyday rows: kinds from the user's taste (a multinomial draw per user), days
    # from the kind's weekly rhythm and the season, hours from the kind's daily rhythm
    pref = taste * t.weight
    pref /= pref.sum(axis=1, keepdims=True)
    per_kind = rng.multinomial(counts - n_bill_rows, pref)
    rcat = np.repeat(np.tile(np.arange(k), n_users), per_kind.ravel())
    ur = np.repeat(np.arange(n_users), counts - n_bill_rows)
    rsec = _days(rng, t.week_of[rcat], a[ur], b[ur], start_day, day_month) * _DAY_S
    rsec += t.hour[t.hour_of[rcat] * _R + _u16(rng, rcat.size)] * 3600
    key = np.concatenate([bill_key, pack(ur, rsec, rcat)])
    del bill_key, rcat, ur, rsec

    # --- sort; then unpack
    key.sort()
    first = np.cumsum(counts) - counts
    cat = key & ((1 << cat_bits) - 1)
    key >>= cat_bits
    sec = key & ((1 << sec_bits) - 1)
    key >>= sec_bits
    u = key
    del key
    uk = u * k + cat

    # --- codes, channels, amounts, refunds
    loyal = rng.random(n) < t.loyalty[cat]
    mcc = t.code[cat * _R + np.where(loyal, fav[uk], _u16(rng, n))]
    del loyal
    channel = (rng.random(n) < t.online[cat]).view(np.int8)
    channel[mcc == 6011] = 2

    amount = t.median[cat] * spend[u] * np.exp(t.sigma[cat] * rng.standard_normal(n))
    bill = np.flatnonzero(t.is_bill[cat])
    bc, buk = cat[bill], uk[bill]
    amount[bill] = (
        t.median[bc]
        * np.exp(t.sigma[bc] * bill_z[buk])
        * np.exp(t.noise[bc] * rng.standard_normal(bill.size))
    )
    util = bill[bc == t.utilities]  # heating in winter, some cooling in summer
    moy = day_month[sec[util] // _DAY_S].astype(np.int64) % 12
    amount[util] *= 1.0 + 0.25 * np.cos(2 * np.pi * moy / 12) + 0.08 * np.cos(np.pi * (moy - 7) / 3)
    priced = bill[t.is_priced[bc]]
    pc = cat[priced]
    amount[priced] = t.prices[pc, fav[uk[priced]] * t.n_prices[pc] // _R]
    del bill, bc, buk, util, priced, pc, uk
    cash = np.flatnonzero(t.is_cash[cat])
    amount[cash] = t.cash[_u16(rng, cash.size)]
    del cash
    np.maximum(amount, 0.5, out=amount)

    rel = t.refund[cat]
    total = float(rel.sum())
    if total > 0:
        refund = np.flatnonzero(rng.random(n) < np.minimum(rel * (_REFUND_SHARE * n / total), 0.5))
        frac = np.where(rng.random(refund.size) < 0.4, rng.uniform(0.2, 1.0, refund.size), 1.0)
        amount[refund] *= -frac
    del rel
    amount = amount.round(2)
    amount[amount == 0] = -0.01  # a refund that rounds to zero is still a refund

    tx_id = 10**9 + np.cumsum(rng.integers(1, 8, n))

    # --- same-second ties (own stream, so the rest of the table does not change)
    if ties > 0 and n > 0:
        eligible = n - int(np.count_nonzero(counts))
        if eligible > 0:
            draw = np.random.default_rng([seed, 1]).random(n)
            chosen = draw < min(1.0, ties * n / eligible)
            chosen[first[counts > 0]] = False
            src = np.where(chosen, 0, np.arange(n))
            np.maximum.accumulate(src, out=src)
            sec = sec[src]

    ts = ((start_day * _DAY_S + sec) * 1_000_000).view("datetime64[us]")
    uid = user_ids[u]
    if shuffle and n > 1:
        perm = np.random.default_rng([seed, 2]).permutation(n)
        uid, ts, amount, mcc, tx_id, channel = (
            x[perm] for x in (uid, ts, amount, mcc, tx_id, channel)
        )
    return pa.table(
        [
            pa.array(uid, pa.int64()),
            pa.array(ts, pa.timestamp("us")),
            pa.array(amount, pa.float64()),
            pa.array(mcc, pa.int32()),
            pa.array(tx_id, pa.int64()),
            pa.DictionaryArray.from_arrays(channel, CHANNELS).cast(pa.string()),
        ],
        schema=SCHEMA,
    )


def _days(
    rng: np.random.Generator,
    week: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    start_day: int,
    day_month: np.ndarray,
) -> np.ndarray:
    """A day in ``[a, b)`` per row, drawn with weights ``weekly rhythm × season``.

    ``week`` is the row's weekly profile; the draw inverts the profile's cumulative
    distribution over all days, truncated to the row's window.
    """
    n_days = day_month.size
    moy = day_month.astype(np.int64) % 12  # 0 = January
    dom = np.arange(n_days) + start_day - day_month.astype("datetime64[D]").astype(np.int64)
    # a little more in December and late November, a little less in January and February
    season = np.where(((moy == 11) & (dom < 24)) | ((moy == 10) & (dom >= 20)), 1.0, 0.85)
    season = np.where(moy <= 1, 0.78, season)
    dow = (start_day + np.arange(n_days) + 3) % 7  # Monday = 0
    pdf = _T.week[:, dow] * season
    cdf = np.zeros((pdf.shape[0], n_days + 1))  # cdf[w, d]: P(day < d)
    cdf[:, 1:] = np.cumsum(pdf, axis=1) / pdf.sum(axis=1, keepdims=True)
    cdf[:, -1] = 1.0
    # invert the distribution through a lookup table: entry i of profile w is the day
    # holding quantile (i + 0.5) / _R_DAYS; truncating to [a, b) rescales the quantile
    q = (np.arange(_R_DAYS) + 0.5) / _R_DAYS
    table = np.stack([np.searchsorted(c[1:], q, side="right") for c in cdf])
    table = np.minimum(table, n_days - 1).astype(np.int32).ravel()
    lo, hi = cdf[week, a], cdf[week, b]
    x = lo + rng.random(week.size) * (hi - lo)
    d = table[week * _R_DAYS + (x * _R_DAYS).astype(np.int64)]
    return np.minimum(np.maximum(d, a), b - 1)


def write_demo(
    out_dir: str | os.PathLike[str],
    users: int,
    *,
    seed: int = 0,
    files: int = 4,
    **kw: Any,
) -> list[Path]:
    """Write :func:`make_transactions` ``(users, seed=seed, **kw)`` as zstd Parquet files.

    Users are split into ``files`` contiguous blocks by ``user_id`` (fewer files when there
    are fewer users with transactions, at least one), written as ``part-00000.parquet``,
    ... in ``out_dir``; every user's rows are in exactly one file, in the table's row order.
    Returns the paths written, in name order.

    ``out_dir`` is created if missing. An existing folder must be empty or an earlier
    ``write_demo`` output (its ``_sqltargets.json`` marker says so), which is then replaced
    as a whole: the new files are written to a temporary folder beside it and renamed into
    place, so two data sets never mix and nothing else is deleted.
    """

    from .errors import ArgumentError, OutputError
    from .execute import files as files_mod

    if isinstance(files, bool) or not isinstance(files, int) or not 1 <= files <= 100_000:
        raise ArgumentError(f"files: {files!r} is not allowed; expected 1 to 100,000")
    if isinstance(users, bool) or not isinstance(users, int) or not 1 <= users <= MAX_USERS:
        raise ArgumentError(f"users: {users!r} is not allowed; expected 1 to {MAX_USERS:,}")
    out = files_mod.check_output(
        out_dir, folder=True, what="demo-data output", kinds=("demo-data",)
    )
    table = make_transactions(users, seed=seed, **kw)
    uid = table.column("user_id").to_numpy()
    ids = np.unique(uid)
    n_files = max(1, min(files, ids.size))
    firsts = np.array([blk[0] for blk in np.array_split(ids, n_files) if blk.size], np.int64)
    part = np.searchsorted(firsts, uid, side="right") - 1
    order = np.argsort(part, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=n_files))])
    tmp = files_mod.temp_dir(out)
    names = [f"part-{i:05d}.parquet" for i in range(n_files)]
    try:
        for i, name in enumerate(names):
            rows = table.take(pa.array(order[bounds[i] : bounds[i + 1]]))
            with files_mod.ParquetWriter(tmp / name, rows.schema, compression="zstd") as w:
                w.write_table(rows)
            files_mod.give_umask(tmp / name)
        files_mod.write_marker(tmp, "demo-data", names)
        files_mod.replace_dir(tmp, out, ("demo-data",))
    except OSError as e:
        files_mod.remove(tmp)
        raise OutputError(f"demo-data output {str(out_dir)!r}: cannot be written: {e}") from e
    except BaseException:
        files_mod.remove(tmp)
        raise
    return [Path(out_dir) / name for name in names]
