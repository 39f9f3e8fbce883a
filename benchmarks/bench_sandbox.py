"""Sandbox benchmark: start latency, per-command latency and throughput, each against a baseline run
in the same process (the Docker CLI doing the least it can), so the ratios survive a noisy machine.

    .venv/bin/python benchmarks/bench_sandbox.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median  # noqa: E402

from harness.base_image import ensure_base_image  # noqa: E402
from harness.docker_env import get_client  # noqa: E402
from harness.sandbox import Sandbox, SandboxConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--commands", type=int, default=200)
    args = ap.parse_args()
    client = get_client()
    image = ensure_base_image(client)
    cfg = SandboxConfig(image=image, memory="512m")

    # (1) start to first command result vs `docker run --rm IMG true`
    ours, cli = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True)
        cli.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sb = Sandbox(cfg, client=client).start()
        sb.exec("true")
        ours.append(time.perf_counter() - t0)
        sb.close()
    start_ratio = median(ours) / median(cli)

    # (2) per-command latency in the session vs `docker exec C sh -c CMD`
    with Sandbox(cfg, client=client) as sb:
        sess = []
        cpu0 = time.process_time()
        for _ in range(args.commands):
            t0 = time.perf_counter()
            sb.exec("echo hi")
            sess.append(time.perf_counter() - t0)
        cpu_per_cmd = (time.process_time() - cpu0) / args.commands
        execs = []
        for _ in range(max(20, args.commands // 10)):
            t0 = time.perf_counter()
            subprocess.run(["docker", "exec", sb.id, "sh", "-c", "echo hi"], check=True, capture_output=True)
            execs.append(time.perf_counter() - t0)
    cmd_ratio = median(sess) / median(execs)

    # (3) 8 sandboxes started, used, removed with 2 workers
    def one(_i: int) -> None:
        with Sandbox(cfg, client=client) as s:
            s.exec("python3 -c 'print(1)'")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(8)))
    per_s = 8 / (time.perf_counter() - t0)

    print(f"machine: {machine()}")
    print("| measure | srl-swe | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| start to first result (median of {args.rounds}) | {median(ours)*1e3:.0f} ms | "
          f"`docker run --rm IMG true` {median(cli)*1e3:.0f} ms | {start_ratio:.2f} | <= 1.2 |")
    print(f"| per-command latency, `echo hi` (median of {args.commands}) | {median(sess)*1e3:.2f} ms | "
          f"`docker exec C sh -c` {median(execs)*1e3:.1f} ms | {cmd_ratio:.3f} | <= 0.05 |")
    print(f"| 8 sandboxes, 2 workers | {per_s:.2f} sandboxes/s | | | |")
    print(f"| harness CPU time per command | {cpu_per_cmd*1e3:.2f} ms | | | |")


if __name__ == "__main__":
    main()
