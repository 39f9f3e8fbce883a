"""`srl experiment`: equal token budgets, bootstrap intervals, paired comparison, resume, the RLVR stop.

The training tests run the real trainers (TRL SFT / GRPO) on a tiny random model and the tiny step-wise
data set; the RLVR-alone test plays real sandboxed episodes (Docker).
"""

from __future__ import annotations

import json
import random
import statistics

import pytest

from srl_agent.experiment import ExperimentConfig, bootstrap_ci, paired_comparison, run_experiment

BUDGET = 700


def _config(tiny, steps, root, **overrides) -> ExperimentConfig:
    fields = dict(
        name="tiny",
        root=root,
        model=tiny,
        dataset=steps,
        arms=["sft", "srl"],
        budget_tokens=BUDGET,
        warmup_steps=1,
        train={"max_prompt_tokens": 512, "max_completion_length": 16, "lora": {"enabled": False}},
        sft={"batch_size": 2, "lr": 1e-4},
        # a random model's answers all score -1: without dynamic sampling the steps still run (and count)
        srl={"batch_size": 1, "num_generations": 2, "dynamic_sampling": {"enabled": False}},
        bootstrap_samples=200,
        eval_batch_size=4,
    )
    return ExperimentConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def finished(tiny, steps, tmp_path_factory):
    cfg = _config(tiny, steps, tmp_path_factory.mktemp("experiments"))
    return cfg, run_experiment(cfg)


def test_every_arm_stops_once_its_token_budget_is_spent(finished):
    cfg, report = finished
    assert report["budget"] == {"unit": "training tokens", "per_arm": BUDGET}
    for arm in ("sft", "srl"):
        rec = report["arms"][arm]
        per_step = json.loads((cfg.out_dir / "arms" / arm / arm / "train_tokens.json").read_text())[
            "per_step"
        ]
        assert rec["tokens"] == per_step[-1]["tokens"] >= BUDGET  # spent the budget ...
        assert (
            len(per_step) == 1 or per_step[-2]["tokens"] < BUDGET
        )  # ... and stopped at the first step that did
        assert rec["steps"] == len(per_step) < cfg.max_steps_per_arm
    # the arms spend tokens at different rates (GRPO samples; SFT reads), so equal budgets mean different steps
    assert report["arms"]["sft"]["steps"] != report["arms"]["srl"]["steps"]


def test_report_has_intervals_paired_comparisons_and_files(finished):
    cfg, report = finished
    data = report["data"]
    # the tiny set's first validation row shares its trajectory with training rows: held out means unseen
    assert data["dropped_shared_trajectory_steps"] == 1 and data["evaluated_steps"] == 3
    for rec in [report["start"], *report["arms"].values()]:
        ev = rec["eval"]
        lo, hi = ev["mean_reward_ci95"]
        assert ev["n"] == 3 and lo <= ev["mean_reward"] <= hi
    pairs = {(p["a"], p["b"]) for p in report["paired"]}
    assert pairs == {("start", "sft"), ("start", "srl"), ("sft", "srl")}
    for name in ("report.json", "report.md", "report.png"):
        assert (cfg.out_dir / name).stat().st_size > 0
    assert "| sft | " in (cfg.out_dir / "report.md").read_text()


def test_resume_reuses_finished_arms_and_reruns_only_the_missing_one(finished):
    cfg, report = finished
    arms = cfg.out_dir / "arms"
    sft_model = arms / "sft" / "sft" / "model.safetensors"
    stamp = sft_model.stat().st_mtime_ns
    (arms / "srl" / "result.json").unlink()  # srl "was interrupted"
    again = run_experiment(cfg)
    assert sft_model.stat().st_mtime_ns == stamp  # the finished arm was not retrained
    assert again["arms"]["sft"] == report["arms"]["sft"]
    assert (arms / "srl" / "result.json").is_file()
    assert again["arms"]["srl"]["tokens"] == report["arms"]["srl"]["tokens"]  # same seed, same spend


def test_bootstrap_interval_covers_the_true_mean_at_its_level():
    rng = random.Random(1)
    true_mean, sd, n, reps = 0.3, 1.0, 60, 200
    hits, widths = 0, []
    for rep in range(reps):
        xs = [rng.gauss(true_mean, sd) for _ in range(n)]
        lo, hi = bootstrap_ci(xs, samples=400, seed=rep)
        hits += lo <= true_mean <= hi
        widths.append(hi - lo)
    assert 0.89 <= hits / reps <= 0.99
    expected = 2 * 1.96 * sd / n**0.5  # the normal interval's width
    assert abs(statistics.mean(widths) - expected) / expected < 0.1


def test_bootstrap_interval_of_a_constant_is_that_constant():
    assert bootstrap_ci([0.25] * 10) == (0.25, 0.25)


def test_paired_comparison_sees_a_small_shift_that_separate_intervals_miss():
    rng = random.Random(0)
    a = [rng.uniform(-1, 1) for _ in range(200)]  # steps differ a lot from one another ...
    b = [x + 0.05 + rng.gauss(0, 0.02) for x in a]  # ... and b is a little better on each
    ia, ib = bootstrap_ci(a), bootstrap_ci(b)
    assert ib[0] < ia[1]  # the two intervals overlap: alone they cannot tell
    cmp = paired_comparison(a, b)
    assert cmp["excludes_zero"] and 0.04 < cmp["ci95"][0] < cmp["mean_difference"] < cmp["ci95"][1] < 0.06
    assert cmp["better"] > 190 and cmp["n"] == 200
    same = paired_comparison(a, a)
    assert same["mean_difference"] == 0 and same["ci95"] == [0, 0] and same["equal"] == 200
    with pytest.raises(ValueError, match="same items"):
        paired_comparison(a, b[:-1])


def test_bad_arm_options_fail_naming_the_section(tiny, steps, tmp_path):
    from srl_agent.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"srl / train sections .*bogus"):
        load_config(ExperimentConfig, None, {"srl": {"bogus": 1}})
    with pytest.raises(ConfigError, match="arms"):
        load_config(ExperimentConfig, None, {"arms": ["sft", "dpo"]})


@pytest.mark.docker
@pytest.mark.slow
def test_rlvr_alone_with_no_group_spread_is_reported_as_a_result(tiny, steps, tmp_path, docker_client):
    cfg = _config(
        tiny,
        steps,
        tmp_path,
        name="rlvr",
        arms=["rlvr"],
        warmup_steps=0,
        rlvr={
            "instance_ids": ["cachetools-5.2.0"],
            "batch_size": 1,
            "num_generations": 2,
            "max_turns": 1,
            "dynamic_sampling": {"max_refills": 0},
        },
    )
    report = run_experiment(cfg)  # no exception: the stop is the arm's result
    rec = report["arms"]["rlvr"]
    assert "every episode scored -1" in rec["stopped"] and "--init-from" in rec["stopped"]
    assert rec["steps"] == 0 and rec["tokens"] > 0  # the episodes it played were counted
    assert rec["model"] == report["start"]["model"] == tiny  # nothing trained: the arm keeps its start
    assert rec["eval"]["n"] == 3
    # the start model's held-out answers are reused, not generated a second time
    assert not (cfg.out_dir / "arms" / "rlvr" / "eval.jsonl").exists()
    assert rec["eval"] == report["start"]["eval"]
    assert "stopped: dynamic sampling" in (cfg.out_dir / "report.md").read_text()


def test_held_out_steps_are_shuffled_across_unseen_trajectories(tmp_path):
    from datasets import Dataset, DatasetDict

    from srl_agent.experiment import held_out_split

    def rows(tids):
        return Dataset.from_list(
            [
                {"prompt": [{"role": "user", "content": f"{t} {k}"}], "completion": [], "expert_action": "x",
                 "trajectory_id": t, "step": k}
                for t in tids
                for k in range(10)
            ]
        )  # fmt: skip

    DatasetDict({"train": rows(["a"]), "validation": rows(["a", "b", "c", "d"])}).save_to_disk(
        tmp_path / "ds"
    )
    ordered, counts = held_out_split(tmp_path / "ds", "train", "validation", tmp_path / "h0")
    shuffled, _ = held_out_split(tmp_path / "ds", "train", "validation", tmp_path / "h1", seed=0)
    assert counts["heldout_steps"] == 30 and counts["dropped_shared_trajectory_steps"] == 10
    from datasets import load_from_disk

    first = [r["trajectory_id"] for r in load_from_disk(str(ordered))["heldout"]][:10]
    assert set(first) == {"b"}  # in file order, a limit of 10 would see one trajectory
    mixed = load_from_disk(str(shuffled))["heldout"]
    assert set(mixed["trajectory_id"][:10]) == {"b", "c", "d"}
    assert sorted(zip(mixed["trajectory_id"], mixed["step"], strict=True)) == [
        (t, k) for t in "bcd" for k in range(10)
    ]


def test_without_data_the_error_says_what_to_give(tiny, tmp_path):
    from srl_agent.train.data import DataError

    with pytest.raises(DataError, match="trajectories"):
        run_experiment(ExperimentConfig(model=tiny, root=tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        run_experiment(ExperimentConfig(model=tiny, root=tmp_path, trajectories=tmp_path / "missing"))


def test_cli_rejects_a_bad_field_naming_it(tmp_path):
    from typer.testing import CliRunner

    from srl_agent.cli import app

    res = CliRunner().invoke(app, ["experiment", "--set", "sft.bogus=1", "--set", f"root={tmp_path}"])
    assert res.exit_code == 2, res.output
    assert "sft / train sections" in res.output and "bogus" in res.output
    assert not any(tmp_path.iterdir())  # nothing ran
