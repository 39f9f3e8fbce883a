"""Benchmark: cold vs warm (cached) instance-image builds of the bundled tasks, and image sizes.

    .venv/bin/python benchmarks/bench_images.py [--tasks SOURCE] [--ids ID ...] [--out runs/bench_images.json]

Cold = env + instance image rebuilt without Docker's layer cache (`rebuild=True`) from the existing
base image; the host-side caches (wheelhouse, repo clones) stay warm, as they are on any machine after
the first download. Warm = the same call again: a content-hash cache hit. The ratio warm/cold is the
number to watch (the issue's bar: a warm build under 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=None, help="task source (default: the bundled examples pack)")
    ap.add_argument("--ids", nargs="*", default=None, help="only these task ids")
    ap.add_argument("--warm-repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_images.json"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from envs.sources import load_tasks
    from harness.base_image import ensure_base_image
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image

    console = Console(width=120)
    client = get_client()
    base = ensure_base_image(client=client)
    base_size = client.images.get(base).attrs["Size"]
    specs = load_tasks(args.tasks).tasks
    if args.ids:
        specs = [s for s in specs if s.instance_id in set(args.ids)]
    rows = []
    for spec in specs:
        log_dir = Path("runs/build_logs") / spec.instance_id
        with console.status(f"{spec.instance_id}: cold build"):
            t0 = time.perf_counter()
            tag = ensure_instance_image(spec, client=client, rebuild=True, log_dir=log_dir)
            cold = time.perf_counter() - t0
        warm = []
        for _ in range(args.warm_repeats):
            t0 = time.perf_counter()
            assert ensure_instance_image(spec, client=client, log_dir=log_dir) == tag
            warm.append(time.perf_counter() - t0)
        size = client.images.get(tag).attrs["Size"]
        rows.append(
            {
                "instance_id": spec.instance_id,
                "tag": tag,
                "cold_s": round(cold, 2),
                "warm_s": round(statistics.median(warm), 4),
                "warm_over_cold": round(statistics.median(warm) / cold, 5),
                "size_mb": round(size / 1e6, 1),
                "over_base_mb": round((size - base_size) / 1e6, 1),
            }
        )
        console.print(f"{spec.instance_id}: cold {cold:.1f} s, warm {statistics.median(warm) * 1000:.0f} ms")
    table = Table(title=f"instance images ({len(rows)} tasks; base {base} {base_size / 1e6:.0f} MB)")
    for col in ("instance_id", "cold s", "warm ms", "warm/cold", "size MB", "over base MB"):
        table.add_column(col, justify="left" if col == "instance_id" else "right")
    for r in rows:
        table.add_row(
            r["instance_id"],
            f"{r['cold_s']:.1f}",
            f"{r['warm_s'] * 1000:.0f}",
            f"{r['warm_over_cold']:.4f}",
            f"{r['size_mb']:.0f}",
            f"{r['over_base_mb']:.0f}",
        )
    console.print(table)
    if rows:
        cold_total = sum(r["cold_s"] for r in rows)
        warm_total = sum(r["warm_s"] for r in rows)
        console.print(
            f"total cold {cold_total:.1f} s, total warm {warm_total:.2f} s, warm/cold {warm_total / cold_total:.4f}"
        )
    cli_warm = None
    if specs:
        import subprocess
        import sys

        srl = Path(sys.executable).with_name("srl")
        t0 = time.perf_counter()
        cmd = [str(srl), "task", "build", specs[0].instance_id] + (
            ["--tasks", args.tasks] if args.tasks else []
        )
        subprocess.run(cmd, check=True, capture_output=True)
        cli_warm = time.perf_counter() - t0
        console.print(f"`srl task build {specs[0].instance_id}` (warm, whole process): {cli_warm:.2f} s")
    console.print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": machine(), "base": base, "rows": rows, "cli_warm_s": cli_warm}, indent=2)
    )
    console.print(f"results: {args.out}")


if __name__ == "__main__":
    main()
