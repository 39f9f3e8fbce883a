"""Commands of the learning layer: ``srl train {sft,srl,rlvr}`` and ``srl eval-steps``.

Nothing heavy is imported here: each command imports its trainer inside the function, so
``srl --help`` stays fast and works without the train extra. To add a command, define it below and
mount it in `register` (the agent loop's ``run`` and ``demo`` go there too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

train_app = typer.Typer(no_args_is_help=True, help="Train a policy: SFT warm-up, SRL (step reward), RLVR.")

_CONFIG = typer.Option(None, "--config", "-c", help="YAML config file (fields of the command's config).")
_SET = typer.Option(
    None, "--set", help="Override one field: key=value (dotted keys for sections). Repeatable."
)
_INIT = typer.Option(None, "--init-from", help="Start from this checkpoint instead of the config's model.")
_RESUME = typer.Option(False, "--resume", help="Resume from the last checkpoint-* in output_dir.")
_DATASET = typer.Option(None, "--dataset", help="Step-wise data set dir (overrides the config).")
_OUT = typer.Option(None, "--output-dir", "-o", help="Output dir (overrides the config).")
_STEPS = typer.Option(
    None, "--max-steps", help="Stop after this many optimizer steps (overrides the config)."
)


def _overrides(sets: list[str] | None, **explicit: Any) -> dict[str, Any]:
    from srl_agent.train.config import parse_overrides

    out = parse_overrides(sets or [])
    out.update({k: str(v) if isinstance(v, Path) else v for k, v in explicit.items() if v is not None})
    return out


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def _known_errors() -> tuple[type[Exception], ...]:
    from srl_agent.models import ModelNotFoundError
    from srl_agent.train.common import TrainError
    from srl_agent.train.config import ConfigError
    from srl_agent.train.data import DataError

    return (ConfigError, DataError, TrainError, ModelNotFoundError)


def _train(config_cls: str, run: str, config: Path | None, overrides: dict[str, Any], **kwargs: Any) -> None:
    """Load the command's config (file + overrides) and run its trainer; errors become exit codes:
    2 for bad input, 3 for a dynamic-sampling stop (with its cause and remedy)."""
    import importlib

    try:
        from srl_agent.train import config as config_mod
        from srl_agent.train.grpo import DynamicSamplingStall

        module, _, func = run.rpartition(".")
        cfg = config_mod.load_config(getattr(config_mod, config_cls), config, overrides)
        getattr(importlib.import_module(module), func)(cfg, **kwargs)
    except DynamicSamplingStall as exc:
        typer.secho(f"training stopped: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3) from None
    except _known_errors() as exc:
        raise _fail(exc) from None


@train_app.command("sft")
def train_sft(
    config: Path | None = _CONFIG,
    sets: list[str] | None = _SET,
    init_from: str | None = _INIT,
    resume: bool = _RESUME,
    dataset: Path | None = _DATASET,
    output_dir: Path | None = _OUT,
    max_steps: int | None = _STEPS,
) -> None:
    """Supervised fine-tuning on the expert's answers (baseline; warm-up before SRL)."""
    _train(
        "SFTTrainConfig",
        "srl_agent.train.sft.run_sft",
        config,
        _overrides(sets, dataset=dataset, output_dir=output_dir, max_steps=max_steps),
        init_from=init_from,
        resume=resume,
    )


@train_app.command("srl")
def train_srl(
    config: Path | None = _CONFIG,
    sets: list[str] | None = _SET,
    init_from: str | None = _INIT,
    resume: bool = _RESUME,
    dataset: Path | None = _DATASET,
    output_dir: Path | None = _OUT,
    max_steps: int | None = _STEPS,
) -> None:
    """SRL: GRPO over expert steps with the step reward (no KL, dynamic sampling)."""
    _train(
        "SRLTrainConfig",
        "srl_agent.train.srl.run_srl",
        config,
        _overrides(sets, dataset=dataset, output_dir=output_dir, max_steps=max_steps),
        init_from=init_from,
        resume=resume,
    )


@train_app.command("rlvr")
def train_rlvr(
    config: Path | None = _CONFIG,
    sets: list[str] | None = _SET,
    init_from: str | None = _INIT,
    resume: bool = _RESUME,
    output_dir: Path | None = _OUT,
    max_steps: int | None = _STEPS,
    tasks: str | None = typer.Option(
        None,
        "--tasks",
        "-t",
        help="Task source (pack, dir, task file, SWE-bench JSON/JSONL); default examples.",
    ),
    instance_ids: list[str] | None = typer.Option(
        None, "--instance-id", "-i", help="Train on this task only. Repeatable."
    ),
) -> None:
    """RLVR: GRPO over whole sandboxed episodes, rewarded by the task's tests (after SRL)."""
    _train(
        "RLVRTrainConfig",
        "srl_agent.train.rlvr.run_rlvr",
        config,
        _overrides(
            sets,
            output_dir=output_dir,
            max_steps=max_steps,
            tasks=tasks,
            instance_ids=instance_ids or None,
        ),
        init_from=init_from,
        resume=resume,
    )


def eval_steps(
    model: str = typer.Option(
        "smollm2-135m-instruct", "--model", "-m", help="Model dir, cached name, or default."
    ),
    dataset: Path = typer.Option(..., "--dataset", help="Step-wise data set dir."),
    split: str = typer.Option("validation", "--split"),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N steps."),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (vLLM when installed) | transformers | vllm | expert (replay)."
    ),
    batch_size: int = typer.Option(8, "--batch-size"),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens"),
    max_prompt_tokens: int = typer.Option(1024, "--max-prompt-tokens"),
    output: Path | None = typer.Option(None, "--output", help="Write per-step results (JSONL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Mean step reward and format-error rate of a policy on held-out steps, per tool."""
    from rich.console import Console
    from rich.table import Table

    try:
        from srl_agent.train.config import EvalStepsConfig
        from srl_agent.train.evaluate import evaluate_steps

        cfg = EvalStepsConfig(
            model=model,
            dataset=dataset,
            split=split,
            limit=limit,
            backend=backend,  # type: ignore[arg-type]
            batch_size=batch_size,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            max_prompt_tokens=max_prompt_tokens,
            output=output,
        )
        report = evaluate_steps(cfg)
    except _known_errors() as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    table = Table(title=f"{report.model} on {dataset} [{split}]: {report.n} steps in {report.seconds:.0f}s")
    for col in ("tool", "steps", "mean reward", "format errors"):
        table.add_column(col, justify="left" if col == "tool" else "right")
    for t in report.per_tool:
        table.add_row(t.tool, str(t.n), f"{t.mean_reward:.3f}", f"{t.format_error_rate:.1%}")
    table.add_row(
        "[bold]all", str(report.n), f"[bold]{report.mean_reward:.3f}", f"{report.format_error_rate:.1%}"
    )
    Console().print(table)


def register(app: typer.Typer, panel: str | None = None) -> None:
    """Mount the learning commands on the root app."""
    app.add_typer(
        train_app,
        name="train",
        help="Train a policy: SFT warm-up, SRL (step reward), RLVR.",
        rich_help_panel=panel,
    )
    app.command(
        "eval-steps",
        help="Mean step reward and format-error rate on held-out steps, per tool.",
        rich_help_panel=panel,
    )(eval_steps)
