"""The in-sandbox tool script and its host runtime.

Unit tier: the script is plain Python, so it runs here with subprocess on temporary directories, and the
runtime runs against a fake sandbox that executes its commands with a local bash. Docker tier: the same
through a real `Sandbox`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES, needs_shared, shared_fixture

from harness.tools import SUPPORTED_TOOLS, ToolRuntime
from harness.tools import sandbox_tools as st
from harness.tools.runtime import SCRIPT_PATH
from trajectories.schema import ToolCall

FIXTURES = SHARED_FIXTURES
MARSHMALLOW_TRAJ = FIXTURES / "swe-agent" / "marshmallow-code__marshmallow-1867.function_calling.traj"


class Tools:
    """Runs the script like the runtime does: ``python3 -I -S tools.py <tool> <json>`` in `cwd`."""

    def __init__(self, cwd: Path, state: Path) -> None:
        self.cwd = cwd
        self.state = state

    def __call__(self, tool: str, **args: object) -> tuple[str, int]:
        return self.raw(tool, json.dumps(args))

    def raw(self, tool: str, arg: str) -> tuple[str, int]:
        env = {**os.environ, "SRL_TOOLS_STATE": str(self.state)}
        env.pop("WINDOW", None)
        env.pop("OVERLAP", None)
        res = subprocess.run(
            [sys.executable, "-I", "-S", str(SCRIPT_PATH), tool, arg],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        assert res.stderr == "", res.stderr
        return res.stdout, res.returncode


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    d = tmp_path / "repo"
    d.mkdir()
    return d


@pytest.fixture
def tools(repo: Path, tmp_path: Path) -> Tools:
    t = Tools(repo, tmp_path / "state" / "state.json")
    (tmp_path / "state").mkdir()
    t("_configure", repo=str(repo), window=100, overlap=2)
    return t


def numbered_file(path: Path, n: int) -> None:
    path.write_text("".join(f"line {i}\n" for i in range(1, n + 1)))


# ------------------------------------------------------------------------------------------------
# create / open / goto / scroll


def test_create_new_file_shows_one_empty_line(tools: Tools, repo: Path) -> None:
    out, rc = tools("create", filename="reproduce.py")
    assert rc == 0
    assert out == "[File: reproduce.py (1 lines total)]\n1:\n"
    assert (repo / "reproduce.py").read_text() == "\n"


def test_create_makes_parent_directories(tools: Tools, repo: Path) -> None:
    out, rc = tools("create", filename="pkg/sub/new.py")
    assert rc == 0 and (repo / "pkg" / "sub" / "new.py").exists()
    assert out.startswith("[File: pkg/sub/new.py (1 lines total)]")


def test_create_existing_file_is_an_error_and_shows_it(tools: Tools, repo: Path) -> None:
    (repo / "a.py").write_text("x = 1\n")
    out, rc = tools("create", filename="a.py")
    assert rc == 1
    assert out.startswith("Error: File 'a.py' already exists.\n[File: a.py (1 lines total)]\n1:x = 1")


def test_create_legacy_args(tools: Tools, repo: Path) -> None:
    out, rc = tools("create", args="reproduce_bug.py")
    assert rc == 0 and (repo / "reproduce_bug.py").exists()


def test_open_positions_window_a_sixth_below_the_top(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "big.py", 300)
    out, rc = tools("open", path="big.py", line_number="150")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "[File: big.py (300 lines total)]"
    # 0-based 149 - 100/6 -> first line 132 (0-based), shown as 133
    assert lines[1] == "(132 more lines above)"
    assert lines[2] == "133:line 133"
    assert lines[101] == "232:line 232"
    assert lines[102] == "(68 more lines below)"


def test_open_matches_recorded_marshmallow_window_arithmetic(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "fields.py", 1997)
    out, _ = tools("open", path="fields.py", line_number=1474)
    assert out.splitlines()[1:3] == ["(1456 more lines above)", "1457:line 1457"]
    assert out.splitlines()[-1] == "(441 more lines below)"


def test_open_clamps_window_at_end_of_file(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "big.py", 150)
    out, _ = tools("open", path="big.py", line_number=149)
    lines = out.splitlines()
    assert lines[1] == "(50 more lines above)" and lines[-1] == "150:line 150"


def test_open_small_file_has_no_above_below_lines(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "s.py", 3)
    out, _ = tools("open", path="s.py")
    assert out == "[File: s.py (3 lines total)]\n1:line 1\n2:line 2\n3:line 3\n"


def test_open_line_number_out_of_range_warns(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "s.py", 3)
    out, rc = tools("open", path="s.py", line_number=10)
    assert rc == 0
    assert out.startswith(
        "Warning: <line_number> (10) is greater than the number of lines in the file (3)\n"
        "Warning: Setting <line_number> to 3\n[File: s.py"
    )
    out, _ = tools("open", path="s.py", line_number=0)
    assert out.startswith("Warning: <line_number> (0) is less than 1\nWarning: Setting <line_number> to 1\n")


def test_open_errors(tools: Tools, repo: Path) -> None:
    (repo / "d").mkdir()
    numbered_file(repo / "s.py", 3)
    assert tools("open") == ('Usage: open "<file>"\n', 1)
    assert tools("open", path="missing.py") == ("Error: File missing.py not found\n", 1)
    out, rc = tools("open", path="d")
    assert rc == 1 and "is a directory. You can only open files." in out
    out, rc = tools("open", path="s.py", line_number="abc")
    assert rc == 1 and out.endswith("Error: <line_number> must be a number\n")
    assert tools("open")[0].startswith(f"[File: {repo}/s.py")  # no path: show the open file again


def test_open_legacy_args_with_quotes(tools: Tools, repo: Path) -> None:
    (repo / "src").mkdir()
    numbered_file(repo / "src" / "my file.py", 200)
    out, rc = tools("open", args='"src/my file.py" 120')
    assert rc == 0
    assert out.splitlines()[0] == "[File: src/my file.py (200 lines total)]"
    assert out.splitlines()[1] == "(100 more lines above)"  # 119 - 100/6, clamped to the last window


def test_goto_uses_absolute_path_and_checks_range(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "big.py", 300)
    assert tools("goto", line_number=5) == ("No file open. Use the open command first.\n", 1)
    tools("open", path="big.py")
    out, rc = tools("goto", line_number="200")
    assert rc == 0
    assert out.splitlines()[0] == f"[File: {repo / 'big.py'} (300 lines total)]"
    assert out.splitlines()[1] == "(182 more lines above)"
    assert tools("goto", line_number=301) == ("Error: <line> must be less than or equal to 300\n", 1)
    assert tools("goto", line_number="x")[0].endswith("Error: <line> must be a number\n")
    assert tools("goto", args="250")[0].splitlines()[1] == "(200 more lines above)"


def test_scroll_down_and_up_with_overlap(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "big.py", 300)
    tools("open", path="big.py")
    out, _ = tools("scroll_down")
    assert out.splitlines()[1] == "(98 more lines above)"
    out, _ = tools("scroll_down")
    assert out.splitlines()[1] == "(196 more lines above)"
    out, _ = tools("scroll_down")  # clamped: the last window
    assert out.splitlines()[1] == "(200 more lines above)" and out.splitlines()[-1] == "300:line 300"
    out, _ = tools("scroll_up")
    assert out.splitlines()[1] == "(102 more lines above)"
    tools("scroll_up")
    out, _ = tools("scroll_up")
    assert out.splitlines()[1] == "1:line 1"


def test_scroll_without_open_file(tools: Tools) -> None:
    assert tools("scroll_down") == ("No file open. Use the open command first.\n", 1)


# ------------------------------------------------------------------------------------------------
# edit


REPRO = (
    "from marshmallow.fields import TimeDelta\nfrom datetime import timedelta\n\n"
    'td_field = TimeDelta(precision="milliseconds")\n\nobj = dict()\n'
    'obj["td_field"] = timedelta(milliseconds=345)\n\nprint(td_field.serialize("td_field", obj))'
)


@needs_shared
def test_edit_text_form_reproduces_recorded_observation(tools: Tools, repo: Path) -> None:
    tools("create", filename="reproduce.py")
    out, rc = tools("edit", args=f"1:1\n{REPRO}\nend_of_edit")
    assert rc == 0
    recorded = json.loads(MARSHMALLOW_TRAJ.read_text())["trajectory"][1]["observation"]
    assert out.strip() == recorded.replace("\r\n", "\n").replace("/testbed", str(repo)).strip()
    assert (repo / "reproduce.py").read_text() == REPRO + "\n"


def test_edit_function_call_form_same_result(tools: Tools, repo: Path) -> None:
    tools("create", filename="reproduce.py")
    out, rc = tools("edit", start_line="1", end_line="1", replacement_text=REPRO)
    assert rc == 0 and out.startswith("File updated. Please review the changes")
    assert (repo / "reproduce.py").read_text() == REPRO + "\n"


def test_edit_replaces_range_and_moves_window(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "big.txt", 300)
    tools("open", path="big.txt")
    out, rc = tools("edit", start_line=200, end_line=202, replacement_text="new A\nnew B")
    assert rc == 0
    lines = (repo / "big.txt").read_text().splitlines()
    assert lines[198:201] == ["line 199", "new A", "new B"] and len(lines) == 299
    assert out.splitlines()[3] == "(182 more lines above)"  # goto(199) after the two message lines


def test_edit_empty_replacement_deletes_lines(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "s.txt", 5)
    tools("open", path="s.txt")
    tools("edit", start_line=2, end_line=3, replacement_text="")
    assert (repo / "s.txt").read_text() == "line 1\nline 4\nline 5\n"


def test_edit_syntax_error_is_rejected_with_both_windows(tools: Tools, repo: Path) -> None:
    src = "def f(x):\n    return x\n"
    (repo / "m.py").write_text(src)
    tools("open", path="m.py")
    out, rc = tools("edit", args="2:2\nreturn x + 1\nend_of_edit")
    assert rc == 1
    assert (repo / "m.py").read_text() == src
    assert out.startswith(
        "Your proposed edit has introduced new syntax error(s). Please read this error message carefully"
    )
    assert "ERRORS:\n- E999 IndentationError: expected an indented block" in out
    assert "This is how your edit would have looked if applied" in out and "2:return x + 1" in out
    assert "This is the original code before your edit" in out and "2:    return x" in out
    assert out.rstrip().endswith("Running it again will lead to the same error.")


def test_edit_pre_existing_error_elsewhere_does_not_block(tools: Tools, repo: Path) -> None:
    (repo / "m.py").write_text("x = 1\ny = 2\ndef broken(:\n")
    tools("open", path="m.py")
    out, rc = tools("edit", start_line=1, end_line=1, replacement_text="x = 3")
    assert rc == 0, out
    assert (repo / "m.py").read_text().startswith("x = 3\n")


def test_edit_new_bad_indentation_is_e111(tools: Tools, repo: Path) -> None:
    (repo / "m.py").write_text("def f():\n    return 1\n")
    tools("open", path="m.py")
    out, rc = tools("edit", start_line=2, end_line=2, replacement_text="   return 2")
    assert rc == 1 and "- E111 indentation is not a multiple of 4" in out


def test_edit_non_python_files_are_not_linted(tools: Tools, repo: Path) -> None:
    (repo / "notes.txt").write_text("a\n")
    tools("open", path="notes.txt")
    out, rc = tools("edit", start_line=1, end_line=1, replacement_text="    def (:")
    assert rc == 0


def test_edit_errors(tools: Tools, repo: Path) -> None:
    assert tools("edit", args="1:1\nx\nend_of_edit") == ("No file opened. Use the `open` command first.\n", 1)
    numbered_file(repo / "s.txt", 3)
    tools("open", path="s.txt")
    out, rc = tools("edit", args="one:two\nx\nend_of_edit")
    assert rc == 1 and out.startswith("Usage: edit <start_line>:<end_line>")
    out, rc = tools("edit", start_line="0", end_line="1", replacement_text="x")
    assert rc == 1 and "invalid line range 0:1" in out
    out, rc = tools("edit", start_line="a", end_line="1", replacement_text="x")
    assert rc == 1 and "`start_line` must be an integer" in out


def test_edit_keeps_crlf_line_endings(tools: Tools, repo: Path) -> None:
    (repo / "w.txt").write_bytes(b"a\r\nb\r\nc\r\n")
    tools("open", path="w.txt")
    tools("edit", start_line=2, end_line=2, replacement_text="B")
    assert (repo / "w.txt").read_bytes() == b"a\r\nB\r\nc\r\n"


def test_parse_legacy_edit() -> None:
    assert st.parse_legacy_edit("3:4\n  a\nb\nend_of_edit") == ("3:4", "  a\nb")
    assert st.parse_legacy_edit("3:4\nend_of_edit\n") == ("3:4", "")
    assert st.parse_legacy_edit("3:4\na\n") == ("3:4", "a")
    assert st.parse_legacy_edit("3:4") == ("3:4", None)


def test_large_arguments_travel_through_a_file(tools: Tools, repo: Path, tmp_path: Path) -> None:
    tools("create", filename="big.txt")
    text = "\n".join("x" * 100 for _ in range(3000))
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"start_line": 1, "end_line": 1, "replacement_text": text}))
    out, rc = tools.raw("edit", "@" + str(args_file))
    assert rc == 0 and not args_file.exists()
    assert (repo / "big.txt").read_text() == text + "\n"


# ------------------------------------------------------------------------------------------------
# find_file / search_dir / search_file


def test_find_file(tools: Tools, repo: Path) -> None:
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "fields.py").write_text("")
    (repo / "src" / "other.py").write_text("")
    out, rc = tools("find_file", file_name="fields.py", dir="src")
    assert rc == 0
    assert out == f'Found 1 matches for "fields.py" in {repo}/src:\n{repo}/src/pkg/fields.py\n'
    out, _ = tools("find_file", file_name="*.py")
    assert out.startswith(f'Found 2 matches for "*.py" in {repo}:')
    assert tools("find_file", file_name="nope.py") == (f'No matches found for "nope.py" in {repo}\n', 0)
    assert tools("find_file", file_name="x", dir="missing") == ("Directory missing not found\n", 1)
    out, _ = tools("find_file", args='"fields.py"')
    assert out.startswith('Found 1 matches for "fields.py"')


def test_search_dir(tools: Tools, repo: Path) -> None:
    (repo / "a.py").write_text("TimeDelta\nx = TimeDelta()\n")
    (repo / "b.py").write_text("TimeDelta here\n")
    (repo / ".hidden").mkdir()
    (repo / ".hidden" / "c.py").write_text("TimeDelta\n")
    (repo / "bin.dat").write_bytes(b"TimeDelta\0\x01")
    out, rc = tools("search_dir", search_term="TimeDelta")
    assert rc == 0
    assert out == (
        f'Found 3 matches for "TimeDelta" in {repo}:\n'
        f"{repo}/a.py (2 matches)\n{repo}/b.py (1 matches)\n"
        f'End of matches for "TimeDelta" in {repo}\n'
    )
    assert tools("search_dir", search_term="zzz") == (f'No matches found for "zzz" in {repo}\n', 0)
    assert tools("search_dir", search_term="x", dir="nope") == ("Directory nope not found\n", 1)


def test_search_dir_too_many_files(tools: Tools, repo: Path) -> None:
    for i in range(101):
        (repo / f"f{i}.txt").write_text("needle\n")
    out, _ = tools("search_dir", search_term="needle")
    assert out == f'More than 101 files matched for "needle" in {repo}. Please narrow your search.\n'


def test_search_uses_grep_basic_regex(tools: Tools, repo: Path) -> None:
    (repo / "a.py").write_text("def f(x):\nabc\naXc\nf+g\n")
    tools("open", path="a.py")
    assert "Line 1:def f(x):" in tools("search_file", search_term="f(x)")[0]  # ( is literal in BRE
    out, _ = tools("search_file", search_term="a.c")
    assert "Found 2 matches" in out
    out, _ = tools("search_file", search_term="f+g")
    assert "Line 4:f+g" in out
    out, _ = tools("search_file", search_term="^abc$")
    assert "Found 1 matches" in out


def test_bre_to_python() -> None:
    assert st.bre_to_python("f(x)") == r"f\(x\)"
    assert st.bre_to_python(r"a\|b") == "a|b"
    assert st.bre_to_python("[[:digit:]]+") == r"[0-9]\+"
    assert st.bre_to_python("*star") == r"\*star"
    assert st.bre_to_python("[unclosed") == r"\[unclosed"


def test_search_file(tools: Tools, repo: Path) -> None:
    (repo / "a.py").write_text("foo = 1\nbar = foo\n\nfoo()\n")
    assert tools("search_file", search_term="foo") == ("No file open. Use the open command first.\n", 1)
    out, rc = tools("search_file", search_term="foo", file="a.py")
    assert rc == 0
    assert out == (
        f'Found 3 matches for "foo" in {repo}/a.py:\nLine 1:foo = 1\nLine 2:bar = foo\nLine 4:foo()\n'
        f'End of matches for "foo" in {repo}/a.py\n'
    )
    tools("open", path="a.py")
    assert tools("search_file", search_term="bar")[0].startswith(f'Found 1 matches for "bar" in {repo}/a.py')
    out, rc = tools("search_file", search_term="x", file="nope.py")
    assert rc == 1 and "Error: File name nope.py not found." in out
    assert tools("search_file", search_term="zzz")[0] == f'No matches found for "zzz" in {repo}/a.py\n'


# ------------------------------------------------------------------------------------------------
# submit


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True,
        env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t"},
    ).stdout  # fmt: skip


@pytest.fixture
def git_repo(repo: Path, tools: Tools) -> Path:
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    tools("_configure", repo=str(repo), base=git(repo, "rev-parse", "HEAD").strip())
    return repo


def test_submit_diffs_everything_against_base(tools: Tools, git_repo: Path) -> None:
    (git_repo / "a.py").write_text("x = 2\n")
    (git_repo / "new.py").write_text("y = 1\n")
    out, rc = tools("submit")
    assert rc == 0
    assert "diff --git a/a.py b/a.py" in out and "-x = 1\n+x = 2" in out
    assert "diff --git a/new.py b/new.py" in out and "+y = 1" in out
    assert "srl_tools" not in out  # our state lives outside the repo


def test_submit_diff_is_against_base_even_after_agent_commits(tools: Tools, git_repo: Path) -> None:
    (git_repo / "a.py").write_text("x = 3\n")
    git(git_repo, "commit", "-qam", "agent commit")
    out, rc = tools("submit")
    assert rc == 0 and "+x = 3" in out


def test_submit_empty_when_nothing_changed(tools: Tools, git_repo: Path) -> None:
    assert tools("submit") == ("", 0)


# ------------------------------------------------------------------------------------------------
# str_replace_editor


def test_editor_view_file_cat_n(tools: Tools, repo: Path) -> None:
    (repo / "a.py").write_text("one\n\ttwo\n")
    out, rc = tools("str_replace_editor", command="view", path=str(repo / "a.py"))
    assert rc == 0
    assert out == (
        f"Here's the result of running `cat -n` on {repo}/a.py:\n     1\tone\n     2\t        two\n     3\t\n"
    )


def test_editor_view_range(tools: Tools, repo: Path) -> None:
    numbered_file(repo / "a.txt", 10)
    out, _ = tools("str_replace_editor", command="view", path=str(repo / "a.txt"), view_range="[3, 4]")
    assert out.splitlines()[1:] == ["     3\tline 3", "     4\tline 4"]
    out, _ = tools("str_replace_editor", command="view", path=str(repo / "a.txt"), view_range="[9, -1]")
    assert out.splitlines()[1:] == ["     9\tline 9", "    10\tline 10", "    11\t"]
    out, rc = tools("str_replace_editor", command="view", path=str(repo / "a.txt"), view_range="[0, 4]")
    assert rc == 1 and "Its first element `0` should be within the range of lines of the file: [1, 11]" in out
    out, rc = tools("str_replace_editor", command="view", path=str(repo / "a.txt"), view_range="[5, 3]")
    assert rc == 1 and "should be larger or equal than its first `5`" in out
    out, rc = tools("str_replace_editor", command="view", path=str(repo / "a.txt"), view_range="[1, 99]")
    assert rc == 1 and "should be smaller than the number of lines in the file: `11`" in out
    out, rc = tools("str_replace_editor", command="view", path=str(repo / "a.txt"), view_range="[1]")
    assert rc == 1 and "It should be a list of two integers" in out


def test_editor_view_directory_two_levels_without_hidden(tools: Tools, repo: Path) -> None:
    (repo / "a" / "b" / "c").mkdir(parents=True)
    (repo / "a" / "b" / "c" / "deep.py").write_text("")
    (repo / "a" / "x.py").write_text("")
    (repo / ".git").mkdir()
    out, rc = tools("str_replace_editor", command="view", path=str(repo))
    assert rc == 0
    assert out.startswith(
        f"Here's the files and directories up to 2 levels deep in {repo}, excluding hidden items:"
    )
    listed = set(out.splitlines()[1:])
    assert {str(repo), f"{repo}/a", f"{repo}/a/b", f"{repo}/a/x.py"} <= listed
    assert f"{repo}/a/b/c" not in listed and f"{repo}/.git" not in listed


def test_editor_create_and_errors(tools: Tools, repo: Path) -> None:
    p = repo / "n.py"
    assert tools("str_replace_editor", command="create", path=str(p), file_text="a\n") == (
        f"File created successfully at: {p}\n",
        0,
    )
    assert p.read_text() == "a\n"
    out, rc = tools("str_replace_editor", command="create", path=str(p), file_text="b")
    assert rc == 1 and out == f"File already exists at: {p}. Cannot overwrite files using command `create`.\n"
    out, rc = tools("str_replace_editor", command="create", path=str(repo / "no" / "x.py"), file_text="")
    assert rc == 1 and "The parent directory" in out
    out, rc = tools("str_replace_editor", command="view", path="n.py")
    assert (
        rc == 1
        and out
        == f"The path n.py is not an absolute path, it should start with `/`. Maybe you meant {repo}/n.py?\n"
    )
    out, rc = tools("str_replace_editor", command="view", path=str(repo / "missing"))
    assert rc == 1 and "does not exist. Please provide a valid path." in out
    out, rc = tools("str_replace_editor", command="str_replace", path=str(repo), old_str="a")
    assert rc == 1 and "is a directory and only the `view` command can be used on directories" in out
    out, rc = tools("str_replace_editor", command="frobnicate", path=str(p))
    assert rc == 1 and out.startswith("Unrecognized command frobnicate.")
    out, rc = tools("str_replace_editor", command="create", path=str(repo / "m.py"))
    assert rc == 1 and "Parameter `file_text` is required for command: create" in out


def test_editor_str_replace_unique(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    numbered_file(p, 20)
    out, rc = tools(
        "str_replace_editor", command="str_replace", path=str(p), old_str="line 10\n", new_str="TEN\n"
    )
    assert rc == 0
    assert out.startswith(
        f"The file {p} has been edited. Here's the result of running `cat -n` on a snippet of {p}:"
    )
    assert "    10\tTEN" in out and "     5\tline 5" in out
    assert out.rstrip().endswith(
        "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )
    assert "TEN\n" in p.read_text() and "line 10\n" not in p.read_text()


def test_editor_str_replace_zero_and_multiple_occurrences(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    p.write_text("x = 1\ny = 1\nx = 1\n")
    out, rc = tools("str_replace_editor", command="str_replace", path=str(p), old_str="z = 1", new_str="")
    assert (
        rc == 1 and out == f"No replacement was performed, old_str `z = 1` did not appear verbatim in {p}.\n"
    )
    out, rc = tools(
        "str_replace_editor", command="str_replace", path=str(p), old_str="x = 1", new_str="x = 2"
    )
    assert rc == 1
    assert (
        out
        == "No replacement was performed. Multiple occurrences of old_str `x = 1` in lines [1, 3]. Please ensure it is unique\n"
    )
    out, rc = tools(
        "str_replace_editor", command="str_replace", path=str(p), old_str="y = 1", new_str="y = 1"
    )
    assert rc == 1 and "is the same as new_str" in out
    assert p.read_text() == "x = 1\ny = 1\nx = 1\n"


def test_editor_str_replace_multiline_duplicates_report_start_lines(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    p.write_text("a\nb\na\nb\n")
    out, rc = tools("str_replace_editor", command="str_replace", path=str(p), old_str="a\nb", new_str="c")
    assert rc == 1 and "in lines [1, 3]" in out


def test_editor_str_replace_empty_new_str_deletes(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    p.write_text("keep\ndrop me\n")
    out, rc = tools("str_replace_editor", command="str_replace", path=str(p), old_str="drop me\n")
    assert rc == 0 and p.read_text() == "keep\n"


def test_editor_insert_and_undo(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    p.write_text("a\nb\nc\n")
    out, rc = tools("str_replace_editor", command="insert", path=str(p), insert_line="1", new_str="NEW")
    assert rc == 0 and p.read_text() == "a\nNEW\nb\nc\n"
    assert "Here's the result of running `cat -n` on a snippet of the edited file:" in out
    assert "     2\tNEW" in out
    out, rc = tools("str_replace_editor", command="insert", path=str(p), insert_line=99, new_str="x")
    assert (
        rc == 1
        and "Invalid `insert_line` parameter: 99. It should be within the range of lines of the file: [0, 5]"
        in out
    )
    out, rc = tools("str_replace_editor", command="undo_edit", path=str(p))
    assert rc == 0 and out.startswith(f"Last edit to {p} undone successfully.")
    assert p.read_text() == "a\nb\nc\n"
    out, rc = tools("str_replace_editor", command="undo_edit", path=str(p))
    assert (out, rc) == (f"No edit history found for {p}.\n", 1)


def test_editor_undo_is_a_stack(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    p.write_text("v1\n")
    tools("str_replace_editor", command="str_replace", path=str(p), old_str="v1", new_str="v2")
    tools("str_replace_editor", command="str_replace", path=str(p), old_str="v2", new_str="v3")
    tools("str_replace_editor", command="undo_edit", path=str(p))
    assert p.read_text() == "v2\n"
    tools("str_replace_editor", command="undo_edit", path=str(p))
    assert p.read_text() == "v1\n"


def test_editor_undo_of_create_removes_the_file(tools: Tools, repo: Path) -> None:
    p = repo / "n.py"
    tools("str_replace_editor", command="create", path=str(p), file_text="x")
    out, rc = tools("str_replace_editor", command="undo_edit", path=str(p))
    assert rc == 0 and not p.exists()


def test_editor_legacy_raw_args(tools: Tools, repo: Path) -> None:
    p = repo / "a.py"
    p.write_text("hello\n")
    out, rc = tools("str_replace_editor", args=f"view {p} --view_range 1 1")
    assert rc == 0 and out.splitlines()[1] == "     1\thello"
    out, rc = tools("str_replace_editor", args=f"str_replace {p} --old_str hello --new_str 'bye bye'")
    assert rc == 0 and p.read_text() == "bye bye\n"


# ------------------------------------------------------------------------------------------------
# entry point


def test_arguments_as_name_value_pairs(tools: Tools, repo: Path) -> None:
    env = {**os.environ, "SRL_TOOLS_STATE": str(tools.state)}
    argv = [sys.executable, "-I", "-S", str(SCRIPT_PATH), "create", "filename", "p.txt"]
    res = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("[File: p.txt (1 lines total)]")
    argv = [sys.executable, "-I", "-S", str(SCRIPT_PATH), "edit", "start_line", "1", "end_line", "1",
            "replacement_text", "a = '{x}'\n@b"]  # fmt: skip
    res = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert (repo / "p.txt").read_text() == "a = '{x}'\n@b\n"
    res = subprocess.run([*argv[:5], "start_line"], cwd=repo, env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "expected <name> <value> pairs" in res.stdout


def test_unknown_tool_and_bad_arguments(tools: Tools) -> None:
    out, rc = tools("frobnicate")
    assert rc == 2 and out.startswith("Unknown tool 'frobnicate'")
    out, rc = tools.raw("open", "{not json")
    assert rc == 2 and out.startswith("Error: could not read the arguments of open")


def test_script_is_stdlib_only_and_py39_compatible() -> None:
    src = SCRIPT_PATH.read_text()
    allowed = {
        "json",
        "marshal",
        "os",
        "sys",
        "hashlib",
        "shlex",
        "io",
        "tokenize",
        "fnmatch",
        "re",
        "subprocess",
        "ast",
        "builtins",
        "symtable",
        "__future__",
    }
    import ast

    tree = ast.parse(src)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= allowed
    assert not any(isinstance(n, ast.Match) for n in ast.walk(tree))
    # runtime annotations of 3.10-only syntax are fine only because of the __future__ import
    assert "from __future__ import annotations" in src


# ------------------------------------------------------------------------------------------------
# runtime against a local fake sandbox


class LocalResult:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code = exit_code
        self.output = output
        self.timed_out = False
        self.duration = 0.0


class LocalSandbox:
    """Runs session commands with a local bash in `cwd` (no Docker); files map to the host."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.commands: list[str] = []

    def exec(self, command: str, timeout: float | None = None) -> LocalResult:
        self.commands.append(command)
        res = subprocess.run(["bash", "-c", command], cwd=self.cwd, capture_output=True, text=True)
        return LocalResult(res.returncode, res.stdout + res.stderr)

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        p.chmod(mode)


@pytest.fixture
def local_runtime(git_repo: Path, tmp_path: Path) -> ToolRuntime:
    sb = LocalSandbox(git_repo)
    rt = ToolRuntime(
        sb,
        repo=str(git_repo),
        tools_dir=str(tmp_path / "opt"),
        state_path=str(tmp_path / "rt" / "state.json"),
    )
    (tmp_path / "rt").mkdir()
    return rt


def test_runtime_routes_bash_to_the_session(local_runtime: ToolRuntime) -> None:
    obs = local_runtime.execute(ToolCall(name="bash", arguments={"command": "echo hi; exit 3"}))
    assert (obs.text, obs.exit_code, obs.unsupported, obs.submitted) == ("hi\n", 3, False, False)
    assert not local_runtime.installed  # bash alone needs no script


def test_runtime_installs_script_once_and_runs_typed_and_legacy_forms(
    local_runtime: ToolRuntime, git_repo: Path
) -> None:
    obs = local_runtime.execute(ToolCall(name="create", arguments={"filename": "r.py"}))
    assert obs.exit_code == 0 and obs.text.startswith("[File: r.py (1 lines total)]")
    assert local_runtime.installed and local_runtime.base_commit
    obs = local_runtime.execute(ToolCall(name="edit", arguments={"args": "1:1\nprint('it''s')\nend_of_edit"}))
    assert obs.exit_code == 0, obs.text
    assert (git_repo / "r.py").read_text() == "print('it''s')\n"
    obs = local_runtime.execute(
        ToolCall(
            name="edit",
            arguments={"start_line": "1", "end_line": "1", "replacement_text": "x = '$HOME `id`'"},
        )
    )
    assert (git_repo / "r.py").read_text() == "x = '$HOME `id`'\n"
    writes = [c for c in local_runtime.sandbox.commands if "_configure" in c]
    assert len(writes) == 1


def test_runtime_submit_returns_patch(local_runtime: ToolRuntime, git_repo: Path) -> None:
    (git_repo / "a.py").write_text("x = 5\n")
    obs = local_runtime.execute(ToolCall(name="submit"))
    assert obs.submitted and obs.patch is not None and "+x = 5" in obs.patch


def test_runtime_unsupported_tool_is_reported_not_run(local_runtime: ToolRuntime) -> None:
    obs = local_runtime.execute(ToolCall(name="browser", arguments={"url": "x"}))
    assert obs.unsupported and obs.exit_code == -1 and "not implemented" in obs.text
    assert local_runtime.sandbox.commands == []


def test_runtime_large_arguments_go_through_a_file(local_runtime: ToolRuntime, git_repo: Path) -> None:
    text = "y" * 200_000
    path = git_repo / "big.txt"
    obs = local_runtime.execute(
        ToolCall(
            name="str_replace_editor", arguments={"command": "create", "path": str(path), "file_text": text}
        )
    )
    assert obs.exit_code == 0, obs.text
    assert path.read_text() == text
    assert all(len(c) < 100_000 for c in local_runtime.sandbox.commands)


def test_runtime_timing_strips_trailer(local_runtime: ToolRuntime) -> None:
    local_runtime.timing = True
    obs = local_runtime.execute(ToolCall(name="bash", arguments={"command": "echo out; sleep 0.05; false"}))
    assert obs.text == "out\n" and obs.exit_code == 1
    assert obs.command_time is not None and 0.04 < obs.command_time < 1.0


def test_supported_tools_cover_the_published_toolsets() -> None:
    from trajectories.tools import TOOLSETS

    for name in ("bash_only", "editor", "swe_agent", "swe_agent_legacy"):
        assert {t.name for t in TOOLSETS[name]} <= SUPPORTED_TOOLS, name


def test_the_tool_list_exists_once(tmp_path: Path) -> None:
    """`TOOL_SPECS` is the one list: the runtime's tool sets, the toolsets and the script follow it."""
    from harness.tools.runtime import SCRIPT_TOOLS, SHELL_TOOLS
    from trajectories.tools import TOOL_SPECS, TOOLSETS

    assert SUPPORTED_TOOLS == set(TOOL_SPECS) and SCRIPT_TOOLS == set(TOOL_SPECS) - SHELL_TOOLS
    assert SHELL_TOOLS == {"bash"}
    # the script's tools are its tool_<name> functions, exactly the script tools
    assert set(st.TOOLS) - {"_configure"} == SCRIPT_TOOLS
    assert all(st.TOOLS[name].__name__ == f"tool_{name}" for name in SCRIPT_TOOLS)
    for toolset in TOOLSETS.values():
        assert {t.name for t in toolset} <= set(TOOL_SPECS)
    # run as the sandbox runs it, the script names the same tools
    out, code = Tools(tmp_path, tmp_path / "state")("no_such_tool")
    assert code == 2 and set(out.strip().split("Known tools: ")[1].split(", ")) == SCRIPT_TOOLS


def test_tool_parameter_names_match_specs() -> None:
    """Every parameter the specs declare is one the script reads."""
    from trajectories.tools import TOOLSETS

    src = SCRIPT_PATH.read_text()
    for spec in TOOLSETS["editor"] + TOOLSETS["swe_agent"]:
        for p in spec.params:
            if spec.name != "bash":
                assert f'"{p.name}"' in src, (spec.name, p.name)


# ------------------------------------------------------------------------------------------------
# docker tier


@pytest.mark.docker
def test_runtime_in_a_real_sandbox(base_image: str) -> None:
    from harness.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(image=base_image, workdir="/tmp", timeout=60)) as sb:
        setup = (
            "mkdir -p /tmp/repo && cd /tmp/repo && git init -q && git config user.email t@t && "
            "git config user.name t && printf 'def f():\\n    return 1\\n' > m.py && git add -A && "
            "git commit -qm base"
        )
        assert sb.exec(setup).exit_code == 0
        rt = ToolRuntime(sb, repo="/tmp/repo")
        obs = rt.execute(ToolCall(name="open", arguments={"path": "m.py"}))
        assert obs.exit_code == 0 and obs.text.startswith("[File: m.py (2 lines total)]"), obs.text
        obs = rt.execute(ToolCall(name="edit", arguments={"args": "2:2\nreturn 2\nend_of_edit"}))
        assert obs.exit_code == 1 and "E999 IndentationError" in obs.text
        obs = rt.execute(
            ToolCall(
                name="edit",
                arguments={"start_line": "2", "end_line": "2", "replacement_text": "    return 2"},
            )
        )
        assert obs.exit_code == 0 and "2:    return 2" in obs.text
        obs = rt.execute(
            ToolCall(
                name="str_replace_editor",
                arguments={
                    "command": "str_replace",
                    "path": "/tmp/repo/m.py",
                    "old_str": "f()",
                    "new_str": "g()",
                },
            )
        )
        assert obs.exit_code == 0, obs.text
        obs = rt.execute(ToolCall(name="search_dir", arguments={"search_term": "return"}))
        assert obs.text.startswith('Found 1 matches for "return" in /tmp/repo:'), obs.text
        obs = rt.execute(
            ToolCall(name="bash", arguments={"command": "cd /tmp/repo && echo created > new.txt"})
        )
        obs = rt.execute(ToolCall(name="submit"))
        assert (
            obs.submitted
            and "+def g():" in obs.patch
            and "+    return 2" in obs.patch
            and "+created" in obs.patch
        )
        assert rt.execute(ToolCall(name="nope")).unsupported


# ------------------------------------------------------------------------------------------------
# v0 style (SWE-agent 0.x, the old .traj layout), checked against the recorded pydicom trajectory

PYDICOM_TRAJ = FIXTURES / "swe-agent" / "pydicom__pydicom-1458.traj"
NUMPY_HANDLER = "pydicom/pixel_data_handlers/numpy_handler.py"


@pytest.fixture
def v0(tools: Tools) -> Tools:
    tools("_configure", style="v0")
    return tools


@pytest.fixture
def pydicom_steps() -> list[dict]:
    return json.loads(shared_fixture("swe-agent", PYDICOM_TRAJ.name).read_text())["trajectory"]


def _reconstruct_numpy_handler(repo: Path, steps: list[dict]) -> None:
    """Lines 273-372 as the recording shows them after `open ... 293`; lines 1-272 a compiling stand-in."""
    shown = [line.split(":", 1)[1] for line in steps[4]["observation"].split("\n") if line[:3].isdigit()]
    assert len(shown) == 100
    head = ["def get_pixeldata(ds, read_only=False):"] + ["    x = 0"] * 268
    head += ["    if ds:", "        pass", "        raise NotImplementedError("]
    path = repo / NUMPY_HANDLER
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(head + shown) + "\n")


def _recorded(obs: str, repo: Path) -> str:
    return obs.replace("/pydicom__pydicom", str(repo)).strip()


def test_v0_create_and_edit_reproduce_recorded_observations(v0: Tools, repo: Path, pydicom_steps) -> None:
    out, rc = v0("create", args="reproduce_bug.py")
    assert (out.strip(), rc) == (_recorded(pydicom_steps[0]["observation"], repo), 0)
    args = pydicom_steps[1]["action"][len("edit ") :]
    out, rc = v0("edit", args=args)
    assert (out.strip(), rc) == (_recorded(pydicom_steps[1]["observation"], repo), 0)


def test_v0_open_and_failed_edits_reproduce_recorded_observations(
    v0: Tools, repo: Path, pydicom_steps
) -> None:
    _reconstruct_numpy_handler(repo, pydicom_steps)
    out, rc = v0("open", args=f"{NUMPY_HANDLER} 293")
    assert (out.strip(), rc) == (_recorded(pydicom_steps[4]["observation"], repo), 0)
    for i in (5, 6, 7):  # three rejected edits: unmatched ']' then twice unmatched ')'
        out, rc = v0("edit", args=pydicom_steps[i]["action"][len("edit ") :])
        assert rc == 1
        assert out.strip() == _recorded(pydicom_steps[i]["observation"], repo), i
    out, rc = v0("edit", args=pydicom_steps[8]["action"][len("edit ") :])
    recorded = _recorded(pydicom_steps[8]["observation"], repo).split("\n")
    lines = out.strip().split("\n")
    assert rc == 0
    # lines 237-272 of the window are our stand-in; the frame and the edited region are the recording's
    assert lines[:2] == recorded[:2] and lines[-2:] == recorded[-2:]
    assert lines[38:] == recorded[38:]


def test_v0_scroll_and_goto(v0: Tools, repo: Path) -> None:
    numbered_file(repo / "big.py", 300)
    out, _ = v0("open", path="big.py")
    assert out.splitlines()[0] == f"[File: {repo}/big.py (300 lines total)]"
    assert out.splitlines()[1] == "1:line 1" and out.splitlines()[-1] == "(200 more lines below)"
    out, _ = v0("scroll_down")  # centre 50 -> 148: lines 99-198
    assert out.splitlines()[1:3] == ["(98 more lines above)", "99:line 99"]
    out, _ = v0("goto", line_number=290)  # centre clamped to 250: lines 201-300
    assert out.splitlines()[1:3] == ["(200 more lines above)", "201:line 201"]
    assert out.splitlines()[-1] == "300:line 300"
