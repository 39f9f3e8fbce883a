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

The system prompt describes the expert's own tools (`Trajectory.tools`, as its source recorded them,
plus any tool or parameter its actions use that they leave out: `tools_of`); srl-swe's named toolsets
stand in only where the source recorded none.

The train / validation split is by trajectory, never by step: the validation trajectories are the
``round(val_fraction * n)`` ones with the smallest ``sha256(seed:trajectory_id)``, so the split is
deterministic for a seed and does not depend on file order. `build_dataset` saves its counts beside
the data set (``build_report.json``: rows, trajectories, instances, tool sets recorded vs default,
formats, skipped steps, failed rows).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

from trajectories.actions import format_answer, render_action
from trajectories.importers import find_files, iter_file
from trajectories.prompting import build_messages
from trajectories.recorded_tools import cover_calls
from trajectories.rows import RowsError, count_rows
from trajectories.schema import ToolSpec, Trajectory
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


def tools_of(traj: Trajectory) -> tuple[ToolSpec, ...]:
    """The tools a trajectory's prompts describe: the expert's own, as its source recorded them (plus
    any tool or parameter the expert used that they leave out), else our toolset for its actions."""
    if traj.tools:
        return cover_calls(traj.tools, traj.actions)
    return cover_calls(toolset_of(traj.metadata.get("toolset"), traj.actions), traj.actions)


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
    tools = tools_of(traj)
    tid = trajectory_id or trajectory_key(traj)
    rendered = [render_action(s.action) for s in steps]
    rows = []
    for k, step in enumerate(steps):
        rows.append(
            {
                "prompt": build_messages(
                    traj.problem_statement,
                    steps[:k],
                    tools,
                    context_steps=context_steps,
                    rendered=rendered[:k],
                ),
                "completion": [{"role": "assistant", "content": format_answer(step.thought, step.action)}],
                "expert_action": rendered[k],
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


def _pieces(files: list[str], n_pieces: int) -> list[list[tuple[str, int, int | None]]]:
    """Cut the containers into about `n_pieces` contiguous runs of rows, so rows keep their container
    order whatever the number of processes. Row-splittable containers (Parquet, Arrow folders, JSONL)
    are cut by row ranges, so one big file still spreads over every process; any other file is one
    row (a run file, or a JSON array read whole)."""
    sized = []
    for f in files:
        splittable = f.endswith((".parquet", ".jsonl", ".jsonl.gz")) or Path(f).is_dir()
        try:
            n = count_rows(f) if splittable else 1
        except RowsError:
            n = 1  # reported with its error when the shard reads it
        sized.append((f, max(n, 1), splittable))
    total = sum(n for _, n, _ in sized)
    size = max(1, -(-total // max(1, n_pieces)))
    shards: list[list[tuple[str, int, int | None]]] = []
    current: list[tuple[str, int, int | None]] = []
    filled = 0
    for f, n, splittable in sized:
        start = 0
        while start < n:
            take = min(n - start, size - filled) if splittable else n
            current.append((f, start, start + take if splittable else None))
            start += take
            filled += take
            if filled >= size:
                shards.append(current)
                current, filled = [], 0
    if current:
        shards.append(current)
    return shards


def _empty_stats() -> dict[str, Any]:
    return {
        "rows": 0,
        "trajectories": 0,
        "instances": 0,
        "tool_sets": {"recorded": 0, "default": 0},
        "formats": {},
        "skipped_steps": {},
        "errors": [],
        "trajectory_ids": [],
    }


def _rows(
    pieces: list[tuple[str, int, int | None]],
    context_steps: int,
    max_obs_tokens: int | None,
    tokenizer: str | None,
    on_error: str,
    stats: dict[str, Any],
):
    truncator = ObservationTruncator.load(tokenizer)
    for f, start, stop in pieces:
        for n, result in enumerate(iter_file(f, start=start, stop=stop)):
            stats["rows"] += 1
            if result.error is not None:
                if on_error == "raise":
                    raise result.error
                stats["errors"].append(str(result.error))
                continue
            if result.format:
                stats["formats"][result.format] = stats["formats"].get(result.format, 0) + 1
            for k, imported in enumerate(result.imported):
                traj = imported.trajectory
                stats["trajectories"] += 1
                stats["tool_sets"]["recorded" if traj.tools else "default"] += 1
                for skip in imported.skipped:
                    stats["skipped_steps"][skip.reason] = stats["skipped_steps"].get(skip.reason, 0) + 1
                tid = trajectory_key(traj, k, f"{Path(f).name}:{start + n}")
                rows = expand(
                    traj,
                    context_steps=context_steps,
                    max_obs_tokens=max_obs_tokens,
                    truncator=truncator,
                    trajectory_id=tid,
                )
                if rows:
                    stats["trajectory_ids"].append(tid)
                stats["instances"] += len(rows)
                yield from rows


def _write_shard(
    pieces: list[tuple[str, int, int | None]],
    dest: str,
    context_steps: int,
    max_obs_tokens: int | None,
    tokenizer: str | None,
    on_error: str = "raise",
) -> dict[str, Any]:
    """Expand `pieces` into an Arrow stream file (the format `datasets` memory-maps), in batches;
    returns the shard's counts (`_empty_stats`)."""
    import pyarrow as pa

    schema = features().arrow_schema
    stats = _empty_stats()
    batch: list[dict[str, Any]] = []
    with pa.OSFile(dest, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for row in _rows(pieces, context_steps, max_obs_tokens, tokenizer, on_error, stats):
            batch.append(row)
            if len(batch) >= _BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return stats


def _merge(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key in ("rows", "trajectories", "instances"):
        total[key] += part[key]
    for key in ("tool_sets", "formats", "skipped_steps"):
        for k, v in part[key].items():
            total[key][k] = total[key].get(k, 0) + v
    total["errors"] += part["errors"]
    total["trajectory_ids"] += part["trajectory_ids"]


_BATCH_ROWS = 1000
_SHARD_BYTES = 200 * 2**20


class _SplitWriter:
    """Writes one split of a `save_to_disk` folder from record batches: Arrow stream files of at most
    ~200 MB (``data-0000i-of-0000n.arrow``), ``state.json`` and ``dataset_info.json``, as `datasets`
    writes them; `load_from_disk` reads the result (and `build_dataset` loads it back before returning).
    Batches are written as they come, so no split is ever held or memory-mapped whole."""

    def __init__(self, folder: Path, schema) -> None:
        self.folder, self.schema = folder, schema
        folder.mkdir(parents=True)
        self.files: list[Path] = []
        self.rows = 0
        self._sink = self._writer = None
        self._bytes = 0

    def _open(self) -> None:
        import pyarrow as pa

        path = self.folder / f"part-{len(self.files):05d}.arrow"
        self.files.append(path)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        self._bytes = 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None

    def write(self, batch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None or self._bytes >= _SHARD_BYTES:
            self._close_file()
            self._open()
        self._writer.write_batch(batch)
        self._bytes += batch.nbytes
        self.rows += batch.num_rows

    def close(self) -> int:
        from datasets import DatasetInfo

        if not self.files:
            self._open()  # an empty split still gets one (empty) file: `load_from_disk` needs one
        self._close_file()
        n = len(self.files)
        names = []
        for i, f in enumerate(self.files):
            name = f"data-{i:05d}-of-{n:05d}.arrow"
            f.rename(self.folder / name)
            names.append(name)
        DatasetInfo(features=features()).write_to_directory(str(self.folder))
        digest = hashlib.sha1(f"{self.folder}:{self.rows}:{names}".encode()).hexdigest()[:16]
        state = {
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": digest,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        (self.folder / "state.json").write_text(json.dumps(state, indent=2))
        return self.rows


def _write_splits(shard_files: list[str], out: Path, validation: set[str]) -> dict[str, int]:
    """Stream the shard files into the train / validation splits of a `save_to_disk` folder at `out`
    (read with buffered reads, batch by batch: nothing is memory-mapped whole); returns the row counts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = features().arrow_schema
    out.mkdir(parents=True)
    writers = {
        "train": _SplitWriter(out / "train", schema),
        "validation": _SplitWriter(out / "validation", schema),
    }
    value_set = pa.array(sorted(validation), pa.string())
    for path in shard_files:
        with pa.OSFile(path, "rb") as source:
            for batch in pa.ipc.open_stream(source):
                in_val = pc.is_in(batch.column("trajectory_id"), value_set=value_set)
                writers["validation"].write(batch.filter(in_val))
                writers["train"].write(batch.filter(pc.invert(in_val)))
    counts = {name: w.close() for name, w in writers.items()}
    (out / "dataset_dict.json").write_text(json.dumps({"splits": list(writers)}))
    return counts


BUILD_REPORT = "build_report.json"


def read_build_report(out: str | Path) -> dict[str, Any]:
    """The counts `build_dataset` saved beside the data set (rows, trajectories, instances, tool sets
    recorded by the source vs our default, formats, skipped steps, failed rows)."""
    return json.loads((Path(out) / BUILD_REPORT).read_text())


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
    on_error: Literal["raise", "skip"] = "raise",
    progress: Callable[[int], None] | None = None,
):
    """Expand every trajectory under `paths` and save a train/validation `DatasetDict` to `out`.

    The files are cut into contiguous shards; `num_proc` processes each import, truncate (one batch
    tokenizer call per trajectory) and stream rows to an Arrow file in batches of 1,000, so memory
    stays flat however many trajectories there are. The shards are then memory-mapped, split by
    trajectory and saved. Returns the saved `DatasetDict` (loaded from `out`); the counts are saved
    beside it (`read_build_report`).

    A row that fails to import raises (``on_error="raise"``) or is skipped and listed in the report
    (``"skip"``). `progress(n)` is called with the number of shards finished so far.
    """
    from datasets import load_from_disk

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
    num_proc = max(1, num_proc)
    shards = _pieces(files, 4 * num_proc)
    stats = _empty_stats()
    with tempfile.TemporaryDirectory(prefix=".srl-data-", dir=out.parent) as tmp:
        dests = [str(Path(tmp) / f"shard-{i:05d}.arrow") for i in range(len(shards))]
        args = [
            (sh, d, context_steps, max_obs_tokens, tokenizer, on_error)
            for sh, d in zip(shards, dests, strict=True)
        ]
        if num_proc == 1 or len(shards) == 1:
            parts = map(lambda a: _write_shard(*a), args)
            for i, part in enumerate(parts, start=1):
                _merge(stats, part)
                if progress:
                    progress(i)
        else:
            ctx = multiprocessing.get_context(
                "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            )
            with ProcessPoolExecutor(min(num_proc, len(shards)), mp_context=ctx) as pool:
                for i, part in enumerate(pool.map(_write_shard, *zip(*args, strict=True)), start=1):
                    _merge(stats, part)
                    if progress:
                        progress(i)
        if stats["instances"] == 0:
            detail = f": {stats['errors'][0]}" if stats["errors"] else ""
            raise ValueError(f"no step-wise instances from {', '.join(map(str, paths))}{detail}")
        ids = stats.pop("trajectory_ids")
        val = validation_ids(ids, val_fraction, seed)
        if out.exists():
            shutil.rmtree(out)
        stats["splits"] = _write_splits(dests, out, val)
        (out / BUILD_REPORT).write_text(json.dumps(stats, indent=1) + "\n")
    return load_from_disk(str(out))
