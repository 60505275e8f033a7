"""Figures of the transfer table (seaborn, PNG, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from workflow_scripts.files import atomic_path  # noqa: E402
from workflow_scripts.transfer import LEVELS  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def heatmap(table: pd.DataFrame, method: str, variant: str, path: str | Path) -> None:
    """Sources x targets, colour = bias reduction (1 = bias gone, 0 = unchanged)."""
    sub = table[(table["method"] == method) & (table["variant"] == variant)]
    grid = sub.pivot_table(index="source", columns="target", values="bias_reduction", aggfunc="first")
    order = [s for s in dict.fromkeys(sub["source"]) if s in grid.index]
    grid = grid.reindex(order)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * max(1, grid.shape[1]), 1.0 + 0.42 * max(1, grid.shape[0])))
    sns.heatmap(grid, ax=ax, cmap="RdBu", vmin=-1, vmax=1, center=0, annot=grid.shape[1] <= 12, fmt=".2f",
                cbar_kws={"label": "bias reduction 1 - |SMD pruned| / |SMD base|"})
    ax.set_title(f"{method} {variant}: transfer of bias reduction")
    ax.set_xlabel("target context (evaluated on)")
    ax.set_ylabel("mask source (learned on)")
    _save(fig, path)


def reduction_by_level(table: pd.DataFrame, path: str | Path) -> None:
    """Mean bias reduction per generalization level, neurons vs heads vs random controls."""
    order = [lv for lv in LEVELS if lv in set(table["level"])]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(order)), 4))
    sns.pointplot(data=table, x="level", y="bias_reduction", hue="method", order=order, errorbar=("ci", 95),
                  dodge=0.4, linestyle="none", ax=ax)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("bias reduction")
    ax.set_xlabel("generalization level (near -> far)")
    ax.tick_params(axis="x", rotation=20)
    _save(fig, path)


def dose_response(table: pd.DataFrame, path: str | Path) -> None:
    """Reduction and perplexity against p (neurons) or k (heads), same-context rows."""
    sub = table[table["level"] == "same_context"].copy()
    sub["dose"] = sub["p_black"].where(sub["kind"] == "neurons", sub["k"])
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex="col")
    for col, kind, label in [(0, "neurons", "p_black (%)"), (1, "heads", "k (heads)")]:
        part = sub[sub["kind"] == kind]
        for row, y in [(0, "bias_reduction"), (1, "perplexity_pruned")]:
            ax = axes[row, col]
            if not part.empty:
                sns.lineplot(data=part, x="dose", y=y, hue="method", marker="o", errorbar=("ci", 95), ax=ax)
            ax.set_xlabel(label)
            ax.set_ylabel(y.replace("_", " "))
            if row == 1 and not part.empty:
                ax.axhline(part["perplexity_base"].iloc[0], color="grey", ls="--", lw=0.8, label="unpruned")
    fig.suptitle("Dose-response (mask learned and evaluated on the same context)")
    _save(fig, path)


def make_plots(table: pd.DataFrame, heatmaps: list[str], levels: str, dose: str) -> None:
    for path in heatmaps:
        method, variant = Path(path).stem.removeprefix("transfer_").split("__")
        heatmap(table, method, variant, path)
    reduction_by_level(table, levels)
    dose_response(table, dose)
