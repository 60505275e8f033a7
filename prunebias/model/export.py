"""Export a pruned model: the weights with one mask applied, as a Hugging Face directory
with a model card that says what was pruned, how it was learned and what it did.

The card's numbers come from ``results/tables/{model}/transfer.csv`` (the mask's rows: one per
evaluation target), each with its 95% CI, so a user who takes the model away takes its
evidence with it. Loading needs nothing from this package:
``AutoModelForCausalLM.from_pretrained(path)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from prunebias.stats.inference import wilson_interval
from prunebias.methods.masks import Mask
from prunebias.model.pruning import pruned

CARD_FILE = "README.md"


def _ci(row: Mapping[str, Any], col: str, digits: int = 2) -> str:
    """``value [low, high]`` of ``col`` and its ``_ci_low`` / ``_ci_high`` columns ("-" if missing)."""
    v = row.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if lo is None or hi is None or any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _pct(v: Any, n: int) -> str:
    """A rate with its Wilson 95% CI over ``n`` names (conservative for answers clustered in names)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    lo, hi = wilson_interval(float(v), n)
    return f"{100 * v:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def model_card(identity: Mapping[str, Any], mask_id: str, mask: Mask, rows: pd.DataFrame, ablation: str,
               learn_names: int | None) -> str:
    """The model card (Markdown with Hugging Face front matter) of the model pruned by
    ``mask`` (``mask_id``: kind/setting/source); ``rows``: its rows of transfer.csv."""
    kind, setting, source = mask_id.split("/")
    meta = mask.meta
    n, total = int(meta.get("n_pruned", 0)), int(meta.get("n_total", 0))
    scoring = rows["scoring"].iloc[0] if len(rows) and "scoring" in rows else meta.get("scoring", "")
    effect = rows["effect"].iloc[0] if len(rows) and "effect" in rows else "effect"
    unit = "heads" if kind == "heads" else "weights"
    if kind == "heads":
        how = (f"the {n} of {total} attention heads of this mask are removed by zeroing their "
               f"{'q_proj rows (the head attends uniformly)' if ablation == 'q_rows' else 'o_proj input columns'}")
    elif kind == "directions":
        m = meta.get("method", {})
        how = (f"one race direction (read after decoder layer {m.get('layer')} at the {m.get('position')} position) "
               "is projected out of every matrix that writes to the residual stream (the token embeddings and each "
               "layer's o_proj and down_proj; the output head is untied and keeps its weights), so no layer "
               "can write along it")
    else:
        how = f"{n:,} of {total:,} decoder linear weights ({100 * n / max(total, 1):.2f}%) are zero"
    direction = kind == "directions"
    size = ("- edited every residual writer along one direction; no weight is zeroed." if direction
            else f"- pruned {n:,} {unit} of {total:,}.")
    edited = "edited" if direction else "pruned"
    null = ("random directions of the same norm" if direction else "matched random masks of the same size")
    lines = [
        "---",
        *([f"base_model: {identity['source']}"] if identity.get("source_kind") == "hub" else []),
        "tags: [pruning, bias, prunebias]",
        "---",
        "",
        f"# {identity.get('name', 'model')} {edited} by `{mask_id}`",
        "",
        f"Written by the prunebias workflow: the model `{identity.get('source', '')}` "
        f"({identity.get('architecture', '')}, {identity.get('n_params', 0):,} parameters) with one mask applied; "
        f"{how}. Nothing else differs from the source model.",
        "",
        "## The mask",
        "",
        f"- kind `{kind}`, setting `{setting}`, scoring `{scoring}`; learned on `{source}` "
        f"({'its learning half of the names, ' + str(learn_names) + ' names' if learn_names else 'every name'}).",
        size,
        "- The setting's name says how it was chosen (see the workflow's docs/localization.md, \"Localizing bias\", "
        "\"Race directions\" and \"Gradient attribution\").",
        "",
        "## What it did (held-out names; 95% name-bootstrap CIs)",
        "",
        f"Effects are White - Black on the workflow's primary scale (`{effect}`), paired against the unpruned model "
        "on the same prompts and seeds; the change is toward 0 along the target's baseline bias (signed where it "
        f"has none); *real - random* compares with {null}. "
        "Anomaly rates (answers that are not a usable number) carry Wilson 95% CIs over the held-out names; "
        "perplexity is on the workflow's fixed neutral text (no sampling error).",
        "",
        f"| target | level | effect unpruned | effect {edited} | change toward 0 | real - random | "
        f"anomalies unpruned / {edited} | perplexity unpruned / {edited} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.to_dict(orient="records"):
        change = _ci(r, "delta_toward_zero") if r.get("bias_to_remove", True) else "signed " + _ci(r, "delta")
        lines.append(f"| {r['target']} | {r['level']} | {_ci(r, 'effect_ref')} | {_ci(r, 'effect_pruned')} | "
                     f"{change} | {_ci(r, 'delta_vs_random')} | "
                     f"{_pct(r.get('anomaly_rate_ref'), int(r['names_eval']))} / "
                     f"{_pct(r.get('anomaly_rate_pruned'), int(r['names_eval']))} | "
                     f"{r.get('perplexity_ref', float('nan')):.1f} / {r.get('perplexity_pruned', float('nan')):.1f} |")
    if not len(rows):
        lines.append("| (this mask has no evaluation rows) | | | | | | | |")
    lines += ["", "## Load", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
              "model = AutoModelForCausalLM.from_pretrained(PATH)", "tok = AutoTokenizer.from_pretrained(PATH)",
              "```", ""]
    return "\n".join(lines)


def mask_rows(transfer: pd.DataFrame, kind: str, setting: str, source: str) -> pd.DataFrame:
    """The mask's rows of transfer.csv, one per target."""
    sel = (transfer["kind"] == kind) & (transfer["setting"] == setting) & (transfer["source"] == source)
    return transfer[sel].reset_index(drop=True)


def export_pruned(model: Any, tok: Any, mask: Mask, ablation: str, out_dir: str | Path, card: str) -> int:
    """Save ``model`` with ``mask`` applied (safetensors) and its tokenizer and card into
    ``out_dir``; the model in memory is restored (a direction leaves the output head untied,
    its config saying so, so that the export reloads as saved). Returns the number of zeroed
    entries (of a direction: the matrices edited)."""
    out = Path(out_dir)
    with pruned(model, mask, ablation) as n:
        model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / CARD_FILE).write_text(card)
    return n
