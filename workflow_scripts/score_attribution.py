"""Rule score_attribution: gradient-attribution masks of one source ->
``results/masks/{kind}/grad_*/{source}.npz`` and ``results/attribution/{source}.json``.

For each context of the source, the grid bias objective B (``prunebias.objective``) over
the learning names' prompts, and one backward pass: S = -W * dB/dW per weight, the sum of
S over each head's entries that the evaluation's head ablation zeroes
(``prunebias.attribution``). Neuron masks take,
per matrix, as many weights as the budget's Wanda mask of the same source; head masks the
top k. The summary records B per context, how well the grid expectation follows the
sampled answers (per-name correlation), optionally the faithfulness of the scores
(``faithfulness_heads``, ``faithfulness_neurons``: predicted against measured change of
B, one head or MLP neuron removed at a time) and the time and memory it took.
``integrated_steps`` > 1 integrates the gradient along the name path.
"""

import resource
import time

import numpy as np
import pandas as pd

from prunebias.attribution import faithfulness, select_by_counts, select_weights, source_attribution
from prunebias.files import read_parquet, write_json
from prunebias.inference import NameData, name_bootstrap
from prunebias.logs import setup_logging
from prunebias.masks import read_mask, write_mask
from prunebias.modeling import load_model, read_identity
from prunebias.objective import answer_grid, grid_agreement
from prunebias.plan import GradHeadSetting, GradNeuronSetting

NEED = ["context", "prompt", "answer_prefix", "name", "race", "sample", "value", "anomaly"]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_attribution")
    p = smk.params
    cfg = p.attribution
    t0 = time.perf_counter()
    identity = read_identity(smk.input.model)
    model, tok = load_model(smk.input.model, p.dtype, p.device, smk.threads)
    frames = {}
    for f in smk.input.answers:
        rows = read_parquet(f, NEED)
        rows = rows[rows["sample"] < cfg["max_samples_per_name"]]
        if p.learn_names is not None:
            rows = rows[rows["name"].isin(set(p.learn_names))]
        ctx = p.specs[rows["context"].iloc[0]]
        frames[ctx["name"]] = (rows.reset_index(drop=True), answer_grid(*ctx["range"], cfg["grid_size"]))
    steps = cfg["integrated_steps"]
    toward, heads, info = source_attribution(model, tok, frames, cfg["batch_size"], cfg["log_value"], p.ablation,
                                             steps)
    for name, (rows, values) in frames.items():  # how well the objective stands in for the sampled answers
        expected = info[name].pop("expected")
        deltas = {"head": info[name].pop("head_deltas"), "neuron": info[name].pop("neuron_deltas")}
        faith = {}
        for unit in ("head", "neuron"):  # predicted against measured change of B, one unit at a time
            top = cfg[f"faithfulness_{unit}s"]
            if top:
                table, rho = faithfulness(model, tok, rows, values, deltas[unit], info[name]["B"], unit, top,
                                          p.ablation, cfg["batch_size"], cfg["log_value"])
                faith[unit] = {"spearman": rho, "units": table.to_dict(orient="records")}
                log.info("%s faithfulness, %d %ss: Spearman %.2f", name, len(table), unit, rho)
        info[name]["faithfulness"] = faith
        sampled = rows.assign(sampled=np.log(rows["value"].where(rows["value"] > 0)) if cfg["log_value"]
                              else rows["value"])
        ci = name_bootstrap(NameData.from_answers(rows["name"].to_numpy(), rows["race"].to_numpy(), expected),
                            "diff", n_boot=p.n_boot, seed=p.seed)
        info[name].update(grid=[float(v) for v in values], prompts=len(rows), B_ci_low=ci.ci_low,
                          B_ci_high=ci.ci_high, agreement=grid_agreement(sampled, expected, value="sampled"))
    grad_neurons = [s for s in p.settings if isinstance(s, GradNeuronSetting)]
    budgets = {s.budget: read_mask(f) for s, f in zip(grad_neurons, smk.input.budgets)}  # same order
    for path, setting in zip(smk.output.masks, p.settings):
        if isinstance(setting, GradNeuronSetting):
            counts = budgets[setting.budget].meta["counts"]
            arrays = select_by_counts(toward, counts)
            kind = "neurons"
        else:
            assert isinstance(setting, GradHeadSetting)
            chosen = select_weights(heads, 1.0, setting.k).numpy()
            arrays = {"heads": chosen, "scores": (-heads).numpy().astype(np.float32)}
            kind = "heads"
        meta = {"model": identity, "method": {"name": kind, **setting.params(), "integrated_steps": steps},
                "source": p.source.name,
                "sources": list(p.contexts), "combine": p.source.combine, "learn_names": p.learn_names,
                "objective": {c: {"B": i["B"], "grid": i["grid"]} for c, i in info.items()}}
        write_mask(path, kind, meta, arrays)
        n = sum(int(a.sum()) for k, a in arrays.items() if k != "scores")
        log.info("%s %s: %d pruned", p.source.name, setting.name, n)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    write_json({"source": p.source.name, "contexts": info, "seconds": seconds, "peak_rss_mib": peak,
                "log_value": cfg["log_value"], "integrated_steps": steps, "prompts": int(sum(len(r) for r, _ in frames.values()))},
               smk.output.summary)
    log.info("attribution of %s in %.0f s (peak RSS %.0f MiB): %s", p.source.name, seconds, peak,
             pd.DataFrame({c: {"B": i["B"], **i["agreement"]} for c, i in info.items()}).T.to_string())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
