"""The headline table: the few numbers a reader looks for first, each with its CI, taken
from the workflow's own tables (pure; no new inference).

Sections: ``baseline`` (the bias per context), ``best mask`` (per kind and scoring, the
mask with the largest same-context reduction of |bias|: selected after the fact, so its
CI is not adjusted for the selection, and the note says so), ``side effect`` (each
configured mask's paired change on each lm-eval task metric, beside its random control),
``ground truth`` (a planted model only: each real mask on each target, judged against
where the bias was planted: removed where it acts, nothing where it does not),
``provenance`` (what the figures depend on beyond the config: weights, dtype, versions,
CPU, commit, date; ``prunebias.workflow.provenance``).
"""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from prunebias.stats.transfer import MOVED_AS_CONTROLS, MOVED_BEYOND_CONTROLS, UNCHANGED, containment

COLUMNS = ["section", "item", "measure", "estimate", "ci_low", "ci_high", "n", "note"]


def _num(x: object) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


def _ci(row: pd.Series, col: str) -> str:
    if pd.isna(row.get(col)):
        return "n/a"
    return f"{_num(row[col]):.2f} [{_num(row.get(f'{col}_ci_low')):.2f}, {_num(row.get(f'{col}_ci_high')):.2f}]"


def baseline_rows(baseline: pd.DataFrame, effect: str) -> list[dict]:
    return [{"section": "baseline", "item": r["context"], "measure": f"{effect}, White - Black",
             "estimate": r[effect], "ci_low": r[f"{effect}_ci_low"], "ci_high": r[f"{effect}_ci_high"],
             "n": int(r["names_white"] + r["names_black"]),
             "note": f"names; p = {r['p_perm']:.3g} (name permutation); detectable with 80% power: {r['mde']:.2f}"}
            for _, r in baseline.iterrows()]


def best_mask_rows(transfer: pd.DataFrame) -> list[dict]:
    """Per kind and scoring, the mask with the largest same-context change of the bias
    toward 0, among the contexts whose baseline bias is established (elsewhere there is no
    bias to remove: one row says so)."""
    same = transfer[transfer["level"] == "same_context"].dropna(subset=["delta_abs"])
    rows = []
    for (kind, scoring), part in same.groupby(["kind", "scoring"], sort=True):
        with_bias = (part[part["bias_to_remove"].fillna(True).astype(bool)] if "bias_to_remove" in part.columns
                     else part)
        if with_bias.empty:
            rows.append({"section": "best mask", "item": f"{kind} ({scoring})", "measure": "no bias to remove",
                         "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": None,
                         "note": f"no context of its {len(part)} same-context masks has an established baseline bias "
                                 "(its CI covers 0)"})
            continue
        part = with_bias
        r = part.loc[part["delta_toward_zero"].idxmin()]
        rows.append({"section": "best mask", "item": f"{kind}/{r['setting']}/{r['source']}",
                     "measure": f"change of {r['effect']} toward 0 in its own context (pruned - unpruned)",
                     "estimate": r["delta_toward_zero"], "ci_low": r["delta_toward_zero_ci_low"],
                     "ci_high": r["delta_toward_zero_ci_high"],
                     "n": int(r["names_eval"]) if pd.notna(r.get("names_eval")) else None,
                     "note": (f"{scoring}; the largest of {len(part)} same-context reductions, selected after the "
                              f"fact (CI not adjusted); pruned {_ci(r, 'effect_pruned')}; "
                              f"real - random {_ci(r, 'delta_vs_random')}; "
                              f"bias reduction {_ci(r, 'bias_reduction')}; "
                              f"{'underpowered' if bool(r.get('underpowered')) else 'powered'}"
                              + (f"; it breaks the model (perplexity {r['perplexity_pruned']:.1f} against "
                                 f"{r['perplexity_ref']:.1f} unpruned): the change measures damage"
                                 if bool(r.get("breaks_model", False)) else ""))})
    return rows


def side_effect_rows(side: pd.DataFrame) -> list[dict]:
    side = side.fillna({"control_of": ""})
    rows = []
    for _, r in side[side["control_of"] == ""].iterrows():
        ctrl = side[(side["control_of"] == r["mask"]) & (side["task"] == r["task"]) & (side["metric"] == r["metric"])]
        note = f"unpruned {r['unpruned']:.3f}"
        if len(ctrl):
            c = ctrl.iloc[0]
            note += (f"; random control {c['difference']:.3f} "
                     f"[{c['difference_ci_low']:.3f}, {c['difference_ci_high']:.3f}]")
        rows.append({"section": "side effect", "item": r["mask"], "measure": f"{r['task']} {r['metric']} change",
                     "estimate": r["difference"], "ci_low": r["difference_ci_low"], "ci_high": r["difference_ci_high"],
                     "n": int(r["n_items"]), "note": note + " (items)"})
    return rows


def _verdict(lo: float, hi: float, below: str, above: str, covers: str) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no CI"
    return below if hi < 0 else above if lo > 0 else covers


def ground_truth_rows(transfer: pd.DataFrame, recall: pd.DataFrame, record: Mapping[str, object]) -> list[dict]:
    """A planted model's masks judged against its ground truth (``record``: plant_model's
    planted_bias.json). Where the plant acts, the paired change of the effect toward 0
    should be below 0 (removed); where it does not, the mask is contained unless it moved the
    effect beyond its matched random controls (``containment``). Every verdict is read off
    the CIs."""
    scope, contexts = str(record.get("scope", "general")), list(record.get("contexts") or [])
    rec = recall.set_index(["setting", "source"]) if len(recall) else None
    rows = []
    for _, r in transfer.iterrows():
        acts = scope == "general" or r["target"] in contexts
        item = f"{r['kind']}/{r['setting']}/{r['source']} -> {r['target']}"
        extra = f"real - random {_ci(r, 'delta_vs_random')}"
        if rec is not None and (r["setting"], r["source"]) in rec.index:
            x = rec.loc[(r["setting"], r["source"])]
            if r["kind"] == "directions":  # no weight is pruned: only the write's share along it
                extra += f"; share of the planted write along the direction {_num(x['recall_down_mass']):.2f}"
            else:
                extra += (f"; recall of the planted weights {_num(x['recall_planted']):.2f}, of their write's "
                          f"mass {_num(x.get('recall_down_mass', math.nan)):.2f} "
                          f"(prunes {_num(x['pruned_fraction']):.3f} of all)")
        if acts:
            measure, est = "planted bias: change toward 0 (pruned - unpruned)", "delta_toward_zero"
            verdict = _verdict(_num(r["delta_toward_zero_ci_low"]), _num(r["delta_toward_zero_ci_high"]), "removed",
                               "increased", "not shown to be removed (CI covers 0)")
            extra = f"pruned {_ci(r, 'effect_pruned')}; " + extra
            if not bool(r.get("bias_to_remove", True)):
                verdict = "the plant was not detected here (baseline CI covers 0): nothing to judge"
        elif bool(r.get("bias_to_remove", False)):  # the unpruned model's own bias, not the plant's
            measure, est = "nothing planted here, but a bias: change toward 0 (pruned - unpruned)", "delta_toward_zero"
            verdict = "nothing planted here, yet the baseline shows a bias: " + _verdict(
                _num(r["delta_toward_zero_ci_low"]), _num(r["delta_toward_zero_ci_high"]), "removed", "increased",
                "not shown to be removed (CI covers 0)")
            extra = f"pruned {_ci(r, 'effect_pruned')}; " + extra
        else:  # contained unless the edit moved the effect beyond its random controls
            measure, est = "nothing planted here: change of the effect (pruned - unpruned)", "delta"
            state = containment(r)
            verdict = {UNCHANGED: "contained: no change, as planted",
                       MOVED_AS_CONTROLS: f"contained: {state}",
                       MOVED_BEYOND_CONTROLS: f"not contained: {state}"}.get(state, state)
            extra = f"pruned {_ci(r, 'effect_pruned')}; " + extra
        rows.append({"section": "ground truth", "item": item, "measure": measure, "estimate": r.get(est),
                     "ci_low": r.get(f"{est}_ci_low"), "ci_high": r.get(f"{est}_ci_high"),
                     "n": int(r["names_eval"]) if pd.notna(r.get("names_eval")) else None,
                     "note": f"{verdict} ({scope} plant); unpruned {_ci(r, 'effect_ref')}; {extra}"})
    return rows


def provenance_rows(record: Mapping[str, object]) -> list[dict]:
    """One row per provenance entry, its value in the note (no estimate: nothing inferred)."""
    return [{"section": "provenance", "item": str(k), "measure": "", "estimate": math.nan, "ci_low": math.nan,
             "ci_high": math.nan, "n": None, "note": str(v)} for k, v in record.items()]


def headline(baseline: pd.DataFrame, transfer: pd.DataFrame, effect: str, side: pd.DataFrame | None = None,
             truth: tuple[pd.DataFrame, Mapping[str, object]] | None = None,
             provenance: Mapping[str, object] | None = None) -> pd.DataFrame:
    """The headline rows; ``truth`` (a planted model): its recall table and plant record;
    ``provenance``: the model's record with the headline's date."""
    rows = baseline_rows(baseline, effect) + best_mask_rows(transfer)
    if side is not None:
        rows += side_effect_rows(side)
    if truth is not None:
        rows += ground_truth_rows(transfer, *truth)
    if provenance is not None:
        rows += provenance_rows(provenance)
    return pd.DataFrame(rows, columns=COLUMNS)


def results_record(model: str, table: pd.DataFrame, provenance: Mapping[str, object],
                   config: Mapping[str, object]) -> dict:
    """One model's results for machines, in the spirit of lm-evaluation-harness's results
    file: the config the run used, the provenance (versions, commit, date, dtype, device,
    the CPU flags that chose it, the model's sha256) and every headline number with its CI
    and n (NaN as null: JSON has no NaN)."""
    def clean(v: object) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if hasattr(v, "item"):  # numpy scalars
            return clean(v.item())
        return v

    numbers = [{k: clean(v) for k, v in r.items()} for r in table[table["section"] != "provenance"]
               .to_dict("records")]
    return {"format": "prunebias-results/1", "model": model, "provenance": dict(provenance), "config": dict(config),
            "results": numbers}


def headline_html(table: pd.DataFrame, title: str = "Headline") -> str:
    """The headline table as a standalone HTML page (the report shows it as a table, not
    as a download): estimates with their CIs in one column, grouped by section."""
    def fmt(r: pd.Series) -> str:
        if pd.isna(r["estimate"]):
            return "n/a"
        return f"{r['estimate']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"

    shown = pd.DataFrame({"section": table["section"], "item": table["item"], "measure": table["measure"],
                          "estimate [95% CI]": table.apply(fmt, axis=1) if len(table) else [],
                          "n": table["n"].map(lambda v: "" if pd.isna(v) else str(int(v))), "note": table["note"]})
    style = ("<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}"
             "th{background:#eee}</style>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{style}</head><body>"
            f"<h2>{title}</h2>{shown.to_html(index=False, escape=True, border=0)}</body></html>")


def compare_models(headlines: Mapping[str, pd.DataFrame], sources: Mapping[str, str]) -> pd.DataFrame:
    """The cross-model table: every model's headline rows (each estimate with its own CI and
    n), led by the model's name and source. Models are compared side by side; a difference
    between two models is not tested here (their CIs are each model's own)."""
    frames = [table.assign(model=model, model_source=sources.get(model, "")) for model, table in headlines.items()]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return out[["model", "model_source", *COLUMNS]]
