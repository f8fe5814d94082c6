"""The ``sqltargets`` command line: a thin layer over the Python API.

User mistakes end in one line ``Error: ...`` on stderr and exit code 1; ``--debug`` shows
the traceback too.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .errors import SqlTargetsError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise SqlTargetsError(f"{message} (see '{self.prog} --help')")


def _check_repeated(argv: list[str]) -> None:
    """An option given twice is a mistake (argparse keeps the last: `--output a --output b`
    wrote b without a word)."""
    seen: dict[str, int] = {}
    for token in argv:
        if token == "--":
            break
        if token.startswith("--") and len(token) > 2:
            name = token.split("=", 1)[0]
            seen[name] = seen.get(name, 0) + 1
    repeated = [name for name, n in seen.items() if n > 1]
    if repeated:
        raise SqlTargetsError(
            f"{repeated[0]}: given {seen[repeated[0]]} times; give it once (only one value "
            "would be used)"
        )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sqltargets",
        description="Synthetic targets for transaction sequences, compiled to DuckDB SQL.",
    )
    p.add_argument("--version", action="version", version=f"sqltargets {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def resources(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
        sp.add_argument("--memory-limit", help="DuckDB memory limit, e.g. 4GB")
        sp.add_argument("--temp-directory", help="where DuckDB spills when over the memory limit")

    def engine_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--engine", default="native",
            help="native (default: DuckDB prologue, then compiled kernels) or sql (DuckDB runs "
            "the portable statement that 'explain --engine sql' prints)",
        )  # fmt: skip

    sp = sub.add_parser(
        "explain", help="print the native program, or the portable SQL (touches no data)"
    )
    sp.add_argument("spec")
    sp.add_argument("--input", help="Parquet file, glob or folder the SQL should read")
    sp.add_argument("--dialect", default="duckdb", help="SQL dialect: duckdb (default) or spark")
    sp.add_argument(
        "--engine",
        help="native (default for duckdb: the prologue SQL and one line per kernel) or sql "
        "(the portable statement computing every target; the default for spark)",
    )
    sp.add_argument(
        "--time-type",
        help="without --input: the time column's type (timestamp, timestamptz, date, integer)",
    )

    sp = sub.add_parser("run", help="compute targets and write them to Parquet")
    sp.add_argument("spec")
    sp.add_argument("--input", required=True, help="Parquet file, glob or folder")
    sp.add_argument("--output", required=True, help="output .parquet file (written atomically)")
    sp.add_argument("--quiet", action="store_true", help="no progress display")
    sp.add_argument("--summary", action="store_true", help="print a per-target summary")
    sp.add_argument("--store", help="read the input through this prepared store (made if stale)")
    sp.add_argument(
        "--shards", type=int, default=1, help="split users into N shards; the output is a folder"
    )
    sp.add_argument("--jobs", type=int, default=1, help="shards computed in parallel processes")
    sp.add_argument(
        "--past-only",
        action="store_true",
        help="refuse targets that look past the current row (period, future, next_period, next)",
    )
    engine_arg(sp)
    resources(sp)

    sp = sub.add_parser("verify", help="compare the SQL path with the NumPy reference")
    sp.add_argument("spec")
    sp.add_argument("--input", required=True, help="Parquet file, glob or folder")
    sp.add_argument("--users", type=int, default=20, help="users to sample (default 20)")
    sp.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    engine_arg(sp)
    resources(sp)

    sp = sub.add_parser(
        "describe", help="statistics, redundancy and coverage of each target (and an HTML report)"
    )
    sp.add_argument("spec")
    sp.add_argument("--input", required=True, help="Parquet file, glob or folder")
    sp.add_argument("--users", type=int, help="describe N users drawn at random (default: all)")
    sp.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sp.add_argument("--html", help="also write a self-contained HTML report with plots here")
    sp.add_argument("--quiet", action="store_true", help="no progress display")
    engine_arg(sp)
    resources(sp)

    sp = sub.add_parser("prepare", help="write a sorted store of the input for faster reruns")
    sp.add_argument("input", help="Parquet file, glob or folder")
    sp.add_argument("--out", required=True, help="the store folder")
    sp.add_argument("--spec", help="take the user and time columns from this spec")
    sp.add_argument("--user", help="the user column")
    sp.add_argument("--time", help="the time column")
    resources(sp)

    sp = sub.add_parser("validate", help="check a spec file")
    sp.add_argument("spec")

    sub.add_parser("mcc", help="list the built-in MCC groups")

    sp = sub.add_parser("demo-data", help="write synthetic transactions as Parquet")
    sp.add_argument("--users", type=int, required=True)
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--files", type=int, default=4, help="number of Parquet files (default 4)")
    sp.add_argument("--tx-per-user", type=int, help="exactly this many transactions per user")
    sp.add_argument("--ties", type=float, default=0.02, help="share of same-second ties")
    sp.add_argument("--shuffle", action="store_true", help="write rows in random order")
    return p


def _print(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _cmd_explain(a: argparse.Namespace) -> int:
    from .api import explain

    text = explain(
        a.spec, dialect=a.dialect, source=a.input, time_type=a.time_type, engine=a.engine
    )
    _print(text + ";")
    return 0


class _Progress:
    def __init__(self, enabled: bool, title: str) -> None:
        self.enabled = enabled
        self.title = title
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def stage(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"{text}\n")
            sys.stderr.flush()

    def shard(self, i: int, n: int, rows: int) -> None:
        _check_signalled()
        self.done = getattr(self, "done", 0) + 1
        self.stage(
            f"shard {i + 1}/{n} done: {rows:,} rows ({self.done}/{n} shards, "
            f"{time.monotonic() - self.start:.1f}s)"
        )

    def __call__(self, rows: int, total: int) -> None:
        _check_signalled()
        if not self.enabled:
            return
        if rows == 0:  # the input passed its checks; the query starts
            self.stage(f"{self.title}: {total:,} rows ...")
            return
        now = time.monotonic()
        if now - self.last < 0.2 and rows < total:
            return
        self.last = now
        pct = f" ({100 * rows / total:.0f}%)" if total else ""
        line = f"written {rows:,} of {total:,} rows{pct}, {now - self.start:.1f}s"
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and rows >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_run(a: argparse.Namespace) -> int:
    from .api import check_write, write
    from .execute import files

    # every check that needs no computing comes first: a mistake is one line, nothing else
    ts, _ = check_write(
        a.spec, a.input, a.output, shards=a.shards, jobs=a.jobs, engine=a.engine,
        temp_directory=a.temp_directory,
    )  # fmt: skip
    if a.past_only:
        ts.check_past_only()
    if a.store is not None:  # ('' is a mistake, not "no store": check_output says so)
        _check_apart(a.store, a.output)
    progress = _Progress(not a.quiet, f"computing {len(ts.targets)} targets over {a.input}")
    source = a.input
    if a.store is not None:
        from .execute.store import is_fresh

        if not is_fresh(a.store, a.input):
            files.check_output(
                a.store, inputs=files.input_paths(a.input), folder=True, what="store",
                kinds=("store",), temp_directory=a.temp_directory,
            )  # fmt: skip
            progress.stage(f"preparing store {a.store} ...")
            prepare(ts, a.input, a.store, a)
        source = a.store
    if a.shards > 1:
        progress.stage(f"{progress.title}: {a.shards} shards, {a.jobs} at a time ...")
    rows = write(
        ts, source, a.output, threads=a.threads, memory_limit=a.memory_limit,
        temp_directory=a.temp_directory, shards=a.shards, jobs=a.jobs,
        progress=progress if a.shards == 1 else None, on_shard=progress.shard, engine=a.engine,
    )  # fmt: skip
    progress.stage(f"wrote {rows:,} rows to {a.output} in {time.monotonic() - progress.start:.1f}s")
    if a.summary:
        _print_summary(a.output, [t.name for t in ts.targets])
    return 0


def _check_apart(store: str, output: str) -> None:
    """``run --store S --output O``: S and O must not be one path, nor one inside the other
    (checked before the store is prepared: a refused run writes nothing)."""
    import os
    from pathlib import Path

    from .errors import OutputError

    if not store.strip():  # (realpath('') is the working folder)
        raise OutputError(f"--store: expected a folder path, got {store!r}")
    s, o = Path(os.path.realpath(store)), Path(os.path.realpath(output))
    if s == o or s in o.parents or o in s.parents:
        raise OutputError(
            f"--store {store!r} and --output {output!r} overlap; the store and the output "
            "need paths of their own"
        )


def _print_summary(path: str, names: list[str]) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=names)
    _print(f"{'target':<28} {'non-null':>9} {'nonzero':>8} {'mean':>12} {'min':>12} {'max':>12}")
    for name in names:
        col = table.column(name)
        if col.type.num_fields or str(col.type).startswith(("list", "large_list")):
            col = pc.list_element(col, 0)
        values = pc.cast(col, "float64")
        n = len(values) - values.null_count
        nonzero = pc.sum(pc.not_equal(values, 0)).as_py() or 0
        stats = [pc.mean(values).as_py(), pc.min(values).as_py(), pc.max(values).as_py()]
        shown = " ".join(f"{v:>12.2f}" if v is not None else f"{'-':>12}" for v in stats)
        _print(f"{name:<28} {n / max(len(values), 1):>9.1%} {nonzero / max(n, 1):>8.1%} {shown}")


def prepare(ts: object, source: str, store: str, a: argparse.Namespace) -> None:
    """Write a store for ``source`` (shared by ``prepare`` and ``run --store``)."""
    from .api import prepare as api_prepare

    api_prepare(
        source, store, specs=ts, user=getattr(a, "user", None), time=getattr(a, "time", None),
        threads=a.threads, memory_limit=a.memory_limit, temp_directory=a.temp_directory,
    )  # fmt: skip


def _cmd_prepare(a: argparse.Namespace) -> int:
    from .compile.spec import load
    from .execute.store import read_manifest

    ts = load(a.spec) if a.spec else None
    t0 = time.monotonic()
    prepare(ts, a.input, a.out, a)
    rows = read_manifest(a.out)["rows"]
    _print(
        f"prepared {a.out}: {rows:,} rows sorted by user and time in {time.monotonic() - t0:.1f}s"
    )
    return 0


def _cmd_verify(a: argparse.Namespace) -> int:
    from .api import verify

    t0 = time.monotonic()
    report = verify(
        a.spec, a.input, users=a.users, seed=a.seed, threads=a.threads,
        memory_limit=a.memory_limit, engine=a.engine,
    )  # fmt: skip
    _print(
        f"compared {len(report.targets)} targets on {report.rows:,} rows of "
        f"{len(report.users)} users in {time.monotonic() - t0:.1f}s"
    )
    if report.ok:
        _print("ok: the SQL and the NumPy reference agree on every cell")
        return 0
    by_col: dict[str, int] = {}
    for m in report.mismatches:
        by_col[m.column] = by_col.get(m.column, 0) + 1
    for col, n in by_col.items():
        _print(f"MISMATCH {col}: {n} cells")
    for m in report.mismatches[:10]:
        _print(f"  {m}")
    sys.stderr.write(f"Error: {len(report.mismatches)} cells differ between SQL and reference\n")
    return 1


def _cmd_describe(a: argparse.Namespace) -> int:
    from .description import describe
    from .execute import files
    from .report import PLOT_HINT, check_report_path, plots_available, progress_printer

    if a.users is not None and a.users < 1:
        raise SqlTargetsError(f"--users: {a.users} is not allowed; expected a positive number")
    if a.html is not None:
        check_report_path(a.html, files.input_paths(a.input))
    progress = None if a.quiet else progress_printer(sys.stderr)
    d = describe(
        a.spec, a.input, a.users, seed=a.seed, engine=a.engine, threads=a.threads,
        memory_limit=a.memory_limit, progress=progress,
    )  # fmt: skip
    sys.stdout.write(d.to_text())
    if a.html is not None:
        path = d.write_html(a.html, progress=progress)
        _print(f"\nreport: {path.resolve()}")
    if not plots_available():
        _print(f"no plots: they need matplotlib ({PLOT_HINT})")
    elif not a.html:
        _print("plots: add --html report.html")
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from .compile.spec import load

    ts = load(a.spec)
    _print(f"ok: {len(ts.targets)} targets, output {ts.output}, time zone {ts.timezone}")
    for t in ts.targets:
        _print(f"  {t.name}: {t.agg} over {t.window.describe()} ({t.looks}-looking)")
    ahead = ts.future_targets()
    _print(
        f"{len(ahead)} future-looking target(s): labels, not features (run --past-only refuses them)"
        if ahead
        else "every target is past-looking: safe as features (run --past-only accepts it)"
    )
    return 0


def _cmd_mcc(a: argparse.Namespace) -> int:
    from .compile.mcc import catalog_table

    rows = catalog_table()
    width = max(len(r[0]) for r in rows)
    for name, codes, desc in rows:
        _print(f"{name:<{width}}  {desc}\n{'':<{width}}  {codes}")
    return 0


def _cmd_demo_data(a: argparse.Namespace) -> int:
    from .demo import write_demo

    if a.users < 1:
        raise SqlTargetsError(f"--users: {a.users} is not allowed; expected a positive number")
    if a.files < 1:
        raise SqlTargetsError(f"--files: {a.files} is not allowed; expected a positive number")
    paths = write_demo(
        a.out, a.users, seed=a.seed, files=a.files, tx_per_user=a.tx_per_user, ties=a.ties,
        shuffle=a.shuffle,
    )  # fmt: skip
    _print(f"wrote {len(paths)} files to {a.out}")
    return 0


COMMANDS = {
    "explain": _cmd_explain,
    "run": _cmd_run,
    "verify": _cmd_verify,
    "describe": _cmd_describe,
    "prepare": _cmd_prepare,
    "validate": _cmd_validate,
    "mcc": _cmd_mcc,
    "demo-data": _cmd_demo_data,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    _SIGNALLED.clear()
    _install_handlers()
    try:
        _check_repeated(argv)
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help()
            return 1
        code = COMMANDS[args.command](args)
        _check_signalled()
        return code
    except SqlTargetsError as e:
        if _SIGNALLED.is_set() or _interrupted(e.__cause__ or e):
            return _stop_interrupted()
        if debug:
            raise
        sys.stderr.write(f"Error: {_one_line(str(e))}\n")
        return 1
    except KeyboardInterrupt:
        return _stop_interrupted()
    except BrokenPipeError:
        return _reader_gone()
    except Exception as e:  # an unexpected failure still gets one line
        if _interrupted(e):  # DuckDB turns Ctrl-C during a query into its own error
            return _stop_interrupted()
        if debug:
            raise
        sys.stderr.write(
            f"Error: unexpected {type(e).__name__}: {_one_line(str(e))} "
            "(run with --debug for the traceback)\n"
        )
        return 1


def _reader_gone() -> int:
    """Whoever read the standard output stopped (``sqltargets explain ... | head``): end
    quietly, as a command killed by SIGPIPE (status 141), with nothing on stderr; stdout
    points at /dev/null so that the interpreter's final flush fails no more."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # (a stdout without a file descriptor)
        pass
    return 128 + 13


def _stop_interrupted() -> int:
    """Exit status 130 after Ctrl-C or SIGTERM, when everything is cleaned up. Later Ctrl-Cs
    are ignored from here on: at interpreter exit Python restores the default handler, and
    one more Ctrl-C then would kill the process with a signal instead of this status."""
    import signal

    sys.stderr.write("Error: interrupted\n")
    sys.stderr.flush()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 130


def _interrupted(e: BaseException) -> bool:
    return type(e).__name__ == "InterruptException" or "interrupted" in str(e).lower()[:40]


#: Set by SIGINT and SIGTERM. The handler also raises KeyboardInterrupt, but a signal that
#: lands while DuckDB finishes a statement can be absorbed by it; progress callbacks (called
#: between batches, before the output is renamed into place) raise again when it is set.
_SIGNALLED = threading.Event()


def _check_signalled() -> None:
    if _SIGNALLED.is_set():
        raise KeyboardInterrupt


def _install_handlers() -> None:
    """Warnings as one stderr line; SIGINT and SIGTERM unwind as KeyboardInterrupt, so a
    run in progress removes its temporary output instead of leaving it behind."""
    import signal
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        sys.stderr.write(f"Warning: {message}\n")

    warnings.showwarning = show
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: object) -> None:
            _SIGNALLED.set()
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
