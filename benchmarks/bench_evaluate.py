"""Benchmark `srl evaluate` on the bundled tasks with warm images (one run, ~1-2 minutes).

1. Overhead ratio: wall time of the full `srl evaluate` CLI for one instance (marshmallow-3.14.0, gold)
   over `docker run --rm <instance image> bash -c "<same test command>"` via the docker CLI. Target <= 1.5.
   Also against the stricter baseline that runs the same tests on the same tree (`git apply` of the gold
   patch and the test patch first). Median of nine runs each, interleaved, after one warm-up run each.
   All grader-integrity checks are on (the default).
   1b. Cost of each check (issue 15): `run_instance` + `grade` in this process on the same instance with
   no runtime check, the audit hook only, the canary tests only, both; median of seven interleaved
   rounds; and the static scan of the gold patch (pure, timed alone).
   1c. The CPU time of the test command in one container with each runtime check (pytest), and 1d the
   same for a bundled task run by ``python -m unittest`` (the hook's result record, the canary module).
2. Parallel speed-up: 6 instances (gold) with `--max-workers 2` vs `--max-workers 1`, median of four runs
   each, in the order 1 2 2 1 1 2 2 1.
   2b. The machine's ceiling for the same work: the two halves as two independent `-w 1` processes at
   once (no srl scheduling involved); median of two. Target: `-w 2` reaches >= 0.95 of that ceiling
   (the old >= 1.6 speed-up target is retired on a 2-core machine whose ceiling is ~1.5).
3. Throughput: instances per minute for all bundled tasks, gold patches, `--max-workers 2`.

    .venv/bin/python benchmarks/bench_evaluate.py [--record docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRL = [str(Path(sys.executable).with_name("srl"))]
ONE = "marshmallow-3.14.0"  # when bundled (marshmallow-1867's fix as a release task); else the first pytest task


def _timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
        )
    return elapsed


def _evaluate_argv(out: Path, run_id: str, ids: list[str], workers: int) -> list[str]:
    args = [*SRL, "evaluate", "-p", "gold", "--run-id", run_id, "--output-dir", str(out), "-w", str(workers)]
    for iid in ids:
        args += ["-i", iid]
    return args


def _evaluate(out: Path, run_id: str, ids: list[str], workers: int) -> float:
    return _timed(_evaluate_argv(out, run_id, ids, workers), ROOT)


_CONTAINERS_CPU = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")  # cgroup v1: all containers


def _containers_cpu() -> float | None:
    """CPU seconds used so far by all Docker containers (cgroup v1), or None where unreadable."""
    try:
        return int(_CONTAINERS_CPU.read_text()) / 1e9
    except (OSError, ValueError):
        return None


def _machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    load = ""
    try:
        load = ", load average " + open("/proc/loadavg").read().split()[0]
    except OSError:
        pass
    return (
        f"{platform.machine()} {cpus} cores{mem}, Python {platform.python_version()}, Docker {docker}{load}"
    )


_CPU_SCRIPT = r"""
import os, resource, statistics, subprocess, sys, time
sp, cmd, junit, canary = sys.argv[1:5]
rows = {}
for _ in range(int(sys.argv[5])):
    for name, hook, can in (("none", 0, 0), ("audit hook", 1, 0), ("canaries", 0, 1), ("both", 1, 1)):
        if hook:
            open(sp + "/00srl_bench.pth", "w").write("import _srl_audit_bench\n")
        elif os.path.exists(sp + "/00srl_bench.pth"):
            os.remove(sp + "/00srl_bench.pth")
        opts = "-rA --junitxml=" + junit + " -o junit_family=xunit1" + (" " + canary if can else "")
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PYTEST_ADDOPTS=opts))
        r1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        rows.setdefault(name, []).append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, t1 - t0))
for name, v in rows.items():
    print(name, statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
"""


def check_costs_cpu(one, image: str, rounds: int = 7) -> dict[str, tuple[float, float]]:
    """CPU seconds (and wall seconds) of the test command in one container, on the graded tree (gold and
    test patch applied), with no runtime check, the audit hook, the canary tests, both: medians of
    ``rounds`` interleaved rounds. CPU time does not grow with the load of a shared machine."""
    from harness.audit_hook import audit_hook_source
    from harness.tamper import canary_tests

    canary = canary_tests(one.test_command(), one.tests_to_run(), one.log_parser)
    hook = audit_hook_source("/tmp/srl-audit-bench.log", "/tmp/srl-results-bench.xml")
    args = f"/tmp/srl-results-bench.xml {canary.file if canary else ''} {rounds}"
    return _cpu_costs(image, one, hook, canary, _CPU_SCRIPT, args)


_CPU_SCRIPT_UT = r"""
import os, resource, statistics, subprocess, sys, time
sp, cmd, canary_label = sys.argv[1:4]
rows = {}
for _ in range(int(sys.argv[4])):
    for name, hook, can in (("none", 0, 0), ("audit hook + record", 1, 0), ("canaries", 0, 1), ("both", 1, 1)):
        if hook:
            open(sp + "/00srl_bench.pth", "w").write("import _srl_audit_bench\n")
        elif os.path.exists(sp + "/00srl_bench.pth"):
            os.remove(sp + "/00srl_bench.pth")
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd + (" " + canary_label if can else ""), shell=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        r1, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        rows.setdefault(name, []).append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, t1 - t0))
for name, v in rows.items():
    print(name, statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
"""


def unittest_task(tasks: list, images: dict[str, str]):
    """The first bundled task whose first test file holds unittest test cases, as a unittest-run task
    (``python -m unittest -v <module>``, the unittest parser), or None."""
    for task in tasks:
        files = task.tests_to_run()
        if task.log_parser != "pytest" or not files:
            continue
        text = subprocess.run(
            ["docker", "run", "--rm", "--label", "srl-swe=1", "--network", "none", images[task.instance_id],
             "cat", f"/testbed/{files[0]}"], capture_output=True, text=True,
        ).stdout  # fmt: skip
        if "unittest.TestCase" in text:
            module = files[0].removesuffix(".py").replace("/", ".")
            return task.model_copy(
                update={"test_cmd": f"python -m unittest -v {module}", "log_parser": "unittest"}
            )
    return None


def check_costs_cpu_unittest(ut, image: str, rounds: int = 7) -> dict[str, tuple[float, float]]:
    """As `check_costs_cpu`, for a task run by ``python -m unittest``: the audit hook keeping the result
    record (its result methods wrapped), the canary TestCase module (its label appended), both."""
    import shlex

    from harness.audit_hook import audit_hook_source
    from harness.tamper import canary_tests

    canary = canary_tests(ut.test_command(), ut.tests_to_run(), ut.log_parser)
    assert canary is not None and canary.argument, ut.test_command()
    hook = audit_hook_source("/tmp/srl-audit-bench.log", None, "unittest", "/tmp/srl-record-bench.tsv")
    return _cpu_costs(image, ut, hook, canary, _CPU_SCRIPT_UT, f"{shlex.quote(canary.argument)} {rounds}")


def _cpu_costs(image: str, spec, hook: str, canary, cpu_script: str, args: str) -> dict[str, tuple[float, float]]:
    """Run `cpu_script` in one container of `image` on the graded tree (the spec's gold and test patch
    applied, the audit hook module in site-packages, the canary file written): ``python -S cpu.py SP
    TEST_COMMAND ARGS`` prints ``name cpu wall`` lines, returned as {name: (cpu, wall)}."""
    import base64
    import shlex

    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    script = (
        "set -e; cd /testbed; "
        f"echo {b64(spec.patch)} | base64 -d | git apply; echo {b64(spec.test_patch)} | base64 -d | git apply; "
        "SP=$(cd / && python -I -c \"import sysconfig; print(sysconfig.get_paths()['purelib'])\"); "
        f"echo {b64(hook)} | base64 -d > $SP/_srl_audit_bench.py; "
        + (f"echo {b64(canary.source())} | base64 -d > {canary.file}; " if canary else "")
        + f"echo {b64(cpu_script)} | base64 -d > /tmp/cpu.py; set +e; "
        f"python -S /tmp/cpu.py $SP {shlex.quote(spec.test_command())} {args}"
    )
    out = subprocess.run(
        ["docker", "run", "--rm", "--label", "srl-swe=1", "--network", "none", "-w", "/testbed", image, "bash", "-c", script],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    costs = {}
    for line in out.splitlines():
        *name, cpu, wall = line.split()
        costs[" ".join(name)] = (float(cpu), float(wall))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", type=Path, help="append the results (markdown) to this file")
    parser.add_argument("--checks-only", action="store_true", help="only the CPU cost of each check (1c)")
    args = parser.parse_args()

    from envs.sources import load_tasks
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image

    client = get_client()
    tasks = sorted(load_tasks().tasks, key=lambda t: t.instance_id)
    print(f"warming {len(tasks)} instance images ...", flush=True)
    images = {t.instance_id: ensure_instance_image(t, client=client) for t in tasks}
    one = next((t for t in tasks if t.instance_id == ONE), None) or next(
        t for t in tasks if t.log_parser == "pytest"
    )
    one_id = one.instance_id
    cpu = check_costs_cpu(one, images[one_id])
    base_cpu = cpu["none"][0]
    cpu_lines = "".join(
        f"| check cost (1c), CPU of the test command in one container, {name} (median of 7) | "
        f"{c:.3f} s CPU ({1000 * (c - base_cpu):+.0f} ms, {100 * (c - base_cpu) / base_cpu:+.1f} %), wall {w:.2f} s | |\n"
        for name, (c, w) in cpu.items()
    )
    print(
        "(1c) CPU of the test command: " + ", ".join(f"{n} {c:.3f} s" for n, (c, _) in cpu.items()),
        flush=True,
    )
    ut = unittest_task(tasks, images)
    if ut is not None:
        ut_cpu = check_costs_cpu_unittest(ut, images[ut.instance_id])
        ut_base = ut_cpu["none"][0]
        cpu_lines += "".join(
            f"| check cost (1d), `python -m unittest` ({ut.instance_id}), {name} (median of 7) | "
            f"{c:.3f} s CPU ({1000 * (c - ut_base):+.0f} ms, {100 * (c - ut_base) / ut_base:+.1f} %), wall {w:.2f} s | |\n"
            for name, (c, w) in ut_cpu.items()
        )
        print(
            f"(1d) CPU of python -m unittest on {ut.instance_id}: "
            + ", ".join(f"{n} {c:.3f} s" for n, (c, _) in ut_cpu.items()),
            flush=True,
        )
    if args.checks_only:
        block = (
            f"\n## Grader integrity checks: CPU cost per check ({time.strftime('%Y-%m-%d')})\n\n"
            f"Machine: {_machine()}; {one_id}, gold.\n\n| measure | result | target |\n| --- | --- | --- |\n"
            + cpu_lines
        )
        print(block)
        if args.record:
            with open(args.record, "a", encoding="utf-8") as fh:
                fh.write(block)
        return
    out = Path(tempfile.mkdtemp(prefix="srl-bench-eval-"))
    try:
        # 1. overhead ratio, against two baselines. (a) as the issue defines it: the bare test command on
        # the image's tree. (b) the same tests on the same tree: gold patch and test patch applied first.
        # The image ships pytest's rewritten test modules for the test-patched files, so (a) recompiles
        # them and the grader does not: (b) is the stricter comparison, and both are reported.
        same_tree = (
            f"git apply - <<'EOF_GOLD'\n{one.patch}EOF_GOLD\n"
            f"git apply - <<'EOF_TEST'\n{one.test_patch}EOF_TEST\n{one.test_command()}"
        )
        docker = [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-w",
            "/testbed",
            images[one_id],
            "bash",
            "-c",
        ]
        bare_cmd, same_cmd = [*docker, one.test_command()], [*docker, same_tree]
        # warm-ups, not counted: the page cache for all, byte-compiled modules for srl
        _timed(bare_cmd, ROOT)
        _timed(same_cmd, ROOT)
        _evaluate(out, "one-warm", [one_id], 1)
        # interleaved, so that load from other processes of a shared machine hits all alike; nine rounds
        # and their medians (single runs on this machine vary by +-30 %)
        bare_runs, base_runs, full_runs = [], [], []
        for i in range(9):
            bare_runs.append(_timed(bare_cmd, ROOT))
            base_runs.append(_timed(same_cmd, ROOT))
            full_runs.append(_evaluate(out, f"one-{i}", [one_id], 1))
        bare, baseline = statistics.median(bare_runs), statistics.median(base_runs)
        full = statistics.median(full_runs)
        ratio, ratio_same = full / bare, full / baseline
        spread = (
            f"srl {min(full_runs):.2f}-{max(full_runs):.2f} s, docker bare {min(bare_runs):.2f}-"
            f"{max(bare_runs):.2f} s, same tree {min(base_runs):.2f}-{max(base_runs):.2f} s"
        )
        print(
            f"(1) one instance: srl evaluate {full:.2f} s; docker run of the test command {bare:.2f} s: ratio "
            f"{ratio:.2f} (target <= 1.5); docker run with the patches applied first {baseline:.2f} s: ratio "
            f"{ratio_same:.2f}; ranges {spread}",
            flush=True,
        )

        # 1b. the cost of each check, in this process (no CLI start-up): interleaved rounds
        from harness.evaluate import run_instance
        from harness.grading import grade
        from harness.tamper import scan_patch

        variants = {"no runtime check": (), "audit hook": ("audit",), "canaries": ("canary",),
                    "audit hook + canaries": ("audit", "canary")}  # fmt: skip
        costs: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(7):
            for name, checks in variants.items():
                t0 = time.perf_counter()
                status = grade(one, run_instance(one, one.patch, client=client, checks=checks)).status
                costs[name].append(time.perf_counter() - t0)
                if status != "resolved":
                    raise SystemExit(f"gold graded {status} with checks {checks}")
        med = {name: statistics.median(v) for name, v in costs.items()}
        n_scan = 200
        t0 = time.perf_counter()
        for _ in range(n_scan):
            scan_patch(one.patch, [*one.test_files, *one.tests_to_run()])
        scan_ms = 1000 * (time.perf_counter() - t0) / n_scan
        base = med["no runtime check"]
        print(
            "(1b) run_instance + grade: "
            + ", ".join(f"{name} {v:.3f} s ({1000 * (v - base):+.0f} ms)" for name, v in med.items())
            + f"; static scan of the gold patch {scan_ms:.2f} ms",
            flush=True,
        )

        # 2. parallel speed-up on 6 instances
        six = [t.instance_id for t in tasks[:6]]
        # four runs each in the order w1 w2 w2 w1 w1 w2 w2 w1 (drifting load hits both alike) and their
        # medians: on this shared machine the same run varies by up to 30 %. Also the cores the containers
        # got: on a shared host they can be far fewer than the workers.
        cpu0, wall0 = _containers_cpu(), time.perf_counter()
        runs: dict[int, list[float]] = {1: [], 2: []}
        for k, workers in enumerate([1, 2, 2, 1, 1, 2, 2, 1]):
            runs[workers].append(_evaluate(out, f"six-w{workers}-{k}", six, workers))
        serial, parallel = statistics.median(runs[1]), statistics.median(runs[2])
        cpu1, wall1 = _containers_cpu(), time.perf_counter()
        speedup = serial / parallel
        cores = f"{(cpu1 - cpu0) / (wall1 - wall0):.2f}" if cpu0 is not None and cpu1 is not None else "?"
        print(
            f"(2) {len(six)} instances: -w 1 {serial:.1f} s, -w 2 {parallel:.1f} s, speed-up {speedup:.2f} "
            f"(target >= 1.6); the containers used {cores} cores on average",
            flush=True,
        )

        # 2b. the machine's own ceiling for this workload: the two halves as two independent `-w 1`
        # processes at once (no srl scheduling involved); -w 2 cannot be expected to beat it by much
        halves = [six[0::2], six[1::2]]
        pairs = []
        for k in range(2):
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen(
                    _evaluate_argv(out, f"half{h}-{k}", half, 1),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for h, half in enumerate(halves)
            ]
            if any(proc.wait() != 0 for proc in procs):
                raise SystemExit("a half run failed")
            pairs.append(time.perf_counter() - t0)
        ceiling = serial / statistics.median(pairs)
        print(
            f"(2b) the two halves as two independent -w 1 processes: {statistics.median(pairs):.1f} s, "
            f"speed-up {ceiling:.2f} (the machine's ceiling for this workload); -w 2 reaches "
            f"{speedup / ceiling:.2f} of it (target >= 0.95)",
            flush=True,
        )

        # 3. throughput, all bundled tasks
        every = _evaluate(out, "all-w2", [], 2)
        per_min = 60 * len(tasks) / every
        print(
            f"(3) all {len(tasks)} bundled tasks, gold, -w 2: {every:.1f} s, {per_min:.1f} instances/min",
            flush=True,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)

    block = (
        f"\n## Grader integrity checks: bench_evaluate ({time.strftime('%Y-%m-%d')})\n\nMachine: {_machine()}; warm images.\n\n"
        "| measure | result | target |\n| --- | --- | --- |\n"
        f"| overhead, all checks on: `srl evaluate` 1 instance ({one_id}) / `docker run` of the test command | {full:.2f} s / {bare:.2f} s "
        f"= **{ratio:.2f}** ({spread}) | <= 1.5 |\n"
        f"| stricter: / `docker run` applying gold + test patch, then the tests | {full:.2f} s / "
        f"{baseline:.2f} s = **{ratio_same:.2f}** | |\n"
        + "".join(
            f"| check cost: `run_instance` + `grade`, {name} (median of 7) | {v:.3f} s ({1000 * (v - base):+.0f} ms) | |\n"
            for name, v in med.items()
        )
        + f"| check cost: static scan of the gold patch | {scan_ms:.2f} ms | |\n"
        + cpu_lines
        + f"| speed-up: 6 instances, `-w 2` vs `-w 1` | {serial:.1f} s / {parallel:.1f} s = **{speedup:.2f}** "
        f"(containers got {cores} cores) | (retired: >= 1.6) |\n"
        f"| ceiling: the two halves as two independent `-w 1` processes at once | {serial:.1f} s / "
        f"{statistics.median(pairs):.1f} s = **{ceiling:.2f}** | |\n"
        f"| `-w 2` / ceiling | **{speedup / ceiling:.2f}** | >= 0.95 |\n"
        f"| throughput: {len(tasks)} bundled tasks, gold, `-w 2` | **{per_min:.1f} instances/min** ({every:.1f} s) | |\n"
    )
    print(block)
    if args.record:
        with open(args.record, "a", encoding="utf-8") as fh:
            fh.write(block)


if __name__ == "__main__":
    main()
