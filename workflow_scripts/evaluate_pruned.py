"""Rule evaluate_pruned: answers of the model under every mask of one source (and their
random controls) on one target.

Outputs ``results/eval/{model}/{method}/{setting}/{source}/{target}.parquet`` (the baseline
columns: response, value, answer_kind, anomaly, outcome, plus method, setting, source, ablation
and ``draw``) and ``.../{source}/{target}.json`` (per mask: perplexity on the neutral text,
pruned counts). ``method`` is ``neurons`` / ``heads`` / ``directions`` (the real mask or
race direction) or ``random_neurons`` / ``random_heads`` / ``random_directions`` (its
matched random control draws, ``draw`` = 0, 1, ...). The prompts and seeds are those of ``evaluate_reference``, so every answer
has an unpruned twin. The model is loaded once; each mask is applied once and undone exactly.
With cross-fitting each fold's mask answers its fold's names (column ``fold``).
"""

from prunebias.model.evaluation import EvalGroup, evaluation_job
from prunebias.workflow.logs import setup_logging


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.evaluate_pruned")
    source = smk.wildcards.source
    groups = []
    for (key, paths), answers, info in zip(smk.params.masks.items(), smk.output.answers, smk.output.info):
        method, setting = key.split("/")
        groups.append(EvalGroup({"method": method, "setting": setting, "source": source}, paths, answers, info))
    evaluation_job(groups, smk.input.model, smk.input.prompts, smk.input.text, smk.params, smk.threads, log)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
