"""Paper-scale data from the paper's own format: 5,000 SWE-smith-format rows in Parquet -> ~134k instances.

The SRL paper trains on 5,000 SWE-smith expert trajectories cut into 134k step instances (26.8 steps
per trajectory). This benchmark builds such a file from the public SWE-smith rows in
../shared/fixtures/realformats/hf-swe-smith-trajectories/ (never committed, never copied into the
project): each generated row keeps a real row's system prompt, task message and final patch, and its
steps are real (assistant message, observation) pairs drawn from the fixture rows with their real
lengths, their number drawn so the mean is 26.8; the last step is the real ``submit`` turn. The rows
are written to Parquet in a temporary folder (streamed, in row groups), then timed as subprocesses
under ``/usr/bin/time -v`` (wall clock and peak RSS of the largest process):

1. ``srl traj import ROWS.parquet --out imported/`` (target <= 60 s, peak RSS <= 2 GB)
2. ``srl data build --trajectories ROWS.parquet`` to ~134k instances (target <= 120 s, <= 2 GB)
3. baseline in the same run: ``srl data build`` on the same trajectories as srl-swe's own JSONL
   (what step 1 wrote), i.e. the cost of the Parquet + SWE-smith parsing over the project's own format.

    .venv/bin/python benchmarks/bench_data.py [--rows 5000] [--max-obs-tokens 1024] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import machine  # noqa: E402

SHARED = Path(os.environ.get("SRL_SWE_SHARED_FIXTURES") or ROOT.parent / "shared" / "fixtures")
SMITH_ROWS = SHARED / "realformats" / "hf-swe-smith-trajectories" / "rows.jsonl"
PAPER_INSTANCES, PAPER_TRAJECTORIES = 134_000, 5_000
SRL = [str(ROOT / ".venv" / "bin" / "srl")] if (ROOT / ".venv" / "bin" / "srl").exists() else ["srl"]


def _pairs(row: dict) -> tuple[list[dict], list[tuple[dict, dict]], tuple[dict, dict] | None]:
    """(prefix messages, (assistant, observation) step pairs, the final submit pair) of a SWE-smith row."""
    msgs = row["messages"]
    first = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    prefix, pairs, submit = msgs[:first], [], None
    for i in range(first, len(msgs) - 1):
        a, o = msgs[i], msgs[i + 1]
        if (
            a["role"] == "assistant"
            and o["role"] == "user"
            and len(re.findall(r"<function=", a["content"])) == 1
        ):
            if "<function=submit>" in a["content"]:
                submit = (a, o)
            else:
                pairs.append((a, o))
    last = msgs[-1]
    if last["role"] == "assistant" and "<function=submit>" in last["content"]:
        submit = (last, {"role": "user", "content": ""})
    return prefix, pairs, submit


def generate_rows(dest: Path, n_rows: int, seed: int = 0) -> tuple[int, int]:
    """Write `n_rows` SWE-smith-format rows to Parquet at `dest`; returns (rows, expected steps)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    real = [json.loads(x) for x in SMITH_ROWS.read_text().splitlines() if x.strip()]
    parsed = [_pairs(r) for r in real]
    pool = [p for _, pairs, _ in parsed for p in pairs]
    submits = [s for _, _, s in parsed if s is not None]
    rng = random.Random(seed)
    mean = PAPER_INSTANCES / PAPER_TRAJECTORIES  # 26.8 steps, the last one the submit
    lo, hi = 8, round(2 * mean) - 8  # uniform on [8, 46]: mean 27
    schema = pa.schema(
        [
            ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("instance_id", pa.string()),
            ("resolved", pa.bool_()),
            ("model", pa.string()),
            ("traj_id", pa.string()),
            ("patch", pa.string()),
        ]
    )
    steps_total = 0
    batch: list[dict] = []
    # no dictionary encoding: the generated rows reuse a pool of real messages, which a dictionary would
    # store once; real rows do not repeat, and the file should weigh what 5,000 real rows weigh
    with pq.ParquetWriter(str(dest), schema, use_dictionary=False, compression="snappy") as writer:
        for n in range(n_rows):
            k = rng.randint(lo, hi)
            src = real[n % len(real)]
            prefix, _, _ = parsed[n % len(real)]
            msgs = list(prefix)
            for a, o in (rng.choice(pool) for _ in range(k - 1)):
                msgs += [a, o]
            msgs += list(rng.choice(submits))
            steps_total += k
            iid = f"{src['instance_id']}.gen{n}"
            batch.append(
                {
                    "messages": msgs,
                    "instance_id": iid,
                    "resolved": src["resolved"],
                    "model": src["model"],
                    "traj_id": f"{iid}.{n}",
                    "patch": src["patch"],
                }
            )
            if len(batch) == 250:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return n_rows, steps_total


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MiB of the largest process, CPU seconds user + system of the command
    and its children) of `cmd` under /usr/bin/time -v."""
    env = dict(os.environ, COLUMNS="200", TERM="dumb")
    t0 = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", res.stderr))
    return wall, int(m.group(1)) / 1024 if m else float("nan"), cpu


def tokenizer() -> tuple[list[str], str]:
    from srl_agent.models import default_model_dir

    tok = default_model_dir() / "tokenizer.json"
    if tok.is_file():
        return ["--tokenizer", str(tok)], "SmolLM2-135M-Instruct's tokenizer"
    return [], "the chars/4 estimate (no local tokenizer)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=PAPER_TRAJECTORIES)
    ap.add_argument("--max-obs-tokens", type=int, default=1024)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--md", type=Path, help="also write the markdown snippet here")
    args = ap.parse_args()
    if not SMITH_ROWS.is_file():
        sys.exit(f"{SMITH_ROWS} not found: the SWE-smith rows come from ../shared/fixtures/realformats/")
    tok_args, tok_desc = tokenizer()
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        parquet = work / "swe-smith-5k.parquet"
        t0 = time.perf_counter()
        n_rows, n_steps = generate_rows(parquet, args.rows)
        t_gen = time.perf_counter() - t0
        size_mb = parquet.stat().st_size / 2**20

        t_imp, rss_imp, cpu_imp = timed(
            [*SRL, "traj", "import", str(parquet), "--out", str(work / "imported")], work
        )
        jsonl_mb = sum(p.stat().st_size for p in (work / "imported").iterdir()) / 2**20
        build = ["--max-obs-tokens", str(args.max_obs_tokens), *tok_args, "--num-proc", str(args.num_proc)]
        t_pq, rss_pq, cpu_pq = timed(
            [
                *SRL,
                "data",
                "build",
                "--trajectories",
                str(parquet),
                "--out",
                str(work / "ds_parquet"),
                *build,
            ],
            work,
        )
        from datasets import load_from_disk

        dd = load_from_disk(str(work / "ds_parquet"))
        built = sum(len(v) for v in dd.values())
        assert built == n_steps, (built, n_steps)
        t_js, rss_js, cpu_js = timed(
            [
                *SRL,
                "data",
                "build",
                "--trajectories",
                str(work / "imported"),
                "--out",
                str(work / "ds_jsonl"),
                *build,
            ],
            work,
        )
        dd2 = load_from_disk(str(work / "ds_jsonl"))
        assert sum(len(v) for v in dd2.values()) == built
        ok = t_imp <= 60 and t_pq <= 120 and max(rss_imp, rss_pq) <= 2048
    finally:
        shutil.rmtree(work, ignore_errors=True)

    md = [
        "### SWE-smith Parquet at paper scale (`benchmarks/bench_data.py`, issue 13)",
        "",
        f"Machine: {machine()} (2 vCPU AMD EPYC, 24 GiB, shared with other jobs during the run)",
        "",
        f"Input: {n_rows:,} SWE-smith-format rows ({size_mb:,.0f} MiB Parquet, generated in {t_gen:.1f} s from "
        f"the 2 public SWE-smith rows: real messages with their real lengths, {n_steps / n_rows:.1f} steps a row) "
        f"-> {n_steps:,} step instances; context 2 steps, observations cut to {args.max_obs_tokens} tokens with "
        f"{tok_desc}; {args.num_proc} processes. Timed with `/usr/bin/time -v` (peak RSS = largest process).",
        "",
        "| run | wall time | CPU time (user+sys) | target | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| `srl traj import` Parquet -> srl JSONL ({jsonl_mb:,.0f} MiB) | {t_imp:.1f} s | {cpu_imp:.1f} s "
        f"| <= 60 s | {rss_imp:,.0f} MiB |",
        f"| `srl data build` from the Parquet file, {built:,} instances | {t_pq:.1f} s | {cpu_pq:.1f} s "
        f"| <= 120 s | {rss_pq:,.0f} MiB |",
        f"| baseline: `srl data build` from the same trajectories as srl JSONL | {t_js:.1f} s | {cpu_js:.1f} s "
        f"| | {rss_js:,.0f} MiB |",
        "",
        f"- Parquet + SWE-smith parsing vs the project's own JSONL: {t_pq / t_js:.2f}x the baseline's time",
        f"- throughput from Parquet: {built / t_pq:,.0f} instances/s wall; the build's CPU time spread over "
        f"{args.num_proc} uncontended cores would be {cpu_pq / args.num_proc:.0f} s; wall-clock targets met: "
        f"{'yes' if ok else 'NO'}",
        f"- load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    ]
    text = "\n".join(md)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")


if __name__ == "__main__":
    main()
