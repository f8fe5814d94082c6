"""describe: statistics, correlations and coverage checked against NumPy computed here on
generate's output; flags; the HTML report parsed and its images decoded; the CLI verb."""

from __future__ import annotations

import base64
import copy
import importlib.util
import io
import itertools
import json
import math
import random
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.cli import main
from sqltargets.description import Description, average_ranks, choose_scale, series_stats
from sqltargets.errors import OutputError, SqlTargetsError

WINDOW_DAY = {"kind": "expanding", "period": "day"}
SPEC: dict[str, Any] = {
    "columns": {"user": "user_id", "time": "ts", "amount": "amount", "mcc": "mcc"},
    "targets": [
        # zeros (empty days), negatives (refunds)
        {"name": "g_day", "agg": "sum", "mcc": ["grocery"], "window": WINDOW_DAY},
        # the same target under another name: must be flagged as redundant
        {"name": "g_day_copy", "agg": "sum", "mcc": ["grocery"], "window": WINDOW_DAY},
        {"name": "n_7d", "agg": "count", "window": {"kind": "rolling", "length": "7d"}},
        {"name": "fuel_mean", "agg": "mean", "mcc": ["fuel"],
         "window": {"kind": "expanding", "period": "month"}},
        {"name": "top3", "agg": "top_k", "k": 3, "where": "amount > 0",
         "window": {"kind": "period", "period": "month"}},
        {"name": "next_month", "agg": "sum", "where": "amount > 0",
         "window": {"kind": "next_period", "period": "month"}},
        # a filled empty value: non-null everywhere, non-empty only where fuel was bought
        {"name": "fuel_max_filled", "agg": "max", "mcc": ["fuel"], "fill": -1,
         "window": {"kind": "rolling", "length": "30d"}},
        # MCC 1234 never occurs: always empty
        {"name": "never", "agg": "max", "mcc": [1234], "window": WINDOW_DAY},
    ],
}  # fmt: skip

QUANTILES = (1, 5, 25, 50, 75, 95, 99)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sqltargets.demo import write_demo

    out = tmp_path_factory.mktemp("describe") / "data"
    write_demo(out, 40, seed=3, files=2)
    return out


@pytest.fixture(scope="module")
def described(data: Path) -> Description:
    return sqltargets.describe(SPEC, data)


@pytest.fixture(scope="module")
def generated(data: Path) -> pa.Table:
    return sqltargets.generate(SPEC, data)


# ---------------------------------------------------------------------------------------------
# NumPy, computed here independently of sqltargets.description


def np_series(table: pa.Table) -> dict[str, np.ndarray]:
    """Every series of generate's output as float64 with NaN for null, via Python lists."""
    out = {}
    for t in SPEC["targets"]:
        values = table.column(t["name"]).to_pylist()
        if t["agg"] == "top_k":
            for i in range(t["k"]):
                out[f"{t['name']}[{i}]"] = np.array(
                    [np.nan if v is None or v[i] is None else v[i] for v in values], dtype=float
                )
        else:
            out[t["name"]] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return out


def np_skew(x: np.ndarray) -> float:
    """Fisher-Pearson g1 (population moments), as scipy.stats.skew(bias=True)."""
    n = len(x)
    mean = sum(x) / n
    m2 = sum((v - mean) ** 2 for v in x) / n
    m3 = sum((v - mean) ** 3 for v in x) / n
    return m3 / m2**1.5


def np_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks through searchsorted (independent of the module's sort-based ranks)."""
    s = np.sort(x)
    return (np.searchsorted(s, x, "left") + np.searchsorted(s, x, "right") + 1) / 2.0


def np_spearman(a: np.ndarray, b: np.ndarray) -> float:
    both = ~np.isnan(a) & ~np.isnan(b)
    return float(np.corrcoef(np_ranks(a[both]), np_ranks(b[both]))[0, 1])


def window_counts(data: Path) -> pa.Table:
    """Per target, a count over its window and filter, written out by hand as a spec."""
    counts = []
    for t in SPEC["targets"]:
        c = {k: v for k, v in t.items() if k in ("mcc", "where", "window")}
        counts.append({"name": t["name"], "agg": "count", **c})
    return sqltargets.generate({**SPEC, "targets": counts}, data)


# ---------------------------------------------------------------------------------------------
# statistics


def test_stats_match_numpy_on_generate_output(
    described: Description, generated: pa.Table, data: Path
) -> None:
    series = np_series(generated)
    counts = window_counts(data)
    stats = {r["series"]: r for r in described.stats.to_pylist()}
    assert list(stats) == list(series)
    for name, v in series.items():
        row = stats[name]
        target = name.split("[")[0]
        x = v[~np.isnan(v)]
        assert row["target"] == target
        assert row["rows"] == generated.num_rows == len(v)
        assert row["non_null"] == pytest.approx(len(x) / len(v), abs=0)
        non_empty = np.mean(np.asarray(counts.column(target).to_pylist()) > 0)
        assert row["non_empty"] == pytest.approx(non_empty, abs=0)
        if x.size == 0:
            assert target == "never"
            assert all(row[k] is None for k in ("zero", "mean", "std", "min", "max", "skew"))
            continue
        assert row["zero"] == pytest.approx(np.mean(x == 0), rel=1e-12)
        assert row["mean"] == pytest.approx(np.mean(x), rel=1e-9)
        assert row["std"] == pytest.approx(np.std(x), rel=1e-9)
        assert row["min"] == np.min(x) and row["max"] == np.max(x)
        for q in QUANTILES:
            assert row[f"p{q:02d}"] == pytest.approx(np.percentile(x, q), rel=1e-12), (name, q)
        assert row["skew"] == pytest.approx(np_skew(x), rel=1e-6), name
    # the fixture's targets exercise what the statistics must cope with
    assert stats["g_day"]["zero"] > 0.3 and stats["g_day"]["min"] < 0
    assert stats["fuel_mean"]["non_null"] < 1
    assert stats["top3[2]"]["non_null"] < stats["top3[0]"]["non_null"] <= 1
    # sum/count: non-null everywhere, non-empty only where the window holds a transaction
    assert stats["g_day"]["non_null"] == 1.0 > stats["g_day"]["non_empty"]
    assert stats["fuel_max_filled"]["non_null"] == 1.0 > stats["fuel_max_filled"]["non_empty"]
    assert stats["never"]["non_empty"] == 0.0 and stats["never"]["non_null"] == 0.0


def test_series_stats_small_cases() -> None:
    s = series_stats(np.array([1.0, 2.0, 3.0, 10.0, np.nan]))
    # by hand: deviations -3 -2 -1 6; m2 = 50/4; m3 = 180/4
    assert s["mean"] == 4.0 and s["std"] == pytest.approx(math.sqrt(12.5))
    assert s["skew"] == pytest.approx(45 / 12.5**1.5)
    assert s["p25"] == 1.75 and s["p50"] == 2.5
    const = series_stats(np.full(7, 0.1))
    assert const["std"] == 0.0 and const["skew"] is None and const["mean"] == 0.1
    assert all(v is None for v in series_stats(np.array([np.nan])).values())


# ---------------------------------------------------------------------------------------------
# correlations


def test_average_ranks_against_searchsorted() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 20, 500).astype(float)  # many ties
    np.testing.assert_array_equal(average_ranks(x), np_ranks(x))


def test_spearman_matches_numpy(described: Description, generated: pa.Table) -> None:
    series = np_series(generated)
    names = described.correlation.column("series").to_pylist()
    assert names == list(series)
    checked = 0
    for a in names:
        col = described.correlation.column(a).to_pylist()
        for b, got in zip(names, col):
            if a == b:
                continue
            both = ~np.isnan(series[a]) & ~np.isnan(series[b])
            xa, xb = series[a][both], series[b][both]
            if both.sum() < 3 or np.ptp(xa) == 0 or np.ptp(xb) == 0:
                assert got is None, (a, b)
                continue
            assert got == pytest.approx(np_spearman(series[a], series[b]), abs=1e-9), (a, b)
            checked += 1
    assert checked > 30
    assert described.correlation_rows == generated.num_rows


def test_correlations_on_a_reproducible_row_sample(data: Path) -> None:
    d1 = sqltargets.describe(SPEC, data, max_correlation_rows=2000, seed=4)
    d2 = sqltargets.describe(SPEC, data, max_correlation_rows=2000, seed=4)
    assert d1.correlation_rows == 2000 < d1.rows
    assert d1.correlation.equals(d2.correlation)
    assert any("correlations on 2,000 of" in n for n in d1.notes)
    assert "over a random 2,000 of" in d1.to_text()
    # the statistics still use every row
    assert d1.stats.equals(d2.stats) and d1.stats.column("rows")[0].as_py() == d1.rows


# ---------------------------------------------------------------------------------------------
# flags


def test_always_empty_and_duplicate_are_flagged(described: Description) -> None:
    kinds = {(f.kind, f.targets) for f in described.flags}
    assert ("always_empty", ("never",)) in kinds
    red = described.flagged("redundant")
    assert [(f.targets, f.value) for f in red] == [(("g_day", "g_day_copy"), 1.0)]
    assert red[0].message == "g_day and g_day_copy: 1.00"
    text = described.to_text()
    assert "never: always empty (no transaction passes its filter in any window)" in text
    assert "    g_day and g_day_copy: 1.00" in text


def test_heavy_tail_constant_mostly_empty_and_coverage_drop(
    described: Description, data: Path
) -> None:
    skew = {r["target"]: r["skew"] for r in described.stats.to_pylist() if r["slot"] is None}
    heavy = {f.targets[0]: f.value for f in described.flagged("heavy_tailed")}
    assert heavy == {t: s for t, s in skew.items() if s is not None and abs(s) > 2}
    assert heavy, "the fixture has heavy-tailed targets"
    # a future window runs past the end of the data: its last month is empty
    drops = {f.targets[0]: f for f in described.flagged("coverage_drop")}
    assert "next_month" in drops and drops["next_month"].value == 0.0
    spec = copy.deepcopy(SPEC)
    spec["targets"] = [
        {"name": "zero", "agg": "count", "mcc": [1234], "window": WINDOW_DAY},
        {"name": "rare", "agg": "max", "where": "amount > 2000", "window": WINDOW_DAY},
        {"name": "n", "agg": "count", "window": WINDOW_DAY},
    ]
    d = sqltargets.describe(spec, data)
    by = {(f.kind, f.targets[0]) for f in d.flags}
    # a count that is always 0 is reported as empty, not as constant
    assert ("always_empty", "zero") in by and ("constant", "zero") not in by
    assert ("mostly_empty", "rare") in by
    assert not [k for k, t in by if t == "n" and k != "heavy_tailed"]


def test_flagged_rejects_unknown_kind(described: Description) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        described.flagged("emtpy")


# ---------------------------------------------------------------------------------------------
# coverage over time


def test_coverage_matches_numpy(described: Description, generated: pa.Table, data: Path) -> None:
    counts = window_counts(data)
    months = generated.column("ts").to_numpy().astype("datetime64[M]").astype(str)
    users = np.asarray(generated.column("user_id").to_pylist())
    got = {(r["month"], r["target"]): r for r in described.coverage.to_pylist()}
    expected_rows = 0
    for t in [t["name"] for t in SPEC["targets"]]:
        ne = np.asarray(counts.column(t).to_pylist()) > 0
        for m in sorted(set(months)):
            active = set(users[months == m])
            hit = set(users[(months == m) & ne])
            r = got[(m, t)]
            assert (r["users"], r["non_empty_users"]) == (len(active), len(hit)), (m, t)
            assert r["share"] == pytest.approx(len(hit) / len(active))
            expected_rows += 1
    assert described.coverage.num_rows == expected_rows


def test_coverage_months_in_the_spec_time_zone() -> None:
    # 23:30 UTC on 31 January is already February in Berlin
    ts = pa.array(
        [1706743800_000_000, 1706743800_000_000 + 86_400_000_000], pa.timestamp("us", "UTC")
    )
    tx = pa.table({"u": [1, 1], "t": ts, "a": [1.0, 2.0], "m": [1, 1]})
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "timezone": "Europe/Berlin",
            "targets": [{"name": "n", "agg": "count", "window": WINDOW_DAY}]}  # fmt: skip
    assert sqltargets.describe(spec, tx).coverage.column("month").to_pylist() == ["2024-02"]
    spec["timezone"] = "UTC"
    months = sqltargets.describe(spec, tx).coverage.column("month").to_pylist()
    assert months == ["2024-01", "2024-02"]


def test_integer_days_and_periods_output() -> None:
    tx = pa.table({"u": [1, 1, 2, 2], "d": pa.array([0, 31, 1, 70], pa.int32()),
                   "a": [1.0, 2.0, 3.0, 4.0], "m": [5411, 1, 5411, 5411]})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "d", "amount": "a", "mcc": "m"},
            "time": {"unit": "day", "origin": "2023-12-31"},
            "targets": [{"name": "g", "agg": "sum", "mcc": [5411],
                         "window": {"kind": "period", "period": "month"}}]}  # fmt: skip
    cov = sqltargets.describe(spec, tx).coverage.to_pylist()
    # days 0, 1 → 2023-12-31, 2024-01-01; 31 → 2024-01-31; 70 → 2024-03-10
    assert [(r["month"], r["users"], r["non_empty_users"]) for r in cov] == [
        ("2023-12", 1, 1), ("2024-01", 2, 1), ("2024-03", 1, 1)
    ]  # fmt: skip
    spec["output"] = "periods"
    d = sqltargets.describe(spec, tx)
    assert d.rows == 4 and d.stats.column("non_empty").to_pylist() == [0.75]


# ---------------------------------------------------------------------------------------------
# sampling users


def test_users_sample_is_reproducible_and_exact(data: Path) -> None:
    d = sqltargets.describe(SPEC, data, users=7, seed=11)
    table = pq.read_table(data)
    all_users = pc.unique(table.column("user_id")).to_pylist()
    chosen = sorted(random.Random(11).sample(all_users, 7))
    assert d.user_sample == tuple(chosen)
    assert (d.users, d.total_users) == (7, 40)
    subset = table.filter(pc.is_in(table.column("user_id"), value_set=pa.array(chosen)))
    assert d.rows == subset.num_rows
    # the same statistics as describing those users' rows directly
    direct = sqltargets.describe(SPEC, subset)
    assert direct.stats.equals(d.stats)
    assert sqltargets.describe(SPEC, data, users=7, seed=11).stats.equals(d.stats)
    assert sqltargets.describe(SPEC, table, users=7, seed=11).stats.equals(d.stats)
    assert "7 of 40 users (seed 11)" in d.to_text()


def test_string_users_and_more_users_than_exist() -> None:
    tx = pa.table({"u": ["b", "a", "b", "c"], "t": pa.array([0, 1, 2, 3], pa.int64()),
                   "a": [1.0, 2.0, 3.0, 4.0], "m": [1, 1, 1, 1]})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "time": {"unit": "s"},
            "targets": [{"name": "s", "agg": "sum", "window": WINDOW_DAY}]}  # fmt: skip
    d = sqltargets.describe(spec, tx, users=10)
    assert d.user_sample == ("a", "b", "c") and d.rows == 4


def test_bad_arguments_are_errors(data: Path) -> None:
    with pytest.raises(SqlTargetsError, match="users: 0"):
        sqltargets.describe(SPEC, data, users=0)
    # (the files every run reads: the same message as generate's)
    with pytest.raises(SqlTargetsError, match=r"input '.*missing' does not exist"):
        sqltargets.describe(SPEC, str(data / "missing"), users=3)
    (data.parent / "empty").mkdir()
    with pytest.raises(SqlTargetsError, match=r"a folder with no \.parquet files"):
        sqltargets.describe(SPEC, str(data.parent / "empty"), users=3)
    with pytest.raises(SqlTargetsError, match="spec"):
        sqltargets.describe(None, data)


def test_progress_reports_every_stage(data: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    sqltargets.describe(SPEC, data, users=5, progress=lambda *a: calls.append(a))
    stages = list(dict.fromkeys(c[0] for c in calls))
    assert stages == ["reading input", "computing targets", "statistics", "correlations",
                      "coverage"]  # fmt: skip
    for stage in stages:
        last = [c for c in calls if c[0] == stage][-1]
        assert last[1] == last[2], last


# ---------------------------------------------------------------------------------------------
# histograms


def test_histograms_count_every_drawn_value(described: Description, generated: pa.Table) -> None:
    series = np_series(generated)
    hist = described.histograms.to_pylist()
    for name, v in series.items():
        rows = [r for r in hist if r["series"] == name]
        x = v[~np.isnan(v)]
        if x.size == 0:
            assert rows == []
            continue
        scale = rows[0]["scale"]
        drawn = x if scale == "linear" else x[x != 0]  # zeros are not drawn on log axes
        assert sum(r["count"] for r in rows) == drawn.size, name
        assert rows[0]["left"] <= drawn.min() and rows[-1]["right"] >= drawn.max()
        assert all(a["right"] == b["left"] for a, b in itertools.pairwise(rows))


def test_choose_scale() -> None:
    rng = np.random.default_rng(0)
    money = rng.lognormal(4, 1.5, 5000)
    assert choose_scale(money) == ("log", None)
    assert choose_scale(np.concatenate([money, np.zeros(3000)])) == ("log", None)
    scale, lin = choose_scale(np.concatenate([money, -money[:200]]))
    assert scale == "symlog" and lin is not None and lin > 0
    assert choose_scale(rng.normal(50, 5, 5000)) == ("linear", None)
    counts = rng.poisson(0.5, 5000).astype(float)
    assert choose_scale(counts) == ("linear", None)  # small integers: one bin per value


# ---------------------------------------------------------------------------------------------
# the HTML report


class _Checker(HTMLParser):
    """Well-formedness (every non-void element closed, in order) and the images."""

    VOID = frozenset(
        {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def _png(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    return base64.b64decode(src[len(prefix) :], validate=True)


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_html_report_is_valid_and_images_decode(described: Description, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from sqltargets.report import DPI, HIST_INCHES, coverage_inches, heatmap_inches

    path = described.write_html(tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.doctype and checker.errors == [] and checker.stack == []
    # self-contained: no scripts, no external resources
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert not [t for t in checker.tags if t == "link"]

    n_targets = len(SPEC["targets"])
    n_series = len(described.stats)
    hist = (round(HIST_INCHES[0] * DPI), round(HIST_INCHES[1] * DPI))
    heat = tuple(round(v * DPI) for v in heatmap_inches(n_series))
    cov = tuple(round(v * DPI) for v in coverage_inches(n_targets))
    expected = [hist] * n_targets + [heat, cov]
    sizes = []
    for img in checker.images:
        png = _png(img["src"])
        size = _size(png)
        assert (int(img["width"]), int(img["height"])) == size
        pixels = imread(io.BytesIO(png))  # decodes the whole image
        assert pixels.shape[:2] == (size[1], size[0])
        assert pixels.std() > 0  # not a blank image
        sizes.append(size)
    assert sizes == expected
    # the tables, the spec and the flags are on the page too
    for needle in ("g_day and g_day_copy: 1.00", "never: always empty", "fuel_max_filled",
                   "top3[2]", "amount &gt; 0", "p99", "2024-"):  # fmt: skip
        assert needle in page, needle


def test_html_escapes_spec_text(tmp_path: Path, data: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["targets"] = [{"name": "x", "agg": "count", "where": "channel <> '<b>'",
                        "window": WINDOW_DAY}]  # fmt: skip
    page = sqltargets.describe(spec, data).to_html(plots=False)
    assert "<b>" not in page and "&lt;b&gt;" in page


def test_html_report_of_an_empty_input_with_list_targets(tmp_path: Path) -> None:
    """List targets (top_k, distribution) over no rows have no stats rows at all: their
    histogram says 'always empty' (the report raised an IndexError on them)."""
    pytest.importorskip("matplotlib")
    t = pa.table({"u": pa.array([], pa.int64()), "t": pa.array([], pa.int64()),
                  "a": pa.array([], pa.float64()), "m": pa.array([], pa.int64())})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "time": {"unit": "day"}, "targets": [
                {"name": "s", "agg": "sum", "window": {"kind": "period", "period": "day"}},
                {"name": "top3", "agg": "top_k", "k": 3, "window": {"kind": "period", "period": "day"}},
                {"name": "dist", "agg": "distribution", "by": {"mcc": ["grocery"]},
                 "window": {"kind": "period", "period": "day"}},
            ]}  # fmt: skip
    page = sqltargets.describe(spec, t).to_html()
    assert page.count("<img") >= 3 and "top3" in page and "dist" in page


def test_months_before_1970_values_beyond_a_double_and_infinities(tmp_path: Path) -> None:
    """Coverage keeps months before 1970 (their codes are negative: the 'no time' marker
    was -1, which dropped them); values spanning ±1e308 (hi - lo overflowed the bin edges)
    and infinities (no bin; a NaN edge and a count of -1) still describe and draw."""
    import datetime as dt

    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "targets": [{"name": "s", "agg": "sum", "window": {"kind": "period", "period": "month"}}]}  # fmt: skip
    times = [dt.datetime(1969, 11, 5), dt.datetime(1969, 12, 5), dt.datetime(1970, 1, 5)]
    old = pa.table({"u": [1] * 3, "t": pa.array(times, pa.timestamp("us")),
                    "a": [1.0, 2.0, 3.0], "m": [1] * 3})  # fmt: skip
    months = [r["month"] for r in sqltargets.describe(spec, old).coverage.to_pylist()]
    assert months == ["1969-11", "1969-12", "1970-01"]
    rolling = {**spec, "time": {"unit": "day"}, "targets": [
        {"name": "s", "agg": "max", "window": {"kind": "rolling", "length": "1d"}}]}  # fmt: skip
    for amounts in ([-1e308, 1e308, 0.0, 5.0], [1.0, math.inf, 2.0, 3.0]):
        t = pa.table({"u": [1, 2, 3, 4], "t": pa.array([0, 0, 0, 0], pa.int64()),
                      "a": amounts, "m": [1] * 4})  # fmt: skip
        d = sqltargets.describe(rolling, t)
        counts = d.histograms.column("count").to_pylist()
        assert min(counts) >= 0 and sum(counts) == sum(math.isfinite(a) for a in amounts)
        if importlib.util.find_spec("matplotlib") is not None:
            assert "<img" in d.to_html()


def test_sampled_users_skip_a_store_inside_the_input(tmp_path: Path) -> None:
    """describe(users=N) lists the files every run reads: a store inside the input folder
    is skipped (it was read as input too, doubling the rows)."""
    from sqltargets.demo import write_demo

    data = tmp_path / "data"
    write_demo(str(data), 12, seed=3, files=2, tx_per_user=20)
    want = sqltargets.describe(SPEC, str(data), users=4, seed=1).rows
    sqltargets.prepare(str(data), str(tmp_path / "store"), specs=SPEC)
    (tmp_path / "store").rename(data / "store")
    assert sqltargets.describe(SPEC, str(data), users=4, seed=1).rows == want


# ---------------------------------------------------------------------------------------------
# without matplotlib


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError


def test_without_matplotlib_tables_and_a_hint(
    no_matplotlib: None, described: Description, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqltargets.report import plots_available

    assert not plots_available()
    page = described.to_html()
    assert "<img" not in page and "sqltargets[plot]" in page and "<table>" in page
    with pytest.raises(OutputError, match=r"pip install 'sqltargets\[plot\]'"):
        described.to_html(plots=True)


def test_cli_without_matplotlib(
    no_matplotlib: None, data: Path, spec_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code, out, err = run(capsys, "describe", spec_file, "--input", data, "--html",
                         tmp_path / "r.html", "--quiet")  # fmt: skip
    assert code == 0, err
    assert "no plots: they need matplotlib (pip install 'sqltargets[plot]')" in out
    assert "<img" not in (tmp_path / "r.html").read_text()


def test_import_stays_light() -> None:
    code = (
        "import sys, sqltargets; f = sqltargets.describe; import sqltargets.description; "
        "assert sqltargets.describe is f and callable(sqltargets.describe); "
        "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# torch datasets


def test_describe_a_dataset_matches_the_spec(data: Path) -> None:
    torch = pytest.importorskip("torch")
    from sqltargets.torch import StreamingTargetDataset, TargetDataset

    ds = TargetDataset(SPEC, data, dtype=torch.float64)
    d = sqltargets.describe(SPEC, ds)
    ref = sqltargets.describe(SPEC, data)
    assert d.rows == ref.rows and d.users == 40
    value_cols = ["series", "rows", "non_null", "zero", "mean", "std", "min", "p50", "max"]
    got, want = d.stats.select(value_cols).to_pylist(), ref.stats.select(value_cols).to_pylist()
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in value_cols:
            assert g[k] == (pytest.approx(w[k], rel=1e-9) if isinstance(w[k], float) else w[k])
    assert d.stats.column("non_empty").null_count == len(d.stats)
    assert d.coverage.num_rows == 0 and any(
        "coverage over time: not available" in n for n in d.notes
    )
    kinds = {(f.kind, f.targets) for f in d.flags}
    assert ("always_empty", ("never",)) in kinds and ("redundant", ("g_day", "g_day_copy")) in kinds
    # the same users from the map-style and the streaming dataset, without a spec
    sample = sqltargets.describe(None, ds, users=5, seed=2)
    stream = sqltargets.describe(None, StreamingTargetDataset(SPEC, data, dtype=torch.float64),
                                 users=5, seed=2)  # fmt: skip
    assert sample.user_sample == stream.user_sample and len(sample.user_sample or ()) == 5
    assert sample.stats.equals(stream.stats)
    assert "reading the dataset" not in sample.to_text()


# ---------------------------------------------------------------------------------------------
# the CLI


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(SPEC))
    return p


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_describe_prints_tables_flags_and_writes_html(
    data: Path, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    report = tmp_path / "report.html"
    code, out, err = run(capsys, "describe", spec_file, "--input", data, "--users", "20",
                         "--html", report)  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0].startswith("8 targets (10 series) on ") and "20 of 40 users (seed 0)" in lines[0]
    )
    header = next(line for line in lines if line.startswith("series "))
    assert header.split() == ["series", "non-null", "non-empty", "zero", "mean", "std", "min",
                              "p50", "p99", "max", "skew"]  # fmt: skip
    assert max(len(line) for line in lines) <= 120
    assert "    g_day and g_day_copy: 1.00" in lines
    assert "    never: always empty (no transaction passes its filter in any window)" in lines
    assert any(line.startswith("coverage: share of the month") for line in lines)
    assert lines[-1] == f"report: {report.resolve()}"
    assert report.read_text().startswith("<!DOCTYPE html>")
    # progress goes to stderr, one line per stage when not on a terminal
    assert [line.split(":")[0] for line in err.splitlines()] == [
        "reading input", "computing targets", "statistics", "correlations", "coverage", "plots"
    ]  # fmt: skip


def test_cli_describe_errors(
    data: Path, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, needle in [
        (["--users", "0"], "Error: --users: 0 is not allowed; expected a positive number"),
        (["--html", tmp_path / "nope" / "r.html"], "folder"),
    ]:
        code, _, err = run(capsys, "describe", spec_file, "--input", data, "--quiet", *args)
        assert code == 1
        assert len(err.strip().splitlines()) == 1 and err.startswith("Error: "), err
        assert needle in err
    code, _, err = run(capsys, "describe", spec_file, "--input", tmp_path / "missing", "--quiet")
    assert code == 1 and err.startswith("Error: input") and len(err.splitlines()) == 1
    code, _, err = run(capsys, "describe", spec_file)
    assert code == 1 and "--input" in err


def test_report_never_replaces_what_sqltargets_did_not_write(
    data: Path, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report follows every output's rules: not over the input (a file of it, or a new
    file inside its folder), not over a file of the user's; an earlier report is replaced.
    Through the CLI (checked before any work) and the API alike."""
    first = sorted(data.glob("*.parquet"))[0]
    before = first.read_bytes()
    notes = tmp_path / "notes.html"
    notes.write_text("<!DOCTYPE html><p>my own page</p>")
    for target, needle in [
        (first, "lies inside the input"),
        (data / "report.html", "lies inside the input"),
        (notes, "was not written by sqltargets"),
    ]:
        code, _, err = run(capsys, "describe", spec_file, "--input", data, "--quiet",
                           "--html", target)  # fmt: skip
        assert code == 1 and err.startswith("Error: report") and needle in err, err
        assert len(err.strip().splitlines()) == 1
        d = sqltargets.describe(spec_file, data, users=5)
        with pytest.raises(OutputError, match=needle):
            d.write_html(target, plots=False)
    assert first.read_bytes() == before
    assert notes.read_text() == "<!DOCTYPE html><p>my own page</p>"
    assert not (data / "report.html").exists()
    ours = tmp_path / "r.html"
    d.write_html(ours, plots=False)
    d.write_html(ours, plots=False)  # its own earlier report: replaced
    assert ours.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries
