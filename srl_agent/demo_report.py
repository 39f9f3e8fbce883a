"""The demo's report as the user sees it: the summary table, the data's origin line, the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _data_origin(data: dict[str, Any]) -> str:
    """One line: where the demo's training data came from."""
    src = (data.get("stages", {}).get("data") or {}).get("source") or {}
    if src.get("kind") == "user":
        return f"data: your trajectories at {src['path']}"
    if src.get("kind") == "generated":
        seeds = src.get("seeds") or [0]
        return (
            f"data: {src['runs']} expert runs generated over {src['tasks']} tasks by the scripted expert "
            f"(seeds {seeds[0]}-{seeds[-1]}, styles {'+'.join(src.get('styles', []))}) in {src['path']}"
        )
    return "data: -"


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
    cmp = (st.get("srl") or {}).get("vs_sft")
    if cmp:
        lo, hi = cmp["ci95"]
        verdict = (
            "the interval excludes 0"
            if cmp["excludes_zero"]
            else "the interval includes 0: no difference shown"
        )
        console.print(
            f"SRL - SFT on the same {cmp['n']} validation steps (greedy): {cmp['mean_difference']:+.3f} "
            f"[95% CI {lo:+.3f}, {hi:+.3f}], {verdict}; better / worse / equal "
            f"{cmp['better']} / {cmp['worse']} / {cmp['equal']}"
        )
    agents = st.get("agents", {})
    if agents:
        t2 = Table(title=f"end to end on {data.get('task') or data['config']['task']}")
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
    console.print(_data_origin(data))
    console.print(f"total: {data.get('total_seconds', 0) / 60:.1f} min")
