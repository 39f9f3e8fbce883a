"""The scripted expert (harness.expert): gold hunks -> editor edits, bash edits, thoughts read from real
output, seeded variation (pure, no Docker); and, in the docker tier, a generated run on a bundled task
that resolves, replays to the same diff, imports back and expands into step-wise instances."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envs.spec import TaskSpec
from harness.expert import (
    ExpertError,
    RepoFacts,
    apply_edits,
    bash_create_command,
    bash_replace_command,
    describe,
    failing_tests,
    gold_edits,
    gold_identifiers,
    patched_files,
    plan_jobs,
    plan_run,
    pytest_summary,
    write_thought,
)

BASE = (
    "import math\n"
    "\n"
    "\n"
    "def clamp(x, lo, hi):\n"
    "    if x < lo:\n"
    "        return lo\n"
    "    if x > hi:\n"
    "        return hi\n"
    "    return x\n"
    "\n"
    "\n"
    "def area(r):\n"
    "    return math.pi * r * r\n"
    "\n"
    "\n"
    "def scale(x, k):\n"
    "    if x < lo:\n"
    "        return lo\n"
    "    return x * k\n"
)

GOLD = """\
diff --git a/pkg/geo.py b/pkg/geo.py
--- a/pkg/geo.py
+++ b/pkg/geo.py
@@ -4,4 +4,6 @@ import math
 def clamp(x, lo, hi):
+    if lo > hi:
+        raise ValueError("lo > hi")
     if x < lo:
         return lo
     if x > hi:
@@ -16,4 +18,4 @@ def area(r):
 def scale(x, k):
     if x < lo:
         return lo
-    return x * k
+    return x * float(k)
diff --git a/pkg/new.py b/pkg/new.py
new file mode 100644
--- /dev/null
+++ b/pkg/new.py
@@ -0,0 +1,2 @@
+def hello():
+    return "hi"
"""

TEST_SRC = "from pkg.geo import clamp\n\n\ndef test_clamp_order():\n    with pytest.raises(ValueError):\n        clamp(1, 2, 0)\n"


def _spec(**kw) -> TaskSpec:
    fields = dict(
        instance_id="demo__geo-1",
        repo="demo/geo",
        base_commit="a" * 40,
        problem_statement="clamp accepts lo > hi. It should raise ValueError.",
        patch=GOLD,
        FAIL_TO_PASS=["tests/test_geo.py::test_clamp_order"],
    )
    fields.update(kw)
    return TaskSpec(**fields)


def _facts() -> RepoFacts:
    return RepoFacts(
        files=["pkg/__init__.py", "pkg/geo.py", "pkg/util.py", "pkg/other.py", "tests/test_geo.py"],
        originals={"pkg/geo.py": BASE, "pkg/new.py": None},
        test_sources={"tests/test_geo.py": TEST_SRC},
        collected={"tests/test_geo.py::test_clamp_order"},
    )


# ---------------------------------------------------------------------------------- hunks -> edits


def test_gold_hunks_become_unique_minimal_str_replace_edits_and_a_create():
    originals = {"pkg/geo.py": BASE, "pkg/new.py": None}
    edits = gold_edits(GOLD, originals)
    assert [e.kind for e in edits] == ["replace", "replace", "create"]
    first, second, created = edits
    # an insertion keeps one anchor line; the old text occurs exactly once
    assert first.old == "def clamp(x, lo, hi):" and first.new.startswith(
        "def clamp(x, lo, hi):\n    if lo > hi:"
    )
    assert second.old == "    return x * k" and BASE.count(second.old) == 1
    assert "return x * k" in second.old and "return x * float(k)" in second.new
    assert created.path == "pkg/new.py" and created.new == 'def hello():\n    return "hi"\n'
    assert apply_edits(originals, edits) == patched_files(GOLD, originals)
    assert second.line > first.line and first.orig_line == 5  # the insertion point in the base file


def test_context_widens_edits_and_duplicates_force_more_context():
    base = "a = 1\nx = 0\nb = 2\nx = 0\nc = 3\n"
    patch = "--- a/m.py\n+++ b/m.py\n@@ -3,3 +3,3 @@\n b = 2\n-x = 0\n+x = 1\n c = 3\n"
    (tight,) = gold_edits(patch, {"m.py": base})
    assert base.count(tight.old) == 1 and "x = 0" in tight.old and tight.old != "x = 0"
    (wide,) = gold_edits(patch, {"m.py": base}, context=lambda: (1, 1))
    assert wide.old == "b = 2\nx = 0\nc = 3"
    assert apply_edits({"m.py": base}, [wide]) == {"m.py": "a = 1\nx = 0\nb = 2\nx = 1\nc = 3\n"}


def test_no_newline_at_end_of_file_is_honoured():
    base = "a\nb"
    patch = "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
    edits = gold_edits(patch, {"m.py": base})
    assert apply_edits({"m.py": base}, edits) == {"m.py": "a\nc"} == patched_files(patch, {"m.py": base})


def test_a_hunk_that_does_not_match_the_base_file_is_a_clear_error():
    with pytest.raises(ExpertError, match=r"pkg/geo.py: the hunk at line 4 does not match"):
        gold_edits(GOLD, {"pkg/geo.py": BASE.replace("def clamp", "def clip"), "pkg/new.py": None})
    with pytest.raises(ExpertError, match="not in the repository"):
        gold_edits(GOLD, {"pkg/new.py": None})


def test_bash_edits_run_in_a_real_shell(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "geo.py").write_text(BASE)
    originals = {"pkg/geo.py": BASE, "pkg/new.py": None}
    for e in gold_edits(GOLD, originals):
        cmd = (
            bash_create_command(e.path, e.new)
            if e.kind == "create"
            else bash_replace_command(e.path, e.old, e.new)
        )
        res = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    want = patched_files(GOLD, originals)
    assert (tmp_path / "pkg" / "geo.py").read_text() == want["pkg/geo.py"]
    assert (tmp_path / "pkg" / "new.py").read_text() == want["pkg/new.py"]
    # quotes, backslashes and a line that is the heredoc delimiter survive
    tricky = "s = '''x'''\npath = 'a\\\\b'\nEOF\n"
    (tmp_path / "t.py").write_text(tricky)
    res = subprocess.run(
        ["bash", "-c", bash_replace_command("t.py", "path = 'a\\\\b'", "path = 'c\\\\d'")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "t.py").read_text() == tricky.replace("a\\\\b", "c\\\\d")
    # a text that does not occur: the script fails and says so (the expert's wrong turn)
    res = subprocess.run(
        ["bash", "-c", bash_replace_command("t.py", "nope", "x")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "expected one match of old in t.py, found 0" in res.stderr


# ---------------------------------------------------------------------------------- names, thoughts


def test_failing_tests_and_identifiers():
    (t,) = failing_tests(["tests/test_x.py::TestA::test_b[param-1]"])
    assert (t.file, t.cls, t.func) == ("tests/test_x.py", "TestA", "test_b")
    idents = gold_identifiers(GOLD, {"pkg/geo.py": BASE})
    assert idents[:2] == ["clamp", "scale"] and "hello" in idents
    assert "self" not in idents and "return" not in idents


def test_thoughts_state_what_the_observation_showed():
    spec = _spec()
    facts = _facts()
    plan = plan_run(spec, facts, "tools", 0)
    grep = next(s for s in plan if s.kind == "grep_ident")
    obs = "./pkg/geo.py:4:def clamp(x, lo, hi):\n./tests/test_geo.py:1:from pkg.geo import clamp\n"
    text = describe(grep, obs, __import__("random").Random(0))
    assert "2" in text and "pkg/geo.py:4" in text and "def clamp(x, lo, hi):" in text
    grep_test = next(s for s in plan if s.kind == "grep_test")
    one_file = describe(grep_test, "4:def test_clamp_order():\n", __import__("random").Random(0))
    assert "tests/test_geo.py:4" in one_file and "found nothing" not in one_file
    run = next(s for s in plan if s.kind == "test_after")
    out = "F.\n=== FAILURES ===\nE       assert 1 == 2\nFAILED tests/test_geo.py::test_clamp_order - assert 1 == 2\n1 failed, 1 passed in 0.1s\n"
    said = describe(run, out, __import__("random").Random(0))
    assert "1 failed, 1 passed" in said and "test_clamp_order" in said and "assert 1 == 2" in said
    assert pytest_summary("45 passed in 0.19s")["counts"] == {"passed": 45}
    first = write_thought(None, None, plan[0], spec, __import__("random").Random(0))
    assert "clamp accepts lo > hi." in first and "`test_clamp_order`" in first
    edit = next(s for s in plan if s.kind == "edit")
    after_edit = write_thought(edit, "The file /testbed/pkg/geo.py has been edited.", plan[-1], spec,
                               __import__("random").Random(0))  # fmt: skip
    assert "pkg/geo.py" in after_edit


# ---------------------------------------------------------------------------------- seeded variation


def _actions(style: str, seed: int) -> list[str]:
    return [s.call.model_dump_json() for s in plan_run(_spec(), _facts(), style, seed)]


def test_same_seed_same_plan_and_seeds_vary_the_plan():
    assert _actions("tools", 3) == _actions("tools", 3)
    plans = {tuple(_actions("tools", s)) for s in range(8)}
    assert len(plans) >= 5
    kinds = {tuple(s.kind for s in plan_run(_spec(), _facts(), "tools", seed)) for seed in range(20)}
    assert len(kinds) >= 4  # exploration order and wrong turns differ, not only the arguments
    every = {k for seed in range(40) for k in (s.kind for s in plan_run(_spec(), _facts(), "tools", seed))}
    assert {"edit_bad", "view_fix", "view_wrong", "test_before", "diff"} <= every


def test_a_new_file_in_a_new_directory_gets_its_directory_first():
    patch = "--- /dev/null\n+++ b/pkg/sub/new.py\n@@ -0,0 +1 @@\n+X = 1\n"
    facts = RepoFacts(files=["pkg/geo.py"], originals={"pkg/sub/new.py": None})
    plan = plan_run(_spec(patch=patch, FAIL_TO_PASS=[]), facts, "tools", 0)
    kinds = [s.kind for s in plan]
    assert kinds.index("mkdir") + 1 == kinds.index("edit")
    assert plan[kinds.index("mkdir")].call.arguments["command"] == "mkdir -p pkg/sub"


def test_styles_use_their_tools():
    tools = plan_run(_spec(), _facts(), "tools", 1)
    bash = plan_run(_spec(), _facts(), "bash", 1)
    assert {s.call.name for s in bash} == {"bash", "submit"}
    edits = [s.call for s in tools if s.kind == "edit"]
    assert [c.arguments["command"] for c in edits] == ["str_replace", "str_replace", "create"]
    assert edits[0].arguments["path"] == "/testbed/pkg/geo.py"
    assert tools[-1].call.name == "submit" and bash[-1].call.name == "submit"
    with pytest.raises(ExpertError, match="style 'vim'"):
        plan_run(_spec(), _facts(), "vim", 0)
    jobs = plan_jobs([_spec()], "mixed", 5, 3)
    assert [(st, sd) for _, st, sd in jobs] == [("tools", 5), ("bash", 6), ("tools", 7)]
    jobs = plan_jobs([_spec(), _spec(instance_id="demo__geo-2")], "mixed", 0, 1)
    assert [st for _, st, _ in jobs] == ["tools", "bash"]


def test_traj_help_lists_generate():
    from srl_agent.cli import build_app

    res = CliRunner().invoke(build_app("traj"), ["traj", "--help"])
    assert res.exit_code == 0 and "generate" in res.output and "replay" in res.output


def test_bad_task_source_is_a_clear_cli_error(tmp_path: Path):
    from srl_agent.cli import app

    res = CliRunner().invoke(
        app, ["traj", "generate", "--tasks", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "--tasks" in said and "no such file or directory" in said


def test_unknown_instance_is_one_error_for_generate_and_task_show(tmp_path: Path):
    from envs.sources import UnknownTaskIds, load_tasks
    from srl_agent.cli import app

    loaded = load_tasks(None)
    first = loaded.tasks[0].instance_id
    assert [t.instance_id for t in loaded.select([first])] == [first]
    with pytest.raises(UnknownTaskIds) as info:
        loaded.select([first, "nope__x-1", "nope__y-2"])
    assert info.value.missing == ["nope__x-1", "nope__y-2"] and first in str(info.value)
    gen = CliRunner().invoke(app, ["traj", "generate", "--instance", "nope__x-1", "--out", str(tmp_path)])
    show = CliRunner().invoke(app, ["task", "show", "nope__x-1"])
    for res in (gen, show):
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and "unknown task id(s): nope__x-1" in said and first in said
    assert "--instance" in " ".join(gen.output.split())


# ---------------------------------------------------------------------------------- docker tier


@pytest.mark.docker
def test_generated_run_resolves_replays_imports_and_expands(docker_client, tmp_path: Path, sandboxes_left):
    from envs.sources import load_tasks
    from harness.expert import generate_runs
    from trajectories.importers import load_trajectories
    from trajectories.stepwise import expand

    specs = [t for t in load_tasks(None).tasks if t.patch.strip()]
    spec = min(specs, key=lambda t: len(t.patch))  # the bundled task with the shortest gold patch
    jobs = plan_jobs([spec], "mixed", 0, 2)
    summary = generate_runs(jobs, tmp_path / "runs", client=docker_client)
    assert not summary.failed, summary.failed
    assert len(summary.written) == 2
    trajs = load_trajectories([tmp_path / "runs"])
    assert {t.metadata["style"] for t in trajs} == {"tools", "bash"}
    for traj in trajs:
        assert traj.resolved is True and traj.exit_status == "submitted"
        assert traj.metadata["replay"]["patch_equivalent"] is True
        assert traj.steps[-1].action.name == "submit" and traj.final_patch
        assert all(s.thought for s in traj.steps) and any(s.observation for s in traj.steps)
        rows = expand(traj)
        assert len(rows) == len(traj.steps) and rows[0]["instance_id"] == spec.instance_id
    # resumable: a second call finds both files and runs nothing
    again = generate_runs(jobs, tmp_path / "runs", client=docker_client)
    assert len(again.existing) == 2 and not again.written
    assert sandboxes_left(docker_client, "srl-swe.kind=expert") == []


@pytest.mark.docker
def test_sigterm_during_generation_removes_its_containers(docker_client, tmp_path: Path):
    """`kill` (SIGTERM) unwinds like Ctrl-C: the run's labelled containers do not outlive the command."""
    import signal
    import subprocess
    import sys
    import time

    from envs.sources import load_tasks

    spec = min((t for t in load_tasks(None).tasks if t.patch.strip()), key=lambda t: len(t.patch))
    cmd = [sys.executable, "-m", "srl_agent.cli", "traj", "generate", "--instance", spec.instance_id,
           "--no-replay", "--out", str(tmp_path / "runs")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def mine() -> list:
        return docker_client.api.containers(all=True, filters={"label": [f"srl-swe.pid={proc.pid}"]})

    try:
        deadline = time.monotonic() + 120
        while not mine() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mine(), f"no container appeared (exit {proc.poll()}): {proc.stderr.read() if proc.poll() else ''}"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert mine() == []
