"""Rule evaluate_pruned: answers of the model under one mask (or its random controls) on every target.

Outputs ``results/eval/{method}/{setting}/{source}/{target}.parquet`` (the baseline
columns: response, value, answer_kind, anomaly, outcome, plus method, setting, source, ablation
and ``draw``) and ``.../{source}/info.json`` (per mask: perplexity on the neutral text,
pruned counts). ``method`` is ``neurons`` / ``heads`` (the real mask) or
``random_neurons`` / ``random_heads`` (its matched random control draws, ``draw`` =
0, 1, ...). The prompts and seeds are those of ``evaluate_reference``, so every answer
has an unpruned twin. The model is loaded once; each mask is applied once and undone exactly.
"""

from prunebias.evaluation import evaluation_job
from prunebias.logs import setup_logging


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.evaluate_pruned")
    p = smk.params
    labels = {"method": p.method.name, "setting": p.setting.name, "source": p.source.name}
    evaluation_job(smk.input.masks, smk.input.model, smk.input.prompts, smk.input.text, smk.output.answers,
                   smk.output.info, labels, p, smk.threads, log)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
