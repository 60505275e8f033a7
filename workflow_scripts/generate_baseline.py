"""Rule generate_baseline: sample the unpruned model's answers -> ``results/baseline/{model}/{context}.parquet``.

Adds to the prompt columns: response (the generated continuation after the answer
prefix), n_tokens, value (parsed number or NaN), answer_kind (see ``prunebias.audit.parsing``),
anomaly (bool) and outcome (the analysed number; NaN for anomalies). The file's metadata
records the model identity and the sampling settings.
"""

import time

from prunebias.audit.answers import PROMPT_COLUMNS, generate_answers
from prunebias.files import read_parquet, write_parquet
from prunebias.workflow.logs import setup_logging
from prunebias.model.modeling import load_model, read_identity
from prunebias.model.sampling import Sampling


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.generate_baseline")
    prompts = read_parquet(smk.input.prompts, PROMPT_COLUMNS)
    settings = Sampling(**smk.params.sampling)
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads)
    t0 = time.perf_counter()
    out = generate_answers(model, tok, prompts, settings, "baseline", smk.params.context)
    dt = time.perf_counter() - t0
    identity = read_identity(smk.input.model)
    write_parquet(out, smk.output[0], metadata={"model": identity, "sampling": smk.params.sampling,
                                               "context": smk.params.context})
    log.info("%s: %d answers in %.1f s (%.1f answers/s, %d tokens), anomaly rate %.3f, answer kinds %s",
             smk.params.context["name"], len(out), dt, len(out) / dt, int(out["n_tokens"].sum()),
             out["anomaly"].mean(), out["answer_kind"].value_counts().to_dict())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
