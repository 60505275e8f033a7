"""Stage 2: sample the unpruned model's answers -> ``results/baseline/{context}.parquet``.

Adds to the prompt columns: response (the generated continuation after the answer
prefix), n_tokens, value (parsed number or NaN), kind (see ``parsing``), anomaly (bool)
and outcome (the analysed number; NaN for anomalies). The file's metadata records the
model identity and the sampling settings.
"""


import json
import sys
import time
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

from typing import Any

import pandas as pd

from workflow_scripts.answers import parse_responses
from workflow_scripts.modeling import chat_text, eos_token_ids
from workflow_scripts.parsing import number_complete
from workflow_scripts.sampling import Sampling, sample_all
from workflow_scripts.seeds import derive_seed

PROMPT_COLUMNS = ["context", "race", "gender", "name", "sample", "seed", "prompt", "answer_prefix"]


def generate_answers(model: Any, tok: Any, prompts: pd.DataFrame, settings: Sampling, purpose: str,
                     context: dict[str, Any]) -> pd.DataFrame:
    """Sample one answer per prompt row and parse it; ``purpose`` salts the seeds."""
    texts = [chat_text(tok, p, a) for p, a in zip(prompts["prompt"], prompts["answer_prefix"])]
    seeds = [derive_seed(s, purpose) for s in prompts["seed"]]
    got = sample_all(model, tok, texts, seeds, settings, eos_token_ids(model, tok),
                     number_complete if settings.stop_after_number else None, desc=f"{context['name']}")
    out = prompts.copy()
    out["response"] = [r for r, _ in got]
    out["n_tokens"] = pd.array([n for _, n in got], dtype="int64")
    lo, hi = context["range"]
    parsed = parse_responses(out["response"], lo, hi, context["percent"], context["outcome"])
    return pd.concat([out, parsed], axis=1)


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.files import read_parquet, write_parquet
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.modeling import IDENTITY_FILE, load_model

    log = setup_logging(smk.log[0], "prunebias.generate_baseline")
    prompts = read_parquet(smk.input.prompts, PROMPT_COLUMNS)
    settings = Sampling(**smk.params.sampling)
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads)
    t0 = time.perf_counter()
    out = generate_answers(model, tok, prompts, settings, "baseline", smk.params.context)
    dt = time.perf_counter() - t0
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    write_parquet(out, smk.output[0], metadata={"model": identity, "sampling": smk.params.sampling,
                                               "context": smk.params.context})
    log.info("%s: %d answers in %.1f s (%.1f answers/s, %d tokens), anomaly rate %.3f, kinds %s",
             smk.params.context["name"], len(out), dt, len(out) / dt, int(out["n_tokens"].sum()),
             out["anomaly"].mean(), out["kind"].value_counts().to_dict())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
