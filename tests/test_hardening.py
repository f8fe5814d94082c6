"""Hostile and broken input: clear errors, nothing executed that we did not compose,
nothing lost, no partial output."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import sqltargets
from sqltargets.cli import main
from sqltargets.compile import where
from sqltargets.errors import DroppedRowsWarning
from sqltargets.verification.compare import diff
from tests.conftest import examples

COLUMNS = {"user": "u", "time": "t", "amount": "a", "mcc": "m"}
TARGET = {"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "month"}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["columns", "time", "timezone", "week_start", "output", "null_rows", "targets", "name", "agg",
        "window", "kind", "period", "length", "mcc", "where", "value", "k", "fill", "user", "amount", "unit", "origin"]  # fmt: skip
spec_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.sampled_from(
        [
            "sum",
            "top_k",
            "expanding",
            "rolling",
            "day",
            "7d",
            "grocery",
            "5411-5499",
            "amount > 0",
            "UTC",
            "x",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=examples(1500))
@given(data=st.one_of(json_values, spec_like))
def test_spec_fuzz_ends_in_result_or_spec_error(data: object) -> None:
    try:
        ts = sqltargets.load(data)  # type: ignore[arg-type]
    except sqltargets.SqlTargetsError as e:
        assert str(e)
    else:
        assert ts.targets


@settings(max_examples=examples(400))
@given(
    base=st.fixed_dictionaries(
        {
            "columns": st.fixed_dictionaries(
                {
                    "user": st.just("u"),
                    "time": st.just("t"),
                    "amount": st.just("a"),
                    "mcc": st.just("m"),
                }
            )
        }
    ),
    target=st.fixed_dictionaries(
        {
            "name": st.text(max_size=10),
            "agg": st.sampled_from(["sum", "summ", "top_k"]),
            "window": st.dictionaries(
                st.sampled_from(["kind", "period", "length", "lenght"]),
                st.text(max_size=8),
                max_size=3,
            ),
        },
        optional={
            "k": json_values,
            "mcc": json_values,
            "where": st.text(max_size=30),
            "fill": json_values,
        },
    ),
)
def test_target_fuzz(base: dict, target: dict) -> None:
    try:
        sqltargets.load({**base, "targets": [target]})
    except sqltargets.SqlTargetsError:
        pass


@settings(max_examples=examples(800))
@given(
    text=st.text(
        alphabet=st.sampled_from(list("amount><=()'\";-*/ ,0123456789ANDORNTISLEC_x%")), max_size=40
    )
)
@example(text="0<'0;'")  # a semicolon inside a string literal is no second statement
def test_where_fuzz_parses_or_refuses(text: str) -> None:
    try:
        tree = where.parse(text)
    except sqltargets.SpecError:
        return
    sql = where.to_sql(tree)
    # no second statement and no comment outside string literals ('0;' is a plain string)
    from sqlglot.tokens import Tokenizer, TokenType

    tokens = Tokenizer().tokenize(sql)
    assert all(t.token_type != TokenType.SEMICOLON for t in tokens), sql
    assert all(not t.comments for t in tokens), sql
    outside = "".join(t.text for t in tokens if t.token_type != TokenType.STRING)
    assert "--" not in outside and "/*" not in outside


@pytest.mark.parametrize(
    "bad",
    [
        {"mcc": ["grocery'); DROP TABLE x; --"]},
        {"mcc": ["5411; ATTACH 'x.db'"]},
        {"name": 's"; DROP TABLE t; --'},
        {"value": "a\"; COPY t TO '/tmp/x'"},
        {"where": "a > 0 OR 1 IN (SELECT 1 FROM read_csv('/etc/passwd'))"},
        {"where": "a > 0); INSTALL httpfs; --"},
    ],
)
def test_hostile_spec_values_never_run(bad: dict, tmp_path: Path) -> None:
    t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [1.0], "m": [5411]})
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [{**TARGET, **bad}]}
    with pytest.raises(sqltargets.SqlTargetsError):
        sqltargets.generate(spec, t)
    assert not Path("/tmp/x").exists() or "value" not in bad


def test_paths_with_quotes_are_literals(tmp_path: Path) -> None:
    folder = tmp_path / "it's a 'folder'"
    folder.mkdir()
    t = pa.table({"u": [1, 1], "t": pa.array([0, 1], pa.int64()), "a": [1.0, 2.0], "m": [5411, 1]})
    pq.write_table(t, folder / "x'; DROP TABLE y; --.parquet")
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    out = sqltargets.generate(spec, folder)
    assert out.column("s").to_pylist() == [1.0, 3.0]


def test_null_rows_drop_reports_and_keeps_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = pa.table({
        "u": [1, None, 1, 2, 2], "t": pa.array([1, 2, None, 4, 5], pa.int64()),
        "a": [1.0, 2.0, 3.0, 4.0, 8.0], "m": [1, 1, 1, 1, 1],
    })  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    with pytest.raises(
        sqltargets.DataError, match=r"columns.user: 1 of 5 rows have a null user.*null_rows: drop"
    ):
        sqltargets.generate(spec, t)
    spec["null_rows"] = "drop"
    with pytest.warns(DroppedRowsWarning, match="dropped 2 of 5 rows"):
        out = sqltargets.generate(spec, t)
    assert out.column("row_id").to_pylist() == [0, 3, 4]
    assert out.column("s").to_pylist() == [1.0, 4.0, 12.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert diff(out, sqltargets.reference(spec, t), ["s"], ["u", "row_id"]) == []
    pq.write_table(t, tmp_path / "d.parquet")
    (tmp_path / "s.yaml").write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: day}\nnull_rows: drop\n"
        "targets: [{name: s, agg: sum, window: {kind: expanding, period: month}}]\n"
    )
    code = main(["run", str(tmp_path / "s.yaml"), "--input", str(tmp_path / "d.parquet"),
                 "--output", str(tmp_path / "o.parquet"), "--quiet"])  # fmt: skip
    assert code == 0
    assert "Warning: dropped 2 of 5 rows with a null user or time" in capsys.readouterr().err
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 3


def test_one_user_one_event_and_huge_values() -> None:
    t = pa.table({"u": ["only"], "t": pa.array([-20000], pa.int64()), "a": [1e308], "m": ["5411"]})
    spec = {"columns": COLUMNS, "time": {"unit": "day", "origin": "1970-01-01"}, "targets": [
        {"name": "s", "agg": "sum", "window": {"kind": "period", "period": "year"}},
        {"name": "sd", "agg": "std", "window": {"kind": "rolling", "length": "7d"}},
        {"name": "n", "agg": "count", "mcc": [5411], "window": {"kind": "future", "length": "7d"}},
    ]}  # fmt: skip
    out = sqltargets.generate(spec, t).to_pylist()
    assert out == [{"u": "only", "t": -20000, "row_id": 0, "s": 1e308, "sd": None, "n": 0}]
    assert sqltargets.reference(spec, t).to_pylist() == out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_no_output(tmp_path: Path, sig: int) -> None:
    from sqltargets.demo import write_demo

    write_demo(tmp_path / "data", 400, seed=1, files=2, tx_per_user=2000)
    spec = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
    out = tmp_path / "out" / "t.parquet"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqltargets", "run", str(spec), "--input", str(tmp_path / "data"),
         "--output", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # wait until the query runs (the progress line), then interrupt it
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "computing 20 targets" in line, line
    time.sleep(0.5)
    proc.send_signal(sig)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode in (1, 130), rest
    assert "Error: interrupted" in rest
    assert os.listdir(out.parent) == []


def test_string_mccs_must_be_digits() -> None:
    # a cast alone would read '5411.7' as 5412, '1e3' as 1000 and '0x10' as 16
    t = pa.table({
        "u": [1] * 7, "t": pa.array(range(7), pa.int64()), "a": [1.0] * 7,
        "m": ["5411", " 5411 ", "5411.7", "1e3", "0x10", None, "abc"],
    })  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [
        {"name": "n", "agg": "count", "mcc": [5411, 5412, 1000, 16], "window": {"kind": "expanding", "period": "year"}}]}  # fmt: skip
    assert sqltargets.generate(spec, t).column("n").to_pylist() == [1, 2, 2, 2, 2, 2, 2]
    assert sqltargets.reference(spec, t).column("n").to_pylist() == [1, 2, 2, 2, 2, 2, 2]
    floats = t.set_column(3, "m", pa.array([5411.0] * 7))
    with pytest.raises(sqltargets.DataError, match=r"columns\.mcc: column 'm' has type DOUBLE"):
        sqltargets.generate(spec, floats)


@pytest.mark.parametrize("as_text", [False, True])
def test_mcc_codes_beyond_32_bits_are_no_code_in_every_engine(as_text: bool) -> None:
    """An MCC code is a 32-bit integer (both engines cast to INTEGER): beyond it a cell is
    no code, as a non-digit string is, in the reference too (which read it as a Python int,
    and overflowed on a string of more digits than int64 holds)."""
    codes = [5411, 2**31 - 1, 2**31, 99_999_999_999, 5411]
    if as_text:
        mcc = pa.array([str(c) for c in codes] + ["9" * 23])
    else:
        mcc = pa.array([*codes, -(2**31) - 1], pa.int64())
    n = len(mcc)
    t = pa.table({"u": [1] * n, "t": pa.array(range(n), pa.int64()), "a": [1.0] * n, "m": mcc})
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [
        {"name": "next_code", "agg": "first", "value": "m", "window": {"kind": "next"}},
        {"name": "last_code", "agg": "last", "value": "m", "window": {"kind": "expanding", "period": "year"}},
        {"name": "usual", "agg": "mode", "value": "m", "window": {"kind": "rolling", "length": "2d"}},
        {"name": "at_5411", "agg": "count", "mcc": [5411], "window": {"kind": "expanding", "period": "year"}},
    ]}  # fmt: skip
    want = {
        "next_code": [2**31 - 1, None, None, 5411, None, None],
        "last_code": [5411, 2**31 - 1, 2**31 - 1, 2**31 - 1, 5411, 5411],
        "usual": [5411, 5411, 2**31 - 1, None, 5411, 5411],  # ties to the smallest
        "at_5411": [1, 1, 1, 1, 2, 2],
    }
    for name, got in [
        ("reference", sqltargets.reference(spec, t)),
        ("native", sqltargets.generate(spec, t)),
        ("sql", sqltargets.generate(spec, t, engine="sql")),
    ]:
        assert {k: got.column(k).to_pylist() for k in want} == want, name


def test_rolling_variance_of_values_with_a_large_common_offset() -> None:
    """Welford's and Chan's updates over values of 1e12 plus a few units lost 2e-6 of a
    variance to cancellation; over values shifted by the user's first they are exact to
    rounding (the exact value from fractions)."""
    from fractions import Fraction

    small = [0.0, 1.0, 2.0, 3.5, -1.25, 1.0, 0.0, 2.0, 3.5, 1.0, -1.25, 2.0]
    t = pa.table({"u": [1] * 12, "t": pa.array(range(12), pa.int64()),
                  "a": [1e12 + v for v in small], "m": [5411] * 12})  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"},
            "time": {"unit": "day"},
            "targets": [{"name": "v", "agg": "var", "window": {"kind": "rolling", "length": "4d"}}]}  # fmt: skip
    got = sqltargets.generate(spec, t).column("v").to_pylist()
    for i, value in enumerate(got):
        window = [Fraction(v) for v in small[max(0, i - 3) : i + 1]]
        if len(window) < 2:
            assert value is None
            continue
        mean = sum(window) / len(window)
        exact = float(sum((v - mean) ** 2 for v in window) / (len(window) - 1))
        assert abs(value - exact) <= 1e-14 * exact, (i, value, exact)


@pytest.mark.parametrize(
    "where,want",
    [
        ("a % 2 = 0.5", [0, 1, 0]),  # inf % 2 is NaN (the reference's fmod raised)
        ("a % 0 IS NULL", [0, 0, 0]),  # a double's x % 0 is NaN, not an error
        ("a % 0 > 1e308", [1, 1, 1]),  # (NaN is the largest value)
        ("t > '2024-01-01T00:00:00+00:00'", [0, 1, 0]),  # a DATE against an aware string
        ("t < '2024-01-01 03:00:00'", [0, 0, 1]),  # the string is cast to DATE
        ("ts > '2024-01-01T00:00:00+05:00'", [1, 1, 0]),  # a naive timestamp: offset dropped
        ("upper(s) = 'STRAẞE'", [1, 0, 0]),  # character by character, as DuckDB
        ("upper(s) = 'STRASSE'", [0, 0, 0]),
        ("lower(s) = 'i'", [0, 1, 0]),
        ("s ILIKE 'i'", [0, 1, 0]),
        ("lower(g) = 'ασ'", [0, 0, 1]),  # no final-sigma rule
    ],
)
def test_where_edge_semantics_agree_in_every_engine(where: str, want: list[int]) -> None:
    """`where` as DuckDB evaluates it, in the reference too: modulo of doubles and of
    infinities, dates and timestamps against strings, Unicode case mapping."""
    t = pa.table({
        "u": [1, 2, 3], "t": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2023, 12, 31)]),
        "a": [float("inf"), 2.5, 1.0], "m": [5411] * 3, "s": ["straße", "İ", "x"],
        "ts": pa.array([dt.datetime(2024, 1, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 1), dt.datetime(2024, 1, 1)]),
        "g": ["x", "y", "ΑΣ"],
    })  # fmt: skip
    spec = {"columns": {"user": "u", "time": "t", "amount": "a", "mcc": "m"}, "targets": [
        {"name": "c", "agg": "count", "where": where, "window": {"kind": "period", "period": "year"}}]}  # fmt: skip
    for name, got in [
        ("native", sqltargets.generate(spec, t)),
        ("sql", sqltargets.generate(spec, t, engine="sql")),
        ("reference", sqltargets.reference(spec, t)),
    ]:
        assert got.column("c").to_pylist() == want, name


def test_every_row_dropped_gives_empty_outputs_of_one_schema() -> None:
    """`null_rows: drop` where every row has a null user: no rows, in the engines and the
    reference alike (the reference's take of an empty index list raised)."""
    t = pa.table({"u": pa.array([None, None], pa.int64()), "t": pa.array([1, 2], pa.int64()),
                  "a": [1.0, 2.0], "m": [5411, 5411]})  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "s"}, "null_rows": "drop", "targets": [
        {"name": "c", "agg": "count", "window": {"kind": "period", "period": "day"}}]}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedRowsWarning)
        outs = [sqltargets.generate(spec, t), sqltargets.generate(spec, t, engine="sql"),
                sqltargets.reference(spec, t)]  # fmt: skip
    assert [o.num_rows for o in outs] == [0, 0, 0]
    assert outs[0].schema == outs[1].schema == outs[2].schema


@pytest.mark.parametrize("as_file", [False, True])
def test_columns_differing_only_in_case(as_file: bool, tmp_path: Path) -> None:
    """DuckDB's names are case-insensitive: it renames the second of 'a' and 'A' to 'A_1'.
    A spec reading either is refused, naming both (it read the renamed 'A_1', which is in
    no input, and its message said 'A' was not in the input while listing it); columns the
    spec does not read may differ in case."""
    t = pa.table({"u": [1, 1], "t": pa.array([1, 2], pa.int64()), "a": [1.0, 2.0],
                  "m": [5411, 5411], "A": [100.0, 200.0], "c": ["x", "y"], "C": ["z", "w"]})  # fmt: skip
    src: object = t
    if as_file:
        pq.write_table(t, tmp_path / "t.parquet")
        src = str(tmp_path)
    spec = {"columns": COLUMNS, "time": {"unit": "s"}, "targets": [
        {"name": "s", "agg": "sum", "value": "A", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    runs = [sqltargets.generate, sqltargets.reference]
    if not as_file:  # (the torch datasets check before their column checks, too)
        torch_mod = pytest.importorskip("sqltargets.torch")
        runs += [torch_mod.TargetDataset, torch_mod.StreamingTargetDataset]
    for run in runs:
        with pytest.raises(
            sqltargets.DataError, match="'a' and 'A', whose names differ only in case"
        ):
            run(spec, src)
    renamed = {**COLUMNS, "amount": "m"}
    fine = {**spec, "columns": renamed, "targets": [{**spec["targets"][0], "value": "m"}]}
    assert sqltargets.generate(fine, src).column("s").to_pylist() == [5411.0, 10822.0]
    assert sqltargets.reference(fine, src).column("s").to_pylist() == [5411.0, 10822.0]


# ---------------------------------------------------------------------------------------------
# issue 10: the loader on odd YAML text, and every API argument out of range

yaml_scalars = st.sampled_from(
    [
        "1", "-0", "1.0e+30", ".nan", "-.inf", "~", "yes", "2024-01-01", "2024-13-45",
        "2024-01-01 10:00:00", "!!binary aGk=", "!!str 5", "!!int '7'", "!!float x",
        "'quoted'", '"tab\\t"', "*a", "&a 1", "!!python/name:os.system", "[]", "{}",
        "!!set {a, b}", "!!omap [a: 1]", "? [x]\n  : 1", "sum", "day", "7d", "grocery",
    ]
)  # fmt: skip


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    depth = draw(st.integers(0, 200))
    opener = draw(st.sampled_from(["[", "{a: ", "- "]))
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    inner = draw(yaml_scalars)
    nested = opener * depth + inner + closer * depth if opener != "- " else inner
    keys = draw(st.lists(st.sampled_from([*KEYS, "<<", "a", "[k]"]), max_size=5))
    lines = [f"{k}: {draw(yaml_scalars)}" for k in keys]
    lines.append(f"targets: {nested}")
    return "\n".join(draw(st.permutations(lines)))


@settings(max_examples=examples(600))
@given(text=yaml_texts())
def test_yaml_fuzz_ends_in_result_or_one_line_error(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text)
    start = time.monotonic()
    try:
        sqltargets.load(path)
    except sqltargets.SqlTargetsError as e:
        assert "\n" not in str(e) and len(str(e)) < 5000
    assert time.monotonic() - start < 5


odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6),
    st.sampled_from([0, -1, 1, 2, 10**9, "4GB", "-1GB", "0", "scan", "sql", b"x", [], {}]),
)  # fmt: skip


@settings(max_examples=examples(300))
@given(
    kwargs=st.dictionaries(
        st.sampled_from(
            [
                "threads",
                "memory_limit",
                "temp_directory",
                "engine",
                "batch_size",
                "users",
                "seed",
                "shards",
                "jobs",
                "store",
                "connection",
                "on_total",
            ]
        ),
        odd_values,
        max_size=3,
    ),
    fn=st.sampled_from(["generate", "generate_batches", "verify", "write", "reference", "explain"]),
)
def test_api_arguments_fuzz(
    kwargs: dict, fn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Any keyword value ends in a result or a one-line SqlTargetsError."""
    import inspect

    t = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 3.0],
                  "m": [5411, 1, 2]})  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    func = getattr(sqltargets, fn)
    accepted = inspect.signature(func).parameters
    kw = {k: v for k, v in kwargs.items() if k in accepted}
    if "threads" in kw and isinstance(kw["threads"], int) and kw["threads"] > 64:
        kw["threads"] = 10**6  # refused; never start thousands of threads
    if "temp_directory" in kw:
        kw["temp_directory"] = str(tmp_path_factory.getbasetemp() / "spill")
    args: tuple = (spec, t)
    if fn == "write":
        args = (spec, t, tmp_path_factory.mktemp("w") / "o.parquet")
        if isinstance(kw.get("shards"), int) and kw["shards"] > 4:
            kw["shards"] = 10**9
    if fn == "explain":
        args = (spec,)
    try:
        out = func(*args, **kw)
        if isinstance(out, pa.RecordBatchReader):
            out.read_all()
    except sqltargets.SqlTargetsError as e:
        assert "\n" not in str(e), str(e)


@settings(max_examples=examples(300))
@given(text=st.text(max_size=20).filter(lambda s: "\x00" not in s))
@example(text='it\'s "quoted" \\ -- /* */ ;')
def test_literals_and_identifiers_read_back_exactly(text: str) -> None:
    """render.literal and render.ident are spelled by hand (not through sqlglot, whose DuckDB
    generator costs a fresh process 0.15 s to load): DuckDB must read back exactly the text,
    and the spelling must be sqlglot's."""
    import duckdb
    from sqlglot import exp

    from sqltargets.compile.render import ident, literal

    assert literal(text) == exp.Literal.string(text).sql(dialect="duckdb")
    assert ident(text) == exp.to_identifier(text, quoted=True).sql(dialect="duckdb")
    con = duckdb.connect()
    value = con.sql(f"SELECT {literal(text)} AS {ident(text or 'x')}")
    assert value.fetchall() == [(text,)]
    assert value.columns == [text or "x"]


@pytest.mark.parametrize("number", [0, -3, 2**70, 0.1, -0.0, 1e-7, 1e308, 2.5e-308])
def test_number_literals_read_back_exactly(number: float) -> None:
    import duckdb

    from sqltargets.compile.render import literal

    got = duckdb.connect().sql(f"SELECT CAST({literal(number)} AS DOUBLE)").fetchall()[0][0]
    assert got == float(number) and str(got)[0] == str(float(number))[0]


def test_a_run_without_where_never_loads_sqlglots_duckdb_dialect(tmp_path: Path) -> None:
    """The executor runs the prologue as rendered; only `where`, `explain` and the portable
    SQL need sqlglot's DuckDB dialect (0.15 s to load in a fresh process)."""
    code = (
        "import sys, pyarrow as pa, sqltargets\n"
        f"spec = {{'columns': {COLUMNS!r}, 'time': {{'unit': 'day'}}, 'targets': [{TARGET!r}]}}\n"
        "t = pa.table({'u': [1, 1], 't': pa.array([0, 40], pa.int64()), 'a': [1.0, 2.0], "
        "'m': [5411, 5411]})\n"
        "out = sqltargets.generate(spec, t)\n"
        "assert out.column('s').to_pylist() == [1.0, 2.0], out\n"
        "print('sqlglot.dialects.duckdb' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_template_cache_survives_unwritable_and_corrupt_entries(tmp_path: Path) -> None:
    """Compiled templates are cached on disk; a cache that cannot be written, or an entry
    that is cut short, costs only the compile."""
    import jinja2

    from sqltargets.compile import render

    def env(folder: Path) -> jinja2.Environment:
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(render._template_dir())),
            undefined=jinja2.StrictUndefined,
            bytecode_cache=render._TemplateCache(str(folder)),
        )

    plain = render._env().get_template("source.sql.j2")
    folder = tmp_path / "cache"
    folder.mkdir()
    assert env(folder).get_template("source.sql.j2").render(source=_SOURCE) == plain.render(
        source=_SOURCE
    )
    entries = list(folder.iterdir())
    assert entries  # written
    assert env(folder).get_template("source.sql.j2").render(source=_SOURCE) == plain.render(
        source=_SOURCE
    )  # read back
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:40])  # cut short
    assert env(folder).get_template("source.sql.j2").render(source=_SOURCE) == plain.render(
        source=_SOURCE
    )
    gone = tmp_path / "missing" / "folder"  # cannot be written
    assert env(gone).get_template("source.sql.j2").render(source=_SOURCE) == plain.render(
        source=_SOURCE
    )
    assert not gone.exists()


_SOURCE = __import__("sqltargets.compile.render", fromlist=["Source"]).Source(
    kind="relation", relation='"t"'
)


@pytest.mark.parametrize(
    ("unit", "origin"), [("day", "1970-01-01"), ("s", "2000-02-29"), ("ms", "1900-01-01"), ("us", "1970-01-01")]
)  # fmt: skip
def test_integer_times_outside_years_1_to_9999_are_refused_by_every_engine(
    unit: str, origin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A time in a smaller unit than time.unit (ms read as s) overflowed DuckDB's
    multiplication (its message named no field) or became a date in year 55,000 that the
    engines computed and the reference refused. Every engine now refuses a step whose date
    falls outside years 1 to 9999, naming time.unit, the value and the allowed range; the
    first and last allowed steps are read alike by all."""
    from sqltargets.compile.spec import TimeSpec

    low, high = TimeSpec(unit, dt.date.fromisoformat(origin)).steps_allowed()
    spec = {"columns": COLUMNS, "time": {"unit": unit, "origin": origin}, "targets": [
        {"name": "s", "agg": "sum", "window": {"kind": "expanding", "period": "day"}},
        {"name": "r", "agg": "count", "window": {"kind": "rolling", "length": "1d"}},
    ]}  # fmt: skip
    edge = pa.table({"u": [1, 1, 2, 2], "t": pa.array([low, low, high, high], pa.int64()),
                     "a": [1.0, 2.0, 4.0, 8.0], "m": [1, 1, 1, 1]})  # fmt: skip
    want = sqltargets.reference(spec, edge)
    assert want.column("s").to_pylist() == [1.0, 3.0, 4.0, 12.0]
    for engine in ("native", "sql"):
        assert diff(sqltargets.generate(spec, edge, engine=engine), want, ["s", "r"], ["u", "row_id"]) == []  # fmt: skip
    # a null time is no step out of range: left out with null_rows: drop
    holed = edge.set_column(1, "t", pa.array([low, None, high, high], pa.int64()))
    with pytest.warns(DroppedRowsWarning):
        dropped = sqltargets.generate({**spec, "null_rows": "drop"}, holed)
    assert dropped.column("row_id").to_pylist() == [0, 2, 3]
    for bad in (low - 1, high + 1):
        t = edge.set_column(1, "t", pa.array([low, bad, high, high], pa.int64()))
        said = rf"time\.unit: column 't' holds {bad}, which as {unit} steps after {origin} is a date outside years 1 to 9999 \(allowed: {low} to {high}\)"  # fmt: skip
        calls = {
            "native": lambda t=t: sqltargets.generate(spec, t),
            "sql": lambda t=t: sqltargets.generate(spec, t, engine="sql"),
            "batches": lambda t=t: sqltargets.generate_batches(spec, t).read_all(),
            "reference": lambda t=t: sqltargets.reference(spec, t),
        }
        for call in calls.values():
            with pytest.raises(sqltargets.DataError, match=said):
                call()
        pq.write_table(t, tmp_path / "d.parquet")
        (tmp_path / "s.yaml").write_text(
            f"columns: {{user: u, time: t, amount: a, mcc: m}}\ntime: {{unit: {unit}, origin: {origin}}}\n"
            "targets: [{name: s, agg: sum, window: {kind: expanding, period: day}}]\n"
        )
        code = main(["run", str(tmp_path / "s.yaml"), "--input", str(tmp_path / "d.parquet"),
                     "--output", str(tmp_path / "o.parquet"), "--quiet"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert (
            code == 1 and "\n" not in err and err.startswith("Error: time.unit: column 't' holds")
        )
        assert not (tmp_path / "o.parquet").exists()


def test_a_spill_folder_inside_the_output_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB makes its temp_directory when it first spills: inside a store or a sharded
    output, the finished output replaced it; at the output's own path, the finished output
    could not be placed (the refusal came after all the work)."""
    t = pa.table({"u": [1, 1], "t": pa.array([0, 1], pa.int64()), "a": [1.0, 2.0], "m": [5411, 1]})
    pq.write_table(t, tmp_path / "d.parquet")
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    store, out = tmp_path / "store", tmp_path / "o.parquet"
    for spill in (store, store / "tmp", tmp_path / "x" / ".." / "store"):
        with pytest.raises(sqltargets.OutputError, match=r"temp_directory .* the store .* choose a folder outside it"):  # fmt: skip
            sqltargets.prepare(tmp_path / "d.parquet", store, user="u", time="t", temp_directory=str(spill))  # fmt: skip
    for output, shards, spill in ((out, 1, out), (tmp_path / "parts", 2, tmp_path / "parts" / "s")):
        with pytest.raises(sqltargets.OutputError, match=r"temp_directory .* the output"):
            sqltargets.write(spec, tmp_path / "d.parquet", output, shards=shards, temp_directory=str(spill))  # fmt: skip
    (tmp_path / "s.yaml").write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: day}\n"
        "targets: [{name: s, agg: sum, window: {kind: expanding, period: month}}]\n"
    )
    code = main(["run", str(tmp_path / "s.yaml"), "--input", str(tmp_path / "d.parquet"), "--output",
                 str(out), "--store", str(store), "--temp-directory", str(store / "t"), "--quiet"])  # fmt: skip
    assert code == 1 and "temp_directory" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["d.parquet", "s.yaml"]
    # a spill folder beside the output, or holding it, is fine
    sqltargets.prepare(tmp_path / "d.parquet", store, user="u", time="t", temp_directory=str(tmp_path / "spill"))  # fmt: skip
    assert sqltargets.write(spec, store, out, temp_directory=str(tmp_path)) == 2


def test_explain_refuses_a_time_type_the_input_contradicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With an input, the time type is the input's: a different --time-type was ignored."""
    t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [1.0], "m": [5411]})
    pq.write_table(t, tmp_path / "d.parquet")
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    with pytest.raises(sqltargets.ArgumentError, match=r"time_type: 'date' is not the input's: its time column 't' is integer"):  # fmt: skip
        sqltargets.explain(spec, source=tmp_path / "d.parquet", time_type="date")
    same = sqltargets.explain(spec, source=tmp_path / "d.parquet", time_type="integer")
    assert same == sqltargets.explain(spec, source=tmp_path / "d.parquet")
    (tmp_path / "s.yaml").write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: day}\n"
        "targets: [{name: s, agg: sum, window: {kind: expanding, period: month}}]\n"
    )
    code = main(["explain", str(tmp_path / "s.yaml"), "--input", str(tmp_path / "d.parquet"),
                 "--time-type", "timestamptz"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 1 and out.out == "" and out.err.startswith("Error: time_type: 'timestamptz'")


def test_string_mccs_without_one_code_warn() -> None:
    """'5411.0' (a float column written as text) is no MCC code: every MCC filter matched
    nothing without a word. Now a warning names the column and a value."""
    from sqltargets import MccCodesWarning

    floats = pa.table({"u": [1, 1, 2], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 4.0],
                       "m": ["5411.0", None, "5411.0"]})  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [
        {"name": "n", "agg": "count", "mcc": [5411], "window": {"kind": "expanding", "period": "year"}}]}  # fmt: skip
    for engine in ("native", "sql"):
        with pytest.warns(MccCodesWarning, match=r"none of the first 2 values of column 'm' is an MCC code .* '5411\.0'"):  # fmt: skip
            assert sqltargets.generate(spec, floats, engine=engine).column("n").to_pylist() == [
                0,
                0,
                0,
            ]
    # one code among them, or a spec that reads no MCC code: no warning
    quiet = [
        (floats.set_column(3, "m", pa.array(["5411.0", None, "5411"])), spec),
        (floats, {**spec, "targets": [TARGET]}),
        (floats.set_column(3, "m", pa.array([5411, None, 5411])), spec),
    ]
    for table, s in quiet:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sqltargets.generate(s, table)


@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Tokyo"])
def test_nanosecond_times_in_where_and_count_distinct_in_the_reference(tz: str | None) -> None:
    """The reference read a nanosecond column with pyarrow's to_pylist, which refuses one
    that is not a whole µs: `verify` ended in a raw ValueError where both engines counted.
    A naive one is now compared whole, a zoned one rounded down to the µs, as the engines."""
    t = pa.table({"u": [1, 1, 1, 1, 2], "t": pa.array([1_000, 1_001, 2_000, -1, 1_001], pa.timestamp("ns", tz=tz)),
                  "a": [1.0, 2.0, 4.0, 8.0, 16.0], "m": [5411] * 5})  # fmt: skip
    day = {"kind": "period", "period": "day"}
    spec = {"columns": COLUMNS, "targets": [
        {"name": "cd", "agg": "count_distinct", "value": "t", "window": day},
        {"name": "n", "agg": "count", "value": "t", "window": {"kind": "expanding", "period": "day"}},
        {"name": "w", "agg": "count", "where": "t > '1970-01-01 00:00:00.000001'", "window": day},
        {"name": "w2", "agg": "sum", "where": "t BETWEEN '1970-01-01 00:00:00.000001001' AND '1970-01-01T00:00:00.000002Z' OR t = '1969-12-31 23:59:59.999999999'", "window": day},
        {"name": "w3", "agg": "sum", "where": "t IN ('1970-01-01 00:00:00.0000010019', '1970-01-01')", "window": day},
    ]}  # fmt: skip
    want = sqltargets.reference(spec, t)
    # rows in event order: user 1 at -1 ns (the day before), 1,000, 1,001 and 2,000 ns
    if tz is None:  # whole nanoseconds: 1,000 and 1,001 ns are two times
        assert want.column("cd").to_pylist() == [1, 3, 3, 3, 1]
        assert want.column("w").to_pylist() == [0, 2, 2, 2, 1]
        assert want.column("w2").to_pylist() == [8.0, 6.0, 6.0, 6.0, 16.0]
        assert want.column("w3").to_pylist() == [0.0, 2.0, 2.0, 2.0, 16.0]
    else:  # rounded down to the µs: they are one
        assert want.column("cd").to_pylist() == [1, 2, 2, 2, 1]
    for engine in ("native", "sql"):
        got = sqltargets.generate(spec, t, engine=engine)
        assert diff(got, want, ["cd", "n", "w", "w2", "w3"], ["u", "row_id"]) == [], engine
    assert sqltargets.verify(spec, t).ok


def test_a_store_gives_the_time_columns_type_back(tmp_path: Path) -> None:
    """DuckDB's copy in a store holds ms, s and zoned ns timestamps as µs: results read
    through a store came back with a µs time column where the input's own gave its unit."""
    spec = {"columns": COLUMNS, "targets": [TARGET]}
    kinds = [("s", None), ("ms", None), ("ms", "UTC"), ("ns", "Europe/Berlin"), ("ns", None), ("us", "Asia/Tokyo")]  # fmt: skip
    for unit, tz in kinds:
        t = pa.table({"u": [1, 1, 2], "t": pa.array([1710054000, 1710057600, 5], pa.timestamp("s")).cast(pa.timestamp(unit, tz=tz)),
                      "a": [1.0, 2.0, 4.0], "m": [5411] * 3})  # fmt: skip
        name = f"{unit}-{tz}".replace("/", "-")
        pq.write_table(t, tmp_path / f"{name}.parquet")
        store = sqltargets.prepare(tmp_path / f"{name}.parquet", tmp_path / f"store-{name}", user="u", time="t")  # fmt: skip
        direct = sqltargets.generate(spec, tmp_path / f"{name}.parquet")
        assert direct.schema.field("t").type == pa.timestamp("ms" if unit == "s" else unit, tz)
        for got in (sqltargets.generate(spec, store), sqltargets.reference(spec, store)):
            assert got.schema == direct.schema and got.equals(direct), (unit, tz)


def test_durations_in_months_or_years_are_refused() -> None:
    """'1M' read as one minute (units were case-blind): a month in pandas and most date
    libraries. Months and years have no fixed length; the error says to use a calendar
    window, and that a minute is 'm'."""
    for text in ("1M", "3 Months", "2mo", "1y", "1 year"):
        spec = {"columns": COLUMNS, "targets": [
            {"name": "x", "agg": "sum", "window": {"kind": "rolling", "length": text}}]}  # fmt: skip
        with pytest.raises(sqltargets.SpecError, match=r"window\.length: .* reads as a month or a year, which has no fixed length: use a calendar window"):  # fmt: skip
            sqltargets.load(spec)
    for text, us in (("1m", 60_000_000), ("5 MIN", 300_000_000), ("3MS", 3_000)):
        spec = {"columns": COLUMNS, "targets": [
            {"name": "x", "agg": "sum", "window": {"kind": "rolling", "length": text}}]}  # fmt: skip
        assert sqltargets.load(spec).targets[0].window.length == us


def test_time_origin_is_a_date_only(tmp_path: Path) -> None:
    """An unquoted YAML 2024-01-01T12:00:00 is a datetime: it was cut to its date without a
    word (the quoted form was refused), and an integer 20240101 was read as a date."""
    for origin in (dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 1), 20240101, "20240101", "2024-01-01T12:00:00"):  # fmt: skip
        spec = {"columns": COLUMNS, "time": {"unit": "s", "origin": origin}, "targets": [TARGET]}
        with pytest.raises(sqltargets.SpecError, match=r"time\.origin: .* is not a date; expected YYYY-MM-DD"):  # fmt: skip
            sqltargets.load(spec)
    (tmp_path / "s.yaml").write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: s, origin: 2024-01-01T12:00:00}\n"
        "targets: [{name: s, agg: sum, window: {kind: expanding, period: month}}]\n"
    )
    with pytest.raises(sqltargets.SpecError, match=r"time\.origin: datetime"):
        sqltargets.load(tmp_path / "s.yaml")
    for origin in ("2024-01-01", dt.date(2024, 1, 1)):
        spec = {"columns": COLUMNS, "time": {"unit": "s", "origin": origin}, "targets": [TARGET]}
        assert sqltargets.load(spec).time.origin == dt.date(2024, 1, 1)


def test_empty_and_misplaced_paths_and_sizes_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--store ''` ran without a store and `--html ''` wrote no report, both exiting 0; an
    empty spec path said "'.' is a folder"; a bad --memory-limit quoted DuckDB's settings;
    an output below a file said its folder did not exist; a temp directory that is a file
    failed only when DuckDB first spilled."""
    monkeypatch.chdir(tmp_path)
    t = pa.table({"u": [1, 1], "t": pa.array([0, 1], pa.int64()), "a": [1.0, 2.0], "m": [5411, 1]})
    pq.write_table(t, "d.parquet")
    Path("s.yaml").write_text(
        "columns: {user: u, time: t, amount: a, mcc: m}\ntime: {unit: day}\n"
        "targets: [{name: s, agg: sum, window: {kind: expanding, period: month}}]\n"
    )
    Path("notes.txt").write_text("mine")
    run = ["run", "s.yaml", "--input", "d.parquet", "--output"]
    cases = [
        ([*run, "o.parquet", "--store", ""], "Error: --store: expected a folder path, got ''"),
        (["describe", "s.yaml", "--input", "d.parquet", "--html", ""], "Error: report: expected a path, got ''"),
        (["validate", ""], "Error: spec: expected a YAML or JSON file path, got ''"),
        ([*run, "o.parquet", "--memory-limit", "abc"], "Error: memory_limit: 'abc' is not allowed; expected a size such as '4GB'"),
        ([*run, "o.parquet", "--memory-limit", "5"], "Error: memory_limit: '5' is not allowed"),
        ([*run, "notes.txt/o.parquet"], f"Error: output 'notes.txt/o.parquet': {str(tmp_path / 'notes.txt')!r} is a file, not a folder"),
        ([*run, "o.parquet", "--temp-directory", "notes.txt"], "Error: temp_directory: 'notes.txt' is a file; expected a folder"),
    ]  # fmt: skip
    for argv, said in cases:
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 1 and err.startswith(said) and "\n" not in err, (argv, err)
    assert sorted(os.listdir(tmp_path)) == ["d.parquet", "notes.txt", "s.yaml"]


def test_api_arguments_are_argument_errors_alike() -> None:
    """describe refused users=0 as a SpecError and took users=True, seed='x' or 1.5; verify
    took seed=-1, which demo data refuses; an unknown dialect was a plain SqlTargetsError."""
    t = pa.table({"u": [1], "t": pa.array([0], pa.int64()), "a": [1.0], "m": [1]})
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    calls = [
        (lambda: sqltargets.describe(spec, t, users=0), "users: 0 is not allowed; expected 1 or more"),
        (lambda: sqltargets.describe(spec, t, users=True), "users: expected a whole number, got True"),
        (lambda: sqltargets.describe(spec, t, seed="x"), "seed: expected a whole number, got 'x'"),
        (lambda: sqltargets.describe(spec, t, seed=1.5), "seed: expected a whole number, got 1.5"),
        (lambda: sqltargets.describe(spec, t, seed=-1), "seed: -1 is not allowed; expected 0 to"),
        (lambda: sqltargets.describe(spec, t, max_correlation_rows=2), "max_correlation_rows: 2 is not allowed"),
        (lambda: sqltargets.verify(spec, t, seed=-1), "seed: -1 is not allowed; expected 0 to"),
        (lambda: sqltargets.explain(spec, dialect="postgres"), "dialect: 'postgres' is not supported"),
        (lambda: sqltargets.explain(spec, time_type="datetime"), "time_type: 'datetime' is not allowed"),
        (lambda: sqltargets.explain(spec, dialect="spark", engine="native"), "engine: the native program runs on DuckDB only"),
    ]  # fmt: skip
    for call, said in calls:
        with pytest.raises(sqltargets.ArgumentError, match=re.escape(said)):
            call()
    assert sqltargets.describe(spec, t, users=1, seed=0).users == 1


def test_parallel_shards_from_a_script_without_a_main_guard_say_so(tmp_path: Path) -> None:
    """Workers are spawned and import the script that started them: without
    `if __name__ == "__main__":` each re-ran it and the pool broke with raw tracebacks
    (BrokenProcessPool). The caller now gets one SqlTargetsError saying why; nothing is
    written."""
    t = pa.table({"u": [1, 2, 3], "t": pa.array([0, 1, 2], pa.int64()), "a": [1.0, 2.0, 4.0], "m": [1] * 3})  # fmt: skip
    pq.write_table(t, tmp_path / "d.parquet")
    script = tmp_path / "noguard.py"
    script.write_text(
        "import sqltargets\n"
        "spec = {'columns': {'user': 'u', 'time': 't', 'amount': 'a', 'mcc': 'm'}, 'time': {'unit': 'day'},\n"
        "        'targets': [{'name': 's', 'agg': 'sum', 'window': {'kind': 'expanding', 'period': 'month'}}]}\n"
        "try:\n"
        "    sqltargets.write(spec, 'd.parquet', 'out', shards=3, jobs=2)\n"
        "except sqltargets.SqlTargetsError as e:\n"
        "    print('CAUGHT', e)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "CAUGHT jobs: a worker process ended before its shard was done" in proc.stdout, proc.stderr[-2000:]  # fmt: skip
    assert 'under `if __name__ == "__main__":`' in proc.stdout
    assert sorted(os.listdir(tmp_path)) == ["d.parquet", "noguard.py"]


def test_a_where_failing_on_a_later_row_is_named_in_every_engine() -> None:
    """`m % i` with i = 0 on a late row passes the first-row check and fails mid-run: the
    engines said "DuckDB failed: ... Division by zero", naming no field, and the reference
    named no target. Every engine and the reference now name the target's where."""
    n = 3000
    t = pa.table({"u": [1] * n, "t": pa.array(range(n), pa.int64()), "a": [1.0] * n, "m": [5411] * n,
                  "i": pa.array([1] * (n - 1) + [0], pa.int64())})  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "s"}, "targets": [
        TARGET, {"name": "c", "agg": "count", "where": "m % i = 0", "window": {"kind": "expanding", "period": "day"}}]}  # fmt: skip
    calls = [
        lambda: sqltargets.generate(spec, t),
        lambda: sqltargets.generate(spec, t, engine="sql"),
        lambda: sqltargets.generate_batches(spec, t, batch_size=100).read_all(),
        lambda: sqltargets.reference(spec, t),
    ]
    for call in calls:
        with pytest.raises(sqltargets.DataError, match=r"targets\[1\]\.where: 'm % i = 0' fails on a row of the input: .*[Dd]ivision by zero"):  # fmt: skip
            call()
    fine = t.set_column(4, "i", pa.array([1] * n, pa.int64()))
    assert sqltargets.generate(spec, fine).column("c").to_pylist()[-1] == n


def test_one_column_name_twice_is_named_as_such() -> None:
    """Arrow allows a name twice: the message said the names "differ only in case"."""
    t = pa.Table.from_arrays(
        [pa.array([1]), pa.array([0], pa.int64()), pa.array([1.0]), pa.array([2.0]), pa.array([5411])],
        names=["u", "t", "a", "a", "m"],
    )  # fmt: skip
    spec = {"columns": COLUMNS, "time": {"unit": "day"}, "targets": [TARGET]}
    for call in (sqltargets.generate, sqltargets.reference):
        with pytest.raises(sqltargets.DataError, match="column 'a': the input has 2 columns of that name"):  # fmt: skip
            call(spec, t)


def _where_table(**cols: pa.Array) -> pa.Table:
    n = len(next(iter(cols.values())))
    base = {"u": pa.array(range(n), pa.int64()), "t": pa.array([dt.datetime(2024, 1, 1)] * n, pa.timestamp("us")),
            "a": pa.array([1.0] * n), "m": pa.array([5411] * n, pa.int32())}  # fmt: skip
    return pa.table({**base, **cols})


_DEC = _where_table(d=pa.array([Decimal("0.10"), Decimal("1.05"), Decimal("0.30"), Decimal("0.00")], pa.decimal128(10, 2)))  # fmt: skip
_BIG = _where_table(d=pa.array([Decimal("12345678901234567890.5")], pa.decimal128(38, 1)))
_F32 = _where_table(f=pa.array([1.05, 1.1, 0.3, 16777216.0], pa.float32()))
_X = _where_table(
    x=pa.array([1.0, 5.0, 10.0, 2.75]), i=pa.array([9007199254740993, 1, 2, 3], pa.int64())
)
_TEXT = _where_table(
    i=pa.array([1, 2, 3], pa.int32()), s=pa.array(["1.5", "0x10", "1.05"]),
    b=pa.array([True, False, True]), dd=pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2023, 12, 31)]),
    d=pa.array([Decimal("1.05"), Decimal("1.06"), Decimal("2.00")], pa.decimal128(5, 2)),
)  # fmt: skip
_FOLD = _where_table(
    ts=pa.array([dt.datetime(2024, 11, 3, 1, 30)], pa.timestamp("us")),
    tz=pa.array([dt.datetime(2024, 11, 3, 5, 30, tzinfo=dt.timezone.utc)], pa.timestamp("us", tz="UTC")),
)  # fmt: skip


@pytest.mark.parametrize(
    ("table", "where", "zone"),
    [
        (_DEC, "0.1 + 0.2 = 0.3", "UTC"), (_DEC, "d + 0.2 = 0.3", "UTC"), (_DEC, "d * 3 = 3.15", "UTC"),
        (_DEC, "d % 0.1 = 0", "UTC"), (_DEC, "floor(d * 10) = 3", "UTC"), (_DEC, "1 / -d < 0", "UTC"),
        (_BIG, "d + 1 > 12345678901234567890", "UTC"), (_BIG, "floor(d) = 12345678901234567890", "UTC"),
        (_F32, "f = 1.05", "UTC"), (_F32, "f = 1.1", "UTC"), (_F32, "f / 3 = 0.1", "UTC"),
        (_F32, "f + 1 > 16777216", "UTC"), (_X, "x / -0.0 < 0", "UTC"), (_X, "floor(i) = i", "UTC"),
        (_X, "ceil(i) = 9007199254740993", "UTC"), (_X, "round(0.15e0, 1) = 0.1", "UTC"),
        (_X, "round(0.15, 1) = 0.2", "UTC"), (_DEC, "round(d * 5, 1) = 0.5", "UTC"),
        (_TEXT, "i = '1.5'", "UTC"), (_TEXT, "i > '1.5'", "UTC"), (_TEXT, "i = '-0.5'", "UTC"),
        (_TEXT, "s = 2 OR s = 16", "UTC"), (_TEXT, "d = '1.051'", "UTC"),
        (_TEXT, "b = 'yes' OR b = 'n'", "UTC"), (_TEXT, "dd = '2024-1-1'", "UTC"),
        (_TEXT, "dd + 1 > '2024-1-2'", "UTC"), (_TEXT, "dd - 1 < '2024-01-01'", "UTC"),
        (_FOLD, "tz = ts", "America/New_York"), (_FOLD, "tz >= '2024-11-03 01:30'", "America/New_York"),
    ],
)  # fmt: skip
def test_where_arithmetic_and_comparisons_follow_duckdbs_types(table: pa.Table, where: str, zone: str) -> None:  # fmt: skip
    """The reference's where evaluator did decimal arithmetic in binary floating point
    (0.1 + 0.2 <> 0.3), a FLOAT column's in double, floor of a large BIGINT through a
    double compared exactly, and read a repeated local hour as its earlier instant. DuckDB
    (the engines, and plain DuckDB here) is the meaning of a where; all agree now. So do
    strings compared with numbers, booleans and dates (cast to the other side's type, as
    DuckDB casts them: '1.5' is 2 beside an integer), and date arithmetic."""
    spec = {"columns": COLUMNS, "timezone": zone, "targets": [
        {"name": "c", "agg": "count", "where": where, "window": {"kind": "expanding", "period": "year"}}]}  # fmt: skip
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{zone}'")
    con.register("src", table)
    plain = [r[0] for r in con.execute(f"SELECT COALESCE(({where}), FALSE)::INT FROM src ORDER BY u").fetchall()]  # fmt: skip
    for got in (
        sqltargets.generate(spec, table),
        sqltargets.generate(spec, table, engine="sql"),
        sqltargets.reference(spec, table),
    ):
        assert got.sort_by("u").column("c").to_pylist() == plain


def test_where_constructs_duckdb_lacks_are_refused() -> None:
    """sqlglot accepted BETWEEN SYMMETRIC and floor(x, n), which DuckDB has not, and the
    engines ran its rewrites of them while the reference read them otherwise."""
    for where_text, said in (
        ("a BETWEEN SYMMETRIC 10 AND 1", "BETWEEN SYMMETRIC is not DuckDB SQL"),
        ("a NOT BETWEEN SYMMETRIC 1 AND 10", "BETWEEN SYMMETRIC is not DuckDB SQL"),
        ("floor(a, 1) = 2.7", r"floor\(\) takes one argument"),
        ("ceil(a, -1) = 10", r"ceil\(\) takes one argument"),
    ):
        spec = {"columns": COLUMNS, "targets": [{**TARGET, "where": where_text}]}
        with pytest.raises(sqltargets.SpecError, match=said):
            sqltargets.load(spec)
