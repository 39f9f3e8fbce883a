"""Build a step-wise SRL data set from trajectories and say what was built: `build_data`.

This is `srl data build` as a library call: `trajectories.stepwise.build_dataset` (import, expand,
split, save), optional JSONL / Parquet copies of each split, and a `BuildReport` with the counts a
person checks (instances and trajectories per split, tools, formats, tool sets recorded by the source
vs srl-swe's default, skipped steps, failed rows).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trajectories.stepwise import build_dataset, read_build_report

if TYPE_CHECKING:
    from datasets import DatasetDict


@dataclass(frozen=True)
class SplitSummary:
    """One split of a built data set: instances, trajectories and its most frequent expert tools."""

    name: str
    instances: int
    trajectories: int
    tools: list[tuple[str, int]]  # (tool, instances), most frequent first, at most six


@dataclass
class BuildReport:
    """What `build_data` wrote to `out`: the data set, its saved counts and the extra files."""

    out: Path
    dataset: DatasetDict
    counts: dict[str, Any]  # `read_build_report(out)`
    seconds: float
    exports: list[Path] = field(default_factory=list)  # <split>.jsonl / <split>.parquet

    @property
    def errors(self) -> list[str]:
        """The rows that failed to import and were skipped, each naming its file and place."""
        return list(self.counts["errors"])

    @property
    def ok(self) -> bool:
        return not self.counts["errors"]

    def splits(self) -> list[SplitSummary]:
        return [
            SplitSummary(
                name,
                len(ds),
                len(set(ds["trajectory_id"])),
                Counter(ds["tool"]).most_common(6),
            )
            for name, ds in self.dataset.items()
        ]

    def summary(self) -> str:
        """One line: rows -> trajectories -> instances, formats, tool sets and skipped steps."""
        c = self.counts
        sets = c["tool_sets"]
        skipped = c["skipped_steps"]
        return (
            f"{c['rows']} rows -> {c['trajectories']} trajectories -> {sum(c['splits'].values())} instances; "
            "formats: "
            + ", ".join(f"{k} {v}" for k, v in c["formats"].items())
            + f"; tool sets: {sets['recorded']} as recorded by the source, {sets['default']} srl-swe's default "
            "(the source recorded none)"
            + ("; skipped steps: " + ", ".join(f"{k} {v}" for k, v in skipped.items()) if skipped else "")
        )


def build_data(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
    tokenizer: str | None = None,
    val_fraction: float = 0.05,
    seed: int = 0,
    num_proc: int = 2,
    jsonl: bool = False,
    parquet: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BuildReport:
    """Expand the trajectories under `paths` into a train/validation data set saved at `out`.

    Rows that fail to import are skipped and listed in the report (`BuildReport.errors`). With `jsonl`
    / `parquet`, each split is also written as ``out/<split>.jsonl`` / ``out/<split>.parquet``.
    `progress(n)` is called with the number of shards finished so far. Raises what `build_dataset`
    raises for bad input: `TokenizerNotFound`, FileNotFoundError (no trajectory files), FileExistsError
    (`out` is something else), ValueError (bad fraction, no instances).
    """
    start = time.perf_counter()
    out = Path(out)
    dataset = build_dataset(
        paths,
        out,
        context_steps=context_steps,
        max_obs_tokens=max_obs_tokens,
        tokenizer=tokenizer,
        val_fraction=val_fraction,
        seed=seed,
        num_proc=num_proc,
        on_error="skip",
        progress=progress,
    )
    exports = _export(dataset, out, jsonl=jsonl, parquet=parquet)
    return BuildReport(out, dataset, read_build_report(out), time.perf_counter() - start, exports)


def _export(dataset: DatasetDict, out: Path, *, jsonl: bool, parquet: bool) -> list[Path]:
    written = []
    for name, ds in dataset.items():
        if jsonl:
            written.append(out / f"{name}.jsonl")
            ds.to_json(str(written[-1]), lines=True)
        if parquet:
            written.append(out / f"{name}.parquet")
            ds.to_parquet(str(written[-1]))
    return written
