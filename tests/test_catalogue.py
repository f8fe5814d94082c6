"""The catalogue of bad inputs, each through the API and through the CLI: a
``SqlTargetsError`` from the API; one ``Error:`` line, exit 1, no traceback and no output
file from ``sqltargets run``."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sqltargets
from sqltargets.cli import main

HEAD = "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: day}\n"
OK_TARGET = "{name: s, agg: sum, window: {kind: expanding, period: day}}"


def spec_text(*targets: str, extra: str = "") -> str:
    return HEAD + extra + "targets: [" + ", ".join(targets or (OK_TARGET,)) + "]\n"


# (case, spec text, what the input looks like, where the output goes, words the error names)
CASES = [
    (
        "unknown key",
        spec_text("{name: s, agg: sum, windw: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].windw", "did you mean 'window'"],
    ),
    (
        "misspelled agg",
        spec_text("{name: s, agg: avg, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].agg", "'avg'", "sum, count, mean"],
    ),
    (
        "window kind",
        spec_text("{name: s, agg: sum, window: {kind: sliding, length: 7d}}"),
        "good",
        "ok",
        ["targets[0].window.kind", "'sliding'", "expanding, period"],
    ),
    (
        "period",
        spec_text("{name: s, agg: sum, window: {kind: period, period: fortnight}}"),
        "good",
        "ok",
        ["targets[0].window.period", "'fortnight'", "day, week"],
    ),
    (
        "duration",
        spec_text("{name: s, agg: sum, window: {kind: rolling, length: 7 parsecs}}"),
        "good",
        "ok",
        ["targets[0].window.length", "'7 parsecs'", "'7d'"],
    ),
    (
        "mcc code",
        spec_text("{name: s, agg: sum, mcc: [54111], window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].mcc[0]", "54111", "0-9999"],
    ),
    (
        "mcc group",
        spec_text("{name: s, agg: sum, mcc: [grocerys], window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].mcc[0]", "'grocerys'", "did you mean 'grocery'"],
    ),
    (
        "duplicate name",
        spec_text(OK_TARGET, "{name: s, agg: max, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[1].name", "'s'", "repeats"],
    ),
    (
        "duplicate name, case",
        spec_text(OK_TARGET, "{name: S, agg: max, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[1].name", "'S'", "ignoring case"],
    ),
    (
        "k missing",
        spec_text("{name: s, agg: top_k, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].k", "missing"],
    ),
    (
        "k zero",
        spec_text("{name: s, agg: top_k, k: 0, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].k", "0", "1 to 1000"],
    ),
    (
        "k huge",
        spec_text("{name: s, agg: top_k, k: 100000, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].k", "100000", "1 to 1000"],
    ),
    (
        "column missing",
        spec_text("{name: s, agg: sum, value: amout, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].value", "'amout'", "not in the input"],
    ),
    (
        "column type",
        spec_text("{name: s, agg: sum, value: note, window: {kind: period, period: day}}"),
        "good",
        "ok",
        ["targets[0].value", "'note'", "VARCHAR", "numeric"],
    ),
    (
        "integer time without unit",
        HEAD.replace("time: {unit: day}\n", "") + "targets: [" + OK_TARGET + "]\n",
        "good",
        "ok",
        ["time.unit", "'t' is an integer"],
    ),
    (
        "unknown time zone",
        spec_text(extra="timezone: Europe/Pariss\n"),
        "good",
        "ok",
        ["timezone", "'Europe/Pariss'", "did you mean 'Europe/Paris'"],
    ),
    (
        "malformed YAML",
        HEAD + "targets: [{name: s, agg: sum\n",
        "good",
        "ok",
        ["malformed YAML", "line"],
    ),
    ("missing input", spec_text(), "missing", "ok", ["does not exist"]),
    ("empty input folder", spec_text(), "empty", "ok", ["no .parquet files"]),
    ("null time", spec_text(), "null_time", "ok", ["columns.time", "1 of 3 rows", "null time"]),
    ("unwritable output", spec_text(), "good", "missing_folder", ["output", "does not exist"]),
]


def make_input(kind: str, tmp: Path) -> Path:
    t = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 3.0],
                  "m": [5411, 1, 2], "note": ["x", "y", "z"]})  # fmt: skip
    if kind == "missing":
        return tmp / "nope.parquet"
    if kind == "empty":
        (tmp / "empty").mkdir()
        return tmp / "empty"
    if kind == "null_time":
        t = t.set_column(1, "t", pa.array([0, None, 2], pa.int64()))
    pq.write_table(t, tmp / "in.parquet")
    return tmp / "in.parquet"


@pytest.mark.parametrize(
    ("case", "text", "inp", "out", "needles"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_api_and_cli(
    case: str,
    text: str,
    inp: str,
    out: str,
    needles: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    source = make_input(inp, tmp_path)
    target = (
        (tmp_path / "no" / "t.parquet") if out == "missing_folder" else (tmp_path / "t.parquet")
    )

    with pytest.raises(sqltargets.SqlTargetsError) as e:
        sqltargets.write(spec, source, target)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))
    assert not target.exists()

    code = main(["run", str(spec), "--input", str(source), "--output", str(target)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err
    assert "Traceback" not in captured.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not target.exists()
    if target.parent.exists():
        assert list(target.parent.glob(".t.parquet*")) == []


# ---------------------------------------------------------------------------------------------
# issue 10: the classes of odd inputs (odd YAML, out-of-range values, Arrow types in each role,
# file layouts, overlapping outputs, arguments), each through the API and `sqltargets run`


def _bomb() -> str:
    lines = ['a0: &a0 ["xxxxxxxxxx"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n" + HEAD + "timezone: *a9\ntargets: [" + OK_TARGET + "]\n"


def target(extra: str, window: str = "{kind: expanding, period: day}", agg: str = "sum") -> str:
    return spec_text(f"{{name: s, agg: {agg}, {extra}window: {window}}}")


@dataclass(frozen=True)
class Case:
    """One odd input: the spec text, the input's kind, where the output goes, extra CLI
    arguments with their API keywords, and the words the one-line error must hold."""

    name: str
    needles: tuple[str, ...]
    spec: str = spec_text()
    inp: str = "folder"
    out: str = "file"
    args: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


SHARDS = {"args": ("--shards", "2"), "kwargs": {"shards": 2}}

MORE = [
    # --- spec: odd YAML and values that validate must refuse before any run
    Case("fill nan", ("targets[0].fill", "nan is not allowed"), target("fill: .nan, ", agg="mean")),
    Case("fill inf", ("targets[0].fill", "inf is not allowed"), target("fill: -.inf, ", agg="max")),
    Case(
        "count fill 1e30",
        ("targets[0].fill", "outside int64"),
        target("fill: 1.0e+30, ", agg="count"),
    ),
    Case("fill as text", ("targets[0].fill", "'abc' is not a number"), target("fill: abc, ")),
    Case(
        "window 1e15 weeks",
        ("targets[0].window.length", "longer than 10,000 years"),
        target("", "{kind: rolling, length: 1000000000000000w}"),
    ),
    Case(
        "window zero",
        ("targets[0].window.length", "positive whole number"),
        target("", "{kind: rolling, length: 0d}"),
    ),
    Case(
        "timezone localtime",
        ("timezone", "'localtime' is not a known time zone"),
        spec_text(extra="timezone: localtime\n"),
    ),
    Case(
        "timezone a list",
        ("timezone", "expected a time zone name"),
        spec_text(extra="timezone: [UTC]\n"),
    ),
    Case(
        "where 3000 parentheses",
        ("targets[0].where", "nests parentheses more than 64"),
        target("where: '" + "(" * 3000 + "a > 0" + ")" * 3000 + "', "),
    ),
    Case(
        "where 2000 terms",
        ("targets[0].where", "nested more than 256 operations"),
        target("where: '" + " + ".join(["a"] * 2000) + " > 0', "),
    ),
    Case(
        "where a subquery",
        ("targets[0].where", "IN takes a list of literals only"),
        target("where: 'a IN (SELECT 1)', "),
    ),
    Case(
        "where not boolean",
        ("targets[0].where", "not a boolean expression"),
        target("where: 'a + 1', "),
    ),
    Case(
        "YAML list as key",
        ("line 3", "a list is used as a key"),
        HEAD + "targets: [{name: s, agg: sum, [window]: 1}]\n",
    ),
    Case("YAML alias bomb", ("aliases expand to more than 100,000 values",), _bomb()),
    Case("YAML recursive alias", ("alias refers to itself",), HEAD + "targets: &t [*t]\n"),
    Case(
        "YAML nested 10000 deep",
        ("nested more than 64 levels",),
        HEAD + "targets: " + "[" * 10000 + "]" * 10000 + "\n",
    ),
    Case("YAML python tag", ("malformed YAML",), HEAD + "targets: !!python/object:os.system x\n"),
    Case(
        "YAML binary value",
        ("targets", "expected a non-empty list"),
        HEAD + "targets: !!binary aGVsbG8=\n",
    ),
    Case(
        "YAML a date as name",
        ("targets[0].name", "not a valid target name"),
        target("").replace("name: s", "name: 2024-01-01"),
    ),
    Case(
        "YAML a set of targets",
        ("targets", "expected a non-empty list"),
        HEAD + "targets: !!set {a, b}\n",
    ),
    Case(
        "YAML duplicate key",
        ("duplicate key 'agg'",),
        spec_text("{name: s, agg: sum, agg: max, window: {kind: period, period: day}}"),
    ),
    Case("spec a list", ("spec: expected a mapping",), "- 1\n- 2\n"),
    Case("spec empty", ("the spec file is empty",), "\n"),
    Case("non-UTF-8 spec", ("cannot be read",), "columns: caf\udce9\n"),
    Case(
        "targets 1001",
        ("1001 targets; at most 1000",),
        spec_text(
            *[
                f"{{name: t{i}, agg: sum, window: {{kind: period, period: day}}}}"
                for i in range(1001)
            ]
        ),
    ),
    Case(
        "name 200 characters",
        ("targets[0].name", "at most 120 characters"),
        target("").replace("name: s", "name: " + "n" * 200),
    ),
    Case("k a float", ("targets[0].k", "1.5 is not allowed"), target("k: 1.5, ", agg="top_k")),
    Case(
        "origin not a date",
        ("time.origin", "is not a date"),
        HEAD.replace("{unit: day}", "{unit: day, origin: 2024-13-45}")
        + "targets: ["
        + OK_TARGET
        + "]\n",
    ),
    # --- data: Arrow types in each role, and layouts
    Case(
        "struct user",
        ("columns.user", "STRUCT", "expected an integer or a string"),
        inp="struct_user",
    ),
    Case(
        "float user with NaN",
        ("columns.user", "DOUBLE", "expected an integer or a string"),
        inp="float_user",
    ),
    Case("bool user", ("columns.user", "BOOLEAN"), inp="bool_user"),
    Case(
        "list id",
        ("columns.id", "BIGINT[]", "expected an integer or a string"),
        spec_text(extra="").replace("mcc: m}", "mcc: m, id: x}"),
        inp="list_x",
    ),
    Case(
        "map value summed",
        ("targets[0].value", "MAP", "numeric"),
        target("value: x, "),
        inp="map_x",
    ),
    Case("string time", ("columns.time", "VARCHAR"), inp="string_time"),
    Case("mixed string and int", ("input column 'm' is int64 in", "but string in"), inp="mixed_m"),
    Case(
        "mixed zoned and naive",
        ("input column 't'", "with and without a time zone"),
        spec_text().replace("time: {unit: day}\n", ""),
        inp="mixed_tz",
    ),
    Case(
        "column missing from a file",
        ("column 'note', which the spec reads, is missing from",),
        target("where: \"note = 'x'\", "),
        inp="partial_note",
    ),
    Case("not Parquet", ("is not a readable Parquet file",), inp="not_parquet"),
    Case("broken link", ("is a broken symbolic link",), inp="broken_link"),
    Case("only hidden files", ("no .parquet files", "hidden names"), inp="hidden_only"),
    Case("glob matching nothing", ("matches no files",), inp="glob_nothing"),
    Case("column file_row_number", ("'file_row_number' has the name DuckDB gives",), inp="frn"),
    Case("unreadable folder", ("cannot be read: Permission denied",), inp="unreadable"),
    Case("a fifo", ("is not a regular file or a folder",), inp="fifo"),
    # --- outputs that would destroy data
    Case("output is the input file", ("is the input",), inp="file", out="input"),
    Case("output inside the input", ("lies inside the input",), out="inside_input"),
    Case("output is the spec", ("exists and was not written by sqltargets",), out="spec"),
    Case(
        "output a foreign Parquet",
        ("exists and was not written by sqltargets",),
        out="foreign_file",
    ),
    Case("output a folder", ("is a folder; expected a file name",), out="folder"),
    Case("output a link", ("is a symbolic link",), out="link"),
    Case("shards onto the input", ("is the input",), out="input", **SHARDS),
    Case(
        "shards onto a foreign folder", ("sqltargets did not write",), out="foreign_dir", **SHARDS
    ),
    Case("shards onto the working folder", ("output '.' contains the input",), out="cwd", **SHARDS),
    Case("shards onto a file", ("is a file; expected a folder",), out="foreign_file", **SHARDS),
    Case("output inside a store", ("lies inside the prepared store",), out="in_store"),
    # --- arguments out of range
    Case(
        "threads 0", ("threads: 0 is not allowed",), args=("--threads", "0"), kwargs={"threads": 0}
    ),
    Case(
        "threads 10**6",
        ("threads: 1000000 is not allowed",),
        args=("--threads", "1000000"),
        kwargs={"threads": 10**6},
    ),
    Case(
        "memory limit",
        ("Memory must have a number",),
        args=("--memory-limit", "lots"),
        kwargs={"memory_limit": "lots"},
    ),
    Case("shards 0", ("shards: 0 is not allowed",), args=("--shards", "0"), kwargs={"shards": 0}),
    Case(
        "shards 10**9",
        ("shards: 1000000000 is not allowed",),
        args=("--shards", "1000000000"),
        kwargs={"shards": 10**9},
    ),
    Case(
        "jobs 0",
        ("jobs: 0 is not allowed",),
        args=("--shards", "2", "--jobs", "0"),
        kwargs={"shards": 2, "jobs": 0},
    ),
    Case(
        "jobs without shards",
        ("jobs: 2 jobs need shards above 1",),
        args=("--jobs", "2"),
        kwargs={"jobs": 2},
    ),
    Case(
        "engine",
        ("engine: 'fast' is not supported",),
        args=("--engine", "fast"),
        kwargs={"engine": "fast"},
    ),
]


def make_odd_input(kind: str, tmp: Path) -> str:
    t = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 3.0],
                  "m": [5411, 1, 2], "note": ["x", "y", "z"]})  # fmt: skip
    d = tmp / "in"
    d.mkdir()
    replace = {
        "struct_user": ("u", pa.array([{"k": 1}, {"k": 1}, {"k": 2}])),
        "float_user": ("u", pa.array([1.0, float("nan"), 2.0])),
        "bool_user": ("u", pa.array([True, True, False])),
        "string_time": ("t", pa.array(["0", "1", "2"])),
    }
    if kind in replace:
        col, values = replace[kind]
        t = t.set_column(t.schema.get_field_index(col), col, values)
    if kind == "list_x":
        t = t.append_column("x", pa.array([[1], [2], [3]]))
    if kind == "map_x":
        t = t.append_column("x", pa.array([[("k", 1)], [("k", 2)], [("k", 3)]],
                                          pa.map_(pa.string(), pa.int64())))  # fmt: skip
    if kind == "frn":
        t = t.append_column("file_row_number", pa.array([7, 8, 9]))
    if kind == "not_parquet":
        (d / "x.parquet").write_text("not parquet")
        return str(d)
    if kind == "broken_link":
        pq.write_table(t, d / "a.parquet")
        os.symlink(tmp / "gone.parquet", d / "b.parquet")
        return str(d)
    if kind == "hidden_only":
        pq.write_table(t, d / ".a.parquet")
        (d / "_tmp").mkdir()
        pq.write_table(t, d / "_tmp" / "b.parquet")
        return str(d)
    if kind == "glob_nothing":
        pq.write_table(t, d / "a.parquet")
        return str(d / "*.csv")
    if kind == "fifo":
        os.mkfifo(tmp / "pipe.parquet")
        return str(tmp / "pipe.parquet")
    if kind in ("mixed_m", "mixed_tz", "partial_note"):
        first, second = t.slice(0, 2), t.slice(2)
        if kind == "mixed_m":
            second = second.set_column(3, "m", pa.array(["2"]))
        if kind == "mixed_tz":
            stamps = pa.array([dt.datetime(2024, 1, 1)] * 3, pa.timestamp("us"))
            first = t.set_column(1, "t", stamps).slice(0, 2)
            second = t.set_column(1, "t", stamps.cast(pa.timestamp("us", "UTC"))).slice(2)
        if kind == "partial_note":
            second = second.drop_columns(["note"])
        pq.write_table(first, d / "a.parquet")
        pq.write_table(second, d / "b.parquet")
        return str(d)
    pq.write_table(t.slice(0, 2), d / "a.parquet")
    pq.write_table(t.slice(2), d / "b.parquet")
    if kind == "file":
        return str(d / "a.parquet")
    return str(d)


def make_output(kind: str, tmp: Path, source: str, spec: Path) -> Path:
    (tmp / "out").mkdir()
    if kind == "input":
        return Path(source)
    if kind == "inside_input":
        return Path(source) / "t.parquet"
    if kind == "spec":
        return spec
    if kind == "foreign_file":
        pq.write_table(pa.table({"x": [1]}), tmp / "out" / "t.parquet")
    if kind == "folder":
        (tmp / "out" / "t.parquet").mkdir()
    if kind == "link":
        os.symlink(tmp / "elsewhere.parquet", tmp / "out" / "t.parquet")
    if kind == "foreign_dir":
        (tmp / "out" / "t").mkdir()
        (tmp / "out" / "t" / "mine.txt").write_text("mine")
        return tmp / "out" / "t"
    if kind == "cwd":
        return Path(".")
    if kind == "in_store":
        (tmp / "store").mkdir()
        (tmp / "store" / "sqltargets-store.json").write_text("{}")
        return tmp / "store" / "t.parquet"
    return tmp / "out" / "t.parquet"


def tree(folder: Path) -> dict[str, bytes]:
    out = {}
    for root, _dirs, names in os.walk(folder):
        for n in names:
            p = Path(root) / n
            if p.is_file() and not p.is_fifo():
                out[str(p.relative_to(folder))] = p.read_bytes()
    return out


@pytest.mark.parametrize("case", MORE, ids=[c.name for c in MORE])
def test_odd_input_api_and_cli(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(case.spec.encode("utf-8", "surrogateescape"))
    source = make_odd_input(case.inp if case.inp != "unreadable" else "folder", tmp_path)
    target = make_output(case.out, tmp_path, source, spec)
    if case.inp == "unreadable":  # root reads every folder: make one refuse to be listed
        real = os.listdir

        def listdir(path: Any = ".") -> list[str]:
            if str(path).rstrip("/").endswith("/in"):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "listdir", listdir)
    before = tree(tmp_path)

    with pytest.raises(sqltargets.SqlTargetsError) as e:
        sqltargets.write(spec, source, target, **case.kwargs)
    message = str(e.value)
    assert "\n" not in message and len(message) < 500, message
    for n in case.needles:
        assert n in message, (n, message)
    assert tree(tmp_path) == before  # nothing written, nothing removed

    argv = ["run", str(spec), "--input", source, "--output", str(target), *case.args]
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1, captured
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err
    assert "Traceback" not in captured.err and "unexpected" not in lines[0]
    for n in case.needles:
        assert n in lines[0], (n, lines[0])
    assert tree(tmp_path) == before
    hidden = [p for p in tmp_path.rglob(".*") if ".old." in p.name or p.name.endswith(".tmp")]
    assert hidden == []


# ---------------------------------------------------------------------------------------------
# the other verbs' arguments, each through the API and the CLI


def _spec(tmp: Path) -> Path:
    spec = tmp / "spec.yaml"
    spec.write_text(spec_text())
    return spec


def _data(tmp: Path) -> str:
    return make_odd_input("folder", tmp)


VERBS = [
    (
        "verify users 0",
        lambda s, d: sqltargets.verify(s, d, users=0),
        ["verify", "{spec}", "--input", "{data}", "--users", "0"],
        "users: 0 is not allowed",
    ),
    (
        "verify threads -1",
        lambda s, d: sqltargets.verify(s, d, threads=-1),
        ["verify", "{spec}", "--input", "{data}", "--threads", "-1"],
        "threads: -1 is not allowed",
    ),
    (
        "verify engine",
        lambda s, d: sqltargets.verify(s, d, engine="numba"),
        ["verify", "{spec}", "--input", "{data}", "--engine", "numba"],
        "engine: 'numba'",
    ),
    (
        "prepare store inside",
        lambda s, d: sqltargets.prepare(d, f"{d}/store", specs=s),
        ["prepare", "{data}", "--out", "{data}/store", "--spec", "{spec}"],
        "lies inside the input",
    ),
    (
        "prepare store onto spec",
        lambda s, d: sqltargets.prepare(d, s, specs=s),
        ["prepare", "{data}", "--out", "{spec}", "--spec", "{spec}"],
        "is a file; expected a folder",
    ),
    (
        "prepare no columns",
        lambda s, d: sqltargets.prepare(d, "st"),
        ["prepare", "{data}", "--out", "st"],
        "name the user and time columns",
    ),
    (
        "prepare unknown column",
        lambda s, d: sqltargets.prepare(d, "st", user="x", time="t"),
        ["prepare", "{data}", "--out", "st", "--user", "x", "--time", "t"],
        "user column 'x'",
    ),
    (
        "explain dialect",
        lambda s, d: sqltargets.explain(s, dialect="mysql"),
        ["explain", "{spec}", "--dialect", "mysql"],
        "dialect: 'mysql' is not supported",
    ),
    (
        "explain time type",
        lambda s, d: sqltargets.explain(s, time_type="float"),
        ["explain", "{spec}", "--time-type", "float"],
        "time_type: 'float' is not allowed",
    ),
    (
        "demo-data users 0",
        lambda s, d: __import__("sqltargets.demo").demo.write_demo("dd", 0),
        ["demo-data", "--users", "0", "--out", "dd"],
        "users: 0 is not allowed",
    ),
    (
        "demo-data ties",
        lambda s, d: __import__("sqltargets.demo").demo.write_demo("dd", 5, ties=2.0),
        ["demo-data", "--users", "5", "--out", "dd", "--ties", "2"],
        "ties: 2.0 is not allowed",
    ),
    (
        "demo-data too many rows",
        lambda s, d: __import__("sqltargets.demo").demo.write_demo("dd", 1000, tx_per_user=10**6),
        ["demo-data", "--users", "1000", "--out", "dd", "--tx-per-user", "1000000"],
        "transactions; at most",
    ),
    (
        "demo-data onto the input",
        lambda s, d: __import__("sqltargets.demo").demo.write_demo(d, 5),
        ["demo-data", "--users", "5", "--out", "{data}"],
        "sqltargets did not write",
    ),
]


@pytest.mark.parametrize(("case", "api", "argv", "needle"), VERBS, ids=[v[0] for v in VERBS])
def test_verb_arguments_api_and_cli(
    case: str,
    api: Any,
    argv: list[str],
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    spec, data = _spec(tmp_path), _data(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(sqltargets.SqlTargetsError, match=needle.replace("(", r"\(")):
        api(spec, data)
    assert tree(tmp_path) == before
    code = main([a.format(spec=spec, data=data) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert needle in lines[0] and "unexpected" not in lines[0], lines[0]
    assert tree(tmp_path) == before


def test_catalogue_size() -> None:
    """The catalogue's cases: issue 10 asked for about thirty more; see the README."""
    assert len(CASES) >= 20
    assert len(CASES) + len(MORE) + len(VERBS) >= 90
