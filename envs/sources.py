"""Where tasks come from. Every source produces `TaskSpec`s; one bad task never stops the rest.

A *source* string is one of:

- nothing: the bundled ``examples`` pack;
- the name of a bundled pack (``envs/tasks/<pack>/``) or of a plug-in pack registered under the
  entry-point group ``srl_swe.tasks``;
- a directory of task files (``<task>.yaml``, searched recursively, ``repos/`` skipped);
- a single task file (``.yaml`` / ``.yml``);
- a SWE-bench-format ``.json`` (array or one object) or ``.jsonl`` file;
- a Hugging Face ``datasets`` data set saved with ``save_to_disk`` (a directory; all splits).

SWE-bench records name their repo ``owner/name``. With ``repos=DIR`` such a repo resolves to
``DIR/owner__name`` (a checkout) or ``DIR/owner__name.bundle``; without it, to the public GitHub URL.
Relative ``repo_source`` paths in task files are relative to the file; ``pypi:NAME==VERSION`` is a
release's source distribution (`envs.pypi`). A task file with a ``recipe`` gets its repo source, base
commit and patches from the package index when it is loaded (`envs.recipes`); one that cannot be
materialized (e.g. offline with a cold cache) is a load error on the field ``recipe``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from envs import swebench_specs
from envs.recipes import RecipeError, apply_recipe
from envs.spec import TaskSpec
from envs.swebench_eval import EvalScriptError
from trajectories.errors import SrlSweError

ENTRY_POINT_GROUP = "srl_swe.tasks"
#: libyaml's loader when available (~10x faster on packs with large patches), same safe semantics.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_SOURCE = "examples"

#: Columns of the SWE-bench family that are not TaskSpec fields: kept in `metadata` without a warning
#: (SWE-bench Full/Lite, Verified's `difficulty`, Multimodal's `image_assets`, the newer revisions'
#: `image`/`eval_script`/`eval_type`, SWE-smith's `image_name`, SWE-agent's `base_commit_with_tests`).
#: Any other unknown column goes to `metadata` too, with one warning per source naming them.
_SWEBENCH_EXTRA = (
    "created_at",
    "version",
    "environment_setup_commit",
    "fix_commit",
    "query",
    "task_id",
    "difficulty",
    "image_assets",
    "image",
    "image_name",
    "eval_script",
    "eval_type",
    "base_commit_with_tests",
)


@dataclass(frozen=True)
class TaskLoadError:
    """One task (or file) that could not be loaded: where, which field, what was wrong."""

    location: str
    message: str
    field: str | None = None
    instance_id: str | None = None

    def __str__(self) -> str:
        where = self.location + (f" [{self.instance_id}]" if self.instance_id else "")
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


@dataclass
class LoadResult:
    tasks: list[TaskSpec] = field(default_factory=list)
    errors: list[TaskLoadError] = field(default_factory=list)
    #: Things loaded with a caveat (e.g. unknown SWE-bench columns kept in metadata), one per source.
    warnings: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, TaskSpec]:
        return {t.instance_id: t for t in self.tasks}

    def get(self, instance_id: str) -> TaskSpec:
        return self.select([instance_id])[0]

    def select(self, ids: list[str]) -> list[TaskSpec]:
        """The tasks named by `ids`, in that order (all of them when `ids` is empty); `UnknownTaskIds`
        names every id the source lacks and the first ten it has."""
        if not ids:
            return list(self.tasks)
        known = self.by_id()
        missing = [i for i in ids if i not in known]
        if missing:
            raise UnknownTaskIds(missing, sorted(known))
        return [known[i] for i in ids]


class UnknownTaskIds(SrlSweError, KeyError):
    """Task ids asked for that the loaded source does not have."""

    def __init__(self, missing: list[str], known: list[str]):
        self.missing, self.known = missing, known
        super().__init__(
            f"unknown task id(s): {', '.join(missing)} (known: {', '.join(known[:10]) or 'none'})"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TaskSourceError(SrlSweError, ValueError):
    """The source itself cannot be read (not found, unknown format)."""


# --------------------------------------------------------------------------------------- helpers


def bundled_tasks_root() -> Path:
    return Path(str(resources.files("envs") / "tasks"))


def bundled_packs() -> list[str]:
    root = bundled_tasks_root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def plugin_packs() -> dict[str, importlib_metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _validation_errors(exc: ValidationError, location: str, instance_id: str | None) -> list[TaskLoadError]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not a TaskSpec field; see envs/spec.py)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error",):
            msg += f" (got {type(err['input']).__name__} {str(err['input'])[:60]!r})"
        out.append(TaskLoadError(location, msg, field=loc, instance_id=instance_id))
    return out


def resolve_repo_source(spec: TaskSpec, repos: Path | None, base_dir: Path | None = None) -> TaskSpec:
    """Fill `repo_source`: relative paths against `base_dir`, ``owner/name`` against `repos` or GitHub."""
    src = spec.repo_source
    if src is not None:
        if "://" in src or src.startswith(("git@", "pypi:")):
            return spec
        path = Path(src).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = (base_dir / path).resolve()
        return spec.model_copy(update={"repo_source": str(path)})
    slug = spec.repo_slug
    if slug is None:
        # `repo` itself is a location (path, bundle, URL).
        return resolve_repo_source(spec.model_copy(update={"repo_source": spec.repo}), repos, base_dir)
    if repos is not None:
        stem = slug.replace("/", "__")
        for cand in (repos / stem, repos / f"{stem}.bundle"):
            if cand.exists():
                return spec.model_copy(update={"repo_source": str(cand.resolve())})
        raise FileNotFoundError(f"{slug}: neither {repos / stem} nor {repos / (stem + '.bundle')} exists")
    return spec.model_copy(update={"repo_source": f"https://github.com/{slug}.git"})


def swebench_record_to_dict(record: dict[str, Any], unknown: set[str] | None = None) -> dict[str, Any]:
    """Map one SWE-bench-family row to TaskSpec fields, as its benchmark defines the task.

    Columns that are not TaskSpec fields go to `metadata` (never a rejected row); those not in
    `_SWEBENCH_EXTRA` are also added to `unknown` for the caller's warning. For a repo/version that
    SWE-bench's spec tables know, the environment, test command and log parser come from them
    (`envs.swebench_specs`) unless the row sets them itself.
    """
    data = dict(record)
    meta = dict(data.pop("metadata", None) or {})
    if "hints_text" in data:
        hints = data.pop("hints_text")
        if hints:
            data["hints"] = hints
    for key in list(data):
        if key not in TaskSpec.model_fields:
            meta[key] = data.pop(key)
            if key not in _SWEBENCH_EXTRA and unknown is not None:
                unknown.add(key)
    if isinstance(data.get("log_parser"), str):  # newer SWE-bench rows: "parse_log_django"
        data["log_parser"] = data["log_parser"].removeprefix("parse_log_")
    if meta:
        data["metadata"] = meta
    return swebench_specs.apply_spec(data)


# --------------------------------------------------------------------------------------- loaders


def _records_to_specs(
    records: Iterable[tuple[str, dict[str, Any]]],
    result: LoadResult,
    repos: Path | None,
    base_dir: Path | None,
    swebench: bool,
) -> None:
    unknown: set[str] = set()
    first_location: str | None = None
    for location, record in records:
        first_location = first_location or location
        if not isinstance(record, dict):
            result.errors.append(
                TaskLoadError(location, f"expected a mapping of task fields, got {type(record).__name__}")
            )
            continue
        iid = record.get("instance_id") if isinstance(record.get("instance_id"), str) else None
        try:
            data = swebench_record_to_dict(record, unknown) if swebench else record
        except EvalScriptError as exc:
            result.errors.append(TaskLoadError(location, str(exc), field="eval_script", instance_id=iid))
            continue
        if data.get("recipe") is not None:
            try:
                data = apply_recipe(data)
            except RecipeError as exc:
                result.errors.append(TaskLoadError(location, str(exc), field=exc.field, instance_id=iid))
                continue
        try:
            spec = TaskSpec.model_validate(data)
        except ValidationError as exc:
            result.errors.extend(_validation_errors(exc, location, iid))
            continue
        try:
            spec = resolve_repo_source(spec, repos, base_dir)
        except FileNotFoundError as exc:
            result.errors.append(TaskLoadError(location, str(exc), field="repo", instance_id=iid))
            continue
        result.tasks.append(spec)
    if unknown:
        where = re.sub(r"(:\d+|\[\d+\])$", "", first_location or "(source)")
        result.warnings.append(
            f"{where}: columns that are not task fields kept in metadata: {', '.join(sorted(unknown))}"
        )


def _load_yaml_file(path: Path, result: LoadResult, repos: Path | None) -> None:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        result.errors.append(TaskLoadError(str(path), f"not readable as YAML: {exc}"))
        return
    records = data if isinstance(data, list) else [data]
    _records_to_specs(((str(path), r) for r in records), result, repos, path.parent.resolve(), swebench=False)


def _load_json_file(path: Path, result: LoadResult, repos: Path | None) -> None:
    """SWE-bench-family rows from any container `trajectories.rows` reads: JSONL (.gz), a JSON array or
    object (.gz), Parquet, or a `save_to_disk` folder (rows located as ``folder[split]:N``)."""
    from trajectories.rows import JsonlLineError, RowsError, read_rows

    records: list[tuple[str, Any]] = []
    try:
        for row in read_rows(path):
            if isinstance(row, JsonlLineError):
                result.errors.append(TaskLoadError(f"{row.source}:{row.line_no}", str(row).split(": ", 1)[1]))
            else:
                records.append((row.location, row.data))
    except RowsError as exc:
        msg = str(exc)
        result.errors.append(
            TaskLoadError(str(path), msg[len(f"{path}: ") :] if msg.startswith(f"{path}: ") else msg)
        )
        return
    _records_to_specs(
        records, result, repos, path.parent.resolve() if path.is_file() else None, swebench=True
    )


def _is_hf_dataset_dir(path: Path) -> bool:
    return (path / "dataset_dict.json").exists() or (path / "state.json").exists()


def _load_hf_dataset(path: Path, result: LoadResult, repos: Path | None) -> None:
    _load_json_file(path, result, repos)  # the shared reader streams the Arrow files; no `datasets` needed


#: Row containers of SWE-bench-family tasks (read by `trajectories.rows`, the reader trajectories use too).
_ROW_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".parquet")


def _load_dir(path: Path, result: LoadResult, repos: Path | None) -> None:
    if _is_hf_dataset_dir(path):
        _load_hf_dataset(path, result, repos)
        return
    files = sorted(
        p
        for pattern in ("*.yaml", "*.yml")
        for p in path.rglob(pattern)
        if "repos" not in p.relative_to(path).parts[:-1]
    )
    if not files:
        json_files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_ROW_SUFFIXES))
        if not json_files:
            raise TaskSourceError(
                f"{path}: no task files (*.yaml) and no SWE-bench files (*.json, *.jsonl, *.jsonl.gz, *.parquet)"
            )
        for f in json_files:
            _load_json_file(f, result, repos)
        return
    for f in files:
        _load_yaml_file(f, result, repos)


def _load_plugin(
    name: str, ep: importlib_metadata.EntryPoint, result: LoadResult, repos: Path | None
) -> None:
    """A plug-in entry point is a callable returning TaskSpecs, dicts, or a path to any other source."""
    location = f"entry point {ENTRY_POINT_GROUP}:{name} ({ep.value})"
    try:
        obj: Any = ep.load()
        produced = obj() if callable(obj) else obj
    except Exception as exc:  # a broken plug-in must not take the others down
        result.errors.append(TaskLoadError(location, f"failed to load: {type(exc).__name__}: {exc}"))
        return
    if isinstance(produced, (str, Path)):
        _load_into(str(produced), result, repos)
        return
    records = []
    for i, item in enumerate(produced or []):
        if isinstance(item, TaskSpec):
            item = item.model_dump()
        records.append((f"{location}[{i}]", item))
    _records_to_specs(records, result, repos, None, swebench=False)


def _load_into(source: str, result: LoadResult, repos: Path | None) -> None:
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir():
            _load_dir(path, result, repos)
        elif path.suffix in (".yaml", ".yml"):
            _load_yaml_file(path, result, repos)
        elif path.name.endswith(_ROW_SUFFIXES):
            _load_json_file(path, result, repos)
        else:
            raise TaskSourceError(
                f"{path}: unknown task file type (expected .yaml, .json, .jsonl, .jsonl.gz, .json.gz, .parquet "
                "or a directory)"
            )
        return
    if "/" not in source and source in bundled_packs():
        _load_dir(bundled_tasks_root() / source, result, repos)
        return
    plugins = plugin_packs()
    if source in plugins:
        _load_plugin(source, plugins[source], result, repos)
        return
    known = ", ".join([*bundled_packs(), *plugins]) or "none"
    raise TaskSourceError(
        f"task source {source!r}: no such file or directory, and no pack of that name (packs: {known})"
    )


def load_tasks(source: str | Path | None = None, repos: Path | None = None) -> LoadResult:
    """Load every task of `source` (see the module docstring). Raises `TaskSourceError` only when the
    source as a whole cannot be read; bad tasks are reported in `LoadResult.errors` and skipped."""
    result = LoadResult()
    _load_into(str(source) if source is not None else DEFAULT_SOURCE, result, repos)
    _dedupe(result)
    return result


def _dedupe(result: LoadResult) -> None:
    seen: dict[str, TaskSpec] = {}
    kept: list[TaskSpec] = []
    for spec in result.tasks:
        prev = seen.get(spec.instance_id)
        if prev is None:
            seen[spec.instance_id] = spec
            kept.append(spec)
        elif prev != spec:
            result.errors.append(
                TaskLoadError(
                    "(source)",
                    "duplicate instance_id with different content; the first one is kept",
                    field="instance_id",
                    instance_id=spec.instance_id,
                )
            )
    result.tasks = kept


def write_task(spec: TaskSpec, path: Path, repo_source: str | None = None) -> Path:
    """Write `spec` as a task file (``repo_source`` overridable, e.g. relative to the pack)."""
    data = spec.to_yaml_dict(repo_source)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(text, encoding="utf-8")
    return path


_NOT_LITERAL = re.compile(
    "[^\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029\ufeff]"
)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (patches, problem statements) as readable `|` blocks.

    PyYAML refuses literal blocks for lines with trailing spaces (every diff has them); they round-trip
    fine, so we keep `|` for any printable text.
    """

    def choose_scalar_style(self) -> str:
        if (
            self.event.style == "|"
            and not self.simple_key_context
            and not _NOT_LITERAL.search(self.event.value)
        ):
            return "|"
        return super().choose_scalar_style()


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_BlockDumper.add_representer(str, _str_representer)

LoaderFn = Callable[[], Iterable[TaskSpec | dict[str, Any]] | str | Path]
