"""`srl experiment`: the SRL paper's comparison as one command, at equal compute per arm.

Arms, all from the same start (the base model after a shared SFT warm-up; ``warmup_steps: 0`` starts
from the base model itself):

- ``sft``: more SFT on the expert answers;
- ``srl``: GRPO with the step reward (the SRL stage);
- ``srl_rlvr``: SRL for ``1 - rlvr_share`` of the budget, then RLVR (outcome reward, sandboxed episodes);
- ``rlvr``: RLVR alone. A small model's episodes all score the same (every answer malformed, or no task
  resolved), dynamic sampling finds no group with spread and stops: that stop is recorded as the arm's
  result (its cause and remedy), the arm's model is what it had when it stopped.

**Compute budget: training tokens per arm** (deterministic, unlike wall-clock on a shared machine).
A token is counted each time it goes through the policy in training: SFT, the non-padding tokens of
every training row; GRPO (SRL and RLVR), prompt + completion tokens of every sampled completion, those
of groups that dynamic sampling drops included. An arm stops after the optimizer step at which its
count reaches ``budget_tokens``, so it spends at least the budget and less than one step more; the
tokens each arm spent are in the report. The warm-up is shared and not counted.

Evaluation: every arm's final model (and the start) answers each held-out step once, greedy. Held out
= the rows of ``eval_split`` whose trajectory no training row comes from (rows of a trajectory that
also has training rows are dropped, and counted). Reported: mean step reward and format-error rate
with 95% percentile-bootstrap intervals, each arm against each other on the same steps (mean paired
difference with its interval, and how many steps got better / worse / equal), a per-tool breakdown,
and with ``end_to_end: true`` each arm's agent on the bundled tasks (resolved, steps, exit status).

Everything goes to ``runs/experiments/<name>/``: ``report.json``, ``report.md``, ``report.png``, one
directory per arm. With ``resume: true`` (the default) an arm whose ``result.json`` exists is reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import Field, model_validator
from rich.console import Console

from srl_agent.experiment_report import _summary, markdown_report, plot_report
from srl_agent.models import DEFAULT_MODEL
from srl_agent.stats import bootstrap_ci, compare_arms, paired_comparison
from srl_agent.train.config import _Strict

__all__ = [
    "ALL_ARMS",
    "ExperimentConfig",
    "bootstrap_ci",
    "compare_arms",
    "markdown_report",
    "paired_comparison",
    "plot_report",
    "run_experiment",
]

console = Console(stderr=True, soft_wrap=True)

Arm = Literal["sft", "srl", "srl_rlvr", "rlvr"]
ALL_ARMS: tuple[Arm, ...] = ("sft", "srl", "srl_rlvr", "rlvr")


class ExperimentConfig(_Strict):
    """`srl experiment`: one YAML file (``--config``), fields overridable with ``--set key=value``."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$", description="runs/experiments/<name>/")
    root: Path = Path("runs/experiments")
    model: str = Field(DEFAULT_MODEL, description="the base model every arm starts from")
    dataset: Path | None = Field(None, description="step-wise DatasetDict dir (`srl data build` output)")
    trajectories: Path | None = Field(
        None, description="or: trajectory files / dir to build the data set from (split by trajectory)"
    )
    val_fraction: float = Field(
        0.25, gt=0, lt=1, description="held-out share of trajectories (trajectories:)"
    )
    train_split: str = "train"
    eval_split: str = "validation"
    arms: list[Arm] = Field(default_factory=lambda: list(ALL_ARMS))
    budget_tokens: int = Field(200_000, ge=1, description="training tokens per arm (see the module doc)")
    rlvr_share: float = Field(0.5, gt=0, lt=1, description="share of srl_rlvr's budget spent on RLVR")
    warmup_steps: int = Field(10, ge=0, description="shared SFT warm-up steps (0: start from the base model)")
    warmup_lr: float = Field(3e-4, gt=0)
    max_steps_per_arm: int = Field(10_000, ge=1, description="safety cap; the token budget stops arms")
    train: dict[str, Any] = Field(
        default_factory=lambda: {
            "max_prompt_tokens": 448,
            "max_completion_length": 128,
            "lora": {"enabled": True},
        },
        description="fields of every arm's train config (srl train sft/srl/rlvr), e.g. max_prompt_tokens",
    )
    sft: dict[str, Any] = Field(default_factory=lambda: {"lr": 3e-4, "batch_size": 4})
    srl: dict[str, Any] = Field(default_factory=lambda: {"lr": 3e-4, "batch_size": 2, "num_generations": 4})
    rlvr: dict[str, Any] = Field(
        default_factory=lambda: {"batch_size": 1, "num_generations": 2, "max_turns": 4}
    )
    eval_limit: int | None = Field(None, ge=1, description="evaluate only the first N held-out steps")
    min_eval_steps: int = Field(0, ge=0, description="fail when fewer held-out steps are available")
    eval_batch_size: int = Field(8, ge=1)
    eval_backend: Literal["auto", "transformers", "vllm"] = "auto"
    bootstrap_samples: int = Field(2000, ge=100)
    end_to_end: bool = Field(False, description="also run each arm's agent on the bundled tasks (slow)")
    end_to_end_tasks: list[str] | None = Field(None, description="instance ids (default: all bundled tasks)")
    agent_max_steps: int = Field(6, ge=1)
    seed: int = 0
    resume: bool = Field(True, description="reuse arms (and the warm-up) an earlier run finished")

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if not self.arms:
            raise ValueError("arms: name at least one of " + ", ".join(ALL_ARMS))
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms: {self.arms} names an arm twice")
        for section, cls in (
            ("sft", "SFTTrainConfig"),
            ("srl", "SRLTrainConfig"),
            ("rlvr", "RLVRTrainConfig"),
        ):
            _arm_config(self, section, cls, Path("."), {})  # a bad field fails here, naming its section
        return self

    @property
    def out_dir(self) -> Path:
        return self.root / self.name


def _arm_config(cfg: ExperimentConfig, section: str, cls_name: str, out: Path, extra: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from srl_agent.train import config as train_config

    cls = getattr(train_config, cls_name)
    fields = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "train_split": cfg.train_split,
        "seed": cfg.seed,
        "report_to": [],
        "save_steps": 1_000_000,
        "max_steps": cfg.max_steps_per_arm,
    }
    if cls_name == "RLVRTrainConfig":
        fields.pop("dataset")
        fields.pop("train_split")
    data = {**fields, **cfg.train, **getattr(cfg, section), "output_dir": out, **extra}
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{section} / train sections ({cls_name}): {bad}") from None


# -- data --------------------------------------------------------------------------------------------------


def held_out_split(
    dataset: Path, train_split: str, eval_split: str, out: Path, *, seed: int | None = None
) -> tuple[Path, dict[str, int]]:
    """A data set dir whose ``heldout`` split holds the `eval_split` rows of trajectories with no training
    row (written to `out`), shuffled with `seed` when given (so ``eval_limit`` takes steps of every
    held-out trajectory, not the first few trajectories whole); returns it and the counts."""
    from datasets import DatasetDict

    from srl_agent.train.data import DataError, load_split

    train = load_split(dataset, train_split)
    evaluation = load_split(dataset, eval_split)
    for name, ds in ((train_split, train), (eval_split, evaluation)):
        if "trajectory_id" not in ds.column_names:
            raise DataError(
                f"{dataset} split {name!r} has no trajectory_id column (needed to hold trajectories out)"
            )
    seen = set(train["trajectory_id"])
    kept = evaluation.filter(lambda r: r["trajectory_id"] not in seen)
    if seed is not None:
        kept = kept.shuffle(seed=seed).flatten_indices()
    DatasetDict({"heldout": kept}).save_to_disk(str(out))
    counts = {
        "heldout_steps": len(kept),
        "heldout_trajectories": len(set(kept["trajectory_id"])),
        "dropped_shared_trajectory_steps": len(evaluation) - len(kept),
        "train_steps": len(train),
    }
    return out, counts


def _dataset_from(cfg: ExperimentConfig, out: Path) -> Path:
    """The step-wise set built from ``cfg.trajectories`` (cached in `out`), split by trajectory."""
    from srl_agent.models import resolve_model
    from srl_agent.train.data import DataError
    from trajectories.stepwise import build_dataset

    if cfg.trajectories is None:
        raise DataError(
            "dataset: give a step-wise data set (`dataset:`, from `srl data build`) or trajectory files "
            "(`trajectories:`, e.g. the demo's runs/demo/expert_runs)"
        )
    if not cfg.trajectories.exists():
        raise DataError(f"trajectories: {cfg.trajectories} does not exist")
    if not (cfg.resume and (out / "dataset_dict.json").is_file()):
        with console.status(f"building step-wise instances from {cfg.trajectories}"):
            build_dataset(
                [cfg.trajectories], out, context_steps=2, max_obs_tokens=96,
                tokenizer=str(resolve_model(cfg.model)), val_fraction=cfg.val_fraction, seed=cfg.seed,
            )  # fmt: skip
    return out


# -- arms --------------------------------------------------------------------------------------------------


def _tokens(run_dir: Path) -> dict[str, Any]:
    from srl_agent.train.common import TOKENS_FILE

    path = run_dir / TOKENS_FILE
    return json.loads(path.read_text()) if path.is_file() else {"tokens": 0, "steps": 0, "per_step": []}


def _curve(run_dir: Path, offset: int = 0) -> list[dict[str, float]]:
    """(tokens, reward or loss) per logged step of a run: the compute axis of the plot."""
    tokens = {p["step"]: p["tokens"] for p in _tokens(run_dir).get("per_step", [])}
    state = run_dir / "trainer_state.json"
    history = json.loads(state.read_text())["log_history"] if state.is_file() else []
    out = []
    for h in history:
        if h.get("step") in tokens and ("reward" in h or "loss" in h):
            point = {"tokens": offset + tokens[h["step"]], "step": h["step"]}
            for key in ("reward", "loss"):
                if isinstance(h.get(key), int | float):
                    point[key] = h[key]
            out.append(point)
    return out


def _run_sft(cfg: ExperimentConfig, dataset: Path, start: str, out: Path, budget: int) -> dict[str, Any]:
    from srl_agent.train.sft import run_sft

    run_sft(_arm_config(cfg, "sft", "SFTTrainConfig", out, {"dataset": dataset, "max_train_tokens": budget}),
            init_from=start)  # fmt: skip
    return {"model": str(out), **_spent(out), "curve": _curve(out)}


def _spent(run_dir: Path) -> dict[str, int]:
    t = _tokens(run_dir)
    return {"tokens": int(t["tokens"]), "steps": int(t["steps"])}


def _run_srl(cfg: ExperimentConfig, dataset: Path, start: str, out: Path, budget: int) -> dict[str, Any]:
    from srl_agent.train.grpo import DynamicSamplingStall
    from srl_agent.train.srl import run_srl

    conf = _arm_config(cfg, "srl", "SRLTrainConfig", out, {"dataset": dataset, "max_train_tokens": budget})
    try:
        run_srl(conf, init_from=start)
    except DynamicSamplingStall as exc:
        return _stopped(exc, out, start)
    return {"model": str(out), **_spent(out), "curve": _curve(out)}


def _run_rlvr(cfg: ExperimentConfig, start: str, out: Path, budget: int, offset: int = 0) -> dict[str, Any]:
    from srl_agent.train.grpo import DynamicSamplingStall
    from srl_agent.train.rlvr import run_rlvr

    conf = _arm_config(cfg, "rlvr", "RLVRTrainConfig", out, {"max_train_tokens": budget})
    try:
        run_rlvr(conf, init_from=start)
    except DynamicSamplingStall as exc:
        return _stopped(exc, out, start, offset)
    return {"model": str(out), **_spent(out), "curve": _curve(out, offset)}


def _stopped(exc: Exception, out: Path, start: str, offset: int = 0) -> dict[str, Any]:
    """A dynamic-sampling stop as a result: the cause, and the model the arm had then."""
    console.print(f"[yellow]arm stopped by dynamic sampling:[/] {exc}")
    spent = _spent(out)
    trained = spent["steps"] > 0 and (out / "config.json").is_file()
    return {
        "model": str(out) if trained else start,
        "stopped": str(exc),
        **spent,
        "curve": _curve(out, offset),
    }


def run_arm(cfg: ExperimentConfig, arm: Arm, dataset: Path, start: str, arm_dir: Path) -> dict[str, Any]:
    """Train one arm from `start` within the budget; returns its record (model, tokens, steps, curve)."""
    budget = cfg.budget_tokens
    if arm == "sft":
        return _run_sft(cfg, dataset, start, arm_dir / "sft", budget)
    if arm == "srl":
        return _run_srl(cfg, dataset, start, arm_dir / "srl", budget)
    if arm == "rlvr":
        return _run_rlvr(cfg, start, arm_dir / "rlvr", budget)
    srl_budget = max(1, round(budget * (1 - cfg.rlvr_share)))
    first = _run_srl(cfg, dataset, start, arm_dir / "srl", srl_budget)
    rest = max(1, budget - first["tokens"])
    second = _run_rlvr(cfg, first["model"], arm_dir / "rlvr", rest, offset=first["tokens"])
    record = {
        "model": second["model"],
        "tokens": first["tokens"] + second["tokens"],
        "steps": first["steps"] + second["steps"],
        "curve": first["curve"] + second["curve"],
        "stages": {"srl": _without_curve(first), "rlvr": _without_curve(second)},
    }
    for part in (first, second):
        if "stopped" in part:
            record["stopped"] = part["stopped"]
    return record


def _without_curve(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "curve"}


# -- evaluation --------------------------------------------------------------------------------------------


def evaluate_model(cfg: ExperimentConfig, model: str, heldout: Path, output: Path) -> dict[str, Any]:
    """Greedy answers on the held-out steps: summary with intervals, per tool, and per-step rewards."""
    from srl_agent.train.config import EvalStepsConfig
    from srl_agent.train.evaluate import evaluate_steps

    train = cfg.train
    report = evaluate_steps(
        EvalStepsConfig(
            model=model,
            dataset=heldout,
            split="heldout",
            limit=cfg.eval_limit,
            backend=cfg.eval_backend,
            batch_size=cfg.eval_batch_size,
            temperature=0.0,
            max_new_tokens=train.get("max_completion_length", 128),
            max_prompt_tokens=train.get("max_prompt_tokens", 448),
            seed=cfg.seed,
            output=output,
        )
    )
    rows = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]
    rewards = [float(r["reward"]) for r in rows]
    errors = [float(r["format_error"]) for r in rows]
    n_boot, seed = cfg.bootstrap_samples, cfg.seed
    return {
        "n": report.n,
        "mean_reward": report.mean_reward,
        "mean_reward_ci95": list(bootstrap_ci(rewards, samples=n_boot, seed=seed)),
        "format_error_rate": report.format_error_rate,
        "format_error_rate_ci95": list(bootstrap_ci(errors, samples=n_boot, seed=seed)),
        "per_tool": [t.model_dump() for t in report.per_tool],
        "steps": [[r.get("trajectory_id"), r.get("step")] for r in rows],
        "rewards": rewards,
    }


def end_to_end(cfg: ExperimentConfig, model: str, out: Path) -> dict[str, Any]:
    """The arm's agent on the bundled tasks: resolved / steps / exit status per task."""
    from envs.sources import load_tasks
    from harness.docker_env import get_client
    from srl_agent.agent import AgentConfig, run_episode
    from srl_agent.policy import load_policy

    tasks = load_tasks(None).tasks
    if cfg.end_to_end_tasks:
        tasks = [t for t in tasks if t.instance_id in set(cfg.end_to_end_tasks)]
    client = get_client()
    policy = load_policy(model, backend=cfg.eval_backend)
    results = {}
    try:
        for spec in tasks:
            res = run_episode(
                spec, policy,
                AgentConfig(toolset="bash_only", max_steps=cfg.agent_max_steps, temperature=0.0,
                            max_new_tokens=2 * cfg.train.get("max_completion_length", 128)),
                out_dir=out / spec.instance_id, client=client, model_name=model,
            )  # fmt: skip
            results[spec.instance_id] = {
                "resolved": res.resolved,
                "steps": res.steps,
                "exit_status": res.exit_status,
            }
    finally:
        if hasattr(policy, "close"):
            policy.close()
    return {
        "tasks": results,
        "resolved": sum(bool(r["resolved"]) for r in results.values()),
        "n": len(results),
    }


# -- the run -----------------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def _warmup(cfg: ExperimentConfig, dataset: Path, out: Path) -> dict[str, Any]:
    from srl_agent.models import resolve_model
    from srl_agent.train.sft import run_sft

    if cfg.warmup_steps == 0:
        return {"model": str(resolve_model(cfg.model)), "steps": 0}
    done = out / "warmup.json"
    if cfg.resume and done.is_file():
        console.print(f"[dim]warm-up: reused {out}[/]")
        return json.loads(done.read_text())
    conf = _arm_config(cfg, "sft", "SFTTrainConfig", out,
                       {"dataset": dataset, "max_steps": cfg.warmup_steps, "lr": cfg.warmup_lr})  # fmt: skip
    run_sft(conf)
    record = {"model": str(out), "steps": cfg.warmup_steps, **_spent(out)}
    _write_json(done, record)
    return record


def _start_eval(cfg: ExperimentConfig, model: str, heldout: Path, out: Path, n_eval: int) -> dict[str, Any]:
    """The start model on the held-out steps (first, so an interrupted run already has its baseline)."""
    path = out / "start_eval.json"
    if cfg.resume and path.is_file():
        return json.loads(path.read_text())
    with console.status(f"evaluating the start model on {n_eval} held-out steps"):
        ev = evaluate_model(cfg, model, heldout, out / "start_eval.jsonl")
    _write_json(path, ev)
    return ev


def run_experiment(cfg: ExperimentConfig) -> dict[str, Any]:
    """Train every arm, evaluate, compare; writes and returns the report."""
    from srl_agent.models import set_offline

    set_offline()
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.model_dump_json(indent=1))
    started = time.monotonic()
    dataset = cfg.dataset or _dataset_from(cfg, out / "data")
    heldout, counts = held_out_split(dataset, cfg.train_split, cfg.eval_split, out / "heldout", seed=cfg.seed)
    n_eval = min(counts["heldout_steps"], cfg.eval_limit or counts["heldout_steps"])
    if n_eval == 0 or n_eval < cfg.min_eval_steps:
        from srl_agent.train.data import DataError

        raise DataError(
            f"{dataset}: {n_eval} held-out steps (split {cfg.eval_split!r}, trajectories with no training row), "
            f"min_eval_steps={cfg.min_eval_steps}; build the data set with a larger validation share"
        )
    console.print(
        f"[bold]experiment {cfg.name}[/]: arms {', '.join(cfg.arms)}; budget {cfg.budget_tokens} training tokens "
        f"per arm; {n_eval} held-out steps from {counts['heldout_trajectories']} unseen trajectories"
    )
    console.rule("warm-up (shared start)")
    start = _warmup(cfg, dataset, out / "warmup")
    start_eval = _start_eval(cfg, start["model"], heldout, out, n_eval)
    arms: dict[str, Any] = {}
    for i, arm in enumerate(cfg.arms, 1):
        arm_dir = out / "arms" / arm
        result_path = arm_dir / "result.json"
        if cfg.resume and result_path.is_file():
            console.print(f"[dim]arm {i}/{len(cfg.arms)} {arm}: reused {result_path}[/]")
            arms[arm] = json.loads(result_path.read_text())
            continue
        console.rule(f"arm {i}/{len(cfg.arms)}: {arm}")
        t0 = time.monotonic()
        record = run_arm(cfg, arm, dataset, start["model"], arm_dir)
        record["train_seconds"] = round(time.monotonic() - t0, 1)
        if record["model"] == start["model"]:
            # stopped before its first update (e.g. RLVR without signal): the start model's answers
            console.print(f"{arm} ends on the start model: its held-out answers are the start's")
            record["eval"] = start_eval
        else:
            with console.status(f"evaluating {arm} on {n_eval} held-out steps"):
                record["eval"] = evaluate_model(cfg, record["model"], heldout, arm_dir / "eval.jsonl")
        if cfg.end_to_end:
            record["end_to_end"] = end_to_end(cfg, record["model"], arm_dir / "agent")
        record["seconds"] = round(time.monotonic() - t0, 1)
        _write_json(result_path, record)
        arms[arm] = record
    evals = {"start": start_eval, **{a: r["eval"] for a, r in arms.items()}}
    report = {
        "name": cfg.name,
        "config": json.loads(cfg.model_dump_json()),
        "budget": {"unit": "training tokens", "per_arm": cfg.budget_tokens},
        "data": {"dataset": str(dataset), **counts, "evaluated_steps": n_eval},
        "start": {**start, "eval": _summary(start_eval)},
        "arms": {
            a: {**{k: v for k, v in r.items() if k != "eval"}, "eval": _summary(r["eval"])}
            for a, r in arms.items()
        },
        "paired": compare_arms(evals, samples=cfg.bootstrap_samples, seed=cfg.seed),
        "seconds": round(time.monotonic() - started, 1),
    }
    _write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown_report(report))
    try:
        plot_report(report, out / "report.png")
    except ImportError as exc:
        console.print(f"[yellow]no plot:[/] {exc} (pip install matplotlib)")
    console.print(markdown_report(report))
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}, {out / 'report.png'}")
    return report


def experiment(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (ExperimentConfig fields)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override one field: key=value. Repeatable."),
    name: str | None = typer.Option(None, "--name", help="runs/experiments/<name>/ (overrides the config)."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain every arm (default: reuse finished arms)."),
) -> None:
    """Compare SFT, SRL, SRL -> RLVR and RLVR alone at equal training tokens on held-out steps."""
    from srl_agent.cli_agent import _known_errors
    from srl_agent.train.config import load_config, parse_overrides

    try:
        overrides = parse_overrides(sets or [])
        if name:
            overrides["name"] = name
        if fresh:
            overrides["resume"] = False
        cfg = load_config(ExperimentConfig, config, overrides)
        run_experiment(cfg)
    except _known_errors() as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
