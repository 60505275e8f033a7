"""The README's "what the default run finds" block, written from a finished run's tables.

Why generated: a figure in the README must be what a fresh clone of its commit prints.
Typed by hand, figures drift from the code that makes them (issue 23 found the README's
claim of removal on a run that no longer gave it). ``make run`` ends with ``--check``: it
renders the block from ``results/`` and says whether the README's block agrees.

    python -m prunebias.report.readme_figures --check   # exit 1 where the README disagrees
    python -m prunebias.report.readme_figures --write   # replace the block in README.md
    python -m prunebias.report.readme_figures --configfile config/compare.yaml --doc docs/comparison.md --write

The second form (``make compare``) renders every method family of a run (config/compare.yaml
on top of config/config.yaml, as Snakemake merges them) into docs/comparison.md, with a
summary per method computed from the same rows.

The block sits between ``BEGIN`` and ``END`` marker lines; everything else is untouched.
Rendering (``render_block``) is pure: data frames in, Markdown out.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path
from typing import Mapping

import pandas as pd
import yaml
from snakemake.utils import update_config

from prunebias.methods.registry import parsed
from prunebias.planted.plant_spec import plant_contexts
from prunebias.stats.transfer import (BROKEN_ANOMALY_RISE, BROKEN_PERPLEXITY_RATIO, NO_BIAS, NOT_ESTIMABLE, breaks_model,
                                      containment)

BEGIN = "<!-- default-run:begin -->"
END = "<!-- default-run:end -->"
WANDA = "wanda"
# the methods of the README block's table, in its order: scoring -> label
METHODS = {"wanda": "Wanda", "direction": "direction"}
# every family's scoring (transfer.csv) -> label, for the method comparison (make compare)
ALL_METHODS = {"wanda": "Wanda", "attention": "attention heads", "grad_mlp": "gradient MLP neurons",
               "grad": "gradient weights or heads", "patching": "patching heads", "direction": "direction"}
# what each scoring's matched random control is, in the table's legend
CONTROLS = {"wanda": "a Wanda mask: the same count per matrix", "attention": "heads: as many per layer",
            "grad_mlp": "whole MLP neurons: as many per layer", "grad": "the same count per matrix or layer",
            "patching": "heads: as many per layer", "direction": "a direction: random directions of its norm"}
# the masks whose recall of a plant (planted_recall.csv) the block lists: scoring -> label
RECALL = {"wanda": "Wanda mask", "grad_mlp": "gradient MLP-neuron mask", "direction": "race direction"}


def _ci(est: float, lo: float, hi: float) -> str:
    if not math.isfinite(est):
        return "n/a"
    return f"{est:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _provenance(headline: pd.DataFrame) -> dict[str, str]:
    rows = headline[headline["section"] == "provenance"]
    return dict(zip(rows["item"].astype(str), rows["note"].astype(str)))


def verdict(row: Mapping[str, object]) -> str:
    """What a row shows, read off its CIs: removal only where there is a bias to remove; an
    edit that breaks the model (``transfer.breaks_model``, the controls' criterion) says so,
    and by which measure (perplexity, or answers that are no usable number)."""
    return _verdict(row) + (f"; but the edit breaks the model ({_damage(row)})" if _broken(row) else "")


def _broken(row: Mapping[str, object]) -> bool:
    cols = ("perplexity_pruned", "anomaly_rate_pruned", "perplexity_ref", "anomaly_rate_ref")
    if not all(c in row for c in cols):
        return False
    return breaks_model(*(float(row[c]) for c in cols))  # type: ignore[arg-type]


def _damage(row: Mapping[str, object]) -> str:
    """The measures by which ``breaks_model`` judged the edit broken, in words."""
    ppl, ppl_ref = float(row["perplexity_pruned"]), float(row["perplexity_ref"])
    bad, bad_ref = float(row["anomaly_rate_pruned"]), float(row["anomaly_rate_ref"])
    out = []
    if breaks_model(ppl, bad_ref, ppl_ref, bad_ref):
        out.append(f"perplexity x{ppl / ppl_ref:.1f}")
    if breaks_model(ppl_ref, bad, ppl_ref, bad_ref):
        out.append(f"{bad:.0%} of answers unusable, unpruned {bad_ref:.0%}")
    return "; ".join(out)


def _verdict(row: Mapping[str, object]) -> str:
    estimate = "delta_toward_zero" if bool(row["bias_to_remove"]) else "delta"
    if not all(math.isfinite(float(row[f"{estimate}{end}"])) for end in ("_ci_low", "_ci_high")):
        return NOT_ESTIMABLE
    if not bool(row["bias_to_remove"]):
        return f"{NO_BIAS}; {containment(row)}"
    if float(row["delta_toward_zero_ci_high"]) < 0:
        return ("removed" if row["source"] == row["target"] else "transferred") + _beyond(row)
    return "not shown (CI covers 0)" if float(row["delta_toward_zero_ci_low"]) <= 0 else "bias grew"


def _beyond(row: Mapping[str, object]) -> str:
    """Is a removal the CI shows the edit's own? Against its matched random controls
    (``delta_vs_random``, toward 0): only where real - random also excludes 0. (Without a
    bias, ``containment`` asks the same of a move.)"""
    hi = float(row.get("delta_vs_random_ci_high", math.nan))  # type: ignore[arg-type]
    if not math.isfinite(hi):
        return ""
    return "" if hi < 0 else ", no more than its random control"


def render_block(tables: Mapping[str, Mapping[str, pd.DataFrame]], planted: Mapping[str, str],
                 methods: Mapping[str, str] = METHODS, command: str = "make run") -> str:
    """The block from each model's tables ({model: {"baseline", "transfer", "headline",
    "recall"?}}); ``planted``: {planted model: what was planted, in words}; ``methods`` the
    scorings shown ({scoring: label}, in table order); ``command`` the one that made the run.
    With more than two methods a summary per method follows the table."""
    models = list(tables)
    first = tables[models[0]]["headline"]
    prov = _provenance(first)
    contexts = list(tables[models[0]]["baseline"]["context"])
    lines = [f"Measured by `{command}` on a fresh clone of commit {prov.get('commit', 'unknown')[:7]} "
             f"({prov.get('date', 'unknown date')[:10]}), {prov.get('dtype', '?')} on {prov.get('device', '?')} "
             f"(AMX: {prov.get('cpu_amx', '?')}), torch {prov.get('torch', '?')}. One run of one seed: "
             "rates over seeds are below. 95% CIs resample names; n is names.", "",
             "**Baseline bias** (log_smd, White - Black; negative: Black-associated names get more):", "",
             "| model | " + " | ".join(contexts) + " |", "|---|" + "---|" * len(contexts)]
    for m in models:
        b = tables[m]["baseline"].set_index("context")
        cells = [f"{_ci(b.loc[c, 'log_smd'], b.loc[c, 'log_smd_ci_low'], b.loc[c, 'log_smd_ci_high'])}, "
                 f"n = {int(b.loc[c, 'names_white'])} + {int(b.loc[c, 'names_black'])}" for c in contexts]
        lines.append(f"| {m}{' (' + planted[m] + ')' if m in planted else ''} | " + " | ".join(cells) + " |")
    shown = [s for s in methods if any((tables[m]["transfer"]["scoring"] == s).any() for m in models)]
    if shown == [WANDA] or shown == [WANDA, "direction"]:
        title = " and ".join(["Wanda mask", "race direction"][: len(shown)])
    else:
        title = "Every method" if len(shown) > 2 else "Masks"
    lines += ["", f"**{title}** (paired change of log_smd on held-out names, edited - unpruned, toward 0 "
              "along the target's baseline bias where it has one, signed where it has none; real - random: "
              f"the same against matched random controls ({'; '.join(dict.fromkeys(CONTROLS[s] for s in shown))}); "
              "perplexity on the fixed neutral text, mean over the folds):", "",
              "| model | method | learned on -> evaluated on | change toward 0 | edited effect | real - random | "
              "perplexity: unpruned / edited / random | controls broken | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in models:
        t = tables[m]["transfer"]
        t = t[t["scoring"].isin(shown)]
        order = {c: {v: i for i, v in enumerate(dict.fromkeys(t[c]))} for c in ("source", "target")}
        t = t.assign(_s=t["source"].map(order["source"]), _t=t["target"].map(order["target"]),
                     _m=t["scoring"].map(shown.index)).sort_values(["_s", "_t", "_m"], kind="stable")
        for _, r in t.iterrows():
            change = (_ci(r["delta_toward_zero"], r["delta_toward_zero_ci_low"], r["delta_toward_zero_ci_high"])
                      if r["bias_to_remove"] else "signed: " + _ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"]))
            pruned = _ci(r["effect_pruned"], r["effect_pruned_ci_low"], r["effect_pruned_ci_high"])
            ppl = " / ".join(f"{float(r[c]):.1f}" for c in ("perplexity_ref", "perplexity_pruned", "perplexity_control"))
            lines.append(f"| {m} | {methods[r['scoring']]} | {r['source']} -> {r['target']} "
                         f"(n = {int(r['names_eval'])}) | {change} | {pruned} | "
                         f"{_ci(r['delta_vs_random'], r['delta_vs_random_ci_low'], r['delta_vs_random_ci_high'])} | "
                         f"{ppl} | {int(r['controls_broken'])} of {int(r['control_draws'])} | {verdict(r)} |")
    if len(shown) > 2:
        lines += summary(tables, shown, methods)
    recall = [(m, r) for m in models if "recall" in tables[m] for _, r in tables[m]["recall"].iterrows()
              if _recall_kind(r)[0] in shown]
    if recall:
        lines += ["", "**Recall of the planted weights** (share of the planted entries a Wanda mask prunes, "
                  "and of the planted down_proj columns' squared magnitude, which carries the write; "
                  "the mask prunes that share of all weights; a race direction: the share of that magnitude "
                  "along it, which its projection removes):", ""]
        lines += [(f"- {m}, {_recall_kind(r)[1]} learned on {r['source']}: {r['recall_planted']:.2f} of the "
                   f"entries, {r['recall_down_mass']:.2f} of the write's mass (prunes {r['pruned_fraction']:.4f})")
                  if r.get("kind", "neurons") == "neurons" else
                  f"- {m}, race direction learned on {r['source']}: {r['recall_down_mass']:.2f} of the write's mass"
                  for m, r in recall]
    return "\n".join(lines) + "\n"


def _recall_kind(row: Mapping[str, object]) -> tuple[str, str]:
    """(scoring, label) of a recall row: its setting parsed by the method registry (a row
    without a setting by its kind); ("", "") for a mask the block does not list."""
    setting = str(row.get("setting", "") or "")
    if not setting:
        scoring = "wanda" if row.get("kind", "neurons") == "neurons" else "direction"
        return scoring, RECALL[scoring]
    try:
        scoring = parsed(str(row["kind"]), setting)[1].scoring
    except ValueError:
        return "", ""
    return (scoring, RECALL[scoring]) if scoring in RECALL else ("", "")


def summary(tables: Mapping[str, Mapping[str, pd.DataFrame]], shown: list[str],
            methods: Mapping[str, str]) -> list[str]:
    """Per method, over every model's rows: how many rows with a bias to remove it removed
    (same context) or transferred (other context), in how many its real - random CI lies
    below 0, how many rows without a bias it moved, and its perplexity relative to the
    unpruned model (the range over rows). Counts of rows of one run, not rates over seeds."""
    t = pd.concat([tables[m]["transfer"].assign(model=m) for m in tables], ignore_index=True)
    out = ["", "**By method** (counts over the rows above, one run; a rate needs seeds: "
           f"benchmarks/method_seeds.py; an edit breaks the model where its perplexity rises over "
           f"x{BROKEN_PERPLEXITY_RATIO:g} or its share of unusable answers by "
           f"{100 * BROKEN_ANOMALY_RISE:.0f} percentage points or more, the controls' criterion):", "",
           "| method | removed at home | transferred | real - random below 0 (rows with a bias) | "
           "moved where there is no bias | perplexity edited / unpruned | unusable answers, edited - unpruned | "
           "edits that break the model |",
           "|---|---|---|---|---|---|---|---|"]
    for s in shown:
        r = t[t["scoring"] == s]
        bias = r[r["bias_to_remove"].astype(bool)]
        home, away = bias[bias["source"] == bias["target"]], bias[bias["source"] != bias["target"]]
        none = r[~r["bias_to_remove"].astype(bool)]
        ratio = r["perplexity_pruned"].astype(float) / r["perplexity_ref"].astype(float)
        rise = 100 * (r["anomaly_rate_pruned"].astype(float) - r["anomaly_rate_ref"].astype(float))
        broken = sum(_broken(row) for _, row in r.iterrows())
        out.append(f"| {methods[s]} | {_shown(home)} | {_shown(away)} | "
                   f"{int((bias['delta_vs_random_ci_high'] < 0).sum())} of {len(bias)} | "
                   f"{int(((none['delta_ci_low'] > 0) | (none['delta_ci_high'] < 0)).sum())} of {len(none)} | "
                   f"x{ratio.min():.2f}-{ratio.max():.2f} | {rise.min():+.0f} to {rise.max():+.0f} points | "
                   f"{broken} of {len(r)} |")
    return out


def _shown(rows: pd.DataFrame) -> str:
    """How many of ``rows`` (with a bias to remove) moved it toward 0 (CI below 0), and how
    many of those left the model intact (a removal by breaking the model is none)."""
    moved = rows[rows["delta_toward_zero_ci_high"].astype(float) < 0]
    intact = sum(not _broken(r) for _, r in moved.iterrows())
    return f"{len(moved)} of {len(rows)}" + (f" ({intact} with the model intact)" if intact < len(moved) else "")


def read_tables(results: Path, models: list[str]) -> dict[str, dict[str, pd.DataFrame]]:
    """Each model's tables of a finished run (``results/tables/{model}/``)."""
    out = {}
    for m in models:
        d = results / "tables" / m
        out[m] = {k: pd.read_csv(d / f"{k if k != 'baseline' else 'baseline_bias'}.csv")
                  for k in ("baseline", "transfer", "headline")}
        if (d / "planted_recall.csv").exists():
            rec = pd.read_csv(d / "planted_recall.csv")
            out[m]["recall"] = rec[[bool(_recall_kind(r)[0]) for _, r in rec.iterrows()]]
    return out


def splice(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f"README needs one {BEGIN} line before one {END} line")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def describe_plants(config: Mapping[str, object]) -> dict[str, str]:
    """{planted model: its scope in words} from a config's models."""
    out = {}
    for m in config.get("models") or []:  # type: ignore[union-attr]
        p = m.get("plant")
        if p:
            out[m["name"]] = ("general plant" if p.get("scope", "general") == "general"
                              else "context plant: " + ", ".join(plant_contexts(p, list(config.get("contexts") or []))))
    return out


def merged(base: dict, *updates: Mapping[str, object]) -> dict:
    """``base`` with ``updates`` merged in as Snakemake merges --configfile (its update_config)."""
    out = copy.deepcopy(base)
    for update in updates:
        update_config(out, update)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the README's default-run block (or another document's) from results/")
    ap.add_argument("--check", action="store_true", help="exit 1 if the document's block differs")
    ap.add_argument("--write", action="store_true", help="replace the document's block")
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--configfile", type=Path, action="append", default=[],
                    help="config files the run took on top of config/config.yaml (then every method is shown)")
    ap.add_argument("--doc", type=Path, default=Path("README.md"), help="the document (relative to --root)")
    args = ap.parse_args(argv)
    cfg = merged(yaml.safe_load((args.root / "config/config.yaml").read_text()),
                 *(yaml.safe_load((args.root / f).read_text()) or {} for f in args.configfile))
    models = [m["name"] for m in cfg["models"]]
    command = "make run" if not args.configfile else "make compare"
    block = render_block(read_tables(args.root / "results", models), describe_plants(cfg),
                         ALL_METHODS if args.configfile else METHODS, command)
    doc_path = args.root / args.doc
    doc = doc_path.read_text()
    new = splice(doc, block)
    if args.write:
        doc_path.write_text(new)
        print(f"wrote the {command} block of {doc_path}")
        return 0
    if new == doc:
        print(f"{args.doc}'s figures agree with results/")
        return 0
    fix = " ".join(["python -m prunebias.report.readme_figures", *(f"--configfile {f}" for f in args.configfile),
                    f"--doc {args.doc}", "--write"])
    print(f"{args.doc}'s figures differ from results/ ({fix} puts this run's in):\n" + block)
    return 1 if args.check else 0

if __name__ == "__main__":
    sys.exit(main())
