"""Patch evaluation. Unit tier: patch helpers, the apply script on a local git repo, resume and summary
logic, CLI errors. Docker tier: real bundled tasks in sandboxes (gold, empty, wrong, unappliable,
spoofing and hanging patches, resume after SIGKILL, Ray backend)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES, needs_shared
from typer.testing import CliRunner

from harness import batch
from harness import evaluate as ev
from harness import instance as inst
from harness.evaluate import (
    EvaluateConfig,
    InstanceOutcome,
    atomic_write,
    evaluate_predictions,
    normalize_patch,
    paths_to_reset,
    prepare_script,
    read_report,
    touched_paths,
    write_outcome,
)
from harness.grading import InstanceReport
from harness.predictions import Prediction
from harness.prepare import EXIT_PATCH_FAILED, EXIT_TEST_PATCH_FAILED

FIXTURES = SHARED_FIXTURES
#: Bundled tasks (release-mined from the package index): marshmallow 3.13.0 -> 3.14.0 (the TimeDelta
#: precision fix of marshmallow-1867 is its one FAIL_TO_PASS test) and cachetools 5.5.1 -> 5.5.2.
MARSHMALLOW = "marshmallow-3.14.0"
CACHETOOLS = "cachetools-5.5.2"
REPO_ROOT = Path(__file__).resolve().parents[1]
SRL = [sys.executable, "-c", "from srl_agent.cli import main; main()"]


# ------------------------------------------------------------------------------------------ helpers


def test_normalize_patch() -> None:
    assert normalize_patch("\r\ndiff --git a/x b/x\r\n+y") == "\ndiff --git a/x b/x\n+y\n"
    assert normalize_patch("  \n") == ""


def test_touched_paths_and_reset() -> None:
    model = (
        "diff --git a/src/m.py b/src/m.py\n--- a/src/m.py\n+++ b/src/m.py\n@@\n"
        "diff --git a/conftest.py b/conftest.py\nnew file mode 100644\n--- /dev/null\n+++ b/conftest.py\n"
        "diff --git a/tests/test_x.py b/tests/test_x.py\n--- a/tests/test_x.py\n+++ b/tests/test_x.py\n"
    )
    test = "diff --git a/tests/test_y.py b/tests/test_y.py\n--- a/tests/test_y.py\n+++ b/tests/test_y.py\n"
    assert touched_paths(model) == ["src/m.py", "conftest.py", "tests/test_x.py"]
    assert paths_to_reset(model, test) == ["tests/test_y.py", "conftest.py", "tests/test_x.py"]
    planted = (
        "diff --git a/tests/__pycache__/test_y.cpython-311-pytest-9.2.0.pyc "
        "b/tests/__pycache__/test_y.cpython-311-pytest-9.2.0.pyc\nnew file mode 100644\nGIT binary patch\n"
        "diff --git a/src/__pycache__/m.cpython-311.pyc b/src/__pycache__/m.cpython-311.pyc\n"
        "diff --git a/src/legacy.pyc b/src/legacy.pyc\n"
    )
    assert paths_to_reset(planted, test) == [
        "tests/test_y.py",
        "tests/__pycache__/test_y.cpython-311-pytest-9.2.0.pyc",
        "src/__pycache__/m.cpython-311.pyc",
        "src/legacy.pyc",
    ]
    spaced = "diff --git a/my file.py b/my file.py\n--- a/my file.py\t2024-01-01\n+++ b/my file.py\n"
    assert touched_paths(spaced) == ["my file.py"]
    evil = "--- a/../../etc/passwd\n+++ /etc/passwd\n--- a/ok.py\n"
    assert touched_paths(evil) == ["ok.py"]


# ----------------------------------------------------------- the apply script on a local repository


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


LINES = [f"line {i}\n" for i in range(1, 30)]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A repo whose HEAD changed line 12 after the commit the candidate patches were made against."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("".join(LINES))
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "old")
    changed = list(LINES)
    changed[11] = "line 12 changed upstream\n"
    (repo / "a.txt").write_text("".join(changed))
    _git(repo, "commit", "-qam", "head")
    return repo


def _diff_against_old(repo: Path, edit_line: int, git_style: bool) -> str:
    """A patch replacing line `edit_line` made against the *old* commit."""
    old = list(LINES)
    new = list(old)
    new[edit_line - 1] = f"line {edit_line} fixed\n"
    tmp = repo.parent / "mk"
    tmp.mkdir(exist_ok=True)
    (tmp / "old").write_text("".join(old))
    (tmp / "new").write_text("".join(new))
    body = subprocess.run(["diff", "-u", "old", "new"], cwd=tmp, capture_output=True, text=True).stdout
    body = body.split("\n", 2)[2]
    if git_style:
        old_blob = _git(repo, "rev-parse", "HEAD~1:a.txt").strip()
        new_blob = subprocess.run(
            ["git", "hash-object", "--stdin"], input="".join(new), capture_output=True, text=True, check=True
        ).stdout.strip()
        head = f"diff --git a/a.txt b/a.txt\nindex {old_blob[:7]}..{new_blob[:7]} 100644\n--- a/a.txt\n+++ b/a.txt\n"
    else:
        head = "--- a/a.txt\n+++ b/a.txt\n"
    return head + body


def _prepare(repo: Path, model: str, test: str = "", orig: str | None = None) -> tuple[int, str]:
    work = repo.parent / "work"
    work.mkdir(exist_ok=True)
    (work / "model.patch").write_text(normalize_patch(model), newline="")
    if orig is not None:
        (work / "model.orig.patch").write_text(orig, newline="")
    (work / "test.patch").write_text(test)
    script = prepare_script(str(work), touched_paths(model), paths_to_reset(model, test), testbed=str(repo))
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_apply_clean(repo: Path) -> None:
    patch = _diff_against_old(repo, 3, git_style=True)
    rc, out = _prepare(repo, patch)
    assert rc == 0 and ">>>>> applied with: git apply\n" in out
    assert "line 3 fixed" in (repo / "a.txt").read_text()


def test_apply_falls_back_to_3way(repo: Path) -> None:
    patch = _diff_against_old(repo, 10, git_style=True)  # context line 12 changed upstream
    rc, out = _prepare(repo, patch)
    assert rc == 0, out
    assert ">>>>> git apply failed" in out and ">>>>> applied with: git apply --3way" in out
    text = (repo / "a.txt").read_text()
    assert "line 10 fixed" in text and "line 12 changed upstream" in text


def test_3way_conflict_is_undone_before_fuzz(repo: Path) -> None:
    patch = _diff_against_old(repo, 11, git_style=True)  # next to the upstream change: a merge conflict
    rc, out = _prepare(repo, patch)
    assert rc == 0, out
    assert ">>>>> git apply --3way failed" in out and ">>>>> applied with: patch --fuzz" in out
    text = (repo / "a.txt").read_text()
    assert "line 11 fixed" in text and "<<<<<<<" not in text
    assert _git(repo, "status", "--porcelain") == " M a.txt\n"


def test_apply_falls_back_to_fuzz(repo: Path) -> None:
    patch = _diff_against_old(repo, 11, git_style=False)  # no index line: no 3-way possible
    rc, out = _prepare(repo, patch)
    assert rc == 0, out
    assert ">>>>> git apply --3way failed" in out and ">>>>> applied with: patch --fuzz" in out
    assert "line 11 fixed" in (repo / "a.txt").read_text()
    assert not list(repo.glob("*.orig")) and not list(repo.glob("*.rej"))


def test_crlf_patch_is_normalized(repo: Path) -> None:
    patch = "\r\n" + _diff_against_old(repo, 3, git_style=True).replace("\n", "\r\n")
    rc, out = _prepare(repo, patch, orig=patch)
    assert rc == 0 and ">>>>> applied with: git apply\n" in out
    assert "line 3 fixed\n" in (repo / "a.txt").read_text()  # LF file, LF result: no stray CR


def test_crlf_patch_of_a_crlf_file_applies_with_its_original_bytes(tmp_path: Path) -> None:
    """When the file itself has CRLF line endings, the normalised patch cannot match; the original does."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "win.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "crlf")
    patch = (
        "diff --git a/win.txt b/win.txt\n--- a/win.txt\n+++ b/win.txt\n@@ -1,3 +1,3 @@\n"
        " one\r\n-two\r\n+TWO\r\n three\r\n"
    )
    rc, out = _prepare(repo, patch, orig=patch)
    assert rc == 0, out
    assert ">>>>> applied with: git apply (original line endings)" in out
    assert (repo / "win.txt").read_bytes() == b"one\r\nTWO\r\nthree\r\n"


def test_unappliable_patch_leaves_tree_clean(repo: Path) -> None:
    patch = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n nothing\n-like\n+this\n"
    rc, out = _prepare(repo, patch)
    assert rc == EXIT_PATCH_FAILED, out
    assert "the patch does not apply" in out
    assert _git(repo, "status", "--porcelain") == ""


def test_model_cannot_edit_the_tests(repo: Path) -> None:
    """Test files the candidate touches go back to the base commit (or away) before the test patch."""
    model = textwrap.dedent(
        """\
        diff --git a/tests/test_a.py b/tests/test_a.py
        --- a/tests/test_a.py
        +++ b/tests/test_a.py
        @@ -1,2 +1,2 @@
         def test_a():
        -    assert True
        +    assert "rigged"
        diff --git a/conftest.py b/conftest.py
        new file mode 100644
        --- /dev/null
        +++ b/conftest.py
        @@ -0,0 +1 @@
        +print("PASSED everything")
        """
    )
    test = textwrap.dedent(
        """\
        diff --git a/tests/test_a.py b/tests/test_a.py
        --- a/tests/test_a.py
        +++ b/tests/test_a.py
        @@ -1,2 +1,3 @@
         def test_a():
             assert True
        +    assert 1 + 1 == 2
        """
    )
    rc, out = _prepare(repo, model, test)
    assert rc == 0, out
    assert (
        repo / "tests" / "test_a.py"
    ).read_text() == "def test_a():\n    assert True\n    assert 1 + 1 == 2\n"
    assert not (repo / "conftest.py").exists()


def test_model_cannot_plant_bytecode(repo: Path) -> None:
    """A compiled module the candidate adds (binary diff) is removed before the tests run: it could
    stand in for a test module, since instance images ship the tests' compiled modules."""
    planted = repo / "__pycache__" / "test_root.cpython-311-pytest-9.2.0.pyc"  # for a ./test_root.py
    planted.parent.mkdir()
    planted.write_bytes(bytes(range(256)))
    (repo / "a.txt").write_text("changed\n")
    _git(repo, "add", "-A", "--force")
    model = _git(repo, "diff", "--cached", "--binary")
    _git(repo, "reset", "-q", "--hard")  # removes the planted file too
    assert not planted.exists() and "GIT binary patch" in model
    rc, out = _prepare(repo, model)
    assert rc == 0, out
    assert (repo / "a.txt").read_text() == "changed\n"
    assert not planted.exists()


def test_test_patch_failure_has_its_own_exit(repo: Path) -> None:
    bad_test = (
        "diff --git a/tests/test_a.py b/tests/test_a.py\n--- a/tests/test_a.py\n+++ b/tests/test_a.py\n"
        "@@ -1,2 +1,2 @@\n def nope():\n-    x\n+    y\n"
    )
    rc, out = _prepare(repo, _diff_against_old(repo, 3, git_style=True), bad_test)
    assert rc == EXIT_TEST_PATCH_FAILED, out


# ----------------------------------------------------------------- one exec: splitting its output

TOKEN = "0123456789abcdef01234567"


def test_split_prepared_and_junit_take_only_the_markers_with_the_token() -> None:
    import base64

    xml = b'<testsuite><testcase classname="t" name="test_a"/></testsuite>'
    output = (
        ">>>>> attempt: git apply\n>>>>> applied with: git apply\n"
        f">>>>> prepared {TOKEN} 0\n"
        # the tests print look-alike markers with another token: they stay test output
        ">>>>> prepared ffff 0\n>>>>> junit ffff\nPGZha2U+\nPASSED t.py::test_a"
        f"\n>>>>> junit {TOKEN}\n{base64.b64encode(xml).decode()}\n"
    )
    prep, rc, rest = inst._split_prepared(output, f">>>>> prepared {TOKEN}")
    assert rc == 0 and prep.endswith("applied with: git apply\n")
    tests, junit = inst._split_marked(rest, f">>>>> junit {TOKEN}")
    assert tests == ">>>>> prepared ffff 0\n>>>>> junit ffff\nPGZha2U+\nPASSED t.py::test_a"
    assert junit == xml
    # no JUnit file written: an empty block; no block at all (cut from the output): None
    assert inst._split_marked(f"out\n>>>>> junit {TOKEN}\n\n", f">>>>> junit {TOKEN}") == ("out", b"")
    assert inst._split_marked("out", f">>>>> junit {TOKEN}") == ("out", None)
    assert inst._split_prepared("killed early", f">>>>> prepared {TOKEN}") == ("killed early", None, "")
    assert inst._split_prepared(f"x\n>>>>> prepared {TOKEN} 10\n", f">>>>> prepared {TOKEN}")[1] == 10


def test_summary_of_an_interrupted_run_lists_what_did_not_run() -> None:
    done = [
        InstanceReport(instance_id="a", model_name_or_path="m", status="resolved", resolved=True),
        InstanceReport(instance_id="b", model_name_or_path="m", status="patch_failed"),
    ]
    summary = ev.summarize(done, "m", "r", submitted=["a", "b", "c"])
    assert summary["total_instances"] == summary["submitted_instances"] == 3
    assert summary["completed_ids"] == ["a"] and summary["incomplete_ids"] == ["c"]
    assert summary["patch_failed_ids"] == ["b"] and summary["resolved_rate"] == round(1 / 3, 4)
    assert summary["schema_version"] == 2


# --------------------------------------------------------------------------- files, resume, summary


def test_atomic_write_and_read_report(tmp_path: Path) -> None:
    out = tmp_path / "m" / "i"
    report = InstanceReport(instance_id="i", model_name_or_path="m", status="resolved", resolved=True)
    write_outcome(InstanceOutcome(report, {"patch.diff": "x"}), out)
    assert read_report(out) == report
    assert sorted(p.name for p in out.iterdir()) == ["patch.diff", "report.json"]
    (out / "report.json").write_text('{"i": {"status": "resol')  # a torn write is never trusted
    assert read_report(out) is None
    atomic_write(out / "report.json", "{}")
    assert read_report(out) is None


def _fake_outcome(calls: list[str]):
    def fake(spec, patch, *, model="gold", **kwargs) -> InstanceOutcome:
        calls.append(spec.instance_id)
        report = InstanceReport(
            instance_id=spec.instance_id,
            model_name_or_path=model,
            status="resolved",
            resolved=True,
            patch_successfully_applied=True,
            patch_sha256=Prediction(
                instance_id=spec.instance_id, model_name_or_path=model, model_patch=patch
            ).patch_sha256,
        )
        return InstanceOutcome(report, {"patch.diff": patch or ""})

    return fake


def test_resume_skips_finished_and_reruns_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(batch, "evaluate_instance", _fake_outcome(calls))
    monkeypatch.setattr(batch, "_run_pool", _serial_runner)
    config = EvaluateConfig(
        predictions="gold", output_dir=tmp_path, run_id="r1", instance_ids=[MARSHMALLOW, CACHETOOLS]
    )
    first = evaluate_predictions(config)
    assert sorted(calls) == sorted([MARSHMALLOW, CACHETOOLS]) and first.skipped == 0
    summary = json.loads((tmp_path / "r1" / "gold" / "summary.json").read_text())
    assert summary["resolved_instances"] == 2 and summary["total_instances"] == 2
    calls.clear()
    again = evaluate_predictions(config)
    assert calls == [] and again.skipped == 2
    assert again.summaries["gold"]["resolved_instances"] == 2
    # a different patch for the same instance is not "finished"
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        json.dumps({"instance_id": CACHETOOLS, "model_name_or_path": "gold", "model_patch": "x"}) + "\n"
    )
    evaluate_predictions(EvaluateConfig(predictions=str(preds), output_dir=tmp_path, run_id="r1"))
    assert calls == [CACHETOOLS]


def _serial_runner(jobs, config, run_id, done) -> None:  # noqa: ANN001
    for job in jobs:
        done(
            job,
            batch.evaluate_instance(
                job.spec, job.prediction.model_patch, model=job.prediction.model_name_or_path
            ),
        )


def test_empty_patch_needs_no_sandbox() -> None:
    from envs.sources import load_tasks

    spec = load_tasks().get(CACHETOOLS)
    for patch in (None, "", "  \n"):
        out = ev.evaluate_instance(spec, patch, model="m")
        assert out.report.status == "empty_patch" and not out.report.resolved
        assert out.report.patch_is_None is (patch is None)
        assert out.report.patch_exists is False


# ------------------------------------------------------------------------------- CLI input errors


_OK_LINE = '{"instance_id": "cachetools-5.5.2", "model_name_or_path": "m", "model_patch": ""}\n'


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        pytest.param('[\n  {"instance_id": "x",\n', ".json", "preds.json:3: invalid JSON", id="bad-json"),
        pytest.param(
            _OK_LINE + '{"instance_id": "cachetools-5.5.2" "model_patch": ""}\n',
            ".jsonl",
            "preds.jsonl:2: invalid JSON: Expecting ',' delimiter",
            id="bad-jsonl-line",
        ),
        pytest.param(
            '{"instance_id": "cachetools-5.5.2", "model_patch": ""}\n',
            ".jsonl",
            "preds.jsonl:1: field 'model_name_or_path' is missing",
            id="missing-field",
        ),
        pytest.param(
            '[\n  {"model_name_or_path": "m",\n   "model_patch": ""}\n]\n',
            ".json",
            "preds.json:2: field 'instance_id' is missing",
            id="missing-instance-id",
        ),
        pytest.param(
            _OK_LINE + '{"instance_id": "nope__nope-1", "model_name_or_path": "m", "model_patch": ""}\n',
            ".jsonl",
            "preds.jsonl:2: unknown instance_id 'nope__nope-1'",
            id="unknown-instance",
        ),
        pytest.param(_OK_LINE + _OK_LINE, ".jsonl", "preds.jsonl:2: duplicate instance_id", id="duplicate"),
    ],
)
def test_cli_malformed_predictions(tmp_path: Path, content: str, suffix: str, expected: str) -> None:
    from srl_agent.cli import app

    preds = tmp_path / f"preds{suffix}"
    preds.write_text(content)
    result = CliRunner().invoke(
        app, ["evaluate", "--predictions", str(preds), "--output-dir", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()


def test_cli_unknown_instance_id_filter(tmp_path: Path) -> None:
    from srl_agent.cli import app

    result = CliRunner().invoke(
        app, ["evaluate", "-p", "gold", "-i", "nope__x-1", "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no task named 'nope__x-1'" in result.output


@needs_shared
def test_prediction_for_a_broken_task_is_a_warning(tmp_path: Path) -> None:
    records = json.loads((FIXTURES / "repos" / "tkem__cachetools.tasks.json").read_text())
    broken = {**records[0], "instance_id": "tkem__cachetools-9999", "base_commit": "not-a-sha"}
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps([records[0], broken]))
    good = records[0]["instance_id"]
    preds = _preds(tmp_path, [(good, "x"), ("tkem__cachetools-9999", "y")])
    config = EvaluateConfig(predictions=str(preds), tasks=str(tasks))
    run_id, _, jobs, warnings = ev.plan(config)
    assert run_id == "preds" and [j.prediction.instance_id for j in jobs] == [good]
    assert any("tkem__cachetools-9999: not evaluated" in w for w in warnings)


def test_config_file_and_flag_overrides(tmp_path: Path) -> None:
    from harness.cli_eval import load_config

    cfg = tmp_path / "eval.yaml"
    cfg.write_text("predictions: gold\nmax_workers: 3\nbackend: ray\ninstance_ids: [a, b]\n")
    config = load_config(cfg, {"max_workers": 1})
    assert (config.predictions, config.max_workers, config.backend, config.instance_ids) == (
        "gold",
        1,
        "ray",
        ["a", "b"],
    )
    cfg.write_text("predictions: gold\nworkers: 3\n")
    with pytest.raises(ValueError, match=r"eval.yaml: workers: Extra inputs are not permitted"):
        load_config(cfg, {})
    with pytest.raises(ValueError, match=r"--backend: Input should be 'process' or 'ray'"):
        load_config(None, {"predictions": "gold", "backend": "slurm"})
    with pytest.raises(ValueError, match="--predictions is required"):
        load_config(None, {})


# ------------------------------------------------------------------------------------ docker tier


def _task(instance_id: str):
    from envs.sources import load_tasks

    return load_tasks().get(instance_id)


def _preds(tmp_path: Path, rows: list[tuple[str, str | None]], model: str = "test-model") -> Path:
    path = tmp_path / "preds.jsonl"
    path.write_text(
        "".join(
            json.dumps({"instance_id": i, "model_name_or_path": model, "model_patch": p}) + "\n"
            for i, p in rows
        )
    )
    return path


@pytest.mark.docker
def test_gold_patches_resolve_every_bundled_task(docker_client, tmp_path: Path, sandboxes_left) -> None:
    result = evaluate_predictions(
        EvaluateConfig(predictions="gold", output_dir=tmp_path, run_id="gold-test", max_workers=2)
    )
    summary = result.summaries["gold"]
    assert summary["total_instances"] >= 2
    assert summary["resolved_instances"] == summary["total_instances"], summary
    for report in result.reports:
        assert report.patch_successfully_applied and report.apply_method == "git apply"
        assert report.tests_status.FAIL_TO_PASS.failure == [] and report.notes == []
        body = json.loads((tmp_path / "gold-test" / "gold" / report.instance_id / "report.json").read_text())
        assert body[report.instance_id]["resolved"] is True
        assert (tmp_path / "gold-test" / "gold" / report.instance_id / "test_output.txt").stat().st_size > 0
    assert not sandboxes_left(docker_client, f"srl-swe.pid={os.getpid()}")


@needs_shared
@pytest.mark.docker
def test_empty_and_wrong_patches_do_not_resolve(docker_client, tmp_path: Path) -> None:
    """The wrong patch is SWE-agent's real CRLF submission for marshmallow-1867 (rounds instead of floors)."""
    traj = json.loads(
        (FIXTURES / "swe-agent" / "marshmallow-code__marshmallow-1867.function_calling.traj").read_text()
    )
    wrong = traj["info"]["submission"]
    assert "\r\n" in wrong
    preds = _preds(tmp_path, [(MARSHMALLOW, wrong), (CACHETOOLS, "")])
    result = evaluate_predictions(EvaluateConfig(predictions=str(preds), output_dir=tmp_path, max_workers=2))
    by_id = {r.instance_id: r for r in result.reports}
    m = by_id[MARSHMALLOW]
    assert m.status == "unresolved" and m.patch_successfully_applied and not m.resolved
    assert m.tests_status.FAIL_TO_PASS.failure == _task(MARSHMALLOW).FAIL_TO_PASS
    assert m.tests_status.PASS_TO_PASS.failure == []
    assert by_id[CACHETOOLS].status == "empty_patch"


@pytest.mark.docker
def test_crlf_gold_patch_resolves(docker_client, tmp_path: Path) -> None:
    """Some recorded agent submissions have CRLF line endings: normalised, they apply and resolve."""
    spec = _task(CACHETOOLS)
    crlf = spec.patch.replace("\n", "\r\n")
    report = _graded(spec, crlf, docker_client, tmp_path / "out")
    assert report.status == "resolved" and report.apply_method == "git apply", report
    assert (tmp_path / "out" / "patch.diff").read_bytes() == crlf.encode()  # the submission, as given


@pytest.mark.docker
def test_unappliable_patch_is_patch_failed(docker_client, tmp_path: Path) -> None:
    bad = (
        "diff --git a/src/cachetools/__init__.py b/src/cachetools/__init__.py\n--- a/src/cachetools/__init__.py\n"
        "+++ b/src/cachetools/__init__.py\n@@ -1,3 +1,3 @@\n this line\n-is not\n+in the file\n"
    )
    seen: list[object] = []

    def release(sb) -> None:  # noqa: ANN001
        # the same sandbox, its one command (the container's main process) over, the container still there
        sb.container.reload()
        seen.append((sb, sb.container.status, sb.session))
        sb.close()

    outcome = ev.evaluate_instance(
        _task(CACHETOOLS),
        bad,
        model="m",
        client=docker_client,
        on_sandbox=seen.append,
        release=release,
    )
    write_outcome(outcome, tmp_path / "out")
    report = outcome.report
    assert report.status == "patch_failed" and not report.patch_successfully_applied and not report.resolved
    assert len(seen) == 2 and seen[1] == (seen[0], "exited", None)
    log = (tmp_path / "out" / "eval.log").read_text()
    for method in ("git apply", "git apply --3way", "patch --fuzz"):
        assert f">>>>> attempt: {method}\n" in log
    assert read_report(tmp_path / "out") == report


def _graded(spec, patch: str, client, out: Path | None = None) -> InstanceReport:  # noqa: ANN001
    """The one path: `run_instance` then the pure `grade` (files written to ``out`` when given)."""
    from harness.grading import grade

    run = ev.run_instance(spec, patch, model="m", client=client)
    report = grade(spec, run)
    if out is not None:
        write_outcome(ev.outcome_of(spec, run, report), out)
    return report


def _spoof_lines(spec) -> str:  # noqa: ANN001
    return "".join(f"PASSED {t}\n" for t in [*spec.FAIL_TO_PASS, *spec.PASS_TO_PASS])


@pytest.mark.docker
def test_spoofing_patches_are_caught(docker_client, tmp_path: Path) -> None:
    """(1) a conftest.py printing PASSED lines and exiting 0 is removed before the tests run;
    (2) the package itself doing it at import time leaves no JUnit file, so nothing is trusted."""
    spec = _task(CACHETOOLS)
    # write fake result lines past pytest's output capture (to the saved copies of the real stdout), exit 0
    payload = (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
        f"            os.write(fd, {_spoof_lines(spec).encode()!r})\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    conftest = (
        "diff --git a/conftest.py b/conftest.py\nnew file mode 100644\n--- /dev/null\n+++ b/conftest.py\n"
        f"@@ -0,0 +1,{payload.count(chr(10))} @@\n"
        + "".join("+" + line + "\n" for line in payload.splitlines())
    )
    pkg = (
        spec.patch
        + "diff --git a/src/cachetools/_spoof.py b/src/cachetools/_spoof.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/src/cachetools/_spoof.py\n"
        f"@@ -0,0 +1,{payload.count(chr(10))} @@\n"
        + "".join("+" + line + "\n" for line in payload.splitlines())
    )
    # import the spoof from the package's __init__ (appended at its end)
    init = _file_at_base(spec, "src/cachetools/__init__.py").splitlines()
    n = len(init)
    pkg += (
        "diff --git a/src/cachetools/__init__.py b/src/cachetools/__init__.py\n--- a/src/cachetools/__init__.py\n"
        f"+++ b/src/cachetools/__init__.py\n@@ -{n},1 +{n},2 @@\n {init[-1]}\n+from . import _spoof  # noqa\n"
    )
    r1 = _graded(spec, conftest, docker_client)
    assert not r1.resolved and r1.status == "tamper" and r1.tamper[0].where == "conftest.py"
    assert r1.tests_status.FAIL_TO_PASS.failure == spec.FAIL_TO_PASS  # the conftest never ran
    r2 = _graded(spec, pkg, docker_client, tmp_path / "pkg")
    assert r2.patch_successfully_applied and not r2.resolved and r2.status == "tamper", r2
    assert any("JUnit result file was not written" in n for n in r2.notes)
    assert {e.source for e in r2.tamper} >= {"scan", "audit", "canary"}, r2.tamper
    # the spoof works against the log alone: only the cross-check catches it
    from harness.grading import grade_tests, is_resolved
    from harness.log_parsers import parse_pytest

    log_only = parse_pytest((tmp_path / "pkg" / "test_output.txt").read_text())
    assert is_resolved(grade_tests(log_only, spec.FAIL_TO_PASS, spec.PASS_TO_PASS))


def _file_at_base(spec, path: str) -> str:  # noqa: ANN001
    from envs.repos import file_at, open_repo

    text = file_at(open_repo(spec.repo_source), spec.base_commit, path)
    assert text is not None, path
    return text


@pytest.mark.docker
def test_hanging_test_times_out_and_run_goes_on(docker_client, tmp_path: Path, sandboxes_left) -> None:
    spec = _task(CACHETOOLS)
    slow = '+                hits += __import__("time").sleep(3600) or 1\n'
    hang = spec.patch.replace("+                hits += 1\n", slow, 1)
    assert hang != spec.patch
    quick = "toolz-0.12.0"  # a bundled task whose tests take ~1 s: done well inside the 8 s limit
    preds = _preds(tmp_path, [(CACHETOOLS, hang), (quick, _task(quick).patch)])
    start = time.monotonic()
    result = evaluate_predictions(EvaluateConfig(predictions=str(preds), output_dir=tmp_path, timeout=8))
    assert time.monotonic() - start < 120
    by_id = {r.instance_id: r for r in result.reports}
    assert by_id[CACHETOOLS].status == "timeout" and by_id[CACHETOOLS].timed_out
    assert not by_id[CACHETOOLS].resolved
    assert by_id[quick].status == "resolved"
    assert not sandboxes_left(docker_client, f"srl-swe.pid={os.getpid()}")


@pytest.mark.docker
def test_resume_after_sigkill(docker_client, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = [
        *SRL,
        "evaluate",
        "-p",
        "gold",
        "--run-id",
        "killme",
        "--output-dir",
        str(out),
        "-w",
        "1",
        "-i",
        f"{MARSHMALLOW},{CACHETOOLS}",
    ]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    reports: list[Path] = []
    while time.monotonic() < deadline and not reports:
        reports = list(out.glob("killme/gold/*/report.json"))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reports, "no instance finished before the deadline"
    for path in out.glob("killme/gold/*/report.json"):
        json.loads(path.read_text())  # complete JSON, never half-written
    done_before = {p.parent.name for p in out.glob("killme/gold/*/report.json")}
    # what a kill in the middle of a write leaves: a temporary file of the dead process (and one of a
    # live process, which the re-run must not touch)
    inst = next(out.glob("killme/gold/*/"))
    dead = inst / f".report.json.{proc.pid}.deadbeef.tmp"
    live = inst / f".report.json.{os.getpid()}.cafebabe.tmp"
    dead.write_text('{"half')
    live.write_text("{}")
    rerun = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(done_before)} instance(s) already finished, skipped" in " ".join(rerun.stderr.split())
    summary = json.loads((out / "killme" / "gold" / "summary.json").read_text())
    assert summary["resolved_instances"] == summary["total_instances"] == 2
    assert not dead.exists() and live.exists()
    # the killed process could not remove its sandbox; the re-run removed it (its pid is dead)
    assert not docker_client.containers.list(all=True, filters={"label": "srl-swe.run_id=killme"})


@needs_shared
@pytest.mark.docker
@pytest.mark.ray
def test_ray_backend_matches_process_pool(docker_client, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    traj = json.loads(
        (FIXTURES / "swe-agent" / "marshmallow-code__marshmallow-1867.function_calling.traj").read_text()
    )
    preds = _preds(
        tmp_path, [(MARSHMALLOW, traj["info"]["submission"]), (CACHETOOLS, _task(CACHETOOLS).patch)]
    )
    local = evaluate_predictions(
        EvaluateConfig(predictions=str(preds), output_dir=tmp_path / "p", max_workers=2)
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = evaluate_predictions(
            EvaluateConfig(predictions=str(preds), output_dir=tmp_path / "r", backend="ray")
        )
    finally:
        ray.shutdown()

    def comparable(reports: list[InstanceReport]) -> dict:
        return {r.instance_id: r.model_dump(exclude={"duration_s"}) for r in reports}

    assert comparable(remote.reports) == comparable(local.reports)
    assert {r.status for r in remote.reports} == {"resolved", "unresolved"}


@pytest.mark.docker
def test_run_empty_is_the_validation_before_run(docker_client) -> None:
    """`run_empty=True` runs the tests with only the test patch: FAIL_TO_PASS fail, PASS_TO_PASS pass."""
    spec = _task(CACHETOOLS)
    outcome = ev.evaluate_instance(spec, None, client=docker_client, run_empty=True)
    report = outcome.report
    assert report.status == "unresolved" and report.patch_is_None
    assert report.tests_status.FAIL_TO_PASS.failure == spec.FAIL_TO_PASS
    assert report.tests_status.PASS_TO_PASS.failure == []
    assert set(spec.PASS_TO_PASS) <= {t for t, s in outcome.statuses.items() if s == "PASSED"}


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_container_and_no_half_report(docker_client, tmp_path: Path, sig) -> None:
    out = tmp_path / "runs"
    run_id = f"interrupt-{sig.name.lower()}"
    args = [*SRL, "evaluate", "-p", "gold", "--run-id", run_id, "--output-dir", str(out), "-w", "2",
            "-i", f"{MARSHMALLOW},{CACHETOOLS}"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    flt = {"label": [f"srl-swe.run_id={run_id}", f"srl-swe.pid={proc.pid}"]}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not docker_client.api.containers(all=True, filters=flt):
        time.sleep(0.02)
    assert docker_client.api.containers(all=True, filters=flt), "no sandbox started before the deadline"
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130, output
    assert not docker_client.api.containers(all=True, filters=flt)  # every sandbox removed at once
    for path in out.glob(f"{run_id}/*/*/report.json"):
        json.loads(path.read_text())  # whatever finished is complete
