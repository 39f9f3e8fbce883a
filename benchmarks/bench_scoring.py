"""Step-reward benchmark: pairs/s of the `exact` (cydifflib) and `fast` (rapidfuzz) modes against plain
difflib, measured in the same run on real actions (every fixture expert action paired with K others).

    .venv/bin/python benchmarks/bench_scoring.py [--others 10] [--md out.md]

Checks that `exact` gives identical values to difflib, and reports the mean / max absolute difference
of `fast` (it is never lower: an LCS is at least as long as difflib's matching blocks).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from _common import machine  # noqa: E402

from trajectories.actions import format_answer, render_action  # noqa: E402
from trajectories.importers import load_trajectories  # noqa: E402
from trajectories.scoring import similarity, step_reward  # noqa: E402


def pairs(k: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    # real recorded actions: the public SWE-agent / mini-swe-agent runs in ../shared/fixtures (never copied in)
    shared = Path(os.environ.get("SRL_SWE_SHARED_FIXTURES") or ROOT.parent / "shared" / "fixtures")
    if not shared.is_dir():
        sys.exit(f"{shared} not found: the recorded runs come from ../shared/fixtures beside the clone")
    trajs = load_trajectories([shared / "swe-agent", shared / "mini-swe-agent"])
    calls = [c for t in trajs for c in t.actions]
    texts = [render_action(c) for c in calls]
    n = len(texts)
    raw = [(texts[(i + j) % n], texts[i]) for i in range(n) for j in range(1, k + 1)]
    answers = [
        (format_answer("thinking", calls[(i + j) % n]), texts[i]) for i in range(n) for j in range(1, k + 1)
    ]
    return raw, answers


def timed(fn, items: list[tuple[str, str]]) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    values = [fn(a, b) for a, b in items]
    return values, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--others", type=int, default=10, help="other actions paired with each expert action")
    ap.add_argument("--md", type=Path, help="also write the markdown snippet here")
    args = ap.parse_args()
    raw, answers = pairs(args.others)
    lengths = sorted(len(a) + len(b) for a, b in raw)

    base, t_base = timed(lambda a, b: difflib.SequenceMatcher(None, a, b, autojunk=False).ratio(), raw)
    exact, t_exact = timed(lambda a, b: similarity(a, b, mode="exact"), raw)
    fast, t_fast = timed(lambda a, b: similarity(a, b, mode="fast"), raw)
    r_base, t_rbase = timed(lambda p, e: step_reward(p, e, mode="difflib"), answers)
    r_exact, t_rexact = timed(lambda p, e: step_reward(p, e, mode="exact"), answers)
    r_fast, t_rfast = timed(lambda p, e: step_reward(p, e, mode="fast"), answers)

    assert exact == base, "exact mode must equal difflib"
    assert r_exact == r_base, "exact step reward must equal the difflib one"
    long_pairs = [(a, b) for a, b in raw if len(a) > 200 or len(b) > 200]  # where autojunk can apply
    junk, _ = timed(lambda a, b: similarity(a, b, mode="exact", autojunk=True), long_pairs)
    fair, _ = timed(lambda a, b: similarity(a, b, mode="exact"), long_pairs)
    junk_diffs = [f - j for f, j in zip(fair, junk, strict=True)]
    diffs = [f - b for f, b in zip(fast, base, strict=True)]
    assert min(diffs) >= -1e-12
    n = len(raw)
    rows = [
        ("difflib (baseline)", n / t_base, 1.0, n / t_rbase, 1.0),
        ("exact (cydifflib)", n / t_exact, t_base / t_exact, n / t_rexact, t_rbase / t_rexact),
        ("fast (rapidfuzz Indel)", n / t_fast, t_base / t_fast, n / t_rfast, t_rbase / t_rfast),
    ]
    md = [
        "### Step reward (`benchmarks/bench_scoring.py`)",
        "",
        f"Machine: {machine()}",
        "",
        f"{n} pairs: each of the {n // args.others} fixture expert actions against {args.others} other actions "
        f"(pair length median {lengths[n // 2]} chars, max {lengths[-1]}); `autojunk=False`.",
        "",
        "| mode | similarity pairs/s | speed-up | step_reward (parse + score) pairs/s | speed-up |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    md += [f"| {name} | {a:,.0f} | {ra:.1f}x | {b:,.0f} | {rb:.1f}x |" for name, a, ra, b, rb in rows]
    md += [
        "",
        f"- exact vs difflib: identical values on all {n} pairs (max abs difference 0.0).",
        f"- fast vs difflib: mean abs difference {sum(diffs) / n:.4f}, max {max(diffs):.4f} "
        f"(never lower; {sum(d > 1e-12 for d in diffs) / n:.1%} of pairs differ).",
        f"- autojunk=True vs the default autojunk=False, on the {len(long_pairs)} pairs with an action over 200 "
        f"chars: ratio lower by {sum(junk_diffs) / len(long_pairs):.4f} on average, by up to {max(junk_diffs):.4f} "
        f"({sum(d > 1e-12 for d in junk_diffs) / len(long_pairs):.1%} of those pairs change).",
    ]
    text = "\n".join(md)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")


if __name__ == "__main__":
    main()
