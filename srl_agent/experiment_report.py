"""`srl experiment`'s report: the markdown table and the PNG (reward against compute per arm; final values
with their intervals), from the report dictionary `srl_agent.experiment.run_experiment` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _summary(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in ("rewards", "steps")}


def markdown_report(report: dict[str, Any]) -> str:
    d = report["data"]
    lines = [
        f"# Experiment {report['name']}",
        "",
        f"Budget: {report['budget']['per_arm']} training tokens per arm. Held out: {d['evaluated_steps']} steps of "
        f"{d['heldout_trajectories']} trajectories no arm trained on (greedy). Intervals: 95% bootstrap.",
        "",
        "| arm | tokens | steps | mean step reward [95% CI] | format errors [95% CI] | note |",
        "|---|---:|---:|---|---|---|",
    ]
    rows = [
        ("start", {"tokens": 0, "steps": report["start"].get("steps", 0), "eval": report["start"]["eval"]})
    ]
    rows += list(report["arms"].items())
    for name, r in rows:
        e = r["eval"]
        lo, hi = e["mean_reward_ci95"]
        flo, fhi = e["format_error_rate_ci95"]
        note = "stopped: " + r["stopped"].split(":")[0] if r.get("stopped") else ""
        lines.append(
            f"| {name} | {r['tokens']} | {r['steps']} | {e['mean_reward']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
            f"{e['format_error_rate']:.0%} [{flo:.0%}, {fhi:.0%}] | {note} |"
        )
    lines += ["", "Paired (b - a on the same steps):", "", "| a | b | mean difference [95% CI] | better / worse / equal |",
              "|---|---|---|---|"]  # fmt: skip
    for p in report["paired"]:
        lo, hi = p["ci95"]
        lines.append(
            f"| {p['a']} | {p['b']} | {p['mean_difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
            f"{p['better']} / {p['worse']} / {p['equal']} |"
        )
    tools = sorted({t["tool"] for _, r in rows for t in r["eval"]["per_tool"]})
    if tools:
        lines += ["", "Per tool (mean step reward, n):", "", "| arm | " + " | ".join(tools) + " |",
                  "|---|" + "---|" * len(tools)]  # fmt: skip
        for name, r in rows:
            by = {t["tool"]: t for t in r["eval"]["per_tool"]}
            cells = [f"{by[t]['mean_reward']:+.3f} ({by[t]['n']})" if t in by else "-" for t in tools]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    e2e = {a: r["end_to_end"] for a, r in report["arms"].items() if "end_to_end" in r}
    if e2e:
        lines += [
            "",
            "End to end (bundled tasks):",
            "",
            "| arm | resolved | per task (exit status, steps) |",
            "|---|---|---|",
        ]
        for a, r in e2e.items():
            per = ", ".join(f"{t}: {v['exit_status']} ({v['steps']})" for t, v in r["tasks"].items())
            lines.append(f"| {a} | {r['resolved']}/{r['n']} | {per} |")
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Left: training reward (GRPO) or loss (SFT) against training tokens per arm. Right: final held-out
    mean step reward per arm with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm, r in report["arms"].items():
        curve = r.get("curve", [])
        pts = [(p["tokens"], p["reward"]) for p in curve if "reward" in p]
        if pts:
            ax1.plot(*zip(*pts, strict=True), "o-", label=f"{arm} (batch reward)")
        loss = [(p["tokens"], p["loss"]) for p in curve if "reward" not in p and "loss" in p]
        if loss:
            ax1.plot(*zip(*loss, strict=True), "x:", label=f"{arm} (SFT loss)")
    ax1.set_xlabel("training tokens")
    ax1.set_title("training against compute")
    if ax1.get_lines():
        ax1.legend(fontsize=8)
    else:
        ax1.text(
            0.5, 0.5, "no training steps (see the report)", ha="center", va="center", transform=ax1.transAxes
        )
    names = ["start", *report["arms"]]
    evals = [report["start"]["eval"], *(r["eval"] for r in report["arms"].values())]
    means = [e["mean_reward"] for e in evals]
    errs = [[m - e["mean_reward_ci95"][0] for m, e in zip(means, evals, strict=True)],
            [e["mean_reward_ci95"][1] - m for m, e in zip(means, evals, strict=True)]]  # fmt: skip
    ax2.errorbar(range(len(names)), means, yerr=errs, fmt="o", capsize=4)
    ax2.set_xticks(range(len(names)), names)
    ax2.set_ylim(-1.05, 1.05)
    ax2.axhline(0, color="grey", lw=0.5)
    ax2.set_title(f"held-out mean step reward ({report['data']['evaluated_steps']} steps, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
