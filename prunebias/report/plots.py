"""Figures of the baseline and transfer tables (matplotlib/seaborn, PNG, headless).

Every figure shows uncertainty: CIs come from the tables (name-level bootstrap), and
summaries across targets treat the target as the unit (no pseudo-replication over the
sources evaluated on one target).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "prunebias"  # SVG ids from a fixed salt, not uuid4: reruns byte-identical
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from prunebias.files import atomic_path  # noqa: E402
from prunebias.workflow.plan import LEVELS  # noqa: E402

EFFECT_LABEL = {"smd": "SMD", "log_smd": "SMD of log(1 + value)", "cliffs_delta": "Cliff's delta", "diff": "difference"}


def _save(fig, path: str | Path) -> None:
    """The figure as PNG (the report) and as SVG beside it (vector, for papers)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    with atomic_path(Path(path).with_suffix(".svg")) as tmp:
        fig.savefig(tmp, format="svg", bbox_inches="tight", metadata={"Date": None})  # no date: reruns byte-identical
    plt.close(fig)


def ordered_sources(sources: Sequence[str], contexts: Sequence[str]) -> list[str]:
    """Context sources in the context order (so the diagonal is the same-context case), then pools."""
    present = list(dict.fromkeys(sources))
    return [c for c in contexts if c in present] + sorted(s for s in present if s not in contexts)


def heatmap(table: pd.DataFrame, kind: str, setting: str, contexts: Sequence[str], path: str | Path) -> None:
    """Sources x targets, colour = the change of the bias toward 0 (pruned - reference,
    ``delta_toward_zero``); * where its CI excludes 0.

    A target without an established baseline bias (``bias_to_remove`` false) has no
    removal to show: its cells are blank and say "no bias". The title counts what the
    cells show."""
    sub = table[(table["kind"] == kind) & (table["setting"] == setting)]
    if "bias_to_remove" in sub.columns:
        sub = sub.assign(delta_toward_zero=sub["delta_toward_zero"].where(
            sub["bias_to_remove"].fillna(True).astype(bool)))
    targets = [c for c in contexts if c in set(sub["target"])]
    rows = ordered_sources(sub["source"], contexts)

    def cells(values: pd.Series) -> pd.DataFrame:
        return (sub.assign(v=values).pivot_table(index="source", columns="target", values="v", aggfunc="first",
                                                 dropna=False).reindex(index=rows, columns=targets))

    grid = cells(sub["delta_toward_zero"]).astype(float)
    below = cells((sub["delta_toward_zero_ci_high"] < 0) & sub["delta_toward_zero"].notna())
    above = cells((sub["delta_toward_zero_ci_low"] > 0) & sub["delta_toward_zero"].notna())
    under = cells(sub["underpowered"])
    no_bias = cells(~sub["bias_to_remove"].fillna(True).astype(bool) if "bias_to_remove" in sub.columns
                    else pd.Series(False, index=sub.index))
    finite = np.abs(grid.to_numpy(float))
    vmax = float(np.nanmax(finite)) if np.isfinite(finite).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0  # the scale always spans every value: nothing is clipped
    labels = grid.copy().astype(object)
    for r in grid.index:
        for c in grid.columns:
            v = grid.loc[r, c]
            mark = "*" if bool(below.loc[r, c]) or bool(above.loc[r, c]) else ""
            mark += " (u)" if bool(under.loc[r, c]) is True else ""
            labels.loc[r, c] = "no bias" if bool(no_bias.loc[r, c]) is True else "" if pd.isna(v) else f"{v:.2f}{mark}"
    effect = str(sub["effect"].iloc[0]) if len(sub) else "smd"
    n_cells, n_none = int(grid.size), int(no_bias.to_numpy(bool).sum())
    n_down, n_up = int(below.to_numpy(bool).sum()), int(above.to_numpy(bool).sum())
    # wide and tall enough that the three-line title and the colour bar's label stay inside
    fig, ax = plt.subplots(figsize=(max(6.0, 2.4 + 1.3 * grid.shape[1]), max(3.4, 2.0 + 0.45 * grid.shape[0])))
    sns.heatmap(grid, ax=ax, cmap="RdBu_r", vmin=-vmax, vmax=vmax, center=0,
                annot=labels.to_numpy() if grid.shape[1] <= 12 else False, fmt="",
                cbar_kws={"label": f"change toward 0\n(pruned - reference)\n{EFFECT_LABEL.get(effect, effect)}"})
    ax.set_facecolor("#eeeeee")  # blank cells: no value (seaborn does not annotate them; "no bias" is written here)
    for i, r in enumerate(grid.index):
        for j, c in enumerate(grid.columns):
            if bool(no_bias.loc[r, c]) is True:
                ax.text(j + 0.5, i + 0.5, "no bias", ha="center", va="center", fontsize=8, color="#555555")
    counted = (f"{n_down} of {n_cells - n_none} cells with a bias smaller, {n_up} larger (*: paired 95% CI)\n"
               f"{n_none} of {n_cells} with no bias to remove; (u) underpowered") if n_cells > n_none else (
        "no target has an established baseline bias (its CI covers 0):\nno cell has a bias to remove")
    ax.set_title(f"{kind} {setting}: change of the bias toward 0 (blue: smaller)\n{counted}", fontsize=8)
    ax.set_xlabel("target context (evaluated on)")
    ax.set_ylabel("mask source (learned on)")
    ax.tick_params(axis="y", labelrotation=0)  # context names read across, not up the side
    fig.tight_layout()
    _save(fig, path)


def reduction_by_level(table: pd.DataFrame, path: str | Path) -> None:
    """Per level: every (mask, source, target) row's change of the bias toward 0 (left) and
    real minus matched random along it (right), each a point with its own name-bootstrap CI.

    Rows whose target has no bias to remove are left out (no change there is an estimand
    of removal); the titles count them and the rows whose CI lies below 0, both
    computed from the table. A mean over two or three targets with a bootstrap across them
    (the plot before issue 23) said nothing about names.
    """
    keep = table["bias_to_remove"].astype(bool) if "bias_to_remove" in table else pd.Series(True, index=table.index)
    rows = table[keep].copy()
    rows["masks"] = rows["kind"] + " (" + rows["scoring"].fillna("") + ")"
    order = [lv for lv in LEVELS if lv in set(table["level"])]
    masks = sorted(rows["masks"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(max(9, 2.4 * len(order)), 4.2), sharey=False)
    for ax, value, label in [(axes[0], "delta_toward_zero", "bias toward 0: pruned - reference"),
                             (axes[1], "delta_vs_random", "bias toward 0: real mask - matched random")]:
        shown = rows[rows[value].notna()] if value in rows else rows.iloc[:0]
        for i, mask in enumerate(masks):
            part = shown[shown["masks"] == mask]
            for lv_i, lv in enumerate(order):
                g = part[part["level"] == lv]
                if g.empty:
                    continue
                centre = lv_i + (i - (len(masks) - 1) / 2) * 0.8 / max(len(masks), 1)
                x = centre + np.linspace(-0.08, 0.08, len(g)) if len(g) > 1 else np.array([centre])
                y = g[value].to_numpy(float)
                lo = g.get(f"{value}_ci_low", pd.Series(y, index=g.index)).to_numpy(float)
                hi = g.get(f"{value}_ci_high", pd.Series(y, index=g.index)).to_numpy(float)
                ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], fmt="o", ms=4,
                            capsize=2, color=f"C{i}", label=mask if lv_i == min(
                                order.index(v) for v in part["level"].unique()) else None)
                if len(g) <= 4:  # few points: say which (source -> target) row each is
                    for xi, yi, (src, tgt) in zip(x, y, zip(g["source"], g["target"])):
                        ax.annotate(f"{src}\n-> {tgt}", (xi, yi), xytext=(4, 0), textcoords="offset points",
                                    fontsize=6, va="center", color="#444444")
        ax.axhline(0, color="grey", lw=0.8)
        below = int((shown.get(f"{value}_ci_high", pd.Series(dtype=float)) < 0).sum())
        ax.set_title(f"{label}:\n{below} of {len(shown)} rows' CIs below 0", fontsize=9)
        ax.set_xticks(range(len(order)), [f"{LEVELS[lv]}: {lv}" for lv in order])  # the paper's numbers
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_xlabel("generalization level (1 near -> 3 far)")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=20)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"points: transfer rows, bars: their 95% name CIs; {int((~keep).sum())} rows with no bias to "
                 "remove left out", fontsize=8)
    fig.tight_layout()  # the suptitle above the panels' titles, not across them
    _save(fig, path)


def dose_response(table: pd.DataFrame, path: str | Path) -> None:
    """Change of the bias toward 0 and perplexity against p (neurons) or k (heads), same-context rows.

    Drawn only for a kind with at least two doses; otherwise the panel says so.
    """
    sub = table[table["level"] == "same_context"].copy()
    sub = sub[sub["dose"].notna()]  # a family's dose (prunebias.methods.registry); none: not drawn
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex="col")
    for col, kind, label in [(0, "neurons", "p_black (%)"), (1, "heads", "k (heads)")]:
        part = sub[sub["kind"] == kind]
        for row, y in [(0, "delta_toward_zero"), (1, "perplexity_pruned")]:
            ax = axes[row, col]
            ax.set_xlabel(label)
            ax.set_ylabel(y.replace("_", " "))
            if part["dose"].nunique() < 2:
                ax.text(0.5, 0.5, f"one dose only for {kind}", ha="center", va="center", transform=ax.transAxes)
                continue
            sns.lineplot(data=part, x="dose", y=y, hue="scoring", marker="o", errorbar=("ci", 95), ax=ax)
            ref = part["perplexity_ref"].iloc[0] if row == 1 else 0.0  # unpruned: its perplexity; no change of |bias|
            ax.axhline(ref, color="grey", ls="--", lw=0.8, label="unpruned")
            ax.legend()
    fig.suptitle("Dose-response (mask learned and evaluated on the same context)")
    _save(fig, path)


def baseline_forest(by_context: pd.DataFrame, by_gender: pd.DataFrame, effect: str, path: str | Path) -> None:
    """Baseline effect per context (and per gender) with its name-bootstrap 95% CI."""
    rows = []
    for _, r in by_context.iterrows():
        rows.append((r["context"], "all", r[effect], r[f"{effect}_ci_low"], r[f"{effect}_ci_high"], r["p_perm"]))
    for _, r in by_gender.iterrows():
        rows.append((r["context"], r["gender"], r[effect], r[f"{effect}_ci_low"], r[f"{effect}_ci_high"], r["p_perm"]))
    df = pd.DataFrame(rows, columns=["context", "group", "est", "lo", "hi", "p"])
    forest(df, f"{EFFECT_LABEL.get(effect, effect)}, White - Black (95% name-bootstrap CI)",
           f"Baseline bias per context: {_excluding_zero(df[df['group'] == 'all'])}; p: name-permutation test", path)


def _excluding_zero(df: pd.DataFrame) -> str:
    """How many rows' CIs exclude 0, and on which side, in words (a title computed from the data)."""
    low, high = df["hi"] < 0, df["lo"] > 0
    return (f"{int((low | high).sum())} of {len(df)} CIs exclude 0: "
            f"{int(low.sum())} with Black names' answers higher, {int(high.sum())} White names'")


def forest(df: pd.DataFrame, xlabel: str, title: str, path: str | Path) -> None:
    """A forest plot: one line per (context, group) of ``df`` (columns context, group, est,
    lo, hi, p), groups coloured, contexts in blocks."""
    groups = list(dict.fromkeys(df["group"]))
    contexts = list(dict.fromkeys(df["context"]))
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.55 * len(contexts) * len(groups) / 1.5))
    colors = dict(zip(groups, sns.color_palette("deep", len(groups))))
    y = 0.0
    ticks, names = [], []
    for c in contexts:
        for g in groups:
            r = df[(df["context"] == c) & (df["group"] == g)]
            if r.empty:
                continue
            r = r.iloc[0]
            if math.isfinite(r["lo"]) and math.isfinite(r["hi"]):
                ax.plot([r["lo"], r["hi"]], [y, y], color=colors[g], lw=2)
            ax.plot([r["est"]], [y], "o", color=colors[g], label=g if c == contexts[0] else None)
            ticks.append(y)
            names.append(f"{c} ({g}) p={r['p']:.3f}" if math.isfinite(r["p"]) else f"{c} ({g})")
            y -= 1
        y -= 0.6
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def models_forest(baselines: Mapping[str, pd.DataFrame], effect: str, path: str | Path) -> None:
    """Each model's baseline effect per context with its name-bootstrap CI, side by side."""
    df = pd.DataFrame([(r["context"], model, r[effect], r[f"{effect}_ci_low"], r[f"{effect}_ci_high"], r["p_perm"])
                       for model, table in baselines.items() for _, r in table.iterrows()],
                      columns=["context", "group", "est", "lo", "hi", "p"])
    forest(df, f"{EFFECT_LABEL.get(effect, effect)}, White - Black (95% name-bootstrap CI)",
           f"Baseline bias per context and model: {_excluding_zero(df)}; p: name-permutation test", path)


FAITH_TITLES = {"head": "heads removed one at a time", "neuron": "MLP neurons removed one at a time",
                "planted_neurons": "the planted neurons, removed together"}


def faithfulness_plot(units: pd.DataFrame, summary: pd.DataFrame, path: str | Path) -> None:
    """Predicted against measured change of the objective B, one removed unit per point;
    one panel per unit kind (heads, neurons), colour = the context, rho with its CI in the title."""
    kinds = list(dict.fromkeys(units["unit"])) or ["head"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.6 * len(kinds), 4.2), squeeze=False)
    for ax, unit in zip(axes[0], kinds):
        got = units[units["unit"] == unit]
        for (source, ctx), g in got.groupby(["source", "context"], sort=False):
            ax.scatter(g["predicted"], g["measured"], s=18, alpha=0.8, label=f"{source}: {ctx}")
        if len(got):
            lim = float(np.nanmax(np.abs(got[["predicted", "measured"]].to_numpy()))) * 1.1 or 1.0
            ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls="--")
        rhos = summary[(summary["unit"] == unit) & summary["spearman"].notna()]
        title = "; ".join(f"{r.context}: rho {r.spearman:.2f} [{r.spearman_ci_low:.2f}, {r.spearman_ci_high:.2f}]"
                          for r in rhos.itertuples())
        ax.set_title(f"{FAITH_TITLES.get(unit, unit)}\n{title}", fontsize=8)
        ax.set_xlabel("predicted change of B (attribution)")
        ax.set_ylabel("measured change of B (ablation)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        if len(got):
            ax.legend(fontsize=6, loc="best")
    _save(fig, path)


def make_plots(table: pd.DataFrame, contexts: Sequence[str], heatmaps: Sequence[tuple[str, str, str | Path]],
               levels: str, dose: str | None) -> None:
    """Every transfer figure; ``heatmaps`` lists (kind, setting, path) of the heatmaps to draw;
    ``dose`` is None where the config has one dose per kind (no dose-response to draw)."""
    for kind, setting, path in heatmaps:
        heatmap(table, kind, setting, contexts, path)
    reduction_by_level(table, levels)
    if dose is not None:
        dose_response(table, dose)


def side_effects_plot(table: pd.DataFrame, transfer: pd.DataFrame, path: str | Path) -> None:
    """What a mask costs beside what it removes.

    Left: per task metric, the paired change (pruned - unpruned, 95% CI over item
    clusters) of each mask and of its matched random control; rates and accuracies (top)
    and log-likelihoods in nats (bottom) on their own axes. Right: per mask, the change of
    each higher-is-better metric against the audit's bias reduction in the mask's own
    context(s) (transfer rows at the lowest transfer level, name-bootstrap CIs), where
    that context has a bias to reduce. Without such a point there is no right panel and
    the figure's title says why.
    """
    real = [m for m in dict.fromkeys(table["mask"]) if not (table.loc[table["mask"] == m, "control_of"] != "").any()]
    metrics = list(dict.fromkeys(zip(table["task"], table["metric"])))
    colors = dict(zip(real, sns.color_palette("tab10", max(1, len(real)))))
    points = _cost_points(table, transfer, real, metrics)
    groups = [("rates and accuracies", [m for m in metrics if "loglik" not in m[1]]),
              ("log-likelihoods (nats)", [m for m in metrics if "loglik" in m[1]])]
    groups = [(name, ms) for name, ms in groups if ms] or [("", [])]
    heights = [max(1, len(ms)) for _, ms in groups]
    fig = plt.figure(figsize=(12 if points else 7, 1.8 + 0.9 * len(metrics) * max(1, len(real)) ** 0.5))
    grid = fig.add_gridspec(len(groups), 2 if points else 1, height_ratios=heights)
    step = 0.8 / max(1, 2 * len(real))
    for g, (group, group_metrics) in enumerate(groups):
        left = fig.add_subplot(grid[g, 0])
        for i, (task, metric) in enumerate(group_metrics):
            rows = table[(table["task"] == task) & (table["metric"] == metric)]
            for j, mask in enumerate(real):
                for k, (sel, marker, color) in enumerate([(rows["mask"] == mask, "o", colors[mask]),
                                                          (rows["control_of"] == mask, "s", "grey")]):
                    hit = rows[sel]
                    if hit.empty:
                        continue
                    r = hit.iloc[0]
                    y = -i + 0.4 - step * (2 * j + k + 0.5)
                    left.plot([r["difference_ci_low"], r["difference_ci_high"]], [y, y], color=color, lw=2)
                    label = (mask if k == 0 else "matched random control") if i == 0 and (k == 0 or j == 0) else None
                    left.plot([r["difference"]], [y], marker, color=color, label=label)
        left.set_yticks([-i for i in range(len(group_metrics))], [f"{t}\n{m}" for t, m in group_metrics], fontsize=8)
        left.axvline(0, color="grey", lw=0.8)
        left.set_title(f"Side effects on lm-eval tasks: {group}" if group else "Side effects on lm-eval tasks",
                       fontsize=9)
        if g == len(groups) - 1:
            left.set_xlabel("pruned - unpruned (95% CI, items resampled by cluster)")
        if g == 0 and left.get_legend_handles_labels()[0]:
            left.legend(fontsize=7, loc="best")
    if points:
        right = fig.add_subplot(grid[:, 1])
        for p in points:
            # a ratio's estimate may lie outside its percentile CI: the bar then starts at the point
            right.errorbar(p["x"], p["y"], xerr=[[max(p["x"] - p["x_low"], 0)], [max(p["x_high"] - p["x"], 0)]],
                           yerr=[[max(p["y"] - p["y_low"], 0)], [max(p["y_high"] - p["y"], 0)]],
                           fmt=p["marker"], color=colors[p["mask"]], ms=6, capsize=2, label=p["label"])
        right.axhline(0, color="grey", lw=0.8)
        right.axvline(0, color="grey", lw=0.8)
        right.set_xlabel("bias reduction in the mask's own context (95% name-bootstrap CI)")
        right.set_ylabel("change of the task metric (higher is better)")
        right.set_title("Bias removed against capability kept", fontsize=9)
        right.legend(fontsize=6, loc="best")
    else:
        fig.suptitle(_no_cost_points(table, transfer, real), fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _no_cost_points(table: pd.DataFrame, transfer: pd.DataFrame, real: Sequence[str]) -> str:
    """Why there is nothing to set a reduction against a cost, in words (the figure's title)."""
    if not table["higher_is_better"].astype(bool).any():
        return "No task metric is higher-is-better: no capability change to set against a bias reduction"
    def has_rows(mask: str) -> bool:
        kind, setting, source = mask.split("/")
        return bool(((transfer["kind"] == kind) & (transfer["setting"] == setting) & (transfer["source"] == source)).any())

    if not any(has_rows(m) for m in real):
        return "No transfer row for these masks: no bias reduction to set against what they cost"
    return ("No mask's own context has an established bias (baseline CI covers 0):\n"
            "no reduction to set against what the masks cost")


def _cost_points(table: pd.DataFrame, transfer: pd.DataFrame, real: Sequence[str],
                 metrics: Sequence[tuple[str, str]]) -> list[dict]:
    """(bias reduction at home, change of a higher-is-better task metric) per real mask,
    where the mask's own context has a bias to reduce (a finite ``bias_reduction``)."""
    out = []
    for mask in real:
        kind, setting, source = mask.split("/")
        rows = transfer[(transfer["kind"] == kind) & (transfer["setting"] == setting) & (transfer["source"] == source)
                        & (transfer["method"] == kind)]
        if rows.empty:
            continue
        rows = rows[rows["level_number"] == rows["level_number"].min()]
        for (task, metric), marker in zip(metrics, "o^sDvP*X"):
            se = table[(table["mask"] == mask) & (table["task"] == task) & (table["metric"] == metric)]
            if se.empty or not bool(se["higher_is_better"].iloc[0]):
                continue
            s = se.iloc[0]
            out += [{"mask": mask, "marker": marker, "label": f"{mask}\n{task} {metric}",
                     "x": t["bias_reduction"], "x_low": t["bias_reduction_ci_low"], "x_high": t["bias_reduction_ci_high"],
                     "y": s["difference"], "y_low": s["difference_ci_low"], "y_high": s["difference_ci_high"]}
                    for _, t in rows.iterrows() if np.isfinite(float(t["bias_reduction"]))]
    return out


def pruned_neurons_plot(table: pd.DataFrame, path: str | Path) -> None:
    """Where each neuron setting prunes: per setting, the pruned share of each layer's
    linear weights (left) and of each module type (right), one row per mask source."""
    settings = list(dict.fromkeys(table["setting"])) if len(table) else []
    n_sources = max(2, table["source"].nunique() if len(table) else 2)
    # each row of panels tall enough for its sources and the module names below it
    fig, axes = plt.subplots(max(1, len(settings)), 2, figsize=(13, (1.6 + 0.4 * n_sources) * max(1, len(settings))),
                             squeeze=False)
    if not settings:
        axes[0, 0].text(0.5, 0.5, "no neuron masks", ha="center", transform=axes[0, 0].transAxes)
    for row, setting in enumerate(settings):
        sub = table[table["setting"] == setting]
        sources = list(dict.fromkeys(sub["source"]))
        for col, by in [(0, "layer"), (1, "module")]:
            agg = sub.groupby(["source", by])[["pruned", "total"]].sum()
            grid = (100 * agg["pruned"] / agg["total"]).unstack(by).reindex(index=sources)
            if by == "module":
                grid = grid[[m for m in MODULE_ORDER if m in grid.columns]]
            sns.heatmap(grid, ax=axes[row, col], cmap="Reds", vmin=0, cbar_kws={"label": "% pruned"},
                        annot=grid.shape[1] <= 8, fmt=".2f")
            axes[row, col].tick_params(axis="x", labelrotation=0 if by == "layer" else 30)
            axes[row, col].set_title(f"neurons {setting}: % of the linear weights pruned, by {by}", fontsize=9)
            axes[row, col].set_ylabel("mask source" if col == 0 else "")
            if col == 1:  # the same sources as the left panel: their labels would run into its colour bar
                axes[row, col].set_yticklabels([])
    fig.tight_layout()
    _save(fig, path)


MODULE_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def pruned_heads_plot(heads: Mapping[str, Sequence[np.ndarray]], path: str | Path) -> None:
    """Which heads each head setting removes: per setting, the share of its mask sources
    that remove each head, on a layer x head grid."""
    settings = list(heads)
    fig, axes = plt.subplots(1, max(1, len(settings)), figsize=(1 + 5 * max(1, len(settings)), 5), squeeze=False)
    if not settings:
        axes[0, 0].text(0.5, 0.5, "no head masks", ha="center", transform=axes[0, 0].transAxes)
    for i, setting in enumerate(settings):
        share = np.mean(np.stack([np.asarray(h, float) for h in heads[setting]]), axis=0)
        sns.heatmap(share, ax=axes[0, i], cmap="Reds", vmin=0, vmax=1, cbar_kws={"label": "share of sources"})
        axes[0, i].set_title(f"heads {setting}: removed in {len(heads[setting])} source mask(s)", fontsize=9)
        axes[0, i].set_xlabel("head")
        axes[0, i].set_ylabel("layer")
    _save(fig, path)
