"""DataLoader throughput of the torch datasets, in users per second.

The seed workload: demo users with exactly 4096 transactions each (written once, reproducibly,
by :func:`sqltargets.demo.write_demo` into ``.bench/``), the 20 targets of
``examples/demo.yaml`` or only its first one, batches of 32 users padded by
:func:`sqltargets.torch.collate`. Each configuration is one full epoch through a fresh
DataLoader, timed from the dataset's construction to the last batch:

- ``TargetDataset`` (map-style) computes every target in ``__init__`` (``build``), then
  the DataLoader only slices and pads (``iterate``);
- ``StreamingTargetDataset`` computes targets inside the workers while iterating, so
  ``iterate`` includes worker start-up, reading the input and the target SQL.

    python bench/bench_torch.py                    # 384 users, under a minute on 2 idle cores
    python bench/bench_torch.py --users 512 --workers 0,2,4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import sys
import time
from pathlib import Path

import duckdb
import torch
from torch.utils.data import DataLoader

import sqltargets
from sqltargets.demo import write_demo
from sqltargets.torch import StreamingTargetDataset, TargetDataset, collate

ROOT = Path(__file__).resolve().parent.parent


def demo_data(users: int, tx_per_user: int, seed: int) -> Path:
    """The bench's Parquet input, written once per (users, tx_per_user, seed)."""
    out = ROOT / ".bench" / f"torch-{users}u-{tx_per_user}tx-s{seed}"
    done = out / ".complete"
    if not done.exists():
        write_demo(out, users, seed=seed, files=4, tx_per_user=tx_per_user)
        done.touch()
    return out


def run(
    kind: str, spec: sqltargets.TargetSet, data: Path, workers: int, args: argparse.Namespace
) -> dict[str, float]:
    """One epoch; returns seconds spent building and iterating, CPU seconds (this process
    and its finished workers), and the users and events seen."""
    cpu0 = _cpu()
    t0 = time.perf_counter()
    if kind == "map":
        ds = TargetDataset(spec, data, users_per_chunk=args.users_per_chunk)
    else:
        ds = StreamingTargetDataset(spec, data, users_per_chunk=args.users_per_chunk, shuffle=True)
    t1 = time.perf_counter()
    loader = DataLoader(
        ds,
        batch_size=args.batch_size,
        shuffle=kind == "map",
        num_workers=workers,
        collate_fn=collate,
    )
    users = events = 0
    for batch in loader:
        users += len(batch["length"])
        events += int(batch["length"].sum())
    t2 = time.perf_counter()
    del loader  # workers are joined: their CPU time is counted
    cpu = _cpu() - cpu0
    return {"build": t1 - t0, "iterate": t2 - t1, "cpu": cpu, "users": users, "events": events}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=384)
    p.add_argument("--tx-per-user", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--users-per-chunk", type=int, default=64)
    p.add_argument("--workers", default="0,2", help="comma-separated num_workers values")
    p.add_argument("--targets", default="1,20", help="comma-separated: 1 and/or 20")
    p.add_argument("--kinds", default="map,stream", help="map and/or stream")
    args = p.parse_args(argv)

    # DataLoader workers run torch with one thread; so does the main process here, so that
    # padding never competes with DuckDB's threads for the cores.
    torch.set_num_threads(1)
    t = time.perf_counter()
    data = demo_data(args.users, args.tx_per_user, args.seed)
    print(
        f"data: {data} ({args.users} users x {args.tx_per_user} tx, {time.perf_counter() - t:.1f}s)"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"duckdb {duckdb.__version__}; batch {args.batch_size}, "
        f"users_per_chunk {args.users_per_chunk}, start method "
        f"{torch.multiprocessing.get_start_method()}"
    )
    full = sqltargets.load(ROOT / "examples" / "demo.yaml")
    specs = {n: dataclasses.replace(full, targets=full.targets[:n]) for n in (1, 20)}
    names = {"map": "TargetDataset", "stream": "StreamingTargetDataset"}

    rows = []
    header = (
        f"| {'dataset':<22} | targets | workers | build s | iterate s | users/s | users/cpu-s |"
    )
    print()
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for kind in args.kinds.split(","):
        for n in (int(x) for x in args.targets.split(",")):
            for workers in (int(x) for x in args.workers.split(",")):
                r = run(kind, specs[n], data, workers, args)
                assert r["users"] == args.users, r
                assert r["events"] == args.users * args.tx_per_user, r
                rate = r["users"] / (r["build"] + r["iterate"])
                rows.append((kind, n, workers, rate))
                print(
                    f"| {names[kind]:<22} | {n:>7} | {workers:>7} | {r['build']:>7.2f} "
                    f"| {r['iterate']:>9.2f} | {rate:>7.1f} | {r['users'] / r['cpu']:>11.1f} |",
                    flush=True,
                )
    print(
        "\nusers/s = users / (build + iterate): one epoch from scratch, worker start-up included;"
        "\nusers/cpu-s = users / CPU seconds of this process and its workers (less sensitive to"
        "\nother load on the machine). Load average now: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
