"""Stage 5: answers of the pruned model on every target context.

Outputs ``results/eval/{method}/{variant}/{source}/{target}.parquet`` (the baseline
columns: response, value, kind, anomaly, outcome, plus method, variant, source, ablation)
and ``.../{source}/info.json`` (perplexity of the pruned model on the neutral text,
pruned counts, ablation). ``method`` is ``neurons`` / ``heads`` or a random control
``random_neurons`` / ``random_heads``: a mask with the same number of weights per module
(or of heads) drawn with a seed derived from (seed, method, variant, source).

The model is loaded once; the mask is applied once and undone exactly at the end. The
prompts are the first ``evaluation.samples_per_name`` samples of each name, with seeds
salted by "eval" so the answers are fresh draws, not the baseline's.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

from typing import Any

import pandas as pd

from workflow_scripts.generate_baseline import PROMPT_COLUMNS, generate_answers
from workflow_scripts.masks import Mask
from workflow_scripts.pruning import pruned, random_like
from workflow_scripts.sampling import Sampling
from workflow_scripts.seeds import derive_seed


def eval_prompts(prompts: pd.DataFrame, samples_per_name: int) -> pd.DataFrame:
    """The evaluation subset of a context's prompts."""
    return prompts[prompts["sample"] < samples_per_name].reset_index(drop=True)


def mask_for(method: str, real: Mask, seed: int, variant: str, source: str) -> Mask:
    """The real mask, or its random same-size control."""
    if method.startswith("random_"):
        return random_like(real, derive_seed(seed, method, variant, source))
    return real


def evaluate(model: Any, tok: Any, mask: Mask, ablation: str, targets: dict[str, pd.DataFrame],
             contexts: dict[str, dict], settings: Sampling, text: str, max_tokens: int
             ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Answers per target and the perplexity, all under one application of the mask."""
    from workflow_scripts.perplexity import perplexity

    out = {}
    with pruned(model, mask, ablation) as n_zeroed:
        ppl = perplexity(model, tok, text, max_tokens=max_tokens)
        for target, prompts in targets.items():
            out[target] = generate_answers(model, tok, prompts, settings, "eval", contexts[target])
    info = {"perplexity": ppl, "n_zeroed": n_zeroed, "n_pruned": int(mask.meta.get("n_pruned", 0)),
            "n_total": int(mask.meta.get("n_total", 0))}
    return out, info


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json
    import time

    from workflow_scripts.files import read_parquet, write_json, write_parquet
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import check_model, read_mask
    from workflow_scripts.modeling import IDENTITY_FILE, load_model

    log = setup_logging(smk.log[0], "prunebias.evaluate_pruned")
    wc = smk.wildcards
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    real = read_mask(smk.input.mask)
    check_model(real, identity, smk.input.mask)
    mask = mask_for(wc.method, real, smk.params.seed, wc.variant, wc.source)
    targets = {}
    for path in smk.input.prompts:
        df = read_parquet(path, PROMPT_COLUMNS)
        targets[df["context"].iloc[0]] = eval_prompts(df, smk.params.samples_per_name)
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads)
    t0 = time.perf_counter()
    answers, info = evaluate(model, tok, mask, smk.params.ablation, targets, smk.params.contexts,
                             Sampling(**smk.params.sampling), Path(smk.input.text).read_text(),
                             smk.params.perplexity_max_tokens)
    extra = {"method": wc.method, "variant": wc.variant, "source": wc.source,
             "ablation": smk.params.ablation if real.kind == "heads" else "zero"}
    for path in smk.output.answers:
        target = Path(path).stem
        df = answers[target].assign(**extra)
        write_parquet(df, path, metadata={"model": identity, "mask": {k: v for k, v in real.meta.items()
                                                                      if k not in ("counts", "shapes")}, **extra})
    write_json({**info, **extra, "sources": real.meta.get("sources"), "kind": real.kind,
                "method_params": real.meta.get("method")}, smk.output.info)
    log.info("%s %s %s: %d zeroed, perplexity %.2f, %d targets in %.1f s", wc.method, wc.variant, wc.source,
             info["n_zeroed"], info["perplexity"], len(answers), time.perf_counter() - t0)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
