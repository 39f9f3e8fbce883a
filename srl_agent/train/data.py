"""The step-wise SRL data set as the trainers read it.

A `DatasetDict` saved with ``save_to_disk`` (splits ``train``/``validation``), one row per expert step:
``prompt`` (chat messages), ``completion`` ([assistant message: ``<think>...</think>`` + action]),
``expert_action``, ``expert_thought``, ``tool``, ``instance_id``, ``trajectory_id``, ``step``, ``n_steps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trajectories.errors import SrlSweError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

REQUIRED_COLUMNS = ("prompt", "completion", "expert_action")


class DataError(SrlSweError, ValueError):
    """The step-wise data set is missing, malformed or empty after filtering."""


def load_split(path: Path, split: str) -> Dataset:
    """One split of a step-wise data set dir, with its columns checked."""
    from datasets import Dataset, DatasetDict, load_from_disk

    path = Path(path)
    if not path.exists():
        raise DataError(f"data set {path} does not exist (build one with `srl data build`)")
    try:
        data = load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path} is not a data set saved with save_to_disk: {exc}") from None
    if isinstance(data, DatasetDict):
        if split not in data:
            raise DataError(f"{path} has no split {split!r} (splits: {sorted(data)})")
        ds = data[split]
    elif isinstance(data, Dataset):
        ds = data
    else:  # pragma: no cover
        raise DataError(f"{path}: unexpected object {type(data).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise DataError(f"{path} split {split!r} lacks columns {missing} (has {ds.column_names})")
    return ds


def fit_prompts(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    *,
    overflow: Literal["truncate", "filter"] = "truncate",
) -> tuple[Dataset, dict[str, int]]:
    """Every prompt within `max_prompt_tokens`: over-budget rows are cut (or dropped).

    Returns the data set and counts ``{"kept", "truncated", "dropped"}``.
    """
    from srl_agent.prompts import fit_prompt, prompt_token_count

    def one(row: dict[str, Any]) -> dict[str, Any]:
        n = prompt_token_count(tokenizer, row["prompt"])
        if n <= max_prompt_tokens:
            return {"prompt": row["prompt"], "_fit": "kept"}
        if overflow == "filter":
            return {"prompt": row["prompt"], "_fit": "dropped"}
        fitted = fit_prompt(tokenizer, row["prompt"], max_prompt_tokens)
        if fitted is None:
            return {"prompt": row["prompt"], "_fit": "dropped"}
        return {"prompt": fitted, "_fit": "truncated"}

    mapped = ds.map(one, desc="fitting prompts")
    counts = {k: 0 for k in ("kept", "truncated", "dropped")}
    for v in mapped["_fit"]:
        counts[v] += 1
    out = mapped.filter(lambda r: r["_fit"] != "dropped").remove_columns("_fit")
    if len(out) == 0:
        raise DataError(
            f"no prompt fits in max_prompt_tokens={max_prompt_tokens} ({counts['dropped']} dropped); "
            "raise max_prompt_tokens or use prompt_overflow=truncate"
        )
    return out, counts
