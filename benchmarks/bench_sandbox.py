"""Sandbox benchmark: start latency, per-command latency and throughput, each against a baseline run
in the same process (the Docker CLI doing the least it can), so the ratios survive a noisy machine.

Both sides of a start figure do the same work: "start + close" (the sandbox started, its first command
answered, the container removed) against ``docker run --rm IMG true`` (which also removes its container),
and "start" (up to the first result, removal left out) against ``docker run IMG true`` without ``--rm``
(its container is removed after the clock stops). The rounds alternate the two sides.

    .venv/bin/python benchmarks/bench_sandbox.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median  # noqa: E402

from harness.base_image import ensure_base_image  # noqa: E402
from harness.docker_env import get_client, labels  # noqa: E402
from harness.sandbox import Sandbox, SandboxConfig  # noqa: E402

# the baseline's containers carry the project's label, like every container the project starts
_LABEL_ARGS = [a for k, v in labels(kind="bench").items() for a in ("--label", f"{k}={v}")]


def _docker_run(image: str, remove: bool) -> float:
    """Seconds for `docker run [--rm] --network none IMG true` in the foreground (create, start, attach,
    wait; with --rm also remove); without --rm the container is removed after the clock stopped."""
    name = f"srl-bench-{uuid.uuid4().hex[:12]}"
    argv = ["docker", "run", *(["--rm"] if remove else []), "--name", name, "--network", "none", *_LABEL_ARGS]
    t0 = time.perf_counter()
    subprocess.run([*argv, image, "true"], check=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    if not remove:
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
    return elapsed


def bench_start(client, cfg: SandboxConfig, image: str, rounds: int) -> dict[str, list[float]]:
    """Start figures, ours and the CLI's, alternating; "start" excludes removal on both sides."""
    out: dict[str, list[float]] = {"start": [], "start_close": [], "cli_run": [], "cli_run_rm": []}
    for _ in range(rounds):
        out["cli_run_rm"].append(_docker_run(image, remove=True))
        out["cli_run"].append(_docker_run(image, remove=False))
        t0 = time.perf_counter()
        sb = Sandbox(cfg, client=client).start()
        sb.exec("true")
        t1 = time.perf_counter()
        sb.close()
        t2 = time.perf_counter()
        out["start"].append(t1 - t0)
        out["start_close"].append(t2 - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--commands", type=int, default=200)
    args = ap.parse_args()
    client = get_client()
    image = ensure_base_image(client)
    cfg = SandboxConfig(image=image, memory="512m", extra_labels={"kind": "bench"})

    # (1) start to first command result, with and without removal, vs `docker run [--rm] IMG true`
    Sandbox(cfg, client=client).start().close()  # the process's first sandbox pays for its namespace
    st = bench_start(client, cfg, image, args.rounds)
    start_ratio = median(st["start"]) / median(st["cli_run"])
    close_ratio = median(st["start_close"]) / median(st["cli_run_rm"])

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

    ms = lambda xs: f"{median(xs) * 1e3:.0f} ms"  # noqa: E731
    n = args.rounds
    print(f"machine: {machine()}")
    print("| measure | srl-swe | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| start + close: first result, container removed (median of {n}) | {ms(st['start_close'])} | "
        f"`docker run --rm IMG true` {ms(st['cli_run_rm'])} | {close_ratio:.2f} | <= 1.2 |"
    )
    print(
        f"| start: first result, removal left out (median of {n}) | {ms(st['start'])} | "
        f"`docker run IMG true` {ms(st['cli_run'])} | {start_ratio:.2f} | <= 1.2 |"
    )
    print(
        f"| per-command latency, `echo hi` (median of {args.commands}) | {median(sess) * 1e3:.2f} ms | "
        f"`docker exec C sh -c` {median(execs) * 1e3:.1f} ms | {cmd_ratio:.3f} | <= 0.05 |"
    )
    print(f"| 8 sandboxes, 2 workers | {per_s:.2f} sandboxes/s | | | |")
    print(f"| harness CPU time per command | {cpu_per_cmd * 1e3:.2f} ms | | | |")


if __name__ == "__main__":
    main()
