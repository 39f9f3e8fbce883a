"""Step-wise SRL data: a trajectory with N actions becomes N training instances.

Instance k asks for the expert's action k given the problem and steps 0..k-1 (prompt built by
`trajectories.prompting.build_messages`). Columns (the training code depends on exactly these):

==================  ==========================================================================
``prompt``          list of ``{"role", "content"}``: system + user
``completion``      one assistant message, ``format_answer(expert_thought, expert_action)``
``expert_action``   the expert's action in canonical text (`render_action`)
``expert_thought``  the expert's thought at this step (may be empty)
``tool``            the expert action's tool name
``instance_id``     task instance id
``trajectory_id``   id of the recorded run (unique; several runs may share an instance)
``step``            0-based step index
``n_steps``         number of steps in the trajectory
==================  ==========================================================================

The train / validation split is by trajectory, never by step: the validation trajectories are the
``round(val_fraction * n)`` ones with the smallest ``sha256(seed:trajectory_id)``, so the split is
deterministic for a seed and does not depend on file order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from trajectories.actions import format_answer, render_action
from trajectories.importers import find_files, import_file
from trajectories.prompting import build_messages
from trajectories.schema import Trajectory
from trajectories.tokens import ObservationTruncator
from trajectories.tools import toolset_of

COLUMNS = (
    "prompt",
    "completion",
    "expert_action",
    "expert_thought",
    "tool",
    "instance_id",
    "trajectory_id",
    "step",
    "n_steps",
)


def features():
    """The `datasets.Features` of a step-wise data set (imported lazily: `datasets` is a train extra)."""
    from datasets import Features, List, Value

    message = {"role": Value("string"), "content": Value("string")}
    return Features(
        {
            "prompt": List(message),
            "completion": List(message),
            "expert_action": Value("string"),
            "expert_thought": Value("string"),
            "tool": Value("string"),
            "instance_id": Value("string"),
            "trajectory_id": Value("string"),
            "step": Value("int32"),
            "n_steps": Value("int32"),
        }
    )


def trajectory_key(traj: Trajectory, index: int = 0, source: str = "") -> str:
    """The trajectory's id; for trajectories saved without one, one from its file name and position."""
    if traj.trajectory_id:
        return traj.trajectory_id
    where = hashlib.sha1(source.encode()).hexdigest()[:10] if source else "nofile"
    return f"{traj.instance_id}.{where}#{index}"


def expand(
    traj: Trajectory,
    *,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
    truncator: ObservationTruncator | None = None,
    trajectory_id: str | None = None,
) -> list[dict[str, Any]]:
    """The N step-wise instances of one trajectory, as rows with the columns above."""
    steps = traj.steps
    if max_obs_tokens is not None:
        cut = (truncator or ObservationTruncator()).truncate_many(
            [s.observation for s in steps], max_obs_tokens
        )
        steps = [s.model_copy(update={"observation": o}) for s, o in zip(steps, cut, strict=True)]
    tools = toolset_of(traj.metadata.get("toolset"), traj.actions)
    tid = trajectory_id or trajectory_key(traj)
    rows = []
    for k, step in enumerate(steps):
        rows.append(
            {
                "prompt": build_messages(
                    traj.problem_statement, steps[:k], tools, context_steps=context_steps
                ),
                "completion": [{"role": "assistant", "content": format_answer(step.thought, step.action)}],
                "expert_action": render_action(step.action),
                "expert_thought": step.thought.strip(),
                "tool": step.action.name,
                "instance_id": traj.instance_id,
                "trajectory_id": tid,
                "step": k,
                "n_steps": len(steps),
            }
        )
    return rows


def validation_ids(trajectory_ids: Sequence[str], val_fraction: float, seed: int = 0) -> set[str]:
    """Which trajectories go to validation (see the module docstring)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    unique = sorted(set(trajectory_ids))
    n_val = round(val_fraction * len(unique))
    if val_fraction > 0 and n_val == 0 and len(unique) > 1:
        n_val = 1
    ranked = sorted(unique, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    return set(ranked[:n_val])


def _rows(files: list[str], context_steps: int, max_obs_tokens: int | None, tokenizer: str | None):
    truncator = ObservationTruncator.load(tokenizer)
    for f in files:
        report = import_file(f)
        if report.errors:
            raise report.errors[0]
        for n, imported in enumerate(report.imported):
            traj = imported.trajectory
            yield from expand(
                traj,
                context_steps=context_steps,
                max_obs_tokens=max_obs_tokens,
                truncator=truncator,
                trajectory_id=trajectory_key(traj, n, Path(f).name),
            )


def _write_shard(
    files: list[str], dest: str, context_steps: int, max_obs_tokens: int | None, tokenizer: str | None
) -> str:
    """Expand `files` into an Arrow stream file (the format `datasets` memory-maps), in batches."""
    import pyarrow as pa

    schema = features().arrow_schema
    batch: list[dict[str, Any]] = []
    with pa.OSFile(dest, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for row in _rows(files, context_steps, max_obs_tokens, tokenizer):
            batch.append(row)
            if len(batch) >= _BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return dest


_BATCH_ROWS = 1000
_SHARD_BYTES = 200 * 2**20


def _shards(files: list[str], k: int) -> list[list[str]]:
    """`k` contiguous runs of files, so rows keep the file order whatever `k` is."""
    k = max(1, min(k, len(files)))
    return [files[i * len(files) // k : (i + 1) * len(files) // k] for i in range(k)]


def build_dataset(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    context_steps: int = 2,
    max_obs_tokens: int | None = None,
    tokenizer: str | None = None,
    val_fraction: float = 0.05,
    seed: int = 0,
    num_proc: int = 2,
):
    """Expand every trajectory under `paths` and save a train/validation `DatasetDict` to `out`.

    The files are cut into contiguous shards; `num_proc` processes each import, truncate (one batch
    tokenizer call per trajectory) and stream rows to an Arrow file in batches of 1,000, so memory
    stays flat however many trajectories there are. The shards are then memory-mapped, split by
    trajectory and saved. Returns the saved `DatasetDict` (loaded from `out`).
    """
    from datasets import Dataset, DatasetDict, DatasetInfo, concatenate_datasets, load_from_disk

    validation_ids([], val_fraction)  # a bad fraction fails before any work
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not (out / "dataset_dict.json").exists():
        raise FileExistsError(
            f"{out} exists and is not a data set written by `srl data build`; refusing to replace it"
        )
    if tokenizer:
        ObservationTruncator.load(tokenizer)  # fail here, not in a worker, when it can't be found
    files = [str(f) for f in find_files(paths)]
    if not files:
        raise FileNotFoundError(f"no trajectory files under {', '.join(map(str, paths))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    num_proc = max(1, min(num_proc, len(files)))
    shards = _shards(files, 4 * num_proc)
    with tempfile.TemporaryDirectory(prefix=".srl-data-", dir=out.parent) as tmp:
        dests = [str(Path(tmp) / f"shard-{i:05d}.arrow") for i in range(len(shards))]
        args = [
            (sh, d, context_steps, max_obs_tokens, tokenizer) for sh, d in zip(shards, dests, strict=True)
        ]
        if num_proc == 1:
            for a in args:
                _write_shard(*a)
        else:
            ctx = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            )
            with ProcessPoolExecutor(num_proc, mp_context=ctx) as pool:
                list(pool.map(_write_shard, *zip(*args, strict=True)))
        info = DatasetInfo(features=features())
        ds = concatenate_datasets([Dataset.from_file(d, info=info) for d in dests])
        tids = ds.data.column("trajectory_id").to_pylist()
        val = validation_ids(tids, val_fraction, seed)
        train_idx = [i for i, t in enumerate(tids) if t not in val]
        val_idx = [i for i, t in enumerate(tids) if t in val]
        if out.exists():
            shutil.rmtree(out)
        splits = DatasetDict({"train": ds.select(train_idx), "validation": ds.select(val_idx)})
        # shards of <= ~200 MB; an empty split (val_fraction=0) still gets one, which `datasets` would
        # otherwise write as zero shards that it cannot load back
        shards = {k: max(1, min(len(v), int(v.data.nbytes / _SHARD_BYTES) + 1)) for k, v in splits.items()}
        splits.save_to_disk(str(out), num_shards=shards)
        del ds, splits
    return load_from_disk(str(out))
