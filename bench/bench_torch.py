"""DataLoader throughput of the torch datasets beside ``sqltargets.generate``, in users/s.

The workload: demo users with exactly 4096 transactions each (written once, reproducibly,
by :func:`sqltargets.demo.write_demo` into ``.bench/``), the 20 targets of
``examples/demo.yaml`` or only its first one, batches of 32 users padded by
:func:`sqltargets.torch.collate`. Every configuration runs in a fresh Python process (as in
``bench_targets.py``: imports untimed, 6 GB of memory touched in a throwaway process first):

- ``generate``: ``sqltargets.generate(spec, data)``, every target column materialised in an
  Arrow table: the rate the datasets are measured against (``× generate``);
- ``TargetDataset`` (map-style) computes every target in ``__init__`` (``build``), then
  the DataLoader only slices and pads (``iterate``);
- ``StreamingTargetDataset(spec, data, users_per_chunk=..., shuffle=True)`` computes targets
  inside the workers while iterating, so ``iterate`` includes worker start-up, reading the
  input and computing the targets;
- each dataset also as batches built by the dataset itself, with no item in between:
  ``TargetDataset`` indexed by a ``BatchSampler``'s lists of positions (``ds[[i, ...]]``),
  ``StreamingTargetDataset(..., batch_size=B)``; both with ``DataLoader(batch_size=None)``.

Each dataset row is one full epoch through a fresh DataLoader, timed from the dataset's
construction to the last batch; users/s = users / (build + iterate). The same child then
iterates another DataLoader over the same dataset with ``persistent_workers=True`` twice
and times the second epoch: the "later epochs" column, a training run's steady state. Before anything is
timed, a throwaway process runs generate and both datasets on a tiny input with the same
specs, so numba's on-disk cache is warm (``bench/warmup.py``); one line reports the
first-call cost with a cold and a warm cache. The report goes to stdout and to
``bench/results-torch.md`` (``--out``).

    python bench/bench_torch.py --repeat 3         # 1024 users, 2 workers: a few minutes
    python bench/bench_torch.py --users 256 --workers 0,2 --out results-torch-quick
    python bench/bench_torch.py --store --kinds batches,stream --out results-torch-store
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEMO_SPEC = ROOT / "examples" / "demo.yaml"
NAMES = {"generate": "sqltargets.generate", "map": "TargetDataset",
         "stream": "StreamingTargetDataset",
         "batches": "StreamingTargetDataset(batch_size=B)",
         "map-batches": "TargetDataset, ds[[i, ...]]"}  # fmt: skip


def demo_data(users: int, tx_per_user: int, seed: int) -> Path:
    """The bench's Parquet input, written once per (users, tx_per_user, seed), in a
    process of its own: the children inherit this process's peak RSS (``ru_maxrss``
    survives fork and exec), which must not be that of writing the data."""
    out = ROOT / ".bench" / f"torch-{users}u-{tx_per_user}tx-s{seed}"
    done = out / ".complete"
    if not done.exists():
        out.parent.mkdir(parents=True, exist_ok=True)  # demo-data makes no parent folders
        code = (
            "import sys; from sqltargets.demo import write_demo; "
            "write_demo(sys.argv[1], int(sys.argv[2]), seed=int(sys.argv[3]), files=4, "
            "tx_per_user=int(sys.argv[4]))"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(out), str(users), str(seed), str(tx_per_user)],
            check=True,
        )
        done.touch()
    return out


def store_of(data: Path) -> Path:
    """A prepared store of ``data`` (``sqltargets prepare``), written once beside it."""
    store = data.with_name(data.name + "-store")
    if not store.exists():
        subprocess.run(
            [sys.executable, "-m", "sqltargets.cli", "prepare", str(data), "--spec",
             str(DEMO_SPEC), "--out", str(store)],
            check=True,
        )  # fmt: skip
    return store


def spec_files(folder: Path) -> dict[int, Path]:
    """examples/demo.yaml (20 targets) and the same spec with its first target only."""
    full = yaml.safe_load(DEMO_SPEC.read_text())
    one = {**full, "targets": full["targets"][:1]}
    path = folder / "demo-first-target.yaml"
    path.write_text(yaml.safe_dump(one, sort_keys=False))
    return {len(full["targets"]): DEMO_SPEC, 1: path}


# ------------------------------------------------------------------------- a child


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this fresh process: seconds, CPU seconds, users, events, RSS."""
    import torch

    import sqltargets

    # DataLoader workers run torch with one thread; so does the main process here, so that
    # padding never competes with the target computation for the cores.
    torch.set_num_threads(1)
    from sqltargets.torch import StreamingTargetDataset, TargetDataset

    spec, data, kind = job["spec"], job["data"], job["kind"]
    cpu0 = _cpu()
    t0 = time.perf_counter()
    if kind == "generate":
        table = sqltargets.generate(spec, data)
        t1 = t2 = time.perf_counter()
        users = len(table.column(0).unique())
        events = table.num_rows
        del table
    else:
        if kind in ("map", "map-batches"):
            ds = TargetDataset(spec, data)
        else:
            ds = StreamingTargetDataset(
                spec, data, users_per_chunk=job["users_per_chunk"], shuffle=True,
                batch_size=job["batch_size"] if kind == "batches" else None,
                **({} if job.get("rows_per_read") is None else
                   {"rows_per_read": None if job["rows_per_read"] == "none"
                    else int(job["rows_per_read"])}),
            )  # fmt: skip
        t1 = time.perf_counter()
        loader = make_loader(ds, kind, job, persistent=False)
        users = events = 0
        for batch in loader:
            users += len(batch["length"])
            events += int(batch["length"].sum())
        t2 = time.perf_counter()
        del loader  # workers are joined: their CPU time and peak memory are counted
    out = {
        "build": t1 - t0,
        "iterate": t2 - t1,
        "cpu": _cpu() - cpu0,
        "users": users,
        "events": events,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "load1": os.getloadavg()[0],
    }
    if kind != "generate" and job["workers"] > 0:
        # later epochs: a DataLoader with persistent workers, its first epoch untimed (the
        # workers start, read their shards and load nothing more after it), its second timed
        loader = make_loader(ds, kind, job, persistent=True)
        for _ in loader:
            pass
        t3 = time.perf_counter()
        seen = sum(len(batch["length"]) for batch in loader)
        out["later_epoch"] = time.perf_counter() - t3
        if seen != users:
            raise SystemExit(f"{kind}: {seen} users in the later epoch, {users} in the first")
        del loader
    return out


def make_loader(ds: Any, kind: str, job: dict[str, Any], persistent: bool) -> Any:
    """The DataLoader of a dataset row (``persistent``: workers kept across epochs)."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from sqltargets.torch import collate

    kw: dict[str, Any] = {"num_workers": job["workers"]}
    if persistent:
        kw["persistent_workers"] = True
    if kind == "batches":  # the dataset yields the batches collate would make
        return DataLoader(ds, batch_size=None, **kw)
    if kind == "map-batches":  # ds[[i, ...]]: a batch from a list of positions
        sampler = BatchSampler(RandomSampler(ds), job["batch_size"], drop_last=False)
        return DataLoader(ds, sampler=sampler, batch_size=None, **kw)
    return DataLoader(
        ds, batch_size=job["batch_size"], shuffle=kind == "map", collate_fn=collate, **kw
    )


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    import bench_targets

    bench_targets.warm_memory()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"FAILED: {job['kind']} exited with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------- the parent


def report(rows: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace,
           compile_text: str) -> str:  # fmt: skip
    import bench_targets

    v = info["versions"]
    lines = [
        f"# sqltargets torch datasets: {args.users:,} users x {args.tx_per_user} transactions"
        + (", from a prepared store" if args.store else ""),
        "",
        f"- machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['ram_gb']} GB RAM, {info['os']}, Python {info['python']}",
        f"- versions: sqltargets {v['sqltargets']} (commit {info['commit']}), torch "
        f"{v['torch']}, duckdb {v['duckdb']}, pyarrow {v['pyarrow']}, numpy {v['numpy']}, "
        f"numba {v['numba']}",
        f"- date: {info['date']}; 1-min load average at the start of each run "
        f"{min(r['load1'] for r in rows):.2f} to {max(r['load1'] for r in rows):.2f}",
        *bench_targets.busy_note([r["load1"] for r in rows], info["usable_cores"]),
        f"- specs: `examples/demo.yaml` (20 targets) and its first target alone; batch "
        f"{args.batch_size}; the streaming dataset with users_per_chunk {args.users_per_chunk}"
        + ("" if args.rows_per_read is None else f", rows_per_read {args.rows_per_read}")
        + " and "
        "`shuffle=True`, the map-style one with `shuffle=True` in the DataLoader (its batch "
        "rows: a `BatchSampler(RandomSampler(ds), B)` and `batch_size=None`, so that each "
        "`ds[[i, ...]]` builds a batch); the streaming batch rows: `batch_size=B` on the "
        "dataset and `batch_size=None` on the DataLoader",
        f"- each row: the fastest of {args.repeat} run(s), each a fresh process, one epoch "
        "from a fresh dataset (generate: one call, its "
        "seconds under build); users/s = users / (build + iterate); × generate = users/s over `sqltargets.generate`'s users/s at the "
        "same targets; users/cpu-s = users / CPU seconds of the process and its workers; peak "
        "RSS = `ru_maxrss` of the process / of its largest worker (all three of the first "
        "epoch); later epochs = users / seconds of the second epoch of another DataLoader over "
        "the same dataset with `persistent_workers=True` (its workers have read their shards "
        "and loaded their kernels in its first epoch; a training run's steady state)",
        f"- {compile_text}",
        "",
        "| what | targets | workers | build s | iterate s | users/s | × generate | users/cpu-s "
        "| peak RSS MB (main / worker) | later epochs: users/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gen = {r["targets"]: r["rate"] for r in rows if r["kind"] == "generate"}
    for r in rows:
        ratio = f"{r['rate'] / gen[r['targets']]:.2f}" if r["targets"] in gen else "—"
        gen_row = r["kind"] == "generate"
        workers = "—" if gen_row else str(r["workers"])
        iterate = "—" if gen_row else f"{r['iterate']:.2f}"
        worker_rss = f"{r['worker_rss_mb']:,.0f}" if r["workers"] else "—"
        later = f"{r['users'] / r['later_epoch']:,.0f}" if "later_epoch" in r else "—"
        lines.append(
            f"| {NAMES[r['kind']]} | {r['targets']} | {workers} | {r['build']:.2f} | "
            f"{iterate} | {r['rate']:,.1f} | {ratio} | {r['users'] / r['cpu']:,.1f} | "
            f"{r['rss_mb']:,.0f} / {worker_rss} | {later} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=1024)
    p.add_argument("--tx-per-user", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--users-per-chunk", type=int, default=64)
    p.add_argument("--workers", default="2", help="comma-separated num_workers values")
    p.add_argument("--targets", default="1,20", help="comma-separated: 1 and/or 20")
    p.add_argument("--kinds", default="map,map-batches,stream,batches",
                   help="map, map-batches (a BatchSampler's lists of positions), stream "
                   "(items, collate in the DataLoader) and/or batches "
                   "(StreamingTargetDataset(batch_size=...), DataLoader(batch_size=None))")  # fmt: skip
    p.add_argument("--rows-per-read", default=None,
                   help="the streaming datasets' rows_per_read (a number or none; default: "
                   "the dataset's default)")  # fmt: skip
    p.add_argument("--store", action="store_true",
                   help="read a prepared store of the data (sqltargets prepare), every row")  # fmt: skip
    p.add_argument("--out", default="results-torch", help="report file stem in bench/")
    p.add_argument("--repeat", type=int, default=1, help="runs of each row; the fastest is kept")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    sys.path.insert(0, str(BENCH))
    import bench_targets
    import warmup

    t = time.perf_counter()
    data = demo_data(args.users, args.tx_per_user, args.seed)
    if args.store:
        data = store_of(data)
    print(f"data: {data} ({args.users} users x {args.tx_per_user} tx, "
          f"{time.perf_counter() - t:.1f}s)")  # fmt: skip
    info = bench_targets.machine(extra=("torch",))
    with tempfile.TemporaryDirectory(prefix="bench-torch-") as tmp:
        specs = spec_files(Path(tmp))
        counts = [int(x) for x in args.targets.split(",")]
        used = [str(specs[n]) for n in counts]
        tiny = warmup.tiny_input(Path(tmp) / "tiny")
        compile_text = warmup.compile_line(warmup.compile_times(used, tiny))
        print(compile_text)
        res = warmup.warm_up(used, tiny, torch=True)
        print(f"(warm-up on a tiny input: {res['seconds']:.1f} s)")
        grid = [("generate", n, 0) for n in counts]
        grid += [
            (kind, n, int(w))
            for kind in args.kinds.split(",")
            for n in counts
            for w in args.workers.split(",")
        ]
        rows = []
        for kind, n, workers in grid:
            job = {"kind": kind, "spec": str(specs[n]), "data": str(data), "workers": workers,
                   "users_per_chunk": args.users_per_chunk, "batch_size": args.batch_size,
                   "rows_per_read": args.rows_per_read}  # fmt: skip
            runs = []
            for _ in range(args.repeat):
                r = run_child(job)
                if r["users"] != args.users or r["events"] != args.users * args.tx_per_user:
                    raise SystemExit(f"{kind}: {r['users']} users, {r['events']} events seen")
                r["rate"] = r["users"] / (r["build"] + r["iterate"])
                runs.append(r)
            r = max(runs, key=lambda x: x["rate"])
            r.update(kind=kind, targets=n, workers=workers, runs=len(runs))
            rows.append(r)
            print(
                f"  {NAMES[kind]:<22} {n:>2} targets, {workers} workers: build "
                f"{r['build']:6.2f} s, iterate {r['iterate']:6.2f} s, {r['rate']:7.1f} users/s",
                flush=True,
            )
    text = report(rows, info, args, compile_text)
    print()
    print(text)
    out = BENCH / f"{args.out}.md"
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
