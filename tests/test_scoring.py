"""Step reward and outcome reward on literal strings; `srl score`."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srl_agent.cli import app
from trajectories.scoring import (
    make_step_reward_func,
    outcome_reward,
    similarity,
    step_reward,
    step_reward_func,
)

LS = "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
LS_LA = "<function=bash>\n<parameter=command>\nls -la\n</parameter>\n</function>"


def answer(action: str, thought: str = "Look around.") -> str:
    return f"<think>\n{thought}\n</think>\n{action}"


def test_identical_action_scores_one() -> None:
    for mode in ("difflib", "exact", "fast"):
        assert step_reward(answer(LS), LS, mode=mode) == 1.0


def test_formatting_noise_is_normalised_before_comparing() -> None:
    sloppy = "<think>x</think>\n\n  <function=bash><parameter=command>ls</parameter></function>  \n"
    assert step_reward(sloppy, LS) == 1.0


@pytest.mark.parametrize(
    "pred",
    [
        "",
        "ls -la",
        LS,  # no think block
        "<think>x</think>",  # no action
        answer(LS + "\n" + LS),  # two actions
        answer(LS) + "\nthanks",  # text after the action
        answer("<function=bash>\n<parameter=command>\nls\n</function>"),  # unclosed parameter
    ],
)
def test_unparsable_answers_score_minus_one(pred: str) -> None:
    for mode in ("difflib", "exact", "fast"):
        assert step_reward(pred, LS, mode=mode) == -1.0


def test_known_difflib_value() -> None:
    # LS has 63 characters, LS_LA 67; all 63 of LS lie in matching blocks: 2*63/130
    assert len(LS) == 63 and len(LS_LA) == 67
    assert step_reward(answer(LS_LA), LS, mode="difflib") == pytest.approx(126 / 130)
    assert step_reward(answer(LS_LA), LS, mode="exact") == 126 / 130


def test_exact_mode_equals_difflib_and_fast_is_never_lower() -> None:
    pairs = [
        (LS, LS_LA),
        ("<function=submit>\n</function>", LS),
        ("abcdxyz" * 40, "xyzabcd" * 40),
        ("def f(x):\n    return x\n" * 12, "def g(y):\n    return y + 1\n" * 12),
    ]
    for a, b in pairs:
        for autojunk in (False, True):
            d = difflib.SequenceMatcher(None, a, b, autojunk=autojunk).ratio()
            assert similarity(a, b, mode="exact", autojunk=autojunk) == d
        assert (
            similarity(a, b, mode="fast")
            >= difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() - 1e-12
        )
    assert similarity("abcd", "bcda", mode="fast") == 0.75  # LCS 3 -> 2*3/8
    with pytest.raises(ValueError):
        similarity("a", "b", mode="nope")  # type: ignore[arg-type]


def test_autojunk_distorts_long_actions() -> None:
    body = "x = compute(alpha, beta)\n" * 20
    expert = f"<function=bash>\n<parameter=command>\ncat > f.py <<'EOF'\n{body}EOF\n</parameter>\n</function>"
    assert len(expert) > 200
    indented = expert.replace("x = compute", "    x = compute")
    fair = step_reward(answer(indented), expert)  # default: autojunk=False
    junked = step_reward(answer(indented), expert, autojunk=True)
    assert fair == difflib.SequenceMatcher(None, indented, expert, autojunk=False).ratio()
    assert fair > 0.85
    assert junked < 0.2  # the heuristic throws away every common character of the long text
    short_a, short_b = LS, LS_LA  # under 200 characters autojunk never applies
    assert similarity(short_a, short_b, autojunk=True) == similarity(short_a, short_b, autojunk=False)


def test_batch_reward_function_for_trl() -> None:
    completions = [answer(LS), [{"role": "assistant", "content": answer(LS_LA)}], "garbage"]
    rewards = step_reward_func(completions, expert_action=[LS, LS, LS], prompt=["p"] * 3, step=[0, 1, 2])
    assert rewards == [1.0, 126 / 130, -1.0]
    assert step_reward_func.__name__ == "step_reward_func"
    fast = make_step_reward_func("fast")
    assert fast.__name__ == "step_reward_fast"
    assert fast(completions, expert_action=[LS] * 3)[0] == 1.0
    with pytest.raises(ValueError):
        step_reward_func(completions, expert_action=[LS])


def test_outcome_reward() -> None:
    assert outcome_reward(True, False) == 1.0
    assert outcome_reward(False, False) == 0.0
    assert outcome_reward(None, False) == 0.0
    assert outcome_reward(True, True) == -1.0


def test_cli_score(tmp_path: Path) -> None:
    rows = [
        {"trajectory_id": "t1", "instance_id": "i1", "step": 0, "expert_action": LS, "tool": "bash"},
        {
            "trajectory_id": "t1",
            "instance_id": "i1",
            "step": 1,
            "expert_action": "<function=submit>\n</function>",
            "tool": "submit",
        },
        {"trajectory_id": "t2", "instance_id": "i2", "step": 0, "expert_action": LS, "tool": "bash"},
    ]
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        json.dumps({"trajectory_id": "t1", "step": 0, "prediction": answer(LS)})
        + "\n"
        + json.dumps({"instance_id": "i1", "step": 1, "prediction": "nope"})
        + "\n"
        + json.dumps({"trajectory_id": "t2", "step": 0, "prediction": answer(LS_LA)})
        + "\n"
    )
    res = CliRunner().invoke(app, ["score", "--dataset", str(ds), "--predictions", str(preds), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["n_scored"] == 3
    assert summary["mean_reward"] == pytest.approx((1.0 - 1.0 + 126 / 130) / 3)
    assert summary["format_error_rate"] == pytest.approx(1 / 3)
    assert summary["per_tool"]["submit"] == {"n": 1, "mean_reward": -1.0}
    preds.write_text(json.dumps({"trajectory_id": "t1", "step": 0, "prediction": "x", "extra": 1}) + "\n")
    res = CliRunner().invoke(app, ["score", "--dataset", str(ds), "--predictions", str(preds)])
    assert res.exit_code != 0 and "extra" in res.output


def test_cli_score_input_errors(tmp_path: Path) -> None:
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"trajectory_id": "t1", "step": 0, "prediction": answer(LS)}) + "\n")
    not_a_dataset = tmp_path / "traj.jsonl"
    not_a_dataset.write_text(json.dumps({"instance_id": "i1", "steps": []}) + "\n")
    runner = CliRunner(env={"COLUMNS": "250"})  # error boxes on one line
    res = runner.invoke(app, ["score", "--dataset", str(not_a_dataset), "--predictions", str(preds)])
    assert res.exit_code == 2 and "missing column(s)" in res.output
    res = runner.invoke(app, ["score", "--dataset", str(tmp_path), "--predictions", str(preds)])
    assert res.exit_code == 2 and "not a data set directory" in res.output
    res = runner.invoke(app, ["score", "--dataset", str(not_a_dataset), "--predictions", str(tmp_path / "x")])
    assert res.exit_code == 2 and "does not exist" in res.output
