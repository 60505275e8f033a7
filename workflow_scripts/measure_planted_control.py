"""Positive control: plant a known bias into the configured model, then localize, prune and
evaluate it with the workflow's own functions -> ``results/tables/planted_control*.csv``.

One job, one model load, the stages in order (each the same library function the
workflow's own rules call):

1. plant (``planting.plant_bias``): a few MLP neurons of one layer read the race of the
   first name and move the answer's magnitude; calibrated on all names with the
   unplanted model's own baseline answers in every selected context (the plant is the
   ground truth; the *methods* below learn on the learning half only);
2. baseline answers of the planted model (baseline seeds) and their bias, per context;
3. activation and head-attention cache over the learning names' prompts + answers;
4. neuron and one-shot head masks with the configured settings, per context, and their
   matched random controls;
5. the unpruned planted model (reference) and every mask answer the held-out names'
   evaluation prompts with the evaluation seeds; paired statistics as in transfer.csv.

Outputs: ``planted_control.csv`` (one row per mask and target: recall of the planted
weights and the paired statistics), ``planted_baseline.csv`` (the planted model's bias),
``results/controls/planted_bias.json`` (what was planted where) and a figure.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

from typing import Any

import numpy as np
import pandas as pd

RECALL_COLUMNS = ["recall_planted", "recall_gate_proj", "recall_up_proj", "recall_down_proj", "recall_down_mass",
                  "recall_neurons"]


def recall_columns(planted: Any, kind: str, arrays: dict[str, np.ndarray], model: Any) -> dict[str, float]:
    """Share of the planted weights a neuron mask selects (NaN for head masks: the plant is in an MLP).

    ``recall_down_mass``: the selected share of the planted down_proj entries' squared
    magnitude (the large entries carry the write); ``recall_neurons``: planted neurons
    with at least half of their down_proj column selected.
    """
    if kind != "neurons":
        return {c: float("nan") for c in RECALL_COLUMNS}
    r = planted.recall(arrays, model)
    pre = f"layers.{planted.layer}"
    return {"recall_planted": r["all"], "recall_gate_proj": r[f"{pre}.gate_proj"],
            "recall_up_proj": r[f"{pre}.up_proj"], "recall_down_proj": r[f"{pre}.down_proj"],
            "recall_down_mass": r[f"{pre}.down_proj.mass"], "recall_neurons": r[f"{pre}.down_proj.units"]}


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json
    import time

    from tqdm import tqdm

    from workflow_scripts.answers import PROMPT_COLUMNS, generate_answers
    from workflow_scripts.architecture import check_architecture
    from workflow_scripts.cache_activations import cache_batches
    from workflow_scripts.contexts import load_yaml
    from workflow_scripts.controls import matched_head_control, neuron_controls
    from workflow_scripts.evaluation import eval_prompts, evaluate
    from workflow_scripts.files import read_parquet, write_csv, write_json
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import Mask
    from workflow_scripts.modeling import IDENTITY_FILE, load_model
    from workflow_scripts.names import load_names
    from workflow_scripts.planting import anchor_prompts, plant_bias
    from workflow_scripts.plots import planted_control_plot
    from workflow_scripts.sampling import Sampling
    from workflow_scripts.score_heads import parse_variant as parse_head, race_means, select_heads
    from workflow_scripts.score_neurons import add_sumsq, neuron_masks, parse_variant as parse_neuron
    from workflow_scripts.seeds import derive_seed
    from workflow_scripts.summarize_baseline import summarize
    from workflow_scripts.transfer import transfer_row

    log = setup_logging(smk.log[0], "prunebias.measure_planted_control")
    p = smk.params
    cfg = p.planted
    t0 = time.perf_counter()
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
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
    names = load_names(smk.input.names, use_surnames=p.use_surnames)
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
    masks: list[tuple[str, str, str, Mask, list[Mask]]] = []
    for c in contexts:
        rows = base[c][base[c]["name"].isin(learn)].reset_index(drop=True)
        rows["row"] = np.arange(len(rows))
        sums: dict[str, dict] = {"white": {}, "black": {}}
        heads = []
        with tqdm(total=len(rows), desc=f"caching {c}", unit="prompt") as bar:
            for act, head in cache_batches(model, tok, rows, p.batch_size, query_positions=p.head_queries):
                add_sumsq(sums, act.to_pandas())
                heads.append(head.to_pandas())
                bar.update(head.num_rows)
        att = race_means(pd.concat(heads, ignore_index=True), geo.n_layers, geo.n_heads, f"planted {c}")
        neuron_settings = [parse_neuron(s) for s in p.neuron_settings]
        for name, v, arrays in zip(p.neuron_settings, neuron_settings, neuron_masks(model, sums, neuron_settings)):
            seeds = [derive_seed(p.seed, "planted-control", name, c, d) for d in range(p.draws)]
            ctrls = neuron_controls(model, arrays, sums, v, seeds)
            meta = {"kind": "neurons", "n_pruned": sum(int(a.sum()) for a in arrays.values()),
                    "n_total": sum(a.size for a in arrays.values())}
            masks.append(("neurons", name, c, Mask(meta, arrays), [Mask(meta, a) for a in ctrls]))
        for name in p.head_settings:
            chosen, _ = select_heads(att["white"], att["black"], parse_head(name))
            h = chosen.numpy()
            meta = {"kind": "heads", "n_pruned": int(h.sum()), "n_total": int(h.size)}
            ctrls = [Mask(meta, {"heads": matched_head_control(h, np.random.default_rng(
                derive_seed(p.seed, "planted-control", name, c, d)))}) for d in range(p.draws)]
            masks.append(("heads", name, c, Mask(meta, {"heads": h}), ctrls))

    # 5. reference and every mask on the held-out names' evaluation prompts
    targets = {c: eval_prompts(prompts[c], cfg["samples_per_name"], holdout) for c in contexts}
    text = Path(smk.input.text).read_text()
    ref_answers, ref_info = evaluate(model, tok, [None], p.ablation, targets, specs, settings, text, p.max_tokens)
    rows_out, ctrl_rows = [], []
    for kind, name, source, mask, ctrls in masks:
        answers, infos = evaluate(model, tok, [mask, *ctrls], p.ablation, targets, specs, settings, text,
                                  p.max_tokens)
        info = {"reference": ref_info, "real": infos[:1], "control": infos[1:]}
        for target in contexts:
            both = answers[target].assign(ablation=p.ablation if kind == "heads" else "zero")
            real = both[both["draw"] == 0]
            controls = [g for d, g in both.groupby("draw", sort=True) if d > 0]
            row, crs = transfer_row(kind, name, source, target, base[target], ref_answers[target], real, controls,
                                    info, {}, winsor, p.effect, p.n_boot, p.seed, tuple(p.inlier_percentiles))
            rows_out.append({**row, **recall_columns(planted, kind, mask.arrays, model)})
            ctrl_rows.extend(crs)
        log.info("%s %s from %s: %s", kind, name, source,
                 [(r["target"], round(r["delta_abs"], 3)) for r in rows_out[-len(contexts):]])
    table = pd.DataFrame(rows_out)
    lead = ["kind", "variant", "source", "target", "level"] + RECALL_COLUMNS
    table = table[lead + [c for c in table.columns if c not in lead]]
    write_csv(table, smk.output.table)
    planted_control_plot(table, base_table, p.effect, smk.output.plot)
    log.info("planted control done in %.0f s:\n%s", time.perf_counter() - t0,
             table[["kind", "variant", "source", "target", "recall_planted", "effect_ref", "effect_pruned",
                    "delta_abs", "delta_abs_ci_low", "delta_abs_ci_high", "delta_vs_random"]].to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
