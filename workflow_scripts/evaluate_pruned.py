"""Stage 5: answers of the pruned model (or of the unpruned reference) on every target context.

Outputs ``results/eval/{method}/{setting}/{source}/{target}.parquet`` (the baseline
columns: response, value, kind, anomaly, outcome, plus method, variant, source, ablation
and ``draw``) and ``.../{source}/info.json`` (per mask: perplexity of the pruned model on
the neutral text, pruned counts). ``method`` is ``neurons`` / ``heads`` (one real mask),
``random_neurons`` / ``random_heads`` (the matched random control draws of that mask,
``draw`` = 0, 1, ...), or ``reference`` (no mask: the unpruned model on the same
prompts with the same seeds, at ``results/eval/reference/``).

The model is loaded once; each mask is applied once and undone exactly.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json
    import time

    from workflow_scripts.answers import PROMPT_COLUMNS
    from workflow_scripts.evaluation import eval_prompts, evaluate
    from workflow_scripts.files import read_parquet, write_json, write_parquet
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import check_model, read_mask
    from workflow_scripts.modeling import IDENTITY_FILE, load_model
    from workflow_scripts.sampling import Sampling

    log = setup_logging(smk.log[0], "prunebias.evaluate_pruned")
    method, setting, source = smk.params.method, smk.params.setting, smk.params.source
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    masks = [read_mask(p) for p in smk.input.masks]
    for p, m in zip(smk.input.masks, masks):
        check_model(m, identity, p)
    kind = masks[0].kind if masks else None
    targets = {}
    for path in smk.input.prompts:
        df = read_parquet(path, PROMPT_COLUMNS)
        targets[df["context"].iloc[0]] = eval_prompts(df, smk.params.samples_per_name, smk.params.eval_names)
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads)
    t0 = time.perf_counter()
    answers, infos = evaluate(model, tok, masks or [None], smk.params.ablation, targets, smk.params.contexts,
                              Sampling(**smk.params.sampling), Path(smk.input.text).read_text(),
                              smk.params.perplexity_max_tokens)
    extra = {"method": method, "variant": setting, "source": source,
             "ablation": smk.params.ablation if kind == "heads" else ("none" if kind is None else "zero")}
    mask_meta = ({k: v for k, v in masks[0].meta.items() if k not in ("counts", "shapes")} if masks else {})
    for path in smk.output.answers:
        target = Path(path).stem
        write_parquet(answers[target].assign(**extra), path,
                      metadata={"model": identity, "mask": mask_meta, **extra})
    write_json({"draws": infos, **extra, "kind": kind, "sources": mask_meta.get("sources"),
                "method_params": mask_meta.get("method")}, smk.output.info)
    log.info("%s %s %s: %d mask(s), perplexity %s, %d targets in %.1f s", method, setting, source, len(infos),
             [round(i["perplexity"], 2) for i in infos], len(answers), time.perf_counter() - t0)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
