"""Time of one SRL (GRPO) and one SFT step on this machine, split into generation / reward / the rest.

    .venv/bin/python benchmarks/bench_train.py --dataset DIR | --trajectories PATH [--steps 3] [--modes grpo,sft,grpo-lora,sft-lora]
    .venv-vllm/bin/python benchmarks/bench_train.py --modes grpo,grpo-vllm   # GRPO generating through vLLM

Defaults: the default model (SmolLM2-135M-Instruct, fp32 on CPU), real step prompts cut to
``--max-prompt-tokens 512``, ``--max-completion 128``, 4 prompts x 4 generations per GRPO step,
batch 4 per SFT step. Dynamic sampling is off here (the base model's groups all score -1 and would
stop the run); the step does the same work either way, refills aside. The first step is a warm-up
and is left out of the means. Prints one line per mode and the reward share of a GRPO step (the
target: below 2%), plus peak RSS. ``--trajectories`` (e.g. the demo's ``runs/demo/expert_runs``) builds the step-wise set
into a temp dir instead of ``--dataset``.

Each mode runs in its own child process, so each one's peak RSS (``ru_maxrss``) is its own: printed as
``peak_rss_gb``, with ``rss_after_setup_gb`` (model + data loaded) and ``rss_after_first_gen_gb`` (the
high-water mark once the first generation is done). ``--demo`` uses the demo's SRL / SFT settings
(prompts <= 448 tokens, 128 new tokens, 2 prompts x 4 generations per GRPO step, 4 rows per SFT step);
the issue's bound is 6 GB per step there.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def _timed(store: dict[str, list[float]], key: str, fn: Any) -> Any:
    """Record wall time under `key` and process CPU time under `key_cpu` (the machine may be shared)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            store[key].append(time.perf_counter() - t)
            store[key + "_cpu"].append(time.process_time() - c)

    return wrapper


def _per_optimizer_step(times: dict[str, list[float]], passes: int) -> dict[str, list[float]]:
    """`training_step` runs once per micro-batch pass: sum the passes of each optimizer step."""
    return {
        key: [sum(times[key][i : i + passes]) for i in range(0, len(times[key]), passes)]
        for key in ("step", "step_cpu")
    }


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _dataset_from(trajectories: Path, tmp: Path, model_dir: str) -> Path:
    from trajectories.stepwise import build_dataset

    out = tmp / "steps"
    build_dataset([trajectories], out, max_obs_tokens=96, tokenizer=model_dir, val_fraction=0.2, num_proc=1)
    return out


def _after(hook: Any, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        hook()
        return out

    return wrapper


def bench_grpo(
    args: argparse.Namespace, dataset: Path, lora: bool, out_dir: Path, vllm: bool = False
) -> dict[str, float]:
    from srl_agent.train.config import SRLTrainConfig
    from srl_agent.train.srl import build_trainer

    cfg = SRLTrainConfig(
        model=args.model,
        dataset=dataset,
        output_dir=out_dir,
        max_steps=args.steps,
        batch_size=args.grpo_batch_size or args.batch_size,
        num_generations=args.generations,
        max_prompt_tokens=args.max_prompt_tokens,
        max_completion_length=args.max_completion,
        report_to=[],
        save_steps=10_000,
        lora={"enabled": lora},
        micro_batch_size=args.micro_batch_size or None,
        dynamic_sampling={"enabled": False},
        max_train_samples=64,
        use_vllm=vllm,
    )
    t0 = time.perf_counter()
    trainer, _ = build_trainer(cfg)
    setup = time.perf_counter() - t0
    rss_setup = _rss_gb()
    times: dict[str, list[float]] = defaultdict(list)
    if vllm:  # the weight push into the engine, part of generation
        gen = trainer.vllm_generation
        gen.sync_weights = _timed(times, "sync", gen.sync_weights)
    trainer._generate_single_turn = _timed(times, "generation", trainer._generate_single_turn)
    rss_gen: list[float] = []
    trainer._calculate_rewards = _after(lambda: rss_gen.append(_rss_gb()), trainer._calculate_rewards)
    trainer._calculate_rewards = _timed(times, "reward", trainer._calculate_rewards)
    trainer.training_step = _timed(times, "step", trainer.training_step)
    trainer.train()
    per_step = _per_optimizer_step(times, trainer.args.gradient_accumulation_steps)
    skip = 1 if len(per_step["step"]) > 1 else 0
    step = statistics.mean(per_step["step"][skip:])
    gen = statistics.mean(times["generation"][skip:])
    rew = statistics.mean(times["reward"][skip:])
    cpu = statistics.mean(per_step["step_cpu"][skip:])
    out = {
        "step_s": step,
        "generation_s": gen,
        "reward_s": rew,
        "rest_s": step - gen - rew,
        "step_cpu_s": cpu,
        "setup_s": setup,
        "rss_after_setup_gb": rss_setup,
        "rss_after_first_gen_gb": rss_gen[0] if rss_gen else float("nan"),
    }
    if vllm:
        out["weight_sync_s"] = statistics.mean(times["sync"][skip:])
    return out


def bench_sft(args: argparse.Namespace, dataset: Path, lora: bool, out_dir: Path) -> dict[str, float]:
    from srl_agent.train.config import SFTTrainConfig
    from srl_agent.train.sft import build_trainer

    cfg = SFTTrainConfig(
        model=args.model,
        dataset=dataset,
        output_dir=out_dir,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_prompt_tokens=args.max_prompt_tokens,
        max_completion_length=args.max_completion,
        report_to=[],
        save_steps=10_000,
        lora={"enabled": lora},
        micro_batch_size=args.micro_batch_size or None,
        max_train_samples=64,
    )
    trainer, _ = build_trainer(cfg)
    rss_setup = _rss_gb()
    times: dict[str, list[float]] = defaultdict(list)
    trainer.training_step = _timed(times, "step", trainer.training_step)
    trainer.train()
    per_step = _per_optimizer_step(times, trainer.args.gradient_accumulation_steps)
    skip = 1 if len(per_step["step"]) > 1 else 0
    return {
        "step_s": statistics.mean(per_step["step"][skip:]),
        "step_cpu_s": statistics.mean(per_step["step_cpu"][skip:]),
        "rss_after_setup_gb": rss_setup,
    }


def run_mode(args: argparse.Namespace, mode: str, dataset: Path, out_dir: Path) -> dict[str, float]:
    kind, *variants = mode.split("-")
    t0 = time.perf_counter()
    if kind == "grpo":
        result = bench_grpo(args, dataset, "lora" in variants, out_dir, "vllm" in variants)
    elif kind == "sft":
        result = bench_sft(args, dataset, "lora" in variants, out_dir)
    else:
        raise SystemExit(f"--modes: unknown mode {mode!r} (grpo, sft, with -lora / -vllm)")
    result["wall_s"] = time.perf_counter() - t0
    result["peak_rss_gb"] = _rss_gb()
    return result


def run_child(args: argparse.Namespace, mode: str, dataset: Path, out_dir: Path) -> dict[str, float]:
    """`mode` in a fresh process: its peak RSS is its own, and an OOM kill loses only this mode."""
    argv = [sys.executable, __file__, "--child", mode, "--dataset", str(dataset), "--child-out", str(out_dir)]
    for name in ("model", "steps", "batch_size", "grpo_batch_size", "generations", "micro_batch_size"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    argv += ["--max-prompt-tokens", str(args.max_prompt_tokens), "--max-completion", str(args.max_completion)]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD ")]
    if proc.returncode or not lines:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        return {"failed_rc": float(proc.returncode), "peak_rss_gb": peak}
    return json.loads(lines[-1][len("CHILD ") :])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", type=Path, help="step-wise data set dir (`srl data build` output)")
    parser.add_argument("--trajectories", type=Path, help="trajectory files/dir to build the data set from")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="rows per SFT step (and GRPO prompts)")
    parser.add_argument(
        "--grpo-batch-size", type=int, default=0, help="prompts per GRPO step (0: --batch-size)"
    )
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument(
        "--micro-batch-size", type=int, default=0, help="rows per forward/backward pass (0: the default)"
    )
    parser.add_argument("--max-prompt-tokens", type=int, default=512)
    parser.add_argument("--max-completion", type=int, default=128)
    parser.add_argument(
        "--modes",
        default="grpo,sft,grpo-lora,sft-lora",
        help="comma-separated; grpo-vllm / grpo-lora-vllm generate through a colocated vLLM (vllm extra)",
    )
    parser.add_argument("--demo", action="store_true", help="the demo's settings (see the module docstring)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo:
        args.max_prompt_tokens, args.max_completion, args.grpo_batch_size, args.batch_size = 448, 128, 2, 4
        args.generations = 4
    if args.child:
        result = run_mode(args, args.child, args.dataset, args.child_out)
        print("CHILD " + json.dumps(result), flush=True)
        return

    from srl_agent.models import resolve_model

    model_dir = str(resolve_model(args.model))
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp_name:
        tmp = Path(tmp_name)
        if args.dataset is None and args.trajectories is None:
            raise SystemExit("give --dataset (a step-wise set) or --trajectories (files to build one from)")
        dataset = args.dataset or _dataset_from(args.trajectories, tmp, model_dir)
        results = {}
        for mode in args.modes.split(","):
            results[mode] = run_child(args, mode, dataset, tmp / mode)
            print(f"RESULT {mode}: " + " ".join(f"{k}={v:.2f}" for k, v in results[mode].items()), flush=True)
    from _common import machine

    print(f"\nmachine: {machine()}")
    print(
        f"model={args.model} prompt<={args.max_prompt_tokens} completion<={args.max_completion} "
        f"micro_batch={args.micro_batch_size or 'default'} batch={args.batch_size} grpo_batch={args.grpo_batch_size or args.batch_size} generations={args.generations} steps={args.steps} (first = warm-up)"
    )
    for mode, r in results.items():
        parts = " ".join(f"{k}={v:.2f}" for k, v in r.items())
        extra = ""
        if "reward_s" in r:
            extra = f" reward_share={r['reward_s'] / r['step_s']:.3%} (target < 2%)"
        print(f"{mode:10s} {parts}{extra}")
    if "grpo" in results and "grpo-lora" in results:
        print(
            f"LoRA / full GRPO step ratio: {results['grpo-lora']['step_s'] / results['grpo']['step_s']:.2f}"
        )
    if "grpo" in results and "grpo-vllm" in results:
        print(
            f"vLLM / transformers GRPO step ratio: {results['grpo-vllm']['step_s'] / results['grpo']['step_s']:.2f}"
            f" (generation {results['grpo-vllm']['generation_s'] / results['grpo']['generation_s']:.2f})"
        )
    if "sft" in results and "sft-lora" in results:
        print(f"LoRA / full SFT step ratio: {results['sft-lora']['step_s'] / results['sft']['step_s']:.2f}")
    worst = max(r.get("peak_rss_gb", 0.0) for r in results.values())
    print(f"largest peak RSS of one mode: {worst:.2f} GB (issue 16 bound at the demo's settings: 6 GB)")


if __name__ == "__main__":
    main()
