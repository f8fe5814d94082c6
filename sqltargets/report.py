"""Render a :class:`~sqltargets.description.Description`: a terminal report and one
self-contained HTML page.

The plots (a histogram per target, the correlation heatmap, coverage over time) need
matplotlib, the ``plot`` extra; it is imported only here, only when a plot is drawn, and
drawn on its own ``Figure`` objects (no pyplot, so a caller's backend is left alone).
Without it the page holds the tables and says how to get the plots.

>>> import pyarrow as pa, sqltargets
>>> tx = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 0], pa.int64()),
...                "a": [1.0, 3.0, 2.0], "m": [1, 1, 1]})
>>> spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
...         "time": {"unit": "day"},
...         "targets": [{"name": "n", "agg": "count",
...                      "window": {"kind": "expanding", "period": "year"}}]}
>>> page = sqltargets.describe(spec, tx).to_html(plots=False)
>>> page.startswith("<!DOCTYPE html>"), "sqltargets[plot]" in page
(True, True)
"""

from __future__ import annotations

import base64
import html
import io
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import OutputError
from .execute.files import HTML_MARKER, check_output, place_file, remove, temp_file

#: What this module renders: a :class:`sqltargets.description.Description`, which is built
#: (and imports this module) one layer up.
Description = Any

#: The quantiles of the statistics table, in percent; column ``p01`` … ``p99``.
QUANTILES = (1, 5, 25, 50, 75, 95, 99)
#: Series pairs whose |Spearman rho| is above this are flagged as redundant.
REDUNDANT_ABOVE = 0.95
#: How to get the plots.
PLOT_HINT = "pip install 'sqltargets[plot]'"
#: A progress callback: (stage, done, total).
Progress = Callable[[str, int, int], None]


def plots_available() -> bool:
    """True when matplotlib (the ``plot`` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pct(x: float | None) -> str:
    """A share as a percentage that never rounds a non-zero to 0% or a non-one to 100%.

    >>> _pct(0.00001), _pct(0.5), _pct(0.99999), _pct(None)
    ('<0.1%', '50.0%', '>99.9%', '-')
    """
    if x is None:
        return "-"
    if 0 < x < 0.0005:
        return "<0.1%"
    if 0.9995 <= x < 1:
        return ">99.9%"
    return f"{100 * x:.1f}%"


#: Pixels per inch of every image.
DPI = 100
#: Size of one histogram, in inches (at :data:`DPI`).
HIST_INCHES = (4.2, 2.8)
#: Coverage panels per row.
COVERAGE_COLUMNS = 5
#: The terminal shows at most this many months of coverage (the HTML shows all).
TEXT_MONTHS = 12

_FLAG_TITLES = {
    "always_empty": "always empty",
    "mostly_empty": "mostly empty",
    "constant": "constant",
    "coverage_drop": "coverage drops (a month below half the median month)",
    "redundant": f"redundant (|Spearman| > {REDUNDANT_ABOVE})",
    "heavy_tailed": "heavy-tailed (|skewness| > 2: a log transform would help)",
}


# ---------------------------------------------------------------------------------------------
# numbers


def fmt(v: float | None) -> str:
    """A number in at most 9 characters, readable in a table column.

    >>> [fmt(v) for v in (None, 0.0, 3.0, 12.3456, 0.000123, 1234.5, 98765432.1)]
    ['-', '0', '3', '12.35', '1.23e-04', '1,234', '9.88e+07']
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.2e}"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


# ---------------------------------------------------------------------------------------------
# text


def _summary_lines(d: Description) -> list[str]:
    users = f"{d.users:,} users" if d.users == d.total_users else (
        f"{d.users:,} of {d.total_users:,} users (seed {d.seed})"
    )  # fmt: skip
    span = f", {d.time_range[0]} to {d.time_range[1]}" if d.time_range else ""
    series = len(d.stats)
    what = f"{len(d.targets)} targets" + (f" ({series} series)" if series != len(d.targets) else "")
    return [
        f"{what} on {d.rows:,} rows of {users}{span}, in {d.seconds:.1f}s",
        f"  spec: {d.spec_name}",
        f"  data: {d.source_text}",
    ]


def text(d: Description) -> str:
    """The terminal report: a statistics table, flags, redundancy, coverage by month."""
    out = _summary_lines(d)
    out.append("")
    out.extend(_stats_text(d))
    out.append("")
    out.extend(_flags_text(d))
    out.append("")
    out.extend(_redundancy_text(d))
    cov = _coverage_text(d)
    if cov:
        out.append("")
        out.extend(cov)
    if d.notes:
        out.append("")
        out.extend(f"note: {n}" for n in d.notes)
    return "\n".join(out) + "\n"


def _stats_text(d: Description) -> list[str]:
    rows = d.stats.to_pylist()
    width = max([len("series"), *(len(r["series"]) for r in rows)])
    heads = ["non-null", "non-empty", "zero", "mean", "std", "min", "p50", "p99", "max", "skew"]
    widths = [8, 9, 7, 8, 8, 8, 8, 8, 8, 6]

    def line(first: str, cells: list[str]) -> str:
        return f"{first:<{width}} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths))

    out = [line("series", heads)]
    out.append("-" * len(out[0]))
    for r in rows:
        cells = [_pct(r["non_null"]), _pct(r["non_empty"]), _pct(r["zero"])]
        cells += [fmt(r[k]) for k in ("mean", "std", "min", "p50", "p99", "max")]
        cells.append("-" if r["skew"] is None else f"{r['skew']:.2f}")
        out.append(line(r["series"], cells))
    return out


def _flags_text(d: Description) -> list[str]:
    if not d.flags:
        return ["flags: none"]
    out = [f"flags ({len(d.flags)}):"]
    kinds = list(dict.fromkeys(f.kind for f in d.flags))
    for kind in kinds:
        group = [f for f in d.flags if f.kind == kind]
        if kind == "heavy_tailed" and len(group) > 3:
            # one line per target would drown the rest; name them with their skewness
            out.append(f"  {_FLAG_TITLES[kind]}:")
            out.extend(_wrap([f"{f.targets[0]} ({f.value:.1f})" for f in group], 100, "    "))
            continue
        out.append(f"  {_FLAG_TITLES[kind]}:")
        out.extend(f"    {f.message}" for f in group)
    return out


def _wrap(items: list[str], width: int, indent: str) -> list[str]:
    """``items`` joined by commas into lines of at most ``width``, never split inside one.

    >>> _wrap(["aaa (1.0)", "bb (2.0)", "c (3.0)"], 24, "  ")
    ['  aaa (1.0), bb (2.0),', '  c (3.0)']
    """
    lines: list[str] = []
    cur = indent
    for k, item in enumerate(items):
        piece = item + ("," if k < len(items) - 1 else "")
        if cur.strip() and len(cur) + 1 + len(piece) > width:
            lines.append(cur)
            cur = indent
        cur += ("" if cur == indent else " ") + piece
    if cur.strip():
        lines.append(cur)
    return lines


def _corr_matrix(d: Description) -> tuple[list[str], np.ndarray]:
    names = d.correlation.column("series").to_pylist()
    m = np.array(
        [d.correlation.column(n).to_numpy(zero_copy_only=False) for n in names], dtype=float
    ).reshape(len(names), len(names))
    return names, m


def _redundancy_text(d: Description) -> list[str]:
    names, m = _corr_matrix(d)
    rows = d.correlation_rows
    basis = (
        f"Spearman's rho over a random {rows:,} of {d.rows:,} rows, seed {d.seed}"
        if rows < d.rows
        else f"Spearman's rho over {rows:,} rows"
    )
    target_of = dict(
        zip(d.stats.column("series").to_pylist(), d.stats.column("target").to_pylist())
    )
    pairs = [
        (abs(m[i, j]), names[i], names[j], m[i, j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if not np.isnan(m[i, j]) and target_of[names[i]] != target_of[names[j]]
    ]
    pairs.sort(key=lambda p: -p[0])
    flagged = d.flagged("redundant")
    out = [f"redundancy ({basis}):"]
    if flagged:
        n = len(flagged)
        out.append(f"  {n} pair{'s' * (n > 1)} of targets above {REDUNDANT_ABOVE}:")
        out.extend(f"    {f.message}" for f in flagged)
    else:
        out.append(f"  no pair of targets above {REDUNDANT_ABOVE}; the strongest:")
        out.extend(f"    {a} and {b}: {r:.2f}" for _, a, b, r in pairs[:3])
    return out


def _coverage_text(d: Description) -> list[str]:
    cov = d.coverage
    if cov.num_rows == 0:
        return []
    months = sorted(set(cov.column("month").to_pylist()))
    shown = months[-TEXT_MONTHS:]
    share: dict[tuple[str, str], float] = {
        (r["target"], r["month"]): r["share"] for r in cov.to_pylist()
    }
    targets = list(dict.fromkeys(cov.column("target").to_pylist()))
    width = max(len("target"), *(len(t) for t in targets))
    more = f" (the last {len(shown)} of {len(months)} months)" if len(shown) < len(months) else ""
    out = [
        "coverage: share of the month's active users with a non-empty window that month" + more,
        f"{'target':<{width}}  " + " ".join(f"{m:>7}" for m in shown),
    ]
    for t in targets:
        cells = [share.get((t, m)) for m in shown]
        out.append(
            f"{t:<{width}}  "
            + " ".join(f"{'-' if c is None else f'{100 * c:.0f}%':>7}" for c in cells)
        )
    return out


# ---------------------------------------------------------------------------------------------
# progress on a terminal


def progress_printer(stream: IO[str] | None = None) -> Progress:
    """A ``progress(stage, done, total)`` that writes to ``stream`` (stderr): one line per
    stage, redrawn in place on a terminal (at most 5 times a second), with the time spent.
    """
    out = stream or sys.stderr
    tty = out.isatty()
    start = time.monotonic()
    state = {"stage": "", "last": 0.0}

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if stage == state["stage"] and not finished and now - state["last"] < 0.2:
            return
        if not tty and not finished:
            return  # a log gets one line per stage, when it is done
        if stage == state["stage"] and not tty and finished:
            return
        state["stage"], state["last"] = stage, now
        count = f" {done:,}/{total:,}" if total > 1 else (" done" if finished else " ...")
        line = f"{stage}:{count} ({now - start:.1f}s)"
        if tty:
            out.write("\r\033[K" + line + ("\n" if finished else ""))
        else:
            out.write(line + "\n")
        out.flush()

    return report


# ---------------------------------------------------------------------------------------------
# plots


def _figure(inches: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=inches, dpi=DPI, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _compact(v: float, _pos: object = None) -> str:
    """Axis tick labels: 0, 950, 12k, 1.5M.

    >>> [_compact(v) for v in (0, 950, 12000, 1500000, 2.5)]
    ['0', '950', '12k', '1.5M', '2.5']
    """
    a = abs(v)
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= size:
            return f"{v / size:.3g}{unit}"
    return f"{v:.3g}"


def histogram_png(d: Description, target: str) -> bytes:
    """One target's histogram as PNG: :data:`HIST_INCHES` at :data:`DPI`. A log axis where
    the values span orders of magnitude or are heavy-tailed (symlog with negatives too;
    zeros are then not drawn, their share is written under the axis); a list target's
    slots drawn over each other."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(HIST_INCHES)
    ax = fig.add_subplot()
    stats = [r for r in d.stats.to_pylist() if r["target"] == target]
    hist = [r for r in d.histograms.to_pylist() if r["target"] == target]
    # (a list target over no rows has no stats rows at all)
    first = stats[0] if stats else {"agg": None, "window": None}
    ax.set_title(target, fontsize=10, loc="left", fontweight="bold")
    if first["agg"]:
        ax.set_title(f"{first['agg']} · {first['window']}", fontsize=8, loc="right", color="#666")
    if not hist:
        ax.text(0.5, 0.5, "no values: always empty", ha="center", va="center",
                transform=ax.transAxes, color="#b00020", fontsize=11)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        return _png(fig)
    scale, linthresh = hist[0]["scale"], hist[0]["linthresh"]
    series = list(dict.fromkeys(r["series"] for r in hist))
    for k, name in enumerate(series):
        rows = [r for r in hist if r["series"] == name]
        edges = [rows[0]["left"], *(r["right"] for r in rows)]
        counts = [r["count"] for r in rows]
        if len(series) == 1:
            ax.stairs(counts, edges, fill=True, color="#4c72b0", alpha=0.85)
        else:
            ax.stairs(counts, edges, label=f"slot {name.rsplit('[', 1)[-1].rstrip(']')}",
                      linewidth=1.4, color=f"C{k}")  # fmt: skip
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False)
    notes = []
    if first["non_empty"] is not None:
        notes.append(f"non-empty {_pct(first['non_empty'])}")
    if scale == "log":
        ax.set_xscale("log")
    elif scale == "symlog":
        ax.set_xscale("symlog", linthresh=linthresh)
        notes.append(f"symlog, linear in ±{linthresh:g}")
    if scale != "linear":
        zero = max((r["zero"] or 0.0) for r in stats)
        if zero:
            notes.append(f"{_pct(zero)} zeros not drawn")
    ax.set_xlabel(" · ".join(notes), fontsize=7.5)
    ax.set_ylabel("rows", fontsize=8)
    ax.yaxis.set_major_formatter(FuncFormatter(_compact))
    if scale == "linear":
        ax.xaxis.set_major_formatter(FuncFormatter(_compact))
    ax.tick_params(labelsize=7.5)
    ax.grid(axis="y", alpha=0.3)
    try:
        return _png(fig)
    except (ValueError, OverflowError):  # an axis wider than a double (±1e308): no ticks
        fig = _figure(HIST_INCHES)
        ax = fig.add_subplot()
        ax.set_title(target, fontsize=10, loc="left", fontweight="bold")
        ax.text(0.5, 0.5, "values span more than a double holds: no axis to draw",
                ha="center", va="center", transform=ax.transAxes, color="#b00020", fontsize=10)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        return _png(fig)


def heatmap_inches(n: int) -> tuple[float, float]:
    """The heatmap's size in inches for ``n`` series: big enough to label every cell.

    >>> heatmap_inches(22)
    (11.7, 10.7)
    """
    side = min(max(2.5 + 0.3 * n, 5.0), 20.0)
    return round(side + 2.6, 2), round(side + 1.6, 2)


def heatmap_png(d: Description) -> bytes:
    """The Spearman matrix as a heatmap (:func:`heatmap_inches`); pairs flagged as
    redundant are outlined, cells without enough common rows are grey."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    names, m = _corr_matrix(d)
    n = len(names)
    fig = _figure(heatmap_inches(n))
    ax = fig.add_subplot()
    import matplotlib as mpl

    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad="#f2f2f2")
    shown = m.copy()
    np.fill_diagonal(shown, np.nan)  # 1 by definition; left blank so it does not draw the eye
    im = ax.imshow(
        np.ma.masked_invalid(shown), cmap=cmap, norm=TwoSlopeNorm(0.0, -1.0, 1.0), aspect="equal"
    )
    size = 9 if n <= 12 else 8 if n <= 24 else 6
    ax.set_xticks(range(n), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticks(range(n), names, fontsize=size)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if i != j and not np.isnan(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}".replace("0.", ".", 1), ha="center",
                            va="center", fontsize=size - 2.5,
                            color="white" if abs(m[i, j]) > 0.6 else "#333")  # fmt: skip
    index = {name: k for k, name in enumerate(names)}
    for f in d.flagged("redundant"):
        a, b = f.series
        for i, j in ((index[a], index[b]), (index[b], index[a])):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.2, ec="black"))
    cb = fig.colorbar(im, ax=ax, shrink=0.6, label="Spearman's rho")
    cb.ax.tick_params(labelsize=8)
    ax.set_title(
        f"Spearman's rho over rows where both are non-null; outlined: |rho| > {REDUNDANT_ABOVE}",
        fontsize=9, loc="left",
    )  # fmt: skip
    return _png(fig)


def coverage_inches(n: int) -> tuple[float, float]:
    """The coverage figure's size in inches for ``n`` targets: one small panel each,
    :data:`COVERAGE_COLUMNS` to a row.

    >>> coverage_inches(20)
    (13.0, 8.3)
    """
    rows = max(1, math.ceil(n / COVERAGE_COLUMNS))
    return 13.0, round(0.7 + 1.9 * rows, 2)


def coverage_png(d: Description) -> bytes:
    """Coverage over time (:func:`coverage_inches`): one small panel per target with the
    share of the month's active users that have a non-empty window that month."""
    rows = d.coverage.to_pylist()
    months = sorted({r["month"] for r in rows})
    x = {m: k for k, m in enumerate(months)}
    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig = _figure(coverage_inches(len(targets)))
    nrows = max(1, math.ceil(len(targets) / COVERAGE_COLUMNS))
    axes = fig.subplots(nrows, COVERAGE_COLUMNS, sharex=True, sharey=True, squeeze=False)
    ticks = sorted({0, len(months) // 2, len(months) - 1})
    dropped = {f.targets[0] for f in d.flagged("coverage_drop")}
    for k, ax in enumerate(axes.flat):
        if k >= len(targets):
            ax.set_axis_off()
            continue
        t = targets[k]
        pts = sorted((x[r["month"]], 100 * r["share"]) for r in rows if r["target"] == t)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        color = "#b00020" if t in dropped else "#4c72b0"
        ax.plot(xs, ys, color=color, lw=1.5, marker="o", markersize=2.5)
        ax.fill_between(xs, ys, color=color, alpha=0.12)
        ax.set_title(t, fontsize=8, loc="left")
        ax.set_ylim(0, 105)
        ax.set_yticks([0, 50, 100], ["0", "50%", "100%"])
        ax.set_xticks(ticks, [months[i] for i in ticks])
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(
        "share of the month's active users with a non-empty window that month "
        "(red: a month below half the target's median month)",
        fontsize=9, x=0.01, ha="left",
    )  # fmt: skip
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px;
       color: #222; max-width: 1500px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; margin: 0 0 12px; } .meta code { color: #222; }
nav a { margin-right: 14px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 10px; }
figure { margin: 0; } img { max-width: 100%; height: auto; }
ul.flags { padding-left: 20px; } ul.flags li { margin: 2px 0; }
.kind { display: inline-block; min-width: 125px; margin-right: 10px; font-weight: 600; }
.k-always_empty, .k-redundant { color: #b00020; }
.k-mostly_empty, .k-constant, .k-coverage_drop { color: #a05a00; }
.k-heavy_tailed { color: #555; }
table { border-collapse: collapse; font-size: 12px; }
th, td { padding: 3px 7px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; }
tr.flagged td.name { color: #b00020; }
pre { background: #f7f7f7; padding: 10px 12px; overflow-x: auto; font-size: 12px; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 8px 12px; }
.scroll { overflow-x: auto; }
"""


def _img(png: bytes, alt: str) -> str:
    w, h = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
        f'alt="{html.escape(alt)}">'
    )


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from a PNG's IHDR header.

    >>> png_size(bytes.fromhex("89504e470d0a1a0a0000000d49484452") + (3).to_bytes(4, "big")
    ...          + (2).to_bytes(4, "big"))
    (3, 2)
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _esc(v: Any) -> str:
    return html.escape(str(v))


def html_page(
    d: Description, *, plots: bool | None = None, progress: Progress | None = None
) -> str:
    """The HTML report as one string (images embedded)."""
    report = progress or (lambda stage, done, total: None)
    if plots is None:
        plots = plots_available()
    elif plots and not plots_available():
        raise OutputError(f"plots need matplotlib: {PLOT_HINT}")
    title = f"sqltargets describe: {d.spec_name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        HTML_MARKER,  # lets a later report replace this file (and nothing else)
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    parts.extend(f'<p class="meta">{_esc(line.strip())}</p>' for line in _summary_lines(d))
    parts.append(
        '<nav><a href="#flags">Flags</a><a href="#distributions">Distributions</a>'
        '<a href="#redundancy">Redundancy</a><a href="#coverage">Coverage</a>'
        '<a href="#statistics">Statistics</a><a href="#spec">Spec and data</a></nav>'
    )
    if not plots:
        parts.append(
            f'<p class="note">No plots: they need matplotlib (<code>{_esc(PLOT_HINT)}</code>). '
            "The tables below hold every number.</p>"
        )
    parts.extend(_flags_html(d))

    targets = list(d.targets)
    n_plots = len(targets) + 2 if plots else 0
    done = 0
    parts.append('<section id="distributions"><h2>Distributions</h2>')
    if plots:
        parts.append('<div class="grid">')
        for t in targets:
            report("plots", done, n_plots)
            parts.append(f"<figure>{_img(histogram_png(d, t), f'histogram of {t}')}</figure>")
            done += 1
        parts.append("</div>")
    else:
        parts.append("<p>(plots need matplotlib)</p>")
    parts.append("</section>")

    parts.append('<section id="redundancy"><h2>Redundancy</h2>')
    lines = _redundancy_text(d)
    sample = (
        f"a random {d.correlation_rows:,} of the {d.rows:,} rows (seed {d.seed})"
        if d.correlation_rows < d.rows
        else f"all {d.rows:,} rows"
    )
    parts.append(
        f"<p>Spearman's rho between every two series, over the rows where both are non-null, "
        f"on {_esc(sample)}. {_esc(lines[1].strip().capitalize())}</p>"
    )
    parts.append("<ul>" + "".join(f"<li>{_esc(x.strip())}</li>" for x in lines[2:]) + "</ul>")
    if plots:
        report("plots", done, n_plots)
        parts.append(f'<div class="scroll">{_img(heatmap_png(d), "correlation heatmap")}</div>')
        done += 1
    parts.append("</section>")

    parts.append('<section id="coverage"><h2>Coverage over time</h2>')
    if d.coverage.num_rows:
        parts.append(
            "<p>Per calendar month, of the users with a transaction that month, the share "
            "with at least one row that month whose window is non-empty.</p>"
        )
        if plots:
            report("plots", done, n_plots)
            parts.append(f'<div class="scroll">{_img(coverage_png(d), "coverage over time")}</div>')
            done += 1
        parts.extend(_coverage_html(d))
    else:
        parts.append("<p>Not available for this input (see the notes below).</p>")
    parts.append("</section>")
    report("plots", n_plots, n_plots)

    parts.extend(_stats_html(d))
    parts.append('<section id="spec"><h2>Spec and data</h2>')
    parts.append(f"<p>Spec: <code>{_esc(d.spec_name)}</code></p>")
    parts.append(f"<pre>{_esc(d.spec_text)}</pre>")
    parts.append("<table>")
    facts = [
        ("data", d.source_text),
        ("users described", f"{d.users:,} of {d.total_users:,}"),
        ("rows", f"{d.rows:,}"),
        ("time range", " to ".join(d.time_range) if d.time_range else "-"),
        ("correlation rows", f"{d.correlation_rows:,}"),
        ("seed", str(d.seed)),
    ]
    parts.extend(
        f'<tr><td class="name">{_esc(k)}</td><td class="name">{_esc(v)}</td></tr>' for k, v in facts
    )
    parts.append("</table>")
    if d.notes:
        parts.append("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in d.notes) + "</ul>")
    parts.append("</section>")
    parts.append("</body>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


def _flags_html(d: Description) -> list[str]:
    out = ['<section id="flags"><h2>Flags</h2>']
    if not d.flags:
        out.append("<p>None: no target is empty, constant, heavy-tailed or redundant.</p>")
    else:
        out.append('<ul class="flags">')
        for kind in dict.fromkeys(f.kind for f in d.flags):
            group = [f for f in d.flags if f.kind == kind]
            label = f'<span class="kind k-{kind}">{_esc(kind.replace("_", " "))}</span>'
            if kind == "heavy_tailed" and len(group) > 3:
                names = ", ".join(f"{f.targets[0]} ({f.value:.1f})" for f in group)
                out.append(
                    f"<li>{label}{len(group)} targets with |skewness| > 2, where a log "
                    f"transform (log1p, or a signed log with negatives) would help: "
                    f"{_esc(names)}</li>"
                )
                continue
            out.extend(f"<li>{label}{_esc(f.message)}</li>" for f in group)
        out.append("</ul>")
    out.append("</section>")
    return out


def _stats_html(d: Description) -> list[str]:
    flagged = {t for f in d.flags if f.kind in ("always_empty", "redundant") for t in f.targets}
    cols = ["agg", "window", "rows", "non_null", "non_empty", "zero", "mean", "std", "min"]
    cols += [f"p{q:02d}" for q in QUANTILES] + ["max", "skew"]
    out = [
        '<section id="statistics"><h2>Statistics</h2>',
        "<p>Per series (a list target such as <code>top_k</code> has one per slot). "
        "Shares: non-null of rows; non-empty: rows whose window holds a transaction passing "
        "the filter; zero: of non-null values. Moments are population moments; skewness is "
        "Fisher-Pearson g1; quantiles interpolate linearly.</p>",
        '<div class="scroll"><table>',
        '<tr><th class="name">series</th>' + "".join(f"<th>{_esc(c)}</th>" for c in cols) + "</tr>",
    ]
    for r in d.stats.to_pylist():
        cells = []
        for c in cols:
            v = r[c]
            if c in ("non_null", "non_empty", "zero"):
                cells.append(_pct(v))
            elif c == "skew":
                cells.append("-" if v is None else f"{v:.2f}")
            elif c == "rows":
                cells.append(f"{v:,}")
            elif c in ("agg", "window"):
                cells.append(v or "-")
            else:
                cells.append(fmt(v))
        cls = ' class="flagged"' if r["target"] in flagged else ""
        out.append(
            f'<tr{cls}><td class="name">{_esc(r["series"])}</td>'
            + "".join(f"<td>{_esc(c)}</td>" for c in cells)
            + "</tr>"
        )
    out.append("</table></div></section>")
    return out


def _coverage_html(d: Description) -> list[str]:
    rows = d.coverage.to_pylist()
    months = sorted({r["month"] for r in rows})
    targets = list(dict.fromkeys(r["target"] for r in rows))
    share = {(r["target"], r["month"]): r["share"] for r in rows}
    active = {r["month"]: r["users"] for r in rows}
    out = [
        "<details><summary>The numbers</summary>",
        '<div class="scroll"><table>',
        '<tr><th class="name">target</th>'
        + "".join(f"<th>{_esc(m)}</th>" for m in months)
        + "</tr>",
        '<tr><td class="name">active users</td>'
        + "".join(f"<td>{active[m]:,}</td>" for m in months)
        + "</tr>",
    ]
    for t in targets:
        cells = [share.get((t, m)) for m in months]
        out.append(
            f'<tr><td class="name">{_esc(t)}</td>'
            + "".join(f"<td>{'-' if c is None else _pct(c)}</td>" for c in cells)
            + "</tr>"
        )
    out.append("</table></div></details>")
    return out


def check_report_path(path: str | Path, inputs: list[str] | tuple[str, ...] = ()) -> Path:
    """``path`` as a Path when a report can be written there, else an :class:`OutputError`
    (checked before the work starts, so that a typo does not cost a whole run). The rules
    of every output (``execute/files.check_output``): never an input (``inputs``: real
    paths), a store or a file sqltargets did not write; an earlier report is replaced."""
    return check_output(path, inputs=list(inputs), folder=False, what="report", file_kind="html")


def write_html(
    d: Description,
    path: str | Path,
    *,
    plots: bool | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the HTML report to ``path`` (atomically: a temporary file renamed into place)."""
    out = check_report_path(path, d.inputs)
    page = html_page(d, plots=plots, progress=progress)
    tmp = ""
    try:
        tmp = temp_file(out)  # a new hidden file beside it: nothing else is ever removed
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        place_file(tmp, out, "report", file_kind="html")
    except BaseException as e:  # (our own temporary only: also when placing is refused)
        if tmp:
            remove(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"report {str(out)!r}: {e.strerror or e}") from e
        raise
    return out
