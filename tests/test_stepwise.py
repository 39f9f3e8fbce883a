"""Step-wise expansion, prompts, observation truncation, the trajectory-level split, `srl data build`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_fixture
from typer.testing import CliRunner

from srl_agent.cli import app
from trajectories.actions import format_answer, parse_answer, render_action
from trajectories.importers import load_trajectories
from trajectories.prompting import build_messages, system_prompt, truncate_middle
from trajectories.schema import Step, ToolCall, Trajectory
from trajectories.stepwise import COLUMNS, build_dataset, expand, validation_ids
from trajectories.tokens import ObservationTruncator, load_tokenizer
from trajectories.tools import TOOLSETS, get_toolset

TRAJ_DIRS = ("swe-agent", "mini-swe-agent", "openhands", "openai-messages")


def traj_dirs() -> list[Path]:
    """The shared folders of agent-run files (not task rows), skipping the test where they are absent."""
    return [shared_fixture(d) for d in TRAJ_DIRS]


ISSUE = "<issue>\nadd() returns the wrong sum.\n</issue>\n\n"
LS = "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
CAT = "<function=bash>\n<parameter=command>\ncat calc.py\n</parameter>\n</function>"
SED = "<function=bash>\n<parameter=command>\nsed -i 's/a - b/a + b/' calc.py\n</parameter>\n</function>"
SYSTEM_BASH_ONLY = (
    "Resolve the issue in the repository with the tools below, one call per answer; each call's output "
    "follows.\n\n"
    "# Tools\n"
    "## bash\nRun a command in a bash shell in the repository's working directory and return its output.\n"
    "- command (string, required): The bash command to run.\n"
    "## submit\nSubmit the current changes to the repository and end the task.\n\n"
    "# Answer format\n"
    "Think inside <think>...</think>, then write exactly one tool call and nothing after it:\n"
    "<think>\nI should look at the repository layout first.\n</think>\n" + LS + "\n"
    "Values are plain text (no quotes or escaping); leave out optional parameters you don't need. Call "
    "`submit` once the issue is resolved."
)


@pytest.fixture
def four_steps() -> Trajectory:
    return Trajectory(
        instance_id="demo__demo-1",
        source_format="srl",
        trajectory_id="demo-run",
        problem_statement="add() returns the wrong sum.\n",
        metadata={"toolset": "bash_only"},
        steps=[
            Step(
                thought="Look around.",
                action=ToolCall(name="bash", arguments={"command": "ls"}),
                observation="calc.py\n",
            ),
            Step(
                thought="Read it.",
                action=ToolCall(name="bash", arguments={"command": "cat calc.py"}),
                observation="def add(a, b):\n    return a - b\n",
            ),
            Step(
                thought="Fix the operator.",
                action=ToolCall(name="bash", arguments={"command": "sed -i 's/a - b/a + b/' calc.py"}),
                observation="",
            ),
            Step(
                thought="Done.", action=ToolCall(name="submit"), observation="diff --git a/calc.py b/calc.py"
            ),
        ],
    )


def test_four_step_expansion_exact_prompts(four_steps: Trajectory) -> None:
    rows = expand(four_steps)
    assert len(rows) == 4
    assert [r["prompt"][0] for r in rows] == [{"role": "system", "content": SYSTEM_BASH_ONLY}] * 4
    users = [r["prompt"][1]["content"] for r in rows]
    assert users[0] == ISSUE + "No actions have been taken yet. Think, then give the first action."
    assert users[1] == (
        ISSUE + "Most recent steps:\nStep 1:\n" + LS + "\nOutput of step 1:\ncalc.py\n\n"
        "Think, then give the action for step 2."
    )
    assert users[2] == (
        ISSUE + "Most recent steps:\nStep 1:\n" + LS + "\nOutput of step 1:\ncalc.py\n\n"
        "Step 2:\n" + CAT + "\nOutput of step 2:\ndef add(a, b):\n    return a - b\n\n"
        "Think, then give the action for step 3."
    )
    assert users[3] == (
        ISSUE + "Earlier actions (outputs omitted):\nStep 1:\n" + LS + "\n\n"
        "Most recent steps:\nStep 2:\n" + CAT + "\nOutput of step 2:\ndef add(a, b):\n    return a - b\n\n"
        "Step 3:\n" + SED + "\nOutput of step 3:\n(no output)\n\n"
        "Think, then give the action for step 4."
    )
    assert [r["prompt"][1]["role"] for r in rows] == ["user"] * 4
    assert rows[3]["completion"] == [
        {"role": "assistant", "content": "<think>\nDone.\n</think>\n<function=submit>\n</function>"}
    ]
    assert [r["expert_action"] for r in rows] == [LS, CAT, SED, "<function=submit>\n</function>"]
    assert [r["expert_thought"] for r in rows] == ["Look around.", "Read it.", "Fix the operator.", "Done."]
    assert [r["tool"] for r in rows] == ["bash", "bash", "bash", "submit"]
    assert [(r["step"], r["n_steps"]) for r in rows] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert {r["instance_id"] for r in rows} == {"demo__demo-1"} and {r["trajectory_id"] for r in rows} == {
        "demo-run"
    }
    assert all(set(r) == set(COLUMNS) for r in rows)
    # the completion is exactly what a perfect policy writes: it parses back to the expert's action
    for r, s in zip(rows, four_steps.steps, strict=True):
        assert parse_answer(r["completion"][0]["content"]) == (s.thought, s.action)


def test_context_steps_zero_and_one(four_steps: Trajectory) -> None:
    user0 = build_messages(four_steps.problem_statement, four_steps.steps[:3], "bash_only", context_steps=0)[
        1
    ]
    assert "Output of step" not in user0["content"] and "Step 3:\n" + SED in user0["content"]
    user1 = build_messages(four_steps.problem_statement, four_steps.steps[:3], "bash_only", context_steps=1)[
        1
    ]
    assert "Output of step 2" not in user1["content"] and "Output of step 3:\n(no output)" in user1["content"]


def test_agent_loop_and_training_share_the_prompt(four_steps: Trajectory) -> None:
    rows = expand(four_steps, max_obs_tokens=50)
    live = build_messages(four_steps.problem_statement, four_steps.steps[:2], "bash_only", max_obs_tokens=50)
    assert rows[2]["prompt"] == live


def test_system_prompt_lists_every_tool_of_each_toolset() -> None:
    for name, tools in TOOLSETS.items():
        text = system_prompt(name)
        for t in tools:
            assert f"## {t.name}\n" in text
            for p in t.params:
                assert f"- {p.name} (" in text
    assert "one of: view, create, str_replace, insert, undo_edit" in system_prompt("editor")
    assert [t.name for t in get_toolset("swe_agent")] == [
        "bash", "open", "goto", "scroll_up", "scroll_down", "create", "edit",
        "find_file", "search_dir", "search_file", "submit",
    ]  # fmt: skip


def test_truncation_marker_with_the_estimate() -> None:
    text = "A" * 400 + "B" * 400  # 200 tokens by the chars/4 estimate
    cut = truncate_middle(text, 50)
    assert cut == "A" * 100 + "\n[... 150 tokens truncated ...]\n" + "B" * 100
    assert truncate_middle("short", 50) == "short"
    assert ObservationTruncator().truncate_many([text, "short"], 50) == [cut, "short"]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small byte-level BPE tokenizer trained on the fixture observations (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [s.observation for t in load_trajectories([shared_fixture("mini-swe-agent")]) for s in t.steps]
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_truncation_at_exact_token_offsets(tokenizer_file: Path) -> None:
    tok = load_tokenizer(tokenizer_file)
    assert load_tokenizer(tokenizer_file.parent).to_str() == tok.to_str()  # a directory works too
    truncator = ObservationTruncator(tok)
    obs = [
        s.observation
        for s in load_trajectories([shared_fixture("mini-swe-agent", "psf__requests-2317.traj.json")])[
            0
        ].steps
    ]
    long = max(obs, key=len)
    n = truncator.count(long)
    assert n > 300
    cut = truncator.truncate(long, 100)
    head, marker, tail = (
        cut.split("\n[... ", 1)[0],
        f"[... {n - 100} tokens truncated ...]",
        cut.split(" tokens truncated ...]\n", 1)[1],
    )
    assert marker in cut
    assert long.startswith(head) and long.endswith(tail)
    assert truncator.count(head) + truncator.count(tail) in range(98, 103)  # 50 + 50, +-merges at the cut
    short = [o for o in obs if truncator.count(o) <= 100]
    assert truncator.truncate_many(short, 100) == short


def test_missing_tokenizer_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_tokenizer("no-such-org/no-such-model-xyz")


def test_validation_ids_are_deterministic_and_by_trajectory() -> None:
    ids = [f"t{i}" for i in range(100)]
    val = validation_ids(ids, 0.2, seed=1)
    assert len(val) == 20 and val <= set(ids)
    assert validation_ids(list(reversed(ids)) * 3, 0.2, seed=1) == val  # order and repeats don't matter
    assert validation_ids(ids, 0.2, seed=2) != val
    assert validation_ids(ids, 0.0) == set()
    assert len(validation_ids(["a", "b", "c"], 0.05)) == 1  # a requested validation split is never empty
    with pytest.raises(ValueError):
        validation_ids(ids, 1.0)


def test_build_dataset_split_never_shares_a_trajectory(tmp_path: Path) -> None:
    trajs = load_trajectories(traj_dirs())
    n_instances = sum(len(t.steps) for t in trajs)
    dd = build_dataset(traj_dirs(), tmp_path / "ds", val_fraction=0.3, seed=3, max_obs_tokens=200)
    assert set(dd) == {"train", "validation"}
    assert len(dd["train"]) + len(dd["validation"]) == n_instances
    train_ids, val_ids = set(dd["train"]["trajectory_id"]), set(dd["validation"]["trajectory_id"])
    assert not train_ids & val_ids
    assert train_ids | val_ids == {t.trajectory_id for t in trajs}
    assert len(val_ids) == round(0.3 * len(trajs))
    assert list(dd["train"].features) == list(COLUMNS)
    row = dd["validation"][0]
    assert row["prompt"][0]["role"] == "system" and row["completion"][0]["role"] == "assistant"
    assert row["completion"][0]["content"] == format_answer(
        row["expert_thought"], parse_answer(row["completion"][0]["content"])[1]
    )
    again = build_dataset(
        traj_dirs(), tmp_path / "ds2", val_fraction=0.3, seed=3, max_obs_tokens=200, num_proc=1
    )
    assert set(again["validation"]["trajectory_id"]) == val_ids
    assert again["validation"].to_list() == dd["validation"].to_list()


def test_runs_saved_without_an_id_stay_apart(tmp_path: Path, four_steps: Trajectory) -> None:
    run = four_steps.model_copy(update={"trajectory_id": None})
    (tmp_path / "in").mkdir()
    for name in ("run-a.jsonl", "run-b.jsonl"):  # two runs of one instance, e.g. written by the agent loop
        (tmp_path / "in" / name).write_text(run.model_dump_json() + "\n")
    dd = build_dataset([tmp_path / "in"], tmp_path / "ds", val_fraction=0.5, num_proc=1)
    ids = set(dd["train"]["trajectory_id"]) | set(dd["validation"]["trajectory_id"])
    assert len(ids) == 2 and len(dd["train"]) == len(dd["validation"]) == 4


def test_cli_data_build(tmp_path: Path, tokenizer_file: Path) -> None:
    src = shared_fixture("mini-swe-agent")
    res = CliRunner().invoke(
        app,
        [
            "data", "build", "--trajectories", str(src), "--out", str(tmp_path / "ds"),
            "--max-obs-tokens", "128", "--tokenizer", str(tokenizer_file), "--val-fraction", "0.25",
            "--jsonl", "--num-proc", "1",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "validation" in res.output
    assert (tmp_path / "ds" / "train.jsonl").exists() and (tmp_path / "ds" / "validation.jsonl").exists()
    from datasets import load_from_disk

    dd = load_from_disk(str(tmp_path / "ds"))
    assert len(set(dd["validation"]["trajectory_id"])) == 3
    assert any("tokens truncated ...]" in r["prompt"][1]["content"] for r in dd["train"])
    assert all(
        r["expert_action"] == render_action(parse_answer(r["completion"][0]["content"])[1])
        for r in dd["train"]
    )


def test_build_refuses_to_replace_a_directory_that_is_not_a_data_set(tmp_path: Path) -> None:
    src = shared_fixture("swe-agent")
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        build_dataset([src], keep, num_proc=1)
    assert (keep / "notes.txt").read_text() == "precious"
    res = CliRunner().invoke(app, ["data", "build", "--trajectories", str(src), "--out", str(keep)])
    assert res.exit_code == 2 and "refusing to replace" in res.output
    assert (keep / "notes.txt").exists()
    first = build_dataset([src], tmp_path / "ds", val_fraction=0.0, num_proc=1)  # a data set is rebuilt
    again = build_dataset(
        [shared_fixture("swe-agent", "pydicom__pydicom-1458.traj")], tmp_path / "ds", num_proc=1
    )
    assert len(first["train"]) == 11 + 12 and len(again["train"]) + len(again["validation"]) == 12


def test_bad_val_fraction_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        build_dataset([tmp_path / "does-not-exist"], tmp_path / "ds", val_fraction=1.0)


def test_cli_data_show(tmp_path: Path) -> None:
    dd = build_dataset([shared_fixture("swe-agent")], tmp_path / "ds", val_fraction=0.0, num_proc=1)
    assert len(dd["validation"]) == 0 and list(dd["validation"].features) == list(COLUMNS)
    runner = CliRunner(env={"COLUMNS": "250"})  # error boxes on one line
    res = runner.invoke(app, ["data", "show", str(tmp_path / "ds"), "--row", "1"])
    assert res.exit_code == 0, res.output
    assert "===== system =====" in res.output and "===== assistant =====" in res.output
    assert '"step": 1' in res.output
    res = runner.invoke(app, ["data", "show", str(tmp_path / "ds"), "--split", "test"])
    assert res.exit_code == 2 and "no split 'test'" in res.output
    res = runner.invoke(app, ["data", "show", str(tmp_path / "ds"), "--row", "999"])
    assert res.exit_code == 2 and "out of range" in res.output
    res = runner.invoke(app, ["data", "show", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a data set" in res.output
