"""Predictions in SWE-bench format: what a model proposes for each task instance.

Accepted files:

- a JSON array of ``{"instance_id", "model_name_or_path", "model_patch"}`` objects (SWE-bench);
- a JSON object keyed by instance id with such objects as values (mini-swe-agent's ``preds.json``);
- JSON Lines, one object per line (SWE-agent's ``all_preds.jsonl``).

Every error names the file, the line and the field, and says what was expected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from trajectories.errors import SrlSweError

GOLD = "gold"


class PredictionsError(SrlSweError, ValueError):
    """The predictions file cannot be used; the message names file, line and field."""


class Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_id: str
    model_name_or_path: str
    model_patch: str | None

    @property
    def patch_sha256(self) -> str:
        return hashlib.sha256((self.model_patch or "").encode()).hexdigest()

    @property
    def model_dir(self) -> str:
        """The model name as one safe path component (``org/model`` -> ``org__model``)."""
        return safe_name(self.model_name_or_path)


def safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "__", name.strip()).strip(".")
    return cleaned or "model"


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_error(path: Path, exc: json.JSONDecodeError, line_offset: int = 0) -> PredictionsError:
    return PredictionsError(
        f"{path}:{exc.lineno + line_offset}: invalid JSON: {exc.msg} (column {exc.colno})"
    )


def _entries_json(path: Path, text: str) -> list[tuple[int, object, str | None]]:
    """(line, value, key) for each element of a top-level JSON array or object, with its line."""
    decoder = json.JSONDecoder()
    try:
        decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise _json_error(path, exc) from None
    pos = _skip_ws(text, 0)
    opener = text[pos]
    if opener not in "[{":
        raise PredictionsError(
            f"{path}:{_line_of(text, pos)}: expected a JSON array or object of predictions, got {text[pos : pos + 20]!r}"
        )
    closer = "]" if opener == "[" else "}"
    pos = _skip_ws(text, pos + 1)
    out: list[tuple[int, object, str | None]] = []
    while text[pos] != closer:
        key = None
        if opener == "{":
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            pos = _skip_ws(text, pos + 1)  # the colon
        value, end = decoder.raw_decode(text, pos)
        out.append((_line_of(text, pos), value, key))
        pos = _skip_ws(text, end)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    return out


def _entries_jsonl(path: Path, text: str) -> list[tuple[int, object, str | None]]:
    out: list[tuple[int, object, str | None]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line), None))
        except json.JSONDecodeError as exc:
            raise _json_error(path, exc, line_offset=number - 1) from None
    return out


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"]) or "(entry)"
        if err["type"] == "missing":
            parts.append(
                f"field {field!r} is missing (expected instance_id, model_name_or_path, model_patch)"
            )
        elif err["type"] == "extra_forbidden":
            parts.append(
                f"unexpected field {field!r} (expected instance_id, model_name_or_path, model_patch)"
            )
        else:
            parts.append(f"field {field!r}: {err['msg']}")
    return "; ".join(parts)


def load_predictions(
    path: str | Path,
    *,
    known_ids: Iterable[str] | None = None,
) -> list[Prediction]:
    """Read and validate a predictions file; raise `PredictionsError` at the first problem.

    With ``known_ids``, an instance id that no task has is an error naming its line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PredictionsError(f"{path}: cannot read the predictions file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PredictionsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise PredictionsError(f"{path}: the predictions file is empty")
    is_jsonl = path.suffix == ".jsonl" or (text.lstrip()[:1] == "{" and _looks_like_jsonl(text))
    entries = _entries_jsonl(path, text) if is_jsonl else _entries_json(path, text)
    known = set(known_ids) if known_ids is not None else None
    seen: dict[str, int] = {}
    predictions: list[Prediction] = []
    for line, value, key in entries:
        where = f"{path}:{line}"
        if not isinstance(value, dict):
            raise PredictionsError(
                f"{where}: expected a JSON object with instance_id, model_name_or_path, "
                f"model_patch, got {type(value).__name__}"
            )
        if key is not None and "instance_id" not in value:
            value = {**value, "instance_id": key}
        try:
            pred = Prediction.model_validate(value)
        except ValidationError as exc:
            raise PredictionsError(f"{where}: {_describe(exc)}") from None
        if key is not None and key != pred.instance_id:
            raise PredictionsError(f"{where}: key {key!r} differs from its instance_id {pred.instance_id!r}")
        if pred.instance_id in seen:
            raise PredictionsError(
                f"{where}: duplicate instance_id {pred.instance_id!r} (first at line {seen[pred.instance_id]})"
            )
        if known is not None and pred.instance_id not in known:
            sample = ", ".join(sorted(known)[:5])
            raise PredictionsError(
                f"{where}: unknown instance_id {pred.instance_id!r}: no such task in the task source"
                f" (known: {sample}{', ...' if len(known) > 5 else ''})"
            )
        seen[pred.instance_id] = line
        predictions.append(pred)
    return predictions


def _looks_like_jsonl(text: str) -> bool:
    """True when the text is several JSON values, one per line (not one pretty-printed object)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.msg == "Extra data"
    return False


def gold_predictions(tasks: Iterable) -> list[Prediction]:
    """One prediction per task: its gold patch, under the model name ``gold``."""
    return [
        Prediction(instance_id=t.instance_id, model_name_or_path=GOLD, model_patch=t.patch) for t in tasks
    ]
