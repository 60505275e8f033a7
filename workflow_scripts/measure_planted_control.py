"""Rule measure_planted_control (the positive control): plant a known bias into the
configured model, then localize, prune and evaluate it with the workflow's own functions
-> ``results/tables/{model}/planted_control*.csv``.

One job, one model load, the stages in order (each the same library function the
workflow's own rules call):

1. plant (``planting.plant_bias``): a few MLP neurons of one layer read the race of the
   first name and move the answer's magnitude; calibrated on all names with the
   unplanted model's own baseline answers in every selected context (the plant is the
   ground truth; the *methods* below learn on the learning half only);
2. baseline answers of the planted model (baseline seeds) and their bias, per context;
3. activation and head-attention cache over the learning names' prompts + answers;
4. neuron and one-shot head masks with the configured settings, per context, and their
   matched random controls; with gradient attribution configured, its masks too (the grid
   objective over the learning names' prompts: ``grad_`` single weights at the Wanda
   budget's count per matrix, controls from that budget's band; ``gradmlp_`` whole MLP
   neurons within its MLP count, random whole neurons as controls; ``grad_k`` / ``patch_k``
   heads by gate attribution / attribution patching);
5. the unpruned planted model (reference) and every mask answer the held-out names'
   evaluation prompts with the evaluation seeds; paired statistics as in transfer.csv.

Outputs: ``planted_control.csv`` (one row per mask and target: recall of the planted
weights and the paired statistics), ``planted_baseline.csv`` (the planted model's bias),
``results/controls/{model}/planted_bias.json`` (what was planted where) and a figure.
"""

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prunebias.activations import add_sumsq, cache_batches
from prunebias.answers import PROMPT_COLUMNS, generate_answers
from prunebias.architecture import check_architecture
from prunebias.attribution import (context_summary, grad_masks, needs_patching, protect_scores, source_attribution,
                                   text_importance)
from prunebias.contexts import load_yaml
from prunebias.controls import matched_head_control, neuron_controls, unit_controls
from prunebias.evaluation import eval_prompts, evaluate
from prunebias.files import read_parquet, write_csv, write_json
from prunebias.heads import race_means, select_heads
from prunebias.logs import progress, setup_logging
from prunebias.masks import Mask
from prunebias.metrics import summarize
from prunebias.modeling import load_model, read_identity
from prunebias.names import load_names
from prunebias.neurons import neuron_masks
from prunebias.objective import answer_grid
from prunebias.plan import Source, transfer_level
from prunebias.planting import RECALL_COLUMNS, anchor_prompts, plant_bias, recall_columns
from prunebias.plots import planted_control_plot
from prunebias.sampling import Sampling
from prunebias.seeds import derive_seed
from prunebias.transfer import transfer_row


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.measure_planted_control")
    p = smk.params
    cfg = p.planted
    t0 = time.perf_counter()
    identity = read_identity(smk.input.model)
    model, tok = load_model(smk.input.model, p.dtype, p.device, smk.threads, attn_implementation="eager")
    geo = check_architecture(model)
    learn, holdout = set(p.halves["learn"]), list(p.halves["holdout"])
    contexts = list(cfg["contexts"])
    prompts = {Path(f).stem: read_parquet(f, PROMPT_COLUMNS) for f in smk.input.prompts}
    unplanted = pd.concat([read_parquet(f, PROMPT_COLUMNS + ["response"]) for f in smk.input.baseline],
                          ignore_index=True)

    # 1. plant, calibrated on every name over every selected context's unplanted answers:
    #    the plant is the ground truth (a bias of the model for all names), not a method
    #    under test; a reader fitted on the learning names only carried a third of the
    #    effect to the held-out names
    calibration = unplanted.reset_index(drop=True)
    names = (pd.DataFrame(p.names) if p.names is not None  # a prompt table's names
             else load_names(smk.input.names, use_surnames=p.use_surnames))
    value_prompts = anchor_prompts(load_yaml(Path(smk.input.scenarios)), names)
    planted = plant_bias(model, tok, calibration, cfg["layer"], cfg["n_neurons"], cfg["strength"], cfg["seed"],
                         value_prompts=value_prompts, sign=cfg["sign"])
    record = {**planted.to_json(), "model": identity["name"], "learn_names": sorted(learn),
              "holdout_names": sorted(holdout)}
    write_json(record, smk.output.record)
    log.info("planted into layer %d neurons %s: %s", planted.layer, planted.neurons,
             {k: round(v, 3) for k, v in planted.stats.items() if isinstance(v, float)})

    settings = Sampling(**p.sampling)
    specs = p.contexts
    # 2. the planted model's own baseline answers (baseline seeds) and their bias
    base = {c: generate_answers(model, tok, prompts[c][prompts[c]["sample"] < cfg["samples_per_name"]]
                                .reset_index(drop=True), settings, "baseline", specs[c]) for c in contexts}
    winsor = tuple(p.winsorize) if p.winsorize else None
    base_table = summarize(pd.concat(base.values(), ignore_index=True), ("context",), winsor, p.n_boot,
                           p.seed, p.effect, p.n_perm)
    write_csv(base_table, smk.output.baseline)

    # 3. cache over the learning names; 4. masks and controls per context
    text = Path(smk.input.text).read_text()
    acfg = p.attribution
    importance = None  # SNIP importance on the perplexity text, computed once when needed
    summaries: dict[str, dict] = {}
    masks: list[tuple[str, Any, str, Mask, list[Mask]]] = []  # (kind, setting, source, mask, controls)
    for c in contexts:
        rows = base[c][base[c]["name"].isin(learn)].reset_index(drop=True)
        rows["row"] = np.arange(len(rows))
        sums: dict[str, dict] = {"white": {}, "black": {}}
        heads = []
        with progress(total=len(rows), desc=f"caching {c}", unit="prompt") as bar:
            for act, head in cache_batches(model, tok, rows, p.batch_size, query_positions=p.head_queries):
                add_sumsq(sums, act.to_pandas())
                heads.append(head.to_pandas())
                bar.update(head.num_rows)
        att = race_means(pd.concat(heads, ignore_index=True), geo.n_layers, geo.n_heads, f"planted {c}")
        neuron_arrays = list(zip(p.neuron_settings, neuron_masks(model, sums, p.neuron_settings)))
        head_masks = []
        for setting in p.head_settings:
            chosen, _ = select_heads(att["white"], att["black"], setting)
            head_masks.append((setting, chosen.numpy()))
        if p.grad_settings:  # gradient attribution over the learning names' prompts
            learn_rows = rows[rows["sample"] < acfg["max_samples_per_name"]].reset_index(drop=True)
            grid = answer_grid(*specs[c]["range"], acfg["grid_size"])
            patching = needs_patching(p.grad_settings)
            scores, info = source_attribution(model, tok, {c: (learn_rows, grid)}, acfg["batch_size"],
                                              acfg["log_value"], p.ablation, acfg["integrated_steps"], patching)
            summaries[c] = context_summary(model, tok, learn_rows, grid, info[c], acfg, p.ablation, p.n_boot,
                                           p.seed, lambda msg, c=c: log.info("planted %s %s", c, msg),
                                           planted=[(planted.layer, n) for n in planted.neurons])
            if acfg["protect_text_percent"] > 0:  # SNIP set difference: spare what ordinary text needs
                if importance is None:
                    importance = text_importance(model, tok, text, p.max_tokens)
                scores = protect_scores(scores, importance, acfg["protect_text_percent"])
            budgets = {s.name: {k: int(a.sum()) for k, a in arrays.items()} for s, arrays in neuron_arrays}
            for setting, (kind, arrays) in zip(p.grad_settings, grad_masks(p.grad_settings, scores, budgets)):
                if kind == "heads":
                    head_masks.append((setting, arrays["heads"]))
                else:
                    neuron_arrays.append((setting, arrays))
        for setting, arrays in neuron_arrays:  # controls from the setting's Wanda band (a grad mask: its budget's)
            seeds = [derive_seed(p.seed, "planted-control", setting.name, c, d) for d in range(p.draws)]
            ctrls = (unit_controls(arrays, seeds) if getattr(setting, "whole", False)
                     else neuron_controls(model, arrays, sums, setting.band, seeds))
            meta = {"kind": "neurons", "n_pruned": sum(int(a.sum()) for a in arrays.values()),
                    "n_total": sum(a.size for a in arrays.values())}
            masks.append(("neurons", setting, c, Mask(meta, arrays), [Mask(meta, a) for a in ctrls]))
        for setting, h in head_masks:
            meta = {"kind": "heads", "n_pruned": int(h.sum()), "n_total": int(h.size)}
            ctrls = [Mask(meta, {"heads": matched_head_control(h, np.random.default_rng(
                derive_seed(p.seed, "planted-control", setting.name, c, d)))}) for d in range(p.draws)]
            masks.append(("heads", setting, c, Mask(meta, {"heads": h}), ctrls))

    # 5. reference and every mask on the held-out names' evaluation prompts
    targets = {c: eval_prompts(prompts[c], cfg["samples_per_name"], holdout) for c in contexts}
    ref_answers, ref_info = evaluate(model, tok, [None], p.ablation, targets, specs, settings, text, p.max_tokens)
    rows_out, ctrl_rows = [], []
    for kind, setting, source, mask, ctrls in masks:
        answers, infos = evaluate(model, tok, [mask, *ctrls], p.ablation, targets, specs, settings, text,
                                  p.max_tokens)
        info = {"reference": ref_info, "real": infos[:1], "control": infos[1:]}
        for target in contexts:
            both = answers[target].assign(ablation=p.ablation if kind == "heads" else "zero")
            real = both[both["draw"] == 0]
            controls = [g for d, g in both.groupby("draw", sort=True) if d > 0]
            level = transfer_level(Source("context", source), target, p.scenarios, {})
            row, crs = transfer_row(kind, setting.name, source, target, base[target], ref_answers[target], real,
                                    controls, info, level, winsor, p.effect, p.n_boot, p.seed,
                                    tuple(p.inlier_percentiles), {"scoring": setting.scoring, **setting.params()})
            rows_out.append({**row, **recall_columns(planted, kind, mask.arrays, model)})
            ctrl_rows.extend(crs)
        log.info("%s %s from %s: %s", kind, setting.name, source,
                 [(r["target"], round(r["delta_abs"], 3)) for r in rows_out[-len(contexts):]])
    table = pd.DataFrame(rows_out)
    lead = ["kind", "scoring", "setting", "source", "target", "level"] + RECALL_COLUMNS
    table = table[lead + [c for c in table.columns if c not in lead]]
    write_csv(table, smk.output.table)
    planted_control_plot(table, base_table, p.effect, smk.output.plot)
    if p.grad_settings:  # the attribution on the planted model, in the format of results/attribution/{model}/
        write_json({"source": "planted", "contexts": summaries, "log_value": acfg["log_value"],
                    "integrated_steps": acfg["integrated_steps"], "protect_text_percent": acfg["protect_text_percent"],
                    "prompts": int(sum(s["prompts"] for s in summaries.values()))}, smk.output.attribution)
    log.info("planted control done in %.0f s:\n%s", time.perf_counter() - t0,
             table[["kind", "setting", "source", "target", "recall_planted", "effect_ref", "effect_pruned",
                    "delta_abs", "delta_abs_ci_low", "delta_abs_ci_high", "delta_vs_random"]].to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
