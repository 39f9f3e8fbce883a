"""`srl score`: mean step reward of predicted answers against a step-wise data set.

Predictions file: JSONL, one object per predicted step::

    {"trajectory_id": "...", "step": 3, "prediction": "<think>...</think>\\n<function=bash>..."}

``instance_id`` may stand in for ``trajectory_id`` when each instance has one trajectory in the data set.
``step`` is the 0-based step index (the data set's ``step`` column). Unknown keys are an error.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class StepPrediction(BaseModel):
    """One predicted answer for one step of a step-wise data set (not a SWE-bench patch prediction:
    that is `harness.predictions.Prediction`)."""

    model_config = ConfigDict(extra="forbid")

    trajectory_id: str | None = None
    instance_id: str | None = None
    step: int
    prediction: str

    @model_validator(mode="after")
    def _has_id(self) -> StepPrediction:
        if self.trajectory_id is None and self.instance_id is None:
            raise ValueError("needs 'trajectory_id' or 'instance_id'")
        return self


def read_predictions(path: Path) -> list[StepPrediction]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(StepPrediction.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(map(str, err["loc"])) or "<root>"
            raise typer.BadParameter(f"{path}:{n}: {loc}: {err['msg']}", param_hint="--predictions") from None
    return out


def _load_rows(dataset: Path, split: str) -> list[dict[str, Any]]:
    cols = ["trajectory_id", "instance_id", "step", "expert_action", "tool"]
    if dataset.is_file():
        rows = []
        for n, line in enumerate(dataset.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(
                    f"{dataset}:{n}: invalid JSON: {exc.msg}", param_hint="--dataset"
                ) from None
            missing = [k for k in cols if not isinstance(r, dict) or k not in r]
            if missing:
                raise typer.BadParameter(
                    f"{dataset}:{n}: missing column(s) {', '.join(missing)} (expected a `srl data build` export)",
                    param_hint="--dataset",
                )
            rows.append({k: r[k] for k in cols})
        return rows
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(dataset))
    except FileNotFoundError:
        raise typer.BadParameter(
            f"{dataset} is not a data set directory written by `srl data build`", param_hint="--dataset"
        ) from None
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise typer.BadParameter(
                f"no split {split!r} in {dataset} (has {', '.join(ds)})", param_hint="--split"
            )
        ds = ds[split]
    return ds.select_columns(cols).to_list()


def score_predictions(
    rows: list[dict[str, Any]], predictions: list[StepPrediction], mode: str
) -> dict[str, Any]:
    """Rewards of `predictions` against data set `rows`; a summary dict (also used by tests)."""
    from trajectories.scoring import FORMAT_ERROR_REWARD, step_reward

    by_tid = {(r["trajectory_id"], r["step"]): r for r in rows}
    by_iid: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        by_iid[(r["instance_id"], r["step"])].append(r)
    rewards: list[float] = []
    per_tool: dict[str, list[float]] = defaultdict(list)
    unmatched: list[str] = []
    for p in predictions:
        if p.trajectory_id is not None:
            row = by_tid.get((p.trajectory_id, p.step))
        else:
            cands = by_iid.get((p.instance_id, p.step), [])
            if len(cands) > 1:
                raise typer.BadParameter(
                    f"instance {p.instance_id!r} has {len(cands)} trajectories in the data set; "
                    "give 'trajectory_id' in the predictions",
                    param_hint="--predictions",
                )
            row = cands[0] if cands else None
        if row is None:
            unmatched.append(f"{p.trajectory_id or p.instance_id}#{p.step}")
            continue
        r = step_reward(p.prediction, row["expert_action"], mode=mode)
        rewards.append(r)
        per_tool[row["tool"]].append(r)
    n = len(rewards)
    return {
        "n_scored": n,
        "n_rows": len(rows),
        "mean_reward": sum(rewards) / n if n else 0.0,
        "format_error_rate": sum(r == FORMAT_ERROR_REWARD for r in rewards) / n if n else 0.0,
        "per_tool": {t: {"n": len(v), "mean_reward": sum(v) / len(v)} for t, v in sorted(per_tool.items())},
        "unmatched": unmatched,
    }


def score(
    dataset: Path = typer.Option(
        ..., "--dataset", exists=True, help="Step-wise data set dir (`srl data build`) or its JSONL export."
    ),
    predictions: Path = typer.Option(
        ...,
        "--predictions",
        exists=True,
        dir_okay=False,
        help="JSONL of {trajectory_id|instance_id, step, prediction}.",
    ),
    split: str = typer.Option("validation", "--split", help="Split of the data set to score against."),
    mode: str = typer.Option(
        "exact", "--mode", help="difflib | exact (same values, faster) | fast (rapidfuzz)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score predicted actions against the expert's: mean step reward, format-error rate, per tool."""
    from rich.console import Console
    from rich.table import Table

    if mode not in ("difflib", "exact", "fast"):
        raise typer.BadParameter(f"unknown mode {mode!r}", param_hint="--mode")
    summary = score_predictions(_load_rows(dataset, split), read_predictions(predictions), mode)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        console = Console()
        table = Table(title=f"step reward ({mode}) on {summary['n_scored']} of {summary['n_rows']} steps")
        table.add_column("tool")
        table.add_column("n", justify="right")
        table.add_column("mean reward", justify="right")
        for tool, v in summary["per_tool"].items():
            table.add_row(tool, str(v["n"]), f"{v['mean_reward']:.4f}")
        table.add_row("[bold]all", str(summary["n_scored"]), f"[bold]{summary['mean_reward']:.4f}")
        console.print(table)
        console.print(f"format-error rate: {summary['format_error_rate']:.2%}")
        if summary["unmatched"]:
            hint = " (predictions for another split? see --split)" if not summary["n_scored"] else ""
            console.print(
                f"[yellow]{len(summary['unmatched'])} predictions match no step{hint}: "
                f"{', '.join(summary['unmatched'][:5])}{' ...' if len(summary['unmatched']) > 5 else ''}",
                highlight=False,
            )
    if summary["unmatched"]:
        raise typer.Exit(1)
