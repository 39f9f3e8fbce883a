"""The one agent loop without Docker: `ScriptedPolicy` (or a scripted token generator) acting in the
in-memory sandbox (`srl_agent.testing.MemorySandbox`: a dict file system and a small shell), with both
prompt formats, every exit status, and the RLVR token view."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import get_args

import pytest

from srl_agent.agent import (
    EXIT_STATUSES,
    AgentConfig,
    AppendOnlyChat,
    EpisodeResult,
    ExitStatus,
    SlidingWindow,
    run_loop,
)
from srl_agent.policy import ScriptedPolicy
from srl_agent.testing import MemorySandbox
from trajectories.actions import format_answer
from trajectories.importers import load_trajectories
from trajectories.prompting import build_messages
from trajectories.schema import ToolCall, Trajectory

ISSUE = "notes.txt must end with a '# touched' line."


def bash(command: str, thought: str = "Next.") -> str:
    return format_answer(thought, ToolCall(name="bash", arguments={"command": command}))


SUBMIT = format_answer("Done.", ToolCall(name="submit", arguments={}))


def episode(answers, config=None, prompt=None, files=None, tmp_path=None):
    sb = MemorySandbox(files if files is not None else {"notes.txt": "a\nb\n"})
    traj = Trajectory(instance_id="mem-1", source_format="srl", problem_statement=ISSUE)
    cfg = config or AgentConfig()
    policy = answers if hasattr(answers, "generate") else ScriptedPolicy(answers)
    save = tmp_path / "mem-1.srl.jsonl" if tmp_path is not None else None
    end = run_loop(sb, policy, prompt or SlidingWindow(cfg.toolset), traj, cfg, save_to=save)
    return end, traj, sb, policy


def test_scripted_episode_edits_submits_and_saves_the_trajectory(tmp_path):
    answers = [bash("cat notes.txt"), bash("echo '# touched' >> notes.txt"), bash("cat notes.txt"), SUBMIT]
    end, traj, sb, _ = episode(answers, tmp_path=tmp_path)
    assert end.status == "submitted" and end.format_errors == 0
    assert [s.observation for s in traj.steps[:3]] == ["a\nb\n", "", "a\nb\n# touched\n"]
    assert end.patch == sb.diff() and "+# touched" in end.patch
    assert traj.steps[-1].observation == end.patch  # submit answers with the patch
    (back,) = load_trajectories([tmp_path / "mem-1.srl.jsonl"])
    assert back.exit_status == "submitted" and back.final_patch == end.patch
    assert [s.action for s in back.steps] == [s.action for s in traj.steps]


def test_the_submitted_patch_applies_with_git(tmp_path):
    """The in-memory sandbox's diff is a real patch: `git apply` takes it onto the same files."""
    end, *_ = episode([bash("echo '# touched' >> notes.txt"), bash("echo new > src/new.py"), SUBMIT],
                      files={"notes.txt": "a\nb\n", "src/__init__.py": ""})  # fmt: skip
    (tmp_path / "notes.txt").write_text("a\nb\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "__init__.py").write_text("")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    res = subprocess.run(["git", "apply", "-"], cwd=tmp_path, input=end.patch, text=True, capture_output=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "notes.txt").read_text() == "a\nb\n# touched\n"
    assert (tmp_path / "src" / "new.py").read_text() == "new\n"


def test_consecutive_format_errors_end_the_episode_and_a_good_answer_resets_the_count(tmp_path):
    bad = ["I think I should run ls", "<think>x</think> ls -la", "<function=bash>"]
    end, traj, _, _ = episode(
        bad[:2] + [bash("ls")] + bad, AgentConfig(max_format_errors=3), tmp_path=tmp_path
    )
    assert end.status == "format_error"
    assert end.format_errors == 5 and len(traj.steps) == 1
    saved = json.loads((tmp_path / "mem-1.srl.jsonl").read_text())
    assert saved["exit_status"] == "format_error" and saved["metadata"]["format_errors"] == 5


def test_step_limit_keeps_the_diff():
    answer = bash("echo '# touched' >> notes.txt")
    end, traj, _, policy = episode([answer] * 3, AgentConfig(max_steps=2))
    assert end.status == "step_limit" and len(traj.steps) == 2
    assert end.patch.count("+# touched") == 2
    assert policy.cursor == 2  # the limit is checked before asking again


def test_token_and_time_limits():
    end, traj, _, _ = episode([bash("ls", "x" * 400)] * 3, AgentConfig(max_total_tokens=150))
    assert end.status == "token_limit" and len(traj.steps) == 1  # the second answer crossed the budget
    end, traj, _, policy = episode([bash("ls")], AgentConfig(time_limit=1e-9))
    assert end.status == "time_limit" and traj.steps == [] and policy.cursor == 0


def test_an_environment_failure_ends_with_error_and_keeps_the_record(tmp_path):
    class Broken(MemorySandbox):
        def exec(self, command, timeout=None):
            raise OSError("the container went away")

    sb = Broken({"notes.txt": ""})
    traj = Trajectory(instance_id="mem-1", source_format="srl", problem_statement=ISSUE)
    path = tmp_path / "t.srl.jsonl"
    end = run_loop(sb, ScriptedPolicy([bash("ls")]), SlidingWindow(), traj, AgentConfig(), save_to=path)
    assert end.status == "error" and "container went away" in end.error and end.patch == ""
    assert json.loads(path.read_text())["metadata"]["error"] == end.error


def test_sliding_window_prompts_are_the_step_wise_data_format():
    answers = [bash(f"echo {i} >> notes.txt") for i in range(3)] + [SUBMIT]
    cfg = AgentConfig(context_steps=1, max_obs_tokens=50)
    end, traj, _, policy = episode(answers, cfg, SlidingWindow("bash_only", 1, 50))
    assert end.status == "submitted"
    for k, (messages,) in enumerate(policy.calls):
        assert messages == build_messages(
            ISSUE, traj.steps[:k], "bash_only", context_steps=1, max_obs_tokens=50
        )


def test_append_only_chat_grows_and_shows_parse_errors():
    answers = [bash("cat notes.txt"), "no action here", bash("ls"), SUBMIT]
    end, traj, _, policy = episode(answers, AgentConfig(max_format_errors=2), AppendOnlyChat("bash_only"))
    assert end.status == "submitted" and end.format_errors == 1 and len(traj.steps) == 3
    prompts = [m for (m,) in policy.calls]
    assert prompts[0] == build_messages(ISSUE, [], "bash_only", context_steps=0)
    for before, after in zip(prompts, prompts[1:], strict=False):
        assert after[: len(before)] == before and len(after) == len(before) + 2
    assert prompts[1][-2] == {"role": "assistant", "content": answers[0]}
    assert "a\nb" in prompts[1][-1]["content"]
    assert "could not be parsed" in prompts[2][-1]["content"]


def test_exit_statuses_are_one_set_and_documented():
    assert EXIT_STATUSES == get_args(ExitStatus)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "agent.md").read_text()
    for status in EXIT_STATUSES:
        assert f"`{status}`" in doc, status


def test_episode_result_checks_its_token_view():
    assert EpisodeResult(exit_status="format_error").format_error
    assert not EpisodeResult(prompt_ids=[1], completion_ids=[2, 3], env_mask=[1, 0]).format_error
    with pytest.raises(ValueError, match="env_mask has 1 entries for 2 tokens"):
        EpisodeResult(completion_ids=[2, 3], env_mask=[1])


# -- the RLVR view: append-only chat through the token-recording generation wrapper ---------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from srl_agent.models import load_tokenizer
    from srl_agent.testing import build_tiny_model

    return load_tokenizer(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def scripted_generate(tokenizer, answers, logprob=None):
    queue = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    seen = []

    def gen(ids):
        seen.append(list(ids))
        new = queue.pop(0)
        return new, None if logprob is None else [logprob] * len(new)

    return gen, seen


def after_prefill(answer: str) -> str:
    """What the model writes: the answer minus the prefill its turn was opened with."""
    from srl_agent.prompts import THINK_PREFILL

    assert answer.startswith(THINK_PREFILL)
    return answer[len(THINK_PREFILL) :]


def test_chat_tokens_record_masks_and_logprobs_of_a_whole_episode(tokenizer):
    from srl_agent.prompts import THINK_PREFILL
    from srl_agent.rlvr_runner import ChatTokens

    answers = [bash("cat notes.txt"), bash("echo '# touched' >> notes.txt"), SUBMIT]
    gen, seen = scripted_generate(tokenizer, [after_prefill(a) for a in answers], logprob=-0.5)
    policy = ChatTokens(gen, tokenizer, max_completion_tokens=100_000)
    end, traj, _, _ = episode(policy, AgentConfig(max_format_errors=1), AppendOnlyChat("bash_only"))
    assert end.status == "submitted" and "+# touched" in end.patch
    assert [s.thought for s in traj.steps] == ["Next.", "Next.", "Done."]  # the prefill opened each answer
    tok = policy.tokens()
    assert tok["logprobs"] == [-0.5 if m else None for m in tok["env_mask"]]
    for i, ids in enumerate(seen):  # every call saw exactly the growing sequence, ending in the prefill
        assert ids == tok["prompt_ids"] + tok["completion_ids"][: len(ids) - len(tok["prompt_ids"])]
        assert tokenizer.decode(ids).endswith(THINK_PREFILL)
        assert i == 0 or len(ids) > len(seen[i - 1])
    written = [t for t, m in zip(tok["completion_ids"], tok["env_mask"], strict=True) if m]
    assert written == sum(
        (tokenizer(after_prefill(a), add_special_tokens=False)["input_ids"] for a in answers), []
    )
    assert 0 in tok["env_mask"]
    # without a prefill the model writes the whole answer
    gen, seen = scripted_generate(tokenizer, answers)
    policy = ChatTokens(gen, tokenizer, max_completion_tokens=100_000, prefill="")
    end, _, _, _ = episode(policy, AgentConfig(max_format_errors=1), AppendOnlyChat("bash_only"))
    assert end.status == "submitted" and not tokenizer.decode(seen[0]).endswith(THINK_PREFILL)


def test_chat_tokens_budget_ends_with_token_limit_and_a_malformed_answer_with_format_error(tokenizer):
    from srl_agent.rlvr_runner import ChatTokens

    gen, _ = scripted_generate(tokenizer, [after_prefill(bash("echo x >> notes.txt"))] * 5)
    policy = ChatTokens(gen, tokenizer, max_completion_tokens=60)
    end, traj, _, _ = episode(policy, AgentConfig(max_format_errors=1), AppendOnlyChat("bash_only"))
    assert end.status == "token_limit" and traj.steps and "+x" in end.patch
    assert len(policy.tokens()["completion_ids"]) <= 60
    gen, _ = scripted_generate(tokenizer, ["I would run ls"])
    policy = ChatTokens(gen, tokenizer, max_completion_tokens=1000)
    end, traj, _, _ = episode(policy, AgentConfig(max_format_errors=1), AppendOnlyChat("bash_only"))
    assert end.status == "format_error" and traj.steps == []
    assert policy.env_mask == [1] * len(policy.completion_ids) and policy.logprobs is None


def test_the_python_example_in_the_docs_runs():
    import contextlib
    import io
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "agent.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/agent.md", "exec"), {})
    assert (
        printed.getvalue().startswith("submitted diff --git a/notes.txt b/notes.txt")
        and "+b\n" in printed.getvalue()
    )


def test_the_loop_and_rlvr_modules_import_one_way():
    """agent <- rlvr_runner <- train.rlvr: no module imports one above it (not even inside a function)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "srl_agent"

    def imported(path: Path) -> set[str]:
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    assert not imported(root / "agent.py") & {"srl_agent.rlvr_runner", "srl_agent.train.rlvr"}
    assert "srl_agent.train.rlvr" not in imported(root / "rlvr_runner.py")
    assert {"srl_agent.agent", "srl_agent.rlvr_runner"} <= imported(root / "train" / "rlvr.py")


def test_memory_sandbox_answers_like_a_shell():
    sb = MemorySandbox({"notes.txt": "a\nb\n", "src/x.py": "x = 1\n"})
    run = lambda c: (lambda r: (r.exit_code, r.output))(sb.exec(c))  # noqa: E731
    assert run("ls") == (0, "notes.txt\nsrc\n")
    assert run("cat missing.txt") == (1, "cat: missing.txt: No such file or directory\n")
    assert run("nosuch --flag") == (127, "bash: nosuch: command not found\n")
    assert run("false || echo recovered && echo too") == (0, "recovered\ntoo\n")
    assert run("cd src; pwd") == (0, "/testbed/src\n") and run("grep -n x x.py") == (0, "1:x = 1\n")
    assert run("for i in 1 2 3; do echo once; break; done") == (0, "once\n")
    assert run('if false; then echo yes; else echo "no $(pwd)"; fi') == (0, "no /testbed/src\n")
    assert run("git rev-parse HEAD")[1].strip() == sb.head and run("git diff") == (0, "")
