"""Statistics for comparing trained models on the same held-out steps: percentile-bootstrap intervals and
paired differences. Pure functions of plain lists (used by `srl experiment` and the demo)."""

from __future__ import annotations

import math
import random
from typing import Any


def bootstrap_ci(
    values: list[float], *, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (resampled with replacement)."""
    n = len(values)
    if n == 0:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    lo = means[int(math.floor((1 - level) / 2 * (samples - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (samples - 1)))]
    return (lo, hi)


def paired_comparison(
    a: list[float], b: list[float], *, samples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """`b` against `a` on the same items: mean of ``b - a``, its bootstrap interval, better/worse/equal."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same items: {len(a)} vs {len(b)} values")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    lo, hi = bootstrap_ci(diffs, samples=samples, seed=seed)
    return {
        "n": len(diffs),
        "mean_difference": sum(diffs) / len(diffs) if diffs else math.nan,
        "ci95": [lo, hi],
        "better": sum(d > 1e-9 for d in diffs),
        "worse": sum(d < -1e-9 for d in diffs),
        "equal": sum(abs(d) <= 1e-9 for d in diffs),
        "excludes_zero": bool(lo > 0 or hi < 0),
    }


def compare_arms(evals: dict[str, dict[str, Any]], *, samples: int, seed: int) -> list[dict[str, Any]]:
    """Every pair of evaluated models on the same held-out steps (the later name minus the earlier)."""
    names = list(evals)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if evals[a]["steps"] != evals[b]["steps"]:
                from srl_agent.train.data import DataError

                raise DataError(
                    f"{a} and {b} were evaluated on different held-out steps (eval_limit or data changed "
                    "since an earlier run?); rerun with --fresh"
                )
            cmp = paired_comparison(evals[a]["rewards"], evals[b]["rewards"], samples=samples, seed=seed)
            out.append({"a": a, "b": b, **cmp})
    return out
