"""Predictions files: the three SWE-bench shapes, and errors that name the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.predictions import PredictionsError, gold_predictions, load_predictions, safe_name


def _pred(i: str, patch: str | None = "diff") -> dict:
    return {"instance_id": i, "model_name_or_path": "org/model", "model_patch": patch}


def test_json_list(tmp_path: Path) -> None:
    p = tmp_path / "preds.json"
    p.write_text(json.dumps([_pred("a"), _pred("b", None)], indent=2))
    preds = load_predictions(p, known_ids={"a", "b"})
    assert [x.instance_id for x in preds] == ["a", "b"]
    assert preds[1].model_patch is None
    assert preds[0].model_dir == "org__model"


def test_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "all_preds.jsonl"
    p.write_text(json.dumps(_pred("a")) + "\n\n" + json.dumps(_pred("b")) + "\n")
    assert [x.instance_id for x in load_predictions(p)] == ["a", "b"]
    q = tmp_path / "preds.json"  # JSON Lines under a .json name
    q.write_text(p.read_text())
    assert len(load_predictions(q)) == 2


def test_dict_keyed_by_instance(tmp_path: Path) -> None:
    p = tmp_path / "preds.json"
    p.write_text(json.dumps({"a": _pred("a"), "b": {"model_name_or_path": "m", "model_patch": ""}}, indent=1))
    preds = load_predictions(p)
    assert [x.instance_id for x in preds] == ["a", "b"]


def test_bad_json_names_line(tmp_path: Path) -> None:
    p = tmp_path / "preds.json"
    p.write_text(
        '[\n  {"instance_id": "a", "model_name_or_path": "m", "model_patch": ""},\n  {"instance_id": \n]\n'
    )
    with pytest.raises(PredictionsError, match=r"preds.json:4: invalid JSON"):
        load_predictions(p)
    q = tmp_path / "preds.jsonl"
    q.write_text(json.dumps(_pred("a")) + "\n{oops\n")
    with pytest.raises(PredictionsError, match=r"preds.jsonl:2: invalid JSON"):
        load_predictions(q)


def test_missing_field_names_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "preds.json"
    p.write_text(json.dumps([_pred("a"), {"instance_id": "b", "model_patch": ""}], indent=2))
    with pytest.raises(PredictionsError, match=r"preds.json:7: field 'model_name_or_path' is missing"):
        load_predictions(p)


def test_extra_field_and_wrong_type(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({**_pred("a"), "cost": 1}) + "\n")
    with pytest.raises(PredictionsError, match=r"p.jsonl:1: unexpected field 'cost'"):
        load_predictions(p)
    p.write_text(json.dumps({**_pred("a"), "model_patch": 3}) + "\n")
    with pytest.raises(PredictionsError, match=r"p.jsonl:1: field 'model_patch'"):
        load_predictions(p)
    p.write_text("[1]")
    with pytest.raises(PredictionsError, match=r"expected a JSON object"):
        load_predictions(p.rename(tmp_path / "p.json"))


def test_unknown_instance_names_line(tmp_path: Path) -> None:
    p = tmp_path / "preds.jsonl"
    p.write_text(json.dumps(_pred("a")) + "\n" + json.dumps(_pred("zzz")) + "\n")
    with pytest.raises(PredictionsError, match=r"preds.jsonl:2: unknown instance_id 'zzz'"):
        load_predictions(p, known_ids={"a"})


def test_duplicate_instance(tmp_path: Path) -> None:
    p = tmp_path / "preds.jsonl"
    p.write_text(json.dumps(_pred("a")) + "\n" + json.dumps(_pred("a")) + "\n")
    with pytest.raises(
        PredictionsError, match=r"preds.jsonl:2: duplicate instance_id 'a' \(first at line 1\)"
    ):
        load_predictions(p)


def test_empty_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text("  \n")
    with pytest.raises(PredictionsError, match="empty"):
        load_predictions(tmp_path / "e.json")
    with pytest.raises(PredictionsError, match="cannot read"):
        load_predictions(tmp_path / "nope.json")


def test_gold_and_safe_name() -> None:
    class T:
        instance_id, patch = "a", "diff --git"

    (g,) = gold_predictions([T()])
    assert (g.instance_id, g.model_name_or_path, g.model_patch) == ("a", "gold", "diff --git")
    assert safe_name("../../etc") == "__etc" or "/" not in safe_name("../../etc")
