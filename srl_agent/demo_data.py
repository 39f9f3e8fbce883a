"""The demo's data helpers: the demo task, the training trajectories (the user's, or expert runs generated
from the bundled pack's gold patches, cached under the output directory), the short-answer training subset
and the trainer's logged history. Split from `srl_agent.demo` so that the stages read as a list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from trajectories.errors import SrlSweError

if TYPE_CHECKING:
    from srl_agent.demo import DemoConfig

console = Console()


class DemoError(SrlSweError, ValueError):
    """The demo cannot go on for a reason the user can fix (the message says which)."""


def _demo_task(tasks: list[Any], wanted: str | None) -> Any:
    """The demo task: `wanted`, or the task whose gold patch is shortest (quickest to show end to end)."""
    if not tasks:
        raise DemoError("the bundled examples pack has no task with a gold patch")
    if wanted is None:
        return min(tasks, key=lambda t: (len(t.patch), t.instance_id))
    for t in tasks:
        if t.instance_id == wanted:
            return t
    raise DemoError(
        f"task {wanted!r} is not in the examples pack (known: {', '.join(t.instance_id for t in tasks)})"
    )


def _expert_dir(cfg: DemoConfig) -> Path:
    return cfg.out / "expert_runs"


def _training_runs(cfg: DemoConfig, tasks: list[Any], client: Any) -> tuple[list[Path], dict[str, Any]]:
    """The data stage's trajectories and where they came from: the user's path, or expert runs generated
    over every task (cached under the output directory, so a rerun or --resume makes only missing ones)."""
    from harness.expert import generate_runs, plan_jobs

    if cfg.trajectories is not None:
        if not cfg.trajectories.exists():
            raise DemoError(f"--trajectories: {cfg.trajectories} does not exist")
        return [cfg.trajectories], {"kind": "user", "path": str(cfg.trajectories)}
    jobs = plan_jobs(tasks, cfg.expert_style, cfg.expert_seed, cfg.scaled(cfg.expert_runs_per_task))
    with console.status(f"generating {len(jobs)} expert runs over {len(tasks)} tasks") as status:
        count = [0]

        def done(rid: str, state: str) -> None:
            count[0] += 1
            status.update(f"expert runs: {count[0]}/{len(jobs)} ({rid}: {state})")
            if state.startswith("failed"):
                console.print(f"[yellow]{rid}:[/] {state}", highlight=False)

        summary = generate_runs(
            jobs, _expert_dir(cfg), workers=cfg.expert_workers, client=client, on_done=done
        )
    if not summary.files:
        raise DemoError(
            f"no expert run could be generated ({len(summary.failed)} failed); see the messages above"
        )
    seeds = sorted({seed for _, _, seed in jobs})
    origin = {
        "kind": "generated",
        "path": str(_expert_dir(cfg)),
        "runs": len(summary.files),
        "tasks": len({Path(f).name.split(".expert-")[0] for f in summary.files}),
        "seeds": seeds,
        "styles": sorted({style for _, style, _ in jobs}),
        "failed": [{"run": r, "reason": why} for r, why in summary.failed],
    }
    return [_expert_dir(cfg)], origin


def _expert_run(cfg: DemoConfig, spec: Any, client: Any) -> Any:
    """A generated expert run of the demo task (made now when the data stage did not make one)."""
    from harness.expert import generate_runs, run_path
    from trajectories.importers import load_trajectories

    style = "tools" if cfg.expert_style == "mixed" else cfg.expert_style
    made = sorted(_expert_dir(cfg).glob(f"{spec.instance_id}.expert-{style}-s*.srl.jsonl"))
    # one made only for this stage goes apart, so the training data's folder holds the training runs only
    extra = cfg.out / "agents_expert_run"
    path = made[0] if made else run_path(extra, spec.instance_id, style, cfg.expert_seed)
    if not path.exists():
        summary = generate_runs([(spec, style, cfg.expert_seed)], extra, client=client)
        if summary.failed:
            raise DemoError(f"the scripted expert failed on {spec.instance_id}: {summary.failed[0][1]}")
    (traj,) = load_trajectories([path])
    return traj


def _short_answer_subset(dd: Any, out_dir: Path, tokenizer_dir: str, max_tokens: int) -> int:
    """The training split without the steps whose expert answer (think + action) is longer than the
    completion budget: trained on those, a small model learns to stop mid-action, which scores -1."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    train = dd["train"].filter(
        lambda r: len(tok(r["completion"][-1]["content"], add_special_tokens=False)["input_ids"]) < max_tokens
    )
    dd["train"] = train
    dd.save_to_disk(str(out_dir))
    return len(train)


def _history(run_dir: Path) -> list[dict[str, Any]]:
    """The trainer's logged steps (loss, reward, ...) from the run directory."""
    for name in ("log_history.json", "trainer_state.json"):
        path = run_dir / name
        if path.exists():
            data = json.loads(path.read_text())
            return data["log_history"] if isinstance(data, dict) else data
    for state in sorted(run_dir.glob("checkpoint-*/trainer_state.json")):
        return json.loads(state.read_text())["log_history"]
    return []
