"""Users/s of issue 12's targets, one at a time and together (examples/pretrain.yaml).

Each measurement is a fresh process (memory warmed first, numba's cache warm, kernels
loaded with the imports, as in bench_targets.py): ``sqltargets.generate`` over the seed
workload (2000 users x 4096 transactions, shuffled, 8 Parquet files in bench/data/seed/,
written by ``bench_targets.py``), every output column materialised.

    python bench/bench_new_targets.py            # writes bench/results-new-targets.md
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data" / "seed"
SPEC = ROOT / "examples" / "pretrain.yaml"


def child(spec: dict, data: str) -> None:
    import resource

    import sqltargets
    import sqltargets.api
    from sqltargets.execute.kernels import warm_up

    warm_up()
    t0 = time.perf_counter()
    table = sqltargets.generate(spec, data)
    seconds = time.perf_counter() - t0
    assert table.num_rows > 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "rows": table.num_rows}))


def run(spec: dict) -> dict:
    subprocess.run([sys.executable, "-c", "import numpy as np; np.ones(int(6 * 2**30 / 8)).sum()"], check=True)  # fmt: skip
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec), str(DATA)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]), sys.argv[3])
        return 0
    if not any(DATA.glob("*.parquet")):
        raise SystemExit(f"no data in {DATA}: run bench/bench_targets.py first")
    raw = yaml.safe_load(SPEC.read_text())
    users = 2000
    rows = []
    for t in raw["targets"]:
        r = run({**raw, "targets": [t]})
        what = f"{t['agg']} over {t['window']['kind']}"
        rows.append((t["name"], what, r))
        print(f"  {t['name']:<28} {r['seconds']:6.2f} s  {users / r['seconds']:7.0f} users/s")
    r = run(raw)
    rows.append((f"all {len(raw['targets'])} (pretrain.yaml)", "", r))
    print(f"  all {len(raw['targets'])}: {r['seconds']:.2f} s  {users / r['seconds']:.0f} users/s")
    import duckdb
    import numba

    lines = [
        "# issue 12's targets: users/s (`python bench/bench_new_targets.py`)",
        "",
        f"- machine: {platform.processor() or platform.machine()}, 2 cores; "
        f"duckdb {duckdb.__version__}, numba {numba.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- input: the seed workload, 2,000 users x 4,096 transactions, shuffled, 8 Parquet "
        "files; each row a fresh process, memory warmed, kernels loaded with the imports",
        "",
        "| target | what | seconds | users/s | peak RSS MB |",
        "|---|---|---:|---:|---:|",
    ]
    for name, what, r in rows:
        lines.append(
            f"| {name} | {what} | {r['seconds']:.2f} | {users / r['seconds']:,.0f} | "
            f"{r['rss_mb']:,.0f} |"
        )
    (BENCH / "results-new-targets.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
