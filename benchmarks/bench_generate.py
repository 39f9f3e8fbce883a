"""Generated tokens/s: transformers `generate` vs vLLM on the same step prompts and model.

    .venv/bin/python benchmarks/bench_generate.py [--model M] [--dataset DIR] [--prompts 8] [--n 2]

Both backends go through `srl_agent.policy` (the code the agent loop and eval-steps use), with the
same sampling (temperature 1, top_k 0, stop at ``</function>``). vLLM needs the ``vllm`` extra in its
own environment; without it only the transformers side is measured and the ratio is reported as
n/a. Generated tokens are counted with the model's tokenizer on the returned texts.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def _prompts(args: argparse.Namespace, model_dir: str, tmp: Path) -> list[list[dict[str, Any]]]:
    from srl_agent.models import load_tokenizer
    from srl_agent.prompts import fit_prompt
    from srl_agent.train.data import load_split

    dataset = args.dataset
    if dataset is None:  # step prompts from expert runs generated over the bundled tasks (needs Docker)
        from harness.expert import ensure_expert_runs
        from trajectories.stepwise import build_dataset

        ensure_expert_runs(tmp / "expert_runs", runs_per_task=1, style="tools")
        dataset = tmp / "steps"
        build_dataset(
            [tmp / "expert_runs"],
            dataset,
            max_obs_tokens=96,
            tokenizer=model_dir,
            val_fraction=0.2,
            num_proc=1,
        )
    rows = load_split(dataset, "validation").select(range(args.prompts))
    tok = load_tokenizer(model_dir)
    return [fit_prompt(tok, r["prompt"], args.max_prompt_tokens) or r["prompt"] for r in rows]


def _measure(policy: Any, prompts: list, args: argparse.Namespace, tok: Any) -> dict[str, float]:
    sampling = dict(temperature=1.0, top_k=0, max_new_tokens=args.max_new_tokens, n=args.n, seed=0)
    policy.generate(prompts[:1], **{**sampling, "n": 1, "max_new_tokens": 4})  # warm-up
    t = time.perf_counter()
    out = policy.generate(prompts, **sampling)
    seconds = time.perf_counter() - t
    tokens = sum(len(tok.encode(a, add_special_tokens=False)) for a in out)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=2, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-prompt-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from srl_agent.models import load_tokenizer, resolve_model
    from srl_agent.policy import TransformersPolicy

    model_dir = str(resolve_model(args.model))
    tok = load_tokenizer(model_dir)
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        prompts = _prompts(args, model_dir, Path(tmp))
    results: dict[str, dict[str, float]] = {}
    hf = TransformersPolicy.from_pretrained(model_dir, batch_size=args.batch_size)
    results["transformers"] = _measure(hf, prompts, args, tok)
    del hf
    if importlib.util.find_spec("vllm") is not None:
        from srl_agent.policy import VLLMPolicy

        t = time.perf_counter()
        vl = VLLMPolicy(model_dir, max_model_len=args.max_prompt_tokens + args.max_new_tokens + 64)
        start = time.perf_counter() - t
        results["vllm"] = {**_measure(vl, prompts, args, tok), "engine_start_s": start}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    from _common import machine

    print(f"\nmachine: {machine()}")
    print(
        f"model={args.model} prompts={len(prompts)} x n={args.n} prompt<={args.max_prompt_tokens} "
        f"max_new_tokens={args.max_new_tokens}"
    )
    for name, r in results.items():
        print(f"{name:12s} " + " ".join(f"{k}={v:.1f}" for k, v in r.items()))
    if "vllm" in results:
        print(
            f"vllm / transformers tokens/s: {results['vllm']['tokens_per_s'] / results['transformers']['tokens_per_s']:.1f}x"
        )
    else:
        print("vllm: not installed (the vllm extra lives in its own environment); ratio n/a")
    print(f"peak RSS {rss:.2f} GB")


if __name__ == "__main__":
    main()
