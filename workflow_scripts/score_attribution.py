"""Rule score_attribution: gradient-attribution masks of one source ->
``results/masks/{model}/{kind}/{grad,gradmlp,patch}_*/{source}.npz`` and ``results/attribution/{model}/{source}.json``.

For each context of the source, the grid bias objective B (``prunebias.methods.objective``) over
the learning names' prompts, and one backward pass: S = -W * dB/dW per weight, the sum of
S over each head's entries that the evaluation's head ablation zeroes
(``prunebias.methods.attribution``), and with ``patch_`` head settings attribution patching
between White and Black prompts (``prunebias.methods.patching``). ``grad_`` neuron masks take, per
matrix, as many weights as the budget's Wanda mask of the same source; ``gradmlp_`` masks
whole MLP neurons, as many as fit in its MLP weight count; head masks the top k. The
summary records B per context, how well the grid expectation follows the sampled
answers (per-name correlation), optionally the faithfulness of the scores
(``faithfulness_heads``, ``faithfulness_neurons``: predicted against measured change of
B, one head or MLP neuron removed at a time) and the time and memory it took.
``integrated_steps`` > 1 integrates the weight gradient along the name path and the
patching gradient along the patch; ``protect_text_percent`` > 0 keeps the weights (and
the whole neurons) most important for the perplexity text out of the neuron masks (the
SNIP set difference). With cross-fitting each fold is scored on its own learning names
(the summary is fold 0's).
"""

import resource
import time
from pathlib import Path

import pandas as pd

from prunebias.methods.attribution import source_attribution, text_importance
from prunebias.methods.attribution_select import protect_scores
from prunebias.methods.faithfulness import context_summary
from prunebias.files import read_parquet, write_json
from prunebias.methods.heads import check_head_budget
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import read_mask, write_mask
from prunebias.planted.plant_spec import PLANTED_FILE, read_planted_record
from prunebias.model.modeling import load_model, read_identity
from prunebias.methods.objective import answer_grid
from prunebias.methods.registry import FAMILIES, learn_all

NEED = ["context", "prompt", "answer_prefix", "name", "race", "sample", "value", "anomaly"]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_attribution")
    p = smk.params
    cfg = p.attribution
    t0 = time.perf_counter()
    identity = read_identity(smk.input.model)
    for family in dict.fromkeys(f for f, _ in p.learned):
        if FAMILIES[family].kind == "heads":
            check_head_budget([s for f, s in p.learned if f == family], identity["n_layers"] * identity["n_heads"],
                              FAMILIES[family].config_key)
    model, tok = load_model(smk.input.model, p.dtype, p.device, smk.threads)
    answers = [read_parquet(f, NEED) for f in smk.input.answers]
    answers = [rows[rows["sample"] < cfg["max_samples_per_name"]] for rows in answers]
    steps = cfg["integrated_steps"]
    patching = any("patching" in FAMILIES[f].needs for f, _ in p.learned)
    importance = None
    # a planted model: its planted neurons are also removed together (predicted vs measured)
    planted = []
    if (Path(smk.input.model) / PLANTED_FILE).exists():
        record = read_planted_record(smk.input.model)
        planted = [(record["layer"], n) for n in record["neurons"]]
    budget_of = [FAMILIES[f].budget(s) for f, s in p.learned if FAMILIES[f].budget]  # the order of input.budgets
    per_fold = []  # per fold: (kind, arrays) per setting; cross-fitting learns each fold on its names
    for k, fold in enumerate(p.folds):
        frames = {}
        for rows in answers:
            if fold.learn is not None:
                rows = rows[rows["name"].isin(set(fold.learn))]
            ctx = p.specs[rows["context"].iloc[0]]
            frames[ctx["name"]] = (rows.reset_index(drop=True), answer_grid(*ctx["range"], cfg["grid_size"]))
        scores, fold_info = source_attribution(model, tok, frames, cfg["batch_size"], cfg["log_value"], p.ablation,
                                               steps, patching)
        if k == 0:  # the summary (B's CI, the grid's agreement, faithfulness) is fold 0's
            info, n_prompts = fold_info, int(sum(len(r) for r, _ in frames.values()))
            for name, (rows, values) in frames.items():
                info[name] = context_summary(model, tok, rows, values, info[name], cfg, p.ablation, p.n_boot, p.seed,
                                             lambda msg, c=name: log.info("%s %s", c, msg), planted=planted)
        if cfg["protect_text_percent"] > 0:  # SNIP set difference: spare what ordinary text needs
            if importance is None:
                importance = text_importance(model, tok, Path(smk.input.text).read_text(), p.max_tokens)
            scores = protect_scores(scores, importance, cfg["protect_text_percent"])
        budgets = {b.name: read_mask(f, k).meta["counts"] for b, f in zip(budget_of, smk.input.budgets)}
        per_fold.append(learn_all(p.learned, scores, budgets))
    for j, (path, (family, setting)) in enumerate(zip(smk.output.masks, p.learned)):
        kind, arrays = FAMILIES[family].kind, per_fold[0][j]
        method = {"name": kind, "family": family, **setting.params(), "integrated_steps": steps,
                  "protect_text_percent": cfg["protect_text_percent"]}
        meta = {"model": identity, "method": method, "source": p.source.name, "sources": list(p.contexts),
                "combine": p.source.combine, "learn_names": p.folds[0].learn,
                "folds": [f.describe() for f in p.folds],
                "objective": {c: {"B": i["B"], "grid": i["grid"]} for c, i in info.items()}}
        write_mask(path, kind, meta, arrays, [masks[j] for masks in per_fold[1:]])
        n = sum(int(a.sum()) for key, a in arrays.items() if key != "scores")
        log.info("%s %s: %d pruned (fold 0 of %d)", p.source.name, setting.name, n, len(p.folds))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    write_json({"source": p.source.name, "contexts": info, "seconds": seconds, "peak_rss_mib": peak,
                "log_value": cfg["log_value"], "integrated_steps": steps,
                "protect_text_percent": cfg["protect_text_percent"],
                "prompts": n_prompts, "folds": len(p.folds)}, smk.output.summary)
    log.info("attribution of %s in %.0f s (peak RSS %.0f MiB): %s", p.source.name, seconds, peak,
             pd.DataFrame({c: {"B": i["B"], **i["agreement"]} for c, i in info.items()}).T.to_string())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
