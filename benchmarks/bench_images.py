"""Benchmark: cold vs warm (cached) instance-image builds of the bundled tasks, and image sizes.

    .venv/bin/python benchmarks/bench_images.py [--tasks SOURCE] [--ids ID ...] [--out runs/bench_images.json]

Cold = env + instance image rebuilt without Docker's layer cache (`rebuild=True`) from the existing
base image; the host-side caches (wheelhouse, repo clones) stay warm, as they are on any machine after
the first download. Warm = the same call again: a content-hash cache hit. The ratio warm/cold is the
number to watch (the issue's bar: a warm build under 1 s).

``--pythons 3.11 3.9`` adds cold and warm builds per Python: the base image (debootstrap of the Debian
release that ships it, into a throwaway tag so the shared ``srl-base:*`` images keep their ids; only with
``--base-cold``, about a minute or more each; the .deb cache stays warm) and the env image of the first task
with ``env.python`` set to that version (wheelhouse warm, Docker layer cache off).
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
    ap.add_argument("--pythons", nargs="*", default=[], help="also per-Python base and env builds")
    ap.add_argument("--base-cold", action="store_true", help="with --pythons: cold debootstrap base builds")
    ap.add_argument("--skip-instances", action="store_true", help="only the per-Python section")
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
    python_rows = (
        bench_pythons(client, specs[0], args.pythons, args.base_cold, console) if args.pythons else []
    )
    for spec in [] if args.skip_instances else specs:
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
    if specs and not args.skip_instances:
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
        json.dumps(
            {
                "machine": machine(),
                "base": base,
                "rows": rows,
                "cli_warm_s": cli_warm,
                "pythons": python_rows,
            },
            indent=2,
        )
    )
    console.print(f"results: {args.out}")


def bench_pythons(client, spec, pythons: list[str], base_cold: bool, console) -> list[dict]:
    """Cold/warm base and env image builds per Python version (see the module docstring)."""
    from harness.base_image import distro_for_python, ensure_base_image
    from harness.images import base_for, ensure_env_image

    rows = []
    for python in pythons:
        distro = distro_for_python(python)
        row: dict = {"python": python, "distro": distro}
        if base_cold:
            scratch = f"srl-bench-base:{distro}"
            with console.status(f"Python {python}: cold base image ({distro}, debootstrap)"):
                t0 = time.perf_counter()
                ensure_base_image(client=client, distro=distro, tag=scratch, rebuild=True)
                row["base_cold_s"] = round(time.perf_counter() - t0, 1)
            client.images.remove(scratch, force=True)
        task = spec.model_copy(update={"env": spec.env.model_copy(update={"python": python})})
        t0 = time.perf_counter()
        base, base_python = base_for(task, client)
        row["base_warm_s"] = round(time.perf_counter() - t0, 4)
        assert base_python == python, (base, base_python)
        log_dir = Path("runs/build_logs") / f"bench-py{python}"
        ensure_env_image(task, client=client, log_dir=log_dir, base=base, python=python)  # wheelhouse warm
        with console.status(f"Python {python}: cold env image"):
            t0 = time.perf_counter()
            tag = ensure_env_image(
                task, client=client, rebuild=True, log_dir=log_dir, base=base, python=python
            )
            row["env_cold_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        assert ensure_env_image(task, client=client, log_dir=log_dir, base=base, python=python) == tag
        row["env_warm_s"] = round(time.perf_counter() - t0, 4)
        row["base_mb"] = round(client.images.get(base).attrs["Size"] / 1e6)
        rows.append(row)
        console.print(f"Python {python}: {row}")
    if len(rows) > 1:
        ref = rows[0]
        for r in rows[1:]:
            ratios = {
                k: round(r[k] / ref[k], 2) for k in ("base_cold_s", "env_cold_s") if k in r and ref.get(k)
            }
            console.print(f"Python {r['python']} / Python {ref['python']}: {ratios}")
    return rows


if __name__ == "__main__":
    main()
