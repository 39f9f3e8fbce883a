"""The public SWE-agent trajectory data sets import as published (issue 13).

Rows are read in place from ../shared/fixtures/realformats/ (see its README: SWE-smith, nebius, SWE-Gym,
SWE-Play rows, a mini-swe-agent message list, a SWE-agent 1.x run) and the other shared trajectory
folders; every test that needs them skips where they are absent.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES, shared_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from srl_agent.cli import app
from trajectories.actions import parse_action, render_action
from trajectories.importers import detect_format, import_file, iter_file, iter_trajectories, load_trajectories
from trajectories.rows import count_rows, find_containers, iter_rows
from trajectories.schema import ParamSpec, Step, ToolCall, ToolSpec, Trajectory
from trajectories.stepwise import build_dataset, expand, read_build_report

RF = "realformats"
SMITH = (RF, "hf-swe-smith-trajectories", "rows.jsonl")
NEBIUS = (RF, "hf-nebius-swe-agent-trajectories", "rows.jsonl")
GYM = (RF, "hf-swe-gym-openhands-sampled", "rows.jsonl")
PLAY = (RF, "hf-swe-play-trajectories", "rows.jsonl")
MINI_LIST = (RF, "mini-swe-agent-message-lists", "local.traj.json")
SWE_AGENT_1X = (RF, "swe-agent-1x-swesmith", "pydantic__pydantic.acb0f10f.pr_8316.traj")
HF_ROWS = {"swe-smith": SMITH, "nebius": NEBIUS, "openai": GYM, "openhands-text": PLAY}

#: every trajectory fixture of every format (folders of the shared fixtures that hold agent runs)
ALL_RUN_FILES = [
    p
    for d in ("swe-agent", "mini-swe-agent", "openhands", "openai-messages")
    for p in sorted((SHARED_FIXTURES / d).glob("*"))
    if not p.name.endswith(".report.json")
] + [SHARED_FIXTURES.joinpath(*x) for x in (SMITH, NEBIUS, GYM, PLAY, MINI_LIST, SWE_AGENT_1X)]


def _rows(parts: tuple[str, ...]) -> list[dict]:
    return [json.loads(x) for x in shared_fixture(*parts).read_text().splitlines() if x.strip()]


def _assistant_texts(row: dict) -> list[str]:
    return [m["content"] or "" for m in row["messages"] if m["role"] == "assistant"]


# --- formats: detection, steps counted independently from the raw JSON, fields kept ----------------


@pytest.mark.parametrize(
    ("parts", "fmt"),
    [*((v, k) for k, v in HF_ROWS.items()), (MINI_LIST, "mini-swe-agent"), (SWE_AGENT_1X, "swe-agent")],
    ids=lambda x: x if isinstance(x, str) else x[1],
)
def test_format_detected_per_row(parts: tuple[str, ...], fmt: str) -> None:
    report = import_file(shared_fixture(*parts))
    assert report.ok, report.errors
    assert report.format == fmt
    assert all(i.trajectory.source_format == fmt for i in report.imported)


def test_swe_smith_rows() -> None:
    rows = _rows(SMITH)
    trajs = load_trajectories([shared_fixture(*SMITH)])
    assert len(trajs) == len(rows) == 2
    for row, t in zip(rows, trajs, strict=True):
        # the count: assistant messages holding one <function=...> call
        expected = sum(1 for a in _assistant_texts(row) if len(re.findall(r"<function=[\w.\-]+>", a)) == 1)
        assert len(t.steps) == expected > 10
        assert t.final_patch == row["patch"] and t.resolved is row["resolved"]
        assert t.metadata["model"] == row["model"] and t.trajectory_id == row["traj_id"]
        assert t.instance_id == row["instance_id"] and t.problem_statement.startswith("# ")
        assert [x.name for x in t.tools] == ["bash", "submit", "str_replace_editor"]
        assert t.steps[-1].action == ToolCall(name="submit")
        # raw call text kept, observation without its OBSERVATION: prefix
        first = t.steps[0]
        assert first.raw_action is not None and first.raw_action.startswith("<function=bash>")
        assert parse_action(first.raw_action) == first.action
        assert first.observation and not first.observation.startswith("OBSERVATION:")
        assert "<function=" not in first.thought and first.thought


def test_nebius_rows() -> None:
    rows = _rows(NEBIUS)
    trajs = load_trajectories([shared_fixture(*NEBIUS)])
    for row, t in zip(rows, trajs, strict=True):
        ai = [x["text"] for x in row["trajectory"] if x["role"] == "ai"]
        assert len(t.steps) == sum(1 for a in ai if re.search(r"^```", a, re.M)) == len(ai)
        assert t.resolved is row["target"] and t.final_patch == row["generated_patch"]
        assert t.exit_status == row["exit_status"] and t.metadata["model"] == row["model_name"]
        names = {x.name for x in t.tools}
        assert {"bash", "open", "edit", "submit", "find_file"} <= names
        assert t.steps[-1].action == ToolCall(name="submit")
        assert "ISSUE:" not in t.problem_statement and t.problem_statement
    edit = next(s for t in trajs for s in t.steps if s.action.name == "edit")
    assert edit.action.arguments["args"].endswith("end_of_edit")  # the command line is "edit " + args


def test_swe_gym_rows_keep_patch_and_tools() -> None:
    rows = _rows(GYM)
    imported = import_file(shared_fixture(*GYM)).imported
    for row, imp in zip(rows, imported, strict=True):
        t = imp.trajectory
        calls = sum(len(m["tool_calls"] or []) for m in row["messages"] if m["role"] == "assistant")
        assert len(t.steps) == calls
        no_call = sum(1 for m in row["messages"] if m["role"] == "assistant" and not m["tool_calls"])
        assert len(imp.skipped) == no_call
        assert t.final_patch == row["test_result"]["git_patch"] and t.final_patch.startswith("diff --git")
        assert t.resolved is row["resolved"] and t.metadata["run_id"] == row["run_id"]
        assert [x.name for x in t.tools] == ["execute_bash", "finish", "str_replace_editor"]
        first_call = next(m["tool_calls"][0]["function"] for m in row["messages"] if m.get("tool_calls"))
        assert json.loads(t.steps[0].raw_action)["arguments"] == first_call["arguments"]  # as recorded
        assert {s.action.name for s in t.steps} <= {"execute_bash", "finish", "str_replace_editor"}
        system = expand(t)[0]["prompt"][0]["content"]
        assert "Call `finish` once" in system and "`submit`" not in system
        assert "(no description recorded)" not in system


def test_swe_play_rows_openhands_text() -> None:
    rows = _rows(PLAY)
    imported = import_file(shared_fixture(*PLAY)).imported
    for row, imp in zip(rows, imported, strict=True):
        t = imp.trajectory
        opened = [a for a in _assistant_texts(row) if len(re.findall(r"<function=[\w.\-]+>", a)) == 1]
        assert len(t.steps) == len(opened) and not imp.skipped
        assert t.steps[-1].action.name == "finish"  # closed at OpenHands' stop sequence
        assert {"execute_bash", "str_replace_editor", "finish"} <= {x.name for x in t.tools}
        assert not any(s.observation.startswith("EXECUTION RESULT") for s in t.steps)
        assert t.problem_statement.startswith("You are now given a project directory")
        assert t.metadata["source"] == row["source"]


def test_mini_swe_agent_bare_message_list() -> None:
    path = shared_fixture(*MINI_LIST)
    raw = json.loads(path.read_text())
    t = load_trajectories([path])[0]
    blocks = sum(
        len(re.findall(r"```mswea_bash_command\n", m["content"])) for m in raw if m["role"] == "assistant"
    )
    assert len(t.steps) == blocks == 2
    assert t.steps[0].action == ToolCall(name="bash", arguments={"command": "echo 'hello world'"})
    assert t.steps[0].observation.startswith("<returncode>0</returncode>")
    assert t.steps[1].action == ToolCall(name="submit")


def test_mini_swe_agent_tool_call_mode(tmp_path: Path) -> None:
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Please solve this issue: add() is wrong"},
        {
            "role": "assistant",
            "content": "THOUGHT: look",
            "tool_calls": [{"id": "a", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}],
        },
        {"role": "tool", "tool_call_id": "a", "content": "<returncode>0</returncode>\n<output>x.py</output>"},
        {
            "role": "assistant",
            "content": "done",
            "tool_calls": [
                {
                    "id": "b",
                    "function": {
                        "name": "bash",
                        "arguments": '{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}',
                    },
                }
            ],
        },
    ]
    p = tmp_path / "run.traj.json"
    p.write_text(json.dumps({"trajectory_format": "mini-swe-agent-1.1", "messages": msgs, "info": {}}))
    t = load_trajectories([p])[0]
    assert [s.action.name for s in t.steps] == ["bash", "submit"]
    assert t.steps[0].observation.endswith("<output>x.py</output>")


def test_swe_agent_1x_tools_from_replay_config() -> None:
    path = shared_fixture(*SWE_AGENT_1X)
    raw = json.loads(path.read_text())
    t = load_trajectories([path])[0]
    assert len(t.steps) == len(raw["trajectory"]) == 22
    assert [x.name for x in t.tools] == ["bash", "str_replace_editor", "submit"]
    assert t.final_patch == raw["info"]["submission"]


def test_swe_agent_history_shorter_than_trajectory(tmp_path: Path) -> None:
    """A run whose `history` lacks the final submit call that its `trajectory` has: use what is there."""
    raw = json.loads(shared_fixture(*SWE_AGENT_1X).read_text())
    last = max(i for i, m in enumerate(raw["history"]) if m.get("tool_calls"))
    raw["history"] = raw["history"][:last]
    p = tmp_path / "cut.traj"
    p.write_text(json.dumps(raw))
    report = import_file(p)
    assert report.ok, report.errors
    t = report.imported[0].trajectory
    assert len(t.steps) == len(raw["trajectory"]) and t.steps[-1].action == ToolCall(name="submit")
    assert any("without a history tool call" in k for k in report.imported[0].notes)


# --- the expert's own tool set is what the prompt describes -----------------------------------------


def _tool_sections(system: str) -> dict[str, str]:
    body = system.split("\n# Tools\n", 1)[1].split("\n# Answer format", 1)[0]
    out = {}
    for sec in ("\n" + body).split("\n## ")[1:]:
        name, _, rest = sec.partition("\n")
        out[name] = rest
    return out


@pytest.mark.parametrize("path", ALL_RUN_FILES, ids=lambda p: p.name)
def test_every_expert_action_is_declared_in_its_prompt(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not found (shared fixtures absent)")
    trajs = load_trajectories([path])
    assert trajs
    for t in trajs:
        for row in expand(t):
            tools = _tool_sections(row["prompt"][0]["content"])
            call = parse_action(row["expert_action"])
            assert call.name in tools, (call.name, list(tools))
            for param in call.arguments:
                assert f"\n- {param} (" in "\n" + tools[call.name], (call.name, param)


def test_own_tool_set_only_where_none_recorded(tmp_path: Path) -> None:
    smith = load_trajectories([shared_fixture(*SMITH)])[0]
    pydicom = load_trajectories([shared_fixture("swe-agent", "pydicom__pydicom-1458.traj")])[0]
    assert smith.tools is not None and pydicom.tools is None
    system = expand(smith)[0]["prompt"][0]["content"]
    # the recorded description, not ours
    assert "Execute a bash command in the terminal." in system
    assert "Run a command in a bash shell in the repository's working directory" not in system


# --- containers -----------------------------------------------------------------------------------


def _write_container(kind: str, src: Path, dest: Path) -> Path:
    rows = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    if kind == "json-array":
        p = dest / "rows.json"
        p.write_text(json.dumps(rows))
    elif kind == "jsonl.gz":
        p = dest / "rows.jsonl.gz"
        p.write_bytes(gzip.compress(src.read_bytes()))
    else:
        from datasets import Dataset, DatasetDict
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
        ds = Dataset.from_json(str(src), cache_dir=str(dest / "cache"))
        if kind == "parquet":
            p = dest / "rows.parquet"
            ds.to_parquet(str(p))
        elif kind == "save_to_disk":
            p = dest / "disk"
            ds.save_to_disk(str(p))
        else:
            p = dest / "dd"
            DatasetDict({"train": ds.select([0]), "test": ds.select([1])}).save_to_disk(str(p))
    return p


@pytest.mark.parametrize("kind", ["json-array", "jsonl.gz", "parquet", "save_to_disk", "dataset_dict"])
@pytest.mark.parametrize("fmt", sorted(HF_ROWS))
def test_same_rows_same_result_in_every_container(tmp_path: Path, fmt: str, kind: str) -> None:
    src = shared_fixture(*HF_ROWS[fmt])
    expected = load_trajectories([src])
    path = _write_container(kind, src, tmp_path)
    assert list(find_containers([tmp_path])) == [path]  # metadata and cache files are not rows
    got = load_trajectories([tmp_path])
    assert got == expected
    assert count_rows(path) == 2


def test_single_object_and_split_locations(tmp_path: Path) -> None:
    row = _rows(SMITH)[0]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(row))
    assert load_trajectories([one]) == load_trajectories([shared_fixture(*SMITH)])[:1]
    dd = _write_container("dataset_dict", shared_fixture(*SMITH), tmp_path)
    locations = [loc for loc, _ in iter_rows(dd)]
    assert locations == [f"{dd}[train]:1", f"{dd}[test]:1"]
    assert [r.location for r in iter_file(dd)] == locations


def test_iter_rows_reads_any_range_of_a_parquet_file(tmp_path: Path) -> None:
    pq = _write_container("parquet", shared_fixture(*NEBIUS), tmp_path)
    all_rows = [r for _, r in iter_rows(pq)]
    assert [r for _, r in iter_rows(pq, 1, 2)] == all_rows[1:2]
    assert [r["instance_id"] for r in all_rows] == [r["instance_id"] for r in _rows(NEBIUS)]


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_row_says_which_format_it_resembles(tmp_path: Path) -> None:
    row = _rows(SMITH)[0]
    for m in row["messages"]:
        if m["role"] == "assistant":
            m["content"] = re.sub(r"<function=.*?</function>", "", m["content"], flags=re.S)
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(row) + "\n")
    err = import_file(p).errors[0]
    assert (
        "looks like SWE-smith rows" in err.message and "message 2 holds no <function=...> call" in err.message
    )
    assert err.line == 1 and str(p) in str(err)
    task = tmp_path / "task.json"
    shutil.copy(
        shared_fixture(RF, "swebench-tasks", "swesmith__pandas-dev__pandas.95280573.pr_53652.json"), task
    )
    assert "task row" in import_file(task).errors[0].message


def test_forced_format(tmp_path: Path) -> None:
    src = shared_fixture(*SMITH)
    assert len(import_file(src, "swe-smith").imported) == 2
    err = import_file(src, "nebius").errors[0]
    assert "trajectory" in str(err)


def _mixed_jsonl(tmp_path: Path) -> Path:
    good = shared_fixture(*SMITH).read_text().splitlines()[0]
    task = json.loads(
        shared_fixture(
            RF, "swebench-tasks", "swesmith__pandas-dev__pandas.95280573.pr_53652.json"
        ).read_text()
    )
    p = tmp_path / "in" / "mixed.jsonl"
    p.parent.mkdir()
    p.write_text(good + "\n{not json\n" + json.dumps(task) + "\n")
    return p


def test_cli_import_skips_bad_rows_and_names_each(tmp_path: Path) -> None:
    src = _mixed_jsonl(tmp_path)
    res = CliRunner().invoke(
        app, ["traj", "import", str(src.parent), "--out", str(tmp_path / "out")], env={"COLUMNS": "300"}
    )
    out = res.output.replace("\n", "")
    assert res.exit_code == 1, res.output
    assert f"{src}:2" in out and "invalid JSON" in out
    assert f"{src}:3" in out and "task row" in out
    assert "2 row(s) in 1 file(s) failed" in out
    written = load_trajectories([tmp_path / "out"])
    assert len(written) == 1 and written[0].source_format == "swe-smith"


def test_data_build_counts_tool_sets_and_failed_rows(tmp_path: Path) -> None:
    src = _mixed_jsonl(tmp_path)
    shutil.copy(shared_fixture("swe-agent", "pydicom__pydicom-1458.traj"), src.parent)
    out = tmp_path / "ds"
    res = CliRunner().invoke(
        app,
        ["data", "build", "--trajectories", str(src.parent), "--out", str(out), "--num-proc", "1"],
        env={"COLUMNS": "300"},
    )
    assert res.exit_code == 1, res.output
    report = read_build_report(out)
    assert report["tool_sets"] == {"recorded": 1, "default": 1}
    assert len(report["errors"]) == 2 and report["rows"] == 4
    assert "1 as recorded by the source, 1 srl-swe's default" in res.output.replace("\n", " ")
    smith_steps = len(next(iter_trajectories([shared_fixture(*SMITH)])).steps)
    assert sum(report["splits"].values()) == report["instances"] == smith_steps + 12


def test_build_splits_one_parquet_file_across_processes(tmp_path: Path) -> None:
    pq = _write_container("parquet", shared_fixture(*GYM), tmp_path)
    one = build_dataset([pq], tmp_path / "a", num_proc=1, val_fraction=0.0)
    two = build_dataset([pq], tmp_path / "b", num_proc=2, val_fraction=0.0)
    assert one["train"].to_list() == two["train"].to_list()
    assert len(one["train"]) == sum(len(t.steps) for t in load_trajectories([pq]))


# --- round trip -----------------------------------------------------------------------------------

_name = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_calls = st.builds(ToolCall, name=_name, arguments=st.dictionaries(_name, _text, max_size=3))
_steps = st.builds(
    Step,
    thought=_text,
    action=_calls,
    observation=_text,
    raw_action=st.one_of(st.none(), _text),
)
_tools = st.lists(
    st.builds(
        ToolSpec,
        name=_name,
        description=_text,
        params=st.lists(
            st.builds(ParamSpec, name=_name, description=_text, required=st.booleans()), max_size=3
        ).map(tuple),
    ),
    max_size=3,
)
_trajs = st.builds(
    Trajectory,
    instance_id=_name,
    source_format=st.sampled_from(["swe-smith", "nebius", "openai"]),
    trajectory_id=st.one_of(st.none(), _name),
    problem_statement=_text,
    steps=st.lists(_steps, min_size=1, max_size=4),
    final_patch=st.one_of(st.none(), _text),
    resolved=st.one_of(st.none(), st.booleans()),
    tools=st.one_of(st.none(), _tools),
    metadata=st.dictionaries(_name, _text, max_size=2),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trajs=st.lists(_trajs, min_size=1, max_size=3))
def test_round_trip_import_jsonl_import_is_identity(tmp_path: Path, trajs: list[Trajectory]) -> None:
    p = tmp_path / "rt.jsonl"
    p.write_text("".join(t.model_dump_json() + "\n" for t in trajs))
    once = load_trajectories([p])
    assert once == trajs
    p.write_text("".join(t.model_dump_json() + "\n" for t in once))
    assert load_trajectories([p]) == once
    assert detect_format(json.loads(p.read_text().split("\n")[0])) == "srl"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(_calls, min_size=1, max_size=5), obs=st.lists(_text, min_size=5, max_size=5))
def test_round_trip_through_swe_smith_rows(tmp_path: Path, calls: list[ToolCall], obs: list[str]) -> None:
    """Actions written as SWE-smith rows write them (canonical text in the assistant turn) come back."""
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "<pr_description>\nfix it\n</pr_description>"},
    ]
    for c, o in zip(calls, obs, strict=False):
        messages.append({"role": "assistant", "content": f"thinking\n\n{render_action(c)}"})
        messages.append({"role": "user", "content": f"OBSERVATION:\n{o}"})
    p = tmp_path / "smith.jsonl"
    p.write_text(
        json.dumps(
            {"messages": messages, "instance_id": "x", "traj_id": "x.1", "patch": "", "resolved": False}
        )
        + "\n"
    )
    t = load_trajectories([p])[0]
    assert [s.action for s in t.steps] == calls
    assert [s.observation for s in t.steps] == obs[: len(calls)]
    assert t.problem_statement == "fix it"


def test_swe_smith_ticks_split(tmp_path: Path) -> None:
    """The `ticks` split: the same rows with each action as a fenced command line (SWE-agent's
    thought/action format) and no function list in the system prompt."""
    row = _rows(SMITH)[0]
    row["messages"][0]["content"] = (
        "You are a helpful assistant. Reply with DISCUSSION and one command in ``` fences."
    )

    def ticks(m: re.Match[str]) -> str:
        call = parse_action(m.group(0))
        if call.name == "bash":
            return f"```\n{call.arguments['command']}\n```"
        if call.name == "submit":
            return "```\nsubmit\n```"
        return "```\nstr_replace_editor " + " ".join(call.arguments.values()) + "\n```"

    for m in row["messages"]:
        if m["role"] == "assistant":
            m["content"] = re.sub(r"<function=.*?</function>", ticks, m["content"], flags=re.S)
    p = tmp_path / "ticks.jsonl"
    p.write_text(json.dumps(row) + "\n")
    t = load_trajectories([p])[0]
    expected = load_trajectories([shared_fixture(*SMITH)])[0]
    assert t.source_format == "swe-smith" and t.metadata["variant"] == "ticks"
    assert len(t.steps) == len(expected.steps)
    assert t.steps[-1].action == ToolCall(name="submit")
    assert t.steps[0].action == expected.steps[0].action  # a bash command line
    assert [s.observation for s in t.steps] == [s.observation for s in expected.steps]
    assert all(
        parse_action(r["expert_action"]).name in _tool_sections(r["prompt"][0]["content"]) for r in expand(t)
    )


@pytest.mark.parametrize("kind", ["jsonl.gz", "parquet", "dataset_dict"])
def test_task_rows_read_through_the_same_reader(tmp_path: Path, kind: str) -> None:
    """`srl task list --tasks` reads SWE-bench-family rows from the same containers (envs.sources)."""
    from envs.sources import load_tasks

    src = shared_fixture(RF, "swebench-tasks", "sweagent__debug_20240322.json")
    rows = json.loads(src.read_text())
    # columns typed as the published files type them (strings stay strings: `Dataset.from_json` would
    # turn `created_at` into a timestamp)
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_list(rows)
    if kind == "jsonl.gz":
        path = tmp_path / "rows.jsonl.gz"
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    elif kind == "parquet":
        path = tmp_path / "rows.parquet"
        ds.to_parquet(str(path))
    else:
        path = tmp_path / "dd"
        DatasetDict({"test": ds}).save_to_disk(str(path))
    expected = load_tasks(str(src))
    got = load_tasks(str(path))
    assert not expected.errors and not got.errors, got.errors
    assert [t.model_dump() for t in got.tasks] == [t.model_dump() for t in expected.tasks]
    assert len(got.tasks) == len(rows) == 5


def test_row_ranges_across_arrow_files_and_splits(tmp_path: Path) -> None:
    """Any contiguous range of rows of a multi-file, multi-split `save_to_disk` folder (how a build
    spreads one container over processes) reads exactly those rows."""
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    rows = [{"i": i, "text": "x" * i} for i in range(7)]
    p = tmp_path / "dd"
    DatasetDict({"a": Dataset.from_list(rows[:5]), "b": Dataset.from_list(rows[5:])}).save_to_disk(
        str(p), num_shards={"a": 2, "b": 1}
    )
    assert count_rows(p) == 7
    assert [r["i"] for _, r in iter_rows(p)] == list(range(7))
    for a in range(8):
        for b in range(a, 8):
            assert [r["i"] for _, r in iter_rows(p, a, b)] == list(range(7))[a:b], (a, b)
