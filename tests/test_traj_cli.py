"""`srl traj import`, `srl data build` and `srl evaluate` are thin: their logic is callable from Python
(`trajectories.importers.import_files`, `trajectories.build.build_data`), and the commands print what
those return (issue 17)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import shared_fixture
from typer.testing import CliRunner

from srl_agent.cli import app
from trajectories.build import BuildReport, build_data
from trajectories.importers import (
    ImportProgress,
    NoTrajectoryFiles,
    import_files,
    import_paths,
    load_trajectories,
)
from trajectories.stepwise import read_build_report

SMITH = ("realformats", "hf-swe-smith-trajectories", "rows.jsonl")


def _inputs(tmp_path: Path) -> Path:
    """A folder with a good SWE-agent run, a mini-swe-agent run with a skipped step, and a bad file."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(shared_fixture("swe-agent", "pydicom__pydicom-1458.traj"), src)
    shutil.copy(shared_fixture("mini-swe-agent", "psf__requests-2317.traj.json"), src)
    (src / "bad.traj").write_text('{"trajectory": [{"action": 3}], "info": {}}')
    return src


class _Recorder(ImportProgress):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def file_started(self, path: Path, rows: int | None) -> None:
        self.events.append(("start", path.name, rows))

    def row_done(self) -> None:
        self.events.append(("row",))

    def file_done(self, path: Path) -> None:
        self.events.append(("done", path.name))


def test_import_files_writes_one_jsonl_per_container_and_reports_each(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    progress = _Recorder()
    report = import_files([src], tmp_path / "out", progress=progress)
    by_name = {f.path.name: f for f in report.files}
    assert sorted(by_name) == ["bad.traj", "psf__requests-2317.traj.json", "pydicom__pydicom-1458.traj"]
    bad, mini, swe = (by_name[n] for n in sorted(by_name))
    assert bad.dest is None and bad.trajectories == 0 and len(bad.errors) == 1
    assert "bad.traj: trajectory[0].action: expected a string, got int" in str(bad.errors[0])
    assert swe.dest == tmp_path / "out" / "pydicom__pydicom-1458.jsonl"
    assert (swe.trajectories, swe.steps, dict(swe.formats)) == (1, 12, {"swe-agent": 1})
    assert swe.tools == {"default": 1}  # an old-layout .traj records no command docs
    assert mini.dest == tmp_path / "out" / "psf__requests-2317.jsonl"
    assert (mini.steps, dict(mini.skipped), mini.tools) == (32, {"format_error": 1}, {"default": 1})
    assert mini.notes["final echo -> submit()"] == 1
    # the totals are those of the per-file reports `import_paths` gives
    expected = import_paths([src])
    assert report.trajectories == sum(len(r.imported) for r in expected) == 2
    assert report.steps == sum(r.n_steps for r in expected) == 12 + 32
    assert report.skipped_steps == sum(len(r.skipped) for r in expected) == 1
    assert (report.failed_rows, report.failed_files, report.ok) == (1, 1, False)
    assert report.summary() == (
        f"2 trajectories, 44 steps, 1 skipped steps written to {tmp_path / 'out'}; "
        "1 row(s) in 1 file(s) failed"
    )
    # what was written is what the importer reads, and nothing else was written
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "psf__requests-2317.jsonl",
        "pydicom__pydicom-1458.jsonl",
    ]
    written = load_trajectories([tmp_path / "out"])
    assert written == [i.trajectory for r in expected for i in r.imported]
    # progress: one start, one row per row, one done, per file, in order
    assert [e for e in progress.events if e[0] != "row"] == [
        x for f in sorted(by_name) for x in (("start", f, 1), ("done", f))
    ]
    assert progress.events.count(("row",)) == 3


def test_import_files_numbers_outputs_whose_stems_collide(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        shutil.copy(shared_fixture("swe-agent", "pydicom__pydicom-1458.traj"), tmp_path / "in" / sub)
    report = import_files([tmp_path / "in"], tmp_path / "out")
    assert report.ok and [f.dest.name for f in report.files] == [
        "pydicom__pydicom-1458.jsonl",
        "pydicom__pydicom-1458-2.jsonl",
    ]


def test_import_files_counts_every_row_of_a_multi_row_container(tmp_path: Path) -> None:
    rows = shared_fixture(*SMITH)
    progress = _Recorder()
    report = import_files([rows], tmp_path / "out", fmt="swe-smith", progress=progress)
    n_rows = len([x for x in rows.read_text().splitlines() if x.strip()])
    assert progress.events[0] == ("start", "rows.jsonl", n_rows)
    assert progress.events.count(("row",)) == n_rows == report.trajectories
    assert report.files[0].formats == {"swe-smith": n_rows}


def test_import_files_rejects_bad_arguments_before_writing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no trajectories here")
    with pytest.raises(NoTrajectoryFiles, match="no trajectory files .* in " + str(tmp_path)):
        import_files([tmp_path], tmp_path / "out")
    with pytest.raises(ValueError, match="unknown format 'swe_agent'; expected one of swe-agent, "):
        import_files([tmp_path], tmp_path / "out", fmt="swe_agent")
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(
        app, ["traj", "import", str(tmp_path), "--out", str(tmp_path / "o"), "--format", "x"]
    )
    assert res.exit_code == 2 and "unknown format 'x'" in res.output


def test_cli_import_prints_what_import_files_reports(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    res = CliRunner().invoke(
        app, ["traj", "import", str(src), "--out", str(tmp_path / "out")], env={"COLUMNS": "250"}
    )
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())
    again = import_files([src], tmp_path / "out")  # the same call, the same report
    assert again.summary() in out
    assert "1 format_error" in out and "1 failed row(s), see below" in out
    assert "error: " in out and "trajectory[0].action" in out


def test_build_data_reports_splits_exports_and_failed_rows(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    report = build_data([src], tmp_path / "ds", val_fraction=0.5, num_proc=1, jsonl=True, parquet=True)
    assert isinstance(report, BuildReport) and report.seconds > 0
    assert report.counts == read_build_report(tmp_path / "ds")
    assert report.counts["rows"] == 3 and report.counts["trajectories"] == 2
    assert not report.ok and len(report.errors) == 1 and "bad.traj" in report.errors[0]
    splits = {s.name: s for s in report.splits()}
    assert set(splits) == {"train", "validation"}
    assert sum(s.instances for s in splits.values()) == 12 + 32 == report.counts["instances"]
    assert [s.trajectories for s in splits.values()] == [1, 1]  # split by trajectory, never by step
    for s in splits.values():
        ds = report.dataset[s.name]
        assert s.instances == len(ds) and sum(n for _, n in s.tools) <= len(ds)
        assert s.tools[0][1] == max(ds["tool"].count(t) for t in set(ds["tool"]))
    assert sorted(p.name for p in report.exports) == [
        "train.jsonl",
        "train.parquet",
        "validation.jsonl",
        "validation.parquet",
    ]
    lines = (tmp_path / "ds" / "train.jsonl").read_text().splitlines()
    assert len(lines) == splits["train"].instances
    assert json.loads(lines[0])["trajectory_id"] == report.dataset["train"][0]["trajectory_id"]
    summary = report.summary()
    assert summary.startswith("3 rows -> 2 trajectories -> 44 instances; formats: ")
    assert "tool sets: 0 as recorded by the source, 2 srl-swe's default" in summary
    assert summary.endswith("skipped steps: format_error 1")


def test_build_data_raises_for_bad_input_and_the_command_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no trajectories here")
    with pytest.raises(FileNotFoundError, match="no trajectory files"):
        build_data([tmp_path / "empty"], tmp_path / "ds", num_proc=1)
    with pytest.raises(ValueError, match="no step-wise instances .*missing: <root>: no such file or folder"):
        build_data([tmp_path / "missing"], tmp_path / "ds", num_proc=1)
    assert not (tmp_path / "ds").exists()
    for src, expected in (("empty", "no trajectory files"), ("missing", "no such file or folder")):
        res = CliRunner().invoke(
            app,
            ["data", "build", "--trajectories", str(tmp_path / src), "--out", str(tmp_path / "ds")],
            env={"COLUMNS": "300"},
        )
        assert res.exit_code == 2 and expected in res.output


def test_cli_evaluate_rejects_an_unknown_image_source(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["evaluate", "-p", "gold", "--image-source", "nope", "--output-dir", str(tmp_path)],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 2
    assert "error: --image-source: expected one of auto, build, prebuilt" in " ".join(res.output.split())
    assert not any(tmp_path.iterdir())
