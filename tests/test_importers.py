"""Importers on every real fixture file (step counts counted independently here) and on bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import shared_files, shared_fixture
from typer.testing import CliRunner

from srl_agent.cli import app
from trajectories.actions import parse_action, render_action
from trajectories.importers import (
    TrajectoryImportError,
    detect_format,
    find_files,
    import_file,
    import_paths,
    load_trajectories,
)
from trajectories.importers.swe_agent import legacy_call
from trajectories.schema import ToolCall, Trajectory
from trajectories.tools import TOOLSETS

TRAJ_DIRS = ("swe-agent", "mini-swe-agent", "openhands", "openai-messages")


def traj_dirs() -> list[Path]:
    """The shared folders of agent-run files (not task rows), skipping the test where they are absent."""
    return [shared_fixture(d) for d in TRAJ_DIRS]


MINI = shared_files("mini-swe-agent", pattern="*.traj.json")
MINI_RESOLVED = {
    "django__django-10999": False,
    "django__django-16255": True,
    "django__django-16429": True,
    "pallets__flask-5014": True,
    "psf__requests-1766": True,
    "psf__requests-2317": False,
    "pytest-dev__pytest-5631": True,
    "pytest-dev__pytest-7205": False,
    "scikit-learn__scikit-learn-13135": True,
    "sphinx-doc__sphinx-9367": True,
    "sympy__sympy-20428": False,
    "sympy__sympy-23534": True,
}


def _one(path: Path, fmt: str | None = None):
    report = import_file(path, fmt)
    assert report.ok, report.errors
    assert len(report.imported) == 1
    return report.imported[0]


def _assert_tools_known(traj: Trajectory) -> None:
    names = {t.name for t in TOOLSETS[traj.metadata["toolset"]]}
    assert {s.action.name for s in traj.steps} <= names
    for s in traj.steps:  # every imported action survives the canonical text round trip
        assert parse_action(render_action(s.action)) == s.action


# --- SWE-agent ----------------------------------------------------------------------------------


def test_swe_agent_old_layout() -> None:
    path = shared_fixture("swe-agent", "pydicom__pydicom-1458.traj")
    raw = json.loads(path.read_text())
    imp = _one(path)
    t = imp.trajectory
    assert len(t.steps) == len(raw["trajectory"]) == 12
    assert t.source_format == "swe-agent" and t.metadata["layout"] == "old"
    assert t.metadata["toolset"] == "swe_agent_legacy"
    assert t.instance_id == "pydicom__pydicom-1458"
    assert t.problem_statement.startswith("Pixel Representation attribute should be optional")
    assert "INSTRUCTIONS" not in t.problem_statement
    assert t.final_patch == raw["info"]["submission"] and t.exit_status == "submitted"
    assert t.steps[0].action == ToolCall(name="create", arguments={"args": "reproduce_bug.py"})
    assert t.steps[1].action.name == "edit"
    assert t.steps[1].action.arguments["args"].startswith("1:1\nimport numpy as np\n")
    assert t.steps[1].action.arguments["args"].endswith("\nend_of_edit")
    assert t.steps[2].action == ToolCall(name="bash", arguments={"command": "python reproduce_bug.py"})
    assert t.steps[3].action == ToolCall(name="find_file", arguments={"args": '"numpy_handler.py"'})
    assert t.steps[-1].action == ToolCall(name="submit")
    assert [s.raw_action for s in t.steps] == [s["action"] for s in raw["trajectory"]]
    assert [s.observation for s in t.steps] == [s["observation"] for s in raw["trajectory"]]
    _assert_tools_known(t)


def test_swe_agent_function_calling_layout() -> None:
    path = shared_fixture("swe-agent", "marshmallow-code__marshmallow-1867.function_calling.traj")
    raw = json.loads(path.read_text())
    n_calls = sum(
        len(m["tool_calls"])
        for m in raw["history"]
        if m["role"] == "assistant" and m.get("tool_calls") and not m.get("is_demo")
    )
    t = _one(path).trajectory
    assert len(t.steps) == n_calls == len(raw["trajectory"]) == 11
    assert t.metadata["layout"] == "function_calling" and t.metadata["toolset"] == "swe_agent"
    assert t.instance_id == "marshmallow-code__marshmallow-1867"
    assert t.metadata["base_commit"].startswith("bfd2593d")
    assert t.problem_statement.startswith("TimeDelta serialization precision")
    # JSON numbers become their JSON text; arguments follow the tool's declared parameter order
    assert t.steps[5].action == ToolCall(
        name="open", arguments={"path": "src/marshmallow/fields.py", "line_number": "1474"}
    )
    assert list(t.steps[6].action.arguments) == ["start_line", "end_line", "replacement_text"]
    assert t.steps[6].action.arguments["start_line"] == "1475"
    assert t.steps[5].raw_action == 'open "src/marshmallow/fields.py" 1474'
    assert t.steps[-1].action == ToolCall(name="submit")
    _assert_tools_known(t)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("submit\n", ToolCall(name="submit")),
        ("scroll_down", ToolCall(name="scroll_down")),
        ('open "a b.py" 10\n', ToolCall(name="open", arguments={"args": '"a b.py" 10'})),
        (
            "edit 3:4\n  x = 1\nend_of_edit\n",
            ToolCall(name="edit", arguments={"args": "3:4\n  x = 1\nend_of_edit"}),
        ),
        ("ls -la\n", ToolCall(name="bash", arguments={"command": "ls -la"})),
        ("opener x", ToolCall(name="bash", arguments={"command": "opener x"})),
        ("python -c 'print(1)'\n", ToolCall(name="bash", arguments={"command": "python -c 'print(1)'"})),
    ],
)
def test_legacy_command_lines(raw: str, expected: ToolCall) -> None:
    assert legacy_call(raw) == expected


# --- mini-swe-agent -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", MINI, ids=lambda p: p.name.removesuffix(".traj.json"))
def test_mini_swe_agent(path: Path) -> None:
    raw = json.loads(path.read_text())
    assistant = [m["content"] for m in raw["messages"] if m["role"] == "assistant"]
    n_blocks = [c.count("```bash") for c in assistant]
    imp = _one(path)
    t = imp.trajectory
    assert len(t.steps) == n_blocks.count(1)
    assert len(imp.skipped) == len(n_blocks) - n_blocks.count(1)
    assert all(s.reason == "format_error" for s in imp.skipped)
    assert t.instance_id == raw["instance_id"] == path.name.removesuffix(".traj.json")
    assert t.resolved is MINI_RESOLVED[t.instance_id]
    assert t.metadata["toolset"] == "bash_only"
    assert t.exit_status == "Submitted" and t.final_patch == raw["info"]["submission"]
    assert t.steps[-1].action == ToolCall(name="submit")
    assert "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT" in t.steps[-1].raw_action
    assert all(s.action.name == "bash" for s in t.steps[:-1])
    assert "<pr_description>" not in t.problem_statement and t.problem_statement
    assert all(not s.thought.startswith("THOUGHT") for s in t.steps)
    _assert_tools_known(t)


def test_mini_swe_agent_format_error_and_timeout_are_reported() -> None:
    imp = _one(shared_fixture("mini-swe-agent", "psf__requests-2317.traj.json"))
    assert [s.reason for s in imp.skipped] == ["format_error"]
    assert imp.notes["timed-out step kept"] == 1
    timed_out = [s for s in imp.trajectory.steps if s.observation.startswith("The last command <command>")]
    assert len(timed_out) == 1 and timed_out[0].action.arguments["command"] == "python3 test_requests.py"


def test_mini_swe_agent_without_report_has_unknown_resolved(tmp_path: Path) -> None:
    src = shared_fixture("mini-swe-agent", "sympy__sympy-23534.traj.json")
    shutil.copy(src, tmp_path / src.name)
    assert _one(tmp_path / src.name).trajectory.resolved is None


# --- OpenHands ----------------------------------------------------------------------------------


def _openhands_expected(events: list[dict]) -> tuple[int, int]:
    """(steps, skipped) counted from the raw events: tool-backed agent actions vs other agent turns."""
    steps = sum(
        1
        for e in events
        if e.get("source") == "agent" and e.get("action") in {"run", "read", "edit", "finish"}
    )
    skipped = sum(1 for e in events if e.get("source") == "agent" and e.get("action") == "message")
    skipped += sum(1 for e in events if e.get("observation") == "error" and "cause" not in e)
    return steps, skipped


def test_openhands_event_list() -> None:
    path = shared_fixture("openhands", "basic_gui_mode.json")
    events = json.loads(path.read_text())
    imp = _one(path)
    t = imp.trajectory
    assert (len(t.steps), len(imp.skipped)) == _openhands_expected(events) == (4, 1)
    assert [s.action.name for s in t.steps] == ["bash", "str_replace_editor", "str_replace_editor", "bash"]
    create = t.steps[1].action.arguments
    assert create["command"] == "create" and create["path"] == "/workspace/todo-app/index.html"
    assert create["file_text"].startswith("<!DOCTYPE html>")
    assert t.steps[3].observation.startswith("Serving HTTP on 0.0.0.0 port 8000")
    assert t.problem_statement.startswith("I want to create a VueJS app")
    assert imp.skipped[0].reason == "agent_message"
    _assert_tools_known(t)


def test_openhands_benchmark_output_jsonl() -> None:
    path = shared_fixture("openhands", "multi_swe_bench_output.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    report = import_file(path)
    assert report.ok and report.format == "openhands"
    assert len(report.imported) == len(records) == 3
    for rec, imp in zip(records, report.imported, strict=True):
        t = imp.trajectory
        assert (len(t.steps), len(imp.skipped)) == _openhands_expected(rec["history"])
        assert t.instance_id == rec["instance_id"]
        assert t.final_patch == rec["test_result"]["git_patch"]
        assert t.problem_statement == rec["instance"]["problem_statement"]
        _assert_tools_known(t)
    ids = {i.trajectory.trajectory_id for i in report.imported}
    assert len(ids) == 3
    last = report.imported[2].trajectory
    assert last.exit_status.startswith("error: RuntimeError: Agent reached maximum iteration")
    assert report.imported[0].trajectory.steps[-1].action == ToolCall(name="submit")
    views = [
        s.action for s in report.imported[1].trajectory.steps if s.action.arguments.get("command") == "view"
    ]
    assert views and all("path" in v.arguments for v in views)


# --- OpenAI messages ----------------------------------------------------------------------------


def test_openai_messages_jsonl() -> None:
    path = shared_fixture("openai-messages", "marshmallow-code__marshmallow-1867.jsonl")
    rec = json.loads(path.read_text().splitlines()[0])
    n_calls = sum(len(m.get("tool_calls") or []) for m in rec["messages"] if m["role"] == "assistant")
    t = _one(path).trajectory
    assert len(t.steps) == n_calls == 11
    assert t.source_format == "openai" and t.metadata["toolset"] == "swe_agent"
    assert t.final_patch == rec["submission"]
    # same run as the SWE-agent function-calling file: same actions; the chat's tool messages hold the
    # trajectory's observations plus SWE-agent's "(Open file: ...)" state suffix
    swe = _one(
        shared_fixture("swe-agent", "marshmallow-code__marshmallow-1867.function_calling.traj")
    ).trajectory
    assert t.actions == swe.actions
    assert all(
        a.observation.strip().startswith(b.observation.strip())
        for a, b in zip(t.steps, swe.steps, strict=True)
    )


def test_openai_plain_message_list(tmp_path: Path) -> None:
    msgs = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]},
        {
            "role": "assistant",
            "content": "Look first.",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "pwd"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "/repo"},
        {"role": "tool", "tool_call_id": "a", "content": "a.py"},
        {"role": "assistant", "content": "I think I am done."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c", "function": {"name": "submit", "arguments": ""}}],
        },
    ]
    p = tmp_path / "run.json"
    p.write_text(json.dumps(msgs))
    imp = _one(p)
    t = imp.trajectory
    assert [(s.action.name, s.observation) for s in t.steps] == [
        ("bash", "a.py"),
        ("bash", "/repo"),
        ("submit", ""),
    ]
    assert t.steps[0].thought == "Look first." and t.steps[1].thought == ""
    assert t.problem_statement == "Fix the bug." and t.instance_id == "run"
    assert [s.reason for s in imp.skipped] == ["no_tool_call"]
    assert t.metadata["toolset"] == "bash_only"


# --- our own schema, directories, CLI -----------------------------------------------------------


def test_every_fixture_file_imports_and_reimports(tmp_path: Path) -> None:
    reports = import_paths(traj_dirs())
    names = {r.path.name for r in reports}
    assert not any(n.endswith(".report.json") for n in names)  # side files are not trajectories
    assert len(reports) == 2 + 12 + 2 + 1
    assert all(r.ok for r in reports), [e for r in reports for e in r.errors]
    trajs = [i.trajectory for r in reports for i in r.imported]
    out = tmp_path / "srl.jsonl"
    out.write_text("".join(t.model_dump_json() + "\n" for t in trajs))
    again = load_trajectories([out])
    assert again == trajs
    assert detect_format(json.loads(out.read_text().splitlines()[0])) == "srl"


def test_cli_import_and_show(tmp_path: Path) -> None:
    bad = tmp_path / "in" / "bad.traj"
    bad.parent.mkdir()
    bad.write_text('{"trajectory": [{"action": 3}], "info": {}}')
    shutil.copy(shared_fixture("swe-agent", "pydicom__pydicom-1458.traj"), tmp_path / "in")
    runner = CliRunner()
    res = runner.invoke(app, ["traj", "import", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output  # one file failed ...
    assert "trajectory[0].action" in res.output.replace("\n", "")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["pydicom__pydicom-1458.jsonl"]  # ... the other was still written
    assert len(load_trajectories([tmp_path / "out"])[0].steps) == 12
    res = runner.invoke(
        app, ["traj", "show", str(tmp_path / "out" / "pydicom__pydicom-1458.jsonl"), "--step", "4"]
    )
    assert res.exit_code == 0, res.output
    assert "step 4" in res.output and "numpy_handler.py 293" in res.output


# --- malformed input ----------------------------------------------------------------------------


def _err(tmp_path: Path, name: str, content: str, fmt: str | None = None) -> TrajectoryImportError:
    p = tmp_path / name
    p.write_text(content)
    report = import_file(p, fmt)
    assert not report.ok and not report.imported
    err = report.errors[0]
    assert err.file == str(p) and str(p) in str(err)
    return err


def test_truncated_json(tmp_path: Path) -> None:
    text = (shared_fixture("swe-agent", "pydicom__pydicom-1458.traj")).read_text()
    cut = text[: len(text) // 2]
    err = _err(tmp_path, "cut.traj", cut)
    line = cut.count("\n") + 1  # where the text ends is where the parser gives up
    assert re.fullmatch(rf"invalid JSON: [A-Z][^()]* \(line {line}, column \d+\)", err.message), err.message
    assert str(err).startswith(f"{tmp_path / 'cut.traj'}: <root>: invalid JSON: ")


def test_wrong_type_names_json_path(tmp_path: Path) -> None:
    raw = json.loads((shared_fixture("swe-agent", "pydicom__pydicom-1458.traj")).read_text())
    raw["trajectory"][3]["action"] = ["ls"]
    err = _err(tmp_path, "x.traj", json.dumps(raw))
    assert err.json_path == "trajectory[3].action"
    assert err.message == "expected a string, got list"


def test_wrong_type_in_mini_swe_agent(tmp_path: Path) -> None:
    raw = json.loads(shared_fixture("mini-swe-agent", "django__django-10999.traj.json").read_text())
    raw["messages"][4]["role"] = 7
    err = _err(tmp_path, "x.traj.json", json.dumps(raw))
    assert err.json_path == "messages[4].role" and "expected a string, got int" in err.message


def test_bad_tool_call_arguments(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "1", "function": {"name": "bash", "arguments": "{oops"}}],
                }
            ]
        }
    )
    p = tmp_path / "m.jsonl"
    p.write_text(line + "\n" + line.replace("{oops", '{\\"command\\": \\"ls\\"}') + "\n")
    report = import_file(p)
    assert len(report.imported) == 1 and len(report.errors) == 1  # the good line is still imported
    err = report.errors[0]
    assert err.line == 1 and err.json_path == "messages[0].tool_calls[0].function.arguments"
    assert "invalid JSON" in err.message


def test_unknown_layout(tmp_path: Path) -> None:
    err = _err(tmp_path, "x.json", json.dumps({"foo": 1, "bar": []}))
    assert "unknown trajectory layout" in err.message


@pytest.mark.parametrize(
    ("name", "content", "path"),
    [
        ("e.traj", json.dumps({"trajectory": [], "history": [], "info": {}}), "trajectory"),
        ("e.traj.json", json.dumps({"trajectory_format": "mini-swe-agent-1", "messages": []}), "messages"),
        (
            "e.json",
            json.dumps([{"id": 0, "source": "user", "action": "message", "args": {"content": "hi"}}]),
            "",
        ),
        ("e.jsonl", "\n\n", ""),
        ("e.srl.jsonl", json.dumps({"instance_id": "x", "source_format": "srl", "steps": []}), "steps"),
    ],
)
def test_empty_trajectories(tmp_path: Path, name: str, content: str, path: str) -> None:
    err = _err(tmp_path, name, content)
    assert "empty" in err.message and err.json_path == path


def test_agent_episode_without_steps_imports_as_a_record(tmp_path: Path) -> None:
    # an episode that ended before its first valid action is a true record (no steps, no data)
    doc = {"instance_id": "x", "source_format": "srl", "steps": [], "exit_status": "format_errors"}
    f = tmp_path / "x.srl.jsonl"
    f.write_text(json.dumps(doc) + "\n")
    report = import_file(f)
    assert report.ok and report.n_steps == 0
    assert report.imported[0].trajectory.exit_status == "format_errors"


def test_forced_wrong_format(tmp_path: Path) -> None:
    src = shared_fixture("swe-agent", "pydicom__pydicom-1458.traj")
    err = _err(tmp_path, "p.traj", src.read_text(), fmt="mini-swe-agent")
    assert err.json_path == "messages" and "missing required field" in err.message


def test_directory_import_continues_after_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a_bad.json").write_text("{not json")
    first = shared_fixture("mini-swe-agent", "django__django-10999.traj.json")
    shutil.copy(first, tmp_path / first.name)
    reports = import_paths([tmp_path])
    assert [r.ok for r in reports] == [False, True]
    assert len(list(find_files([tmp_path]))) == 2
    with pytest.raises(TrajectoryImportError, match="a_bad.json"):
        load_trajectories([tmp_path])


def test_json_steps_count_matches_regex_count() -> None:
    """Cross-check of the mini-swe-agent counting rule with the fenced-block regex itself."""
    raw = json.loads((shared_fixture("mini-swe-agent", "psf__requests-2317.traj.json")).read_text())
    blocks = [
        len(re.findall(r"```bash\s*\n.*?\n```", m["content"], re.S))
        for m in raw["messages"]
        if m["role"] == "assistant"
    ]
    assert blocks.count(1) == 32 and len(blocks) == 33


def test_cli_import_reports_skipped_steps_and_totals(tmp_path: Path) -> None:
    """Skipped steps are counted per file and in the total line, never dropped silently."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_fixture("mini-swe-agent", "psf__requests-2317.traj.json"), src)
    shutil.copy(shared_fixture("openhands", "multi_swe_bench_output.jsonl"), src)
    expected_skipped = sum(len(r.skipped) for r in import_paths([src]))
    assert expected_skipped == 1 + 2
    res = CliRunner().invoke(
        app, ["traj", "import", str(src), "--out", str(tmp_path / "out")], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    assert "1 format_error" in res.output and "2 agent_error" in res.output
    assert f"{1 + 3} trajectories, {32 + 103} steps, {expected_skipped} skipped steps written" in res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "multi_swe_bench_output.jsonl",
        "psf__requests-2317.jsonl",
    ]


def test_cli_import_of_a_directory_without_trajectories_fails(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no trajectories here")
    res = CliRunner().invoke(app, ["traj", "import", str(tmp_path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "no trajectory files" in res.output and not (tmp_path / "out").exists()


def test_cli_show_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.traj"
    bad.write_text('{"trajectory": [{"action": "ls"}, {"action": null}], "info": {}}')
    runner = CliRunner(env={"COLUMNS": "250"})
    res = runner.invoke(app, ["traj", "show", str(bad)])
    assert res.exit_code == 2 and f"{bad}: trajectory[1].action: expected a string, got null" in res.output
    good = shared_fixture("swe-agent", "marshmallow-code__marshmallow-1867.function_calling.traj")
    res = runner.invoke(app, ["traj", "show", str(good), "--step", "11"])
    assert res.exit_code == 2 and "step 11 out of range 0..10" in res.output
    res = runner.invoke(app, ["traj", "show", str(good), "--step", "5"])
    assert res.exit_code == 0 and 'recorded as: open "src/marshmallow/fields.py" 1474' in res.output
