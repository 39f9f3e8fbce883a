"""Step-wise data benchmark at paper scale: 5,000 trajectories -> ~134k instances, import + build.

The fixture trajectories (all formats) are replicated under new instance ids as raw files until there
are 5,000 trajectories averaging 26.8 steps (the SRL paper's 134k instances / 5k trajectories). Then
`build_dataset` imports and expands them on 2 processes with observation truncation by a real fast
tokenizer (SmolLM2's if it is in the local HF cache, else a byte-level BPE trained here on the
fixtures). Baseline in the same run, on a subset: a straightforward single-process build (one
tokenizer call per observation per instance, rows collected in a list, `Dataset.from_list`).

    .venv/bin/python benchmarks/bench_data.py [--trajectories 5000] [--max-obs-tokens 1024] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _common import machine  # noqa: E402

from trajectories.actions import format_answer, render_action  # noqa: E402
from trajectories.importers import find_files, import_file, import_paths  # noqa: E402
from trajectories.prompting import build_messages  # noqa: E402
from trajectories.stepwise import build_dataset, features  # noqa: E402
from trajectories.tools import toolset_of  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "trajectories"
PAPER_INSTANCES, PAPER_TRAJECTORIES = 134_000, 5_000


def tokenizer_path(tmp: Path) -> tuple[str, str]:
    """(path or name, description) of a real fast tokenizer, built locally when none is cached."""
    from huggingface_hub import try_to_load_from_cache

    from srl_agent.models import default_model_dir

    local = default_model_dir() / "tokenizer.json"  # the project's default policy (SmolLM2-135M-Instruct)
    if local.is_file():
        return str(local), f"SmolLM2-135M-Instruct's byte-level BPE (vocab 49,152; {local.parent.name} cache)"
    for name in ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"):
        cached = try_to_load_from_cache(name, "tokenizer.json")
        if isinstance(cached, str):
            return cached, f"{name} (local HF cache)"
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = []
    for r in import_paths([FIX]):
        for i in r.imported:
            texts.append(i.trajectory.problem_statement)
            texts += [s.observation for s in i.trajectory.steps] + [
                render_action(s.action) for s in i.trajectory.steps
            ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=16_000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    path = tmp / "tokenizer.json"
    tok.save(str(path))
    return str(
        path
    ), f"byte-level BPE, vocab {tok.get_vocab_size()}, trained on the fixtures (no SmolLM2 in the cache)"


def _set_ids(data: object, suffix: str, name: str) -> object:
    if name.endswith(".traj.json"):
        data["instance_id"] = data["instance_id"] + suffix
    elif name.endswith(".traj") and isinstance(data.get("replay_config"), dict):
        data["replay_config"]["problem_statement"]["id"] += suffix
    elif isinstance(data, dict) and "instance_id" in data:
        data["instance_id"] = data["instance_id"] + suffix
    return data


def replicate(out: Path, n_traj: int) -> tuple[int, int]:
    """Write raw replicas of the fixture files into `out`; returns (trajectories, instances)."""
    pool = []
    for f in find_files([FIX]):
        r = import_file(f)
        steps = [len(i.trajectory.steps) for i in r.imported]
        pool.append((f, len(steps), sum(steps)))
    target = PAPER_INSTANCES / PAPER_TRAJECTORIES
    trajs = insts = 0
    n = 0
    while trajs < n_traj:
        # greedy: the file that keeps the running mean steps per trajectory closest to the paper's
        f, nt, ns = min(
            (p for p in pool if trajs + p[1] <= n_traj),
            key=lambda p: (abs((insts + p[2]) / (trajs + p[1]) - target), p[0].name),
        )
        n += 1
        suffix = f".r{n}"
        name = f.name
        stem = name.split(".")[0]
        dest = out / (stem + suffix + name[len(stem) :])
        if name.endswith(".jsonl"):
            lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
            dest.write_text("".join(json.dumps(_set_ids(x, suffix, name)) + "\n" for x in lines))
        else:
            dest.write_text(json.dumps(_set_ids(json.loads(f.read_text()), suffix, name)))
        trajs += nt
        insts += ns
    return trajs, insts


def naive_build(files: list[Path], out: Path, tok_path: str, max_obs_tokens: int, context_steps: int) -> int:
    """The straightforward way: one process, one tokenizer call per shown observation, rows in a list."""
    from datasets import Dataset, DatasetDict

    from trajectories.tokens import load_tokenizer

    tok = load_tokenizer(tok_path)

    def truncate(text: str, budget: int) -> str:
        enc = tok.encode(text, add_special_tokens=False)
        n = len(enc.ids)
        if n <= budget:
            return text
        h = budget // 2
        return f"{text[: enc.offsets[h - 1][1]]}\n[... {n - budget} tokens truncated ...]\n{text[enc.offsets[n - budget + h][0] :]}"

    rows = []
    for f in files:
        for imp in import_file(f).imported:
            t = imp.trajectory
            tools = toolset_of(t.metadata.get("toolset"), t.actions)
            for k, s in enumerate(t.steps):
                rows.append(
                    {
                        "prompt": build_messages(
                            t.problem_statement,
                            t.steps[:k],
                            tools,
                            context_steps=context_steps,
                            max_obs_tokens=max_obs_tokens,
                            truncate=truncate,
                        ),
                        "completion": [{"role": "assistant", "content": format_answer(s.thought, s.action)}],
                        "expert_action": render_action(s.action),
                        "expert_thought": s.thought.strip(),
                        "tool": s.action.name,
                        "instance_id": t.instance_id,
                        "trajectory_id": t.trajectory_id,
                        "step": k,
                        "n_steps": len(t.steps),
                    }
                )
    ds = Dataset.from_list(rows, features=features())
    DatasetDict({"train": ds}).save_to_disk(str(out))
    return len(rows)


class RssSampler:
    """Peak anonymous and file-backed resident memory of this process, sampled every 50 ms.

    Peak RSS alone overstates what the build holds: pages of memory-mapped Arrow files count in it but
    are page cache the kernel can drop.
    """

    def __init__(self) -> None:
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.05):
            with open("/proc/self/status") as f:
                for line in f:
                    key = line.split(":", 1)[0]
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(line.split()[1]))  # kB

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trajectories", type=int, default=PAPER_TRAJECTORIES)
    ap.add_argument("--max-obs-tokens", type=int, default=1024)
    ap.add_argument("--context-steps", type=int, default=2)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--baseline-files", type=int, default=150, help="raw files in the baseline subset")
    ap.add_argument("--md", type=Path, help="also write the markdown snippet here")
    ap.add_argument("--workdir", type=Path, help="keep inputs/outputs here (default: a temp dir, removed)")
    args = ap.parse_args()
    import datasets

    datasets.disable_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="bench-data-", dir=args.workdir))
    try:
        tok_path, tok_desc = tokenizer_path(work)
        raw = work / "raw"
        raw.mkdir()
        n_traj, n_inst = replicate(raw, args.trajectories)
        raw_mb = sum(p.stat().st_size for p in raw.iterdir()) / 2**20
        files = sorted(raw.iterdir())

        sampler = RssSampler()
        sampler.start()
        t0, c0 = time.perf_counter(), _cpu()
        dd = build_dataset(
            [raw],
            work / "ds",
            context_steps=args.context_steps,
            max_obs_tokens=args.max_obs_tokens,
            tokenizer=tok_path,
            val_fraction=0.05,
            seed=0,
            num_proc=args.num_proc,
        )
        t_full, cpu_full = time.perf_counter() - t0, _cpu() - c0
        sampler.stop()
        built = len(dd["train"]) + len(dd["validation"])
        assert built == n_inst, (built, n_inst)
        out_mb = sum(p.stat().st_size for p in (work / "ds").rglob("*") if p.is_file()) / 2**20
        rss_parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        shutil.rmtree(work / "ds")

        subset = files[: args.baseline_files]
        t0 = time.perf_counter()
        dsub = build_dataset(
            subset,
            work / "ds_sub",
            context_steps=args.context_steps,
            max_obs_tokens=args.max_obs_tokens,
            tokenizer=tok_path,
            val_fraction=0.05,
            num_proc=args.num_proc,
        )
        t_sub = time.perf_counter() - t0
        n_sub = len(dsub["train"]) + len(dsub["validation"])
        t0 = time.perf_counter()
        n_naive = naive_build(subset, work / "ds_naive", tok_path, args.max_obs_tokens, args.context_steps)
        t_naive = time.perf_counter() - t0
        assert n_naive == n_sub
        ours = n_sub / t_sub
        naive = n_naive / t_naive
    finally:
        shutil.rmtree(work, ignore_errors=True)

    md = [
        "### Step-wise data at paper scale (`benchmarks/bench_data.py`)",
        "",
        f"Machine: {machine()}",
        "",
        f"Input: {n_traj:,} trajectories ({len(files):,} raw files, {raw_mb:,.0f} MiB, fixtures of all formats "
        f"replicated under new ids) -> {n_inst:,} instances; context {args.context_steps} steps, observations "
        f"cut to {args.max_obs_tokens} tokens with {tok_desc}.",
        "",
        "| run | instances | time | instances/s |",
        "| --- | ---: | ---: | ---: |",
        f"| import + build, {args.num_proc} processes, full set | {built:,} | {t_full:.1f} s | {built / t_full:,.0f} |",
        f"| same, subset ({len(subset)} files) | {n_sub:,} | {t_sub:.1f} s | {ours:,.0f} |",
        f"| baseline: naive single process, same subset | {n_naive:,} | {t_naive:.1f} s | {naive:,.0f} |",
        "",
        f"- speed-up over the baseline on the subset: {ours / naive:.1f}x",
        f"- full set: {t_full:.1f} s wall for {built:,} instances (target: 134k in <= 120 s), "
        f"{cpu_full:.0f} CPU-s = {cpu_full / args.num_proc:.1f} s on {args.num_proc} uncontended cores; "
        f"load average during the run {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        f"- peak RSS: main process {rss_parent:,.0f} MiB (sampled peaks: {sampler.peak['RssAnon'] / 1024:,.0f} MiB "
        f"anonymous, {sampler.peak['RssFile'] / 1024:,.0f} MiB file-backed pages of the memory-mapped Arrow "
        f"files), largest worker {rss_child:,.0f} MiB; data set on disk {out_mb:,.0f} MiB",
    ]
    text = "\n".join(md)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")


if __name__ == "__main__":
    main()
