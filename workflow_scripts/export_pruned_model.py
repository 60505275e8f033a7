"""Rule export_pruned_model: one mask applied to the model, written as a Hugging Face
directory -> ``results/export/{model}/{kind}/{setting}/{source}/``.

Safetensors weights in the model's stored dtype (bf16 stays bf16), the tokenizer, and a
model card (``README.md``) with the source model, the mask, how it was learned and its
evaluation rows from ``transfer.csv`` with their CIs (``prunebias.model.export``). Written on
the CPU and atomically: the directory appears under its final name only when complete.
"""

import json
from pathlib import Path

import pandas as pd

from prunebias.model.export import export_pruned, mask_rows, model_card
from prunebias.files import atomic_path
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import read_mask
from prunebias.model.modeling import load_model, read_identity


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.export_pruned_model")
    wc = smk.wildcards
    stored = json.loads((Path(smk.input.model) / "config.json").read_text()).get("torch_dtype") or "float32"
    dtype = stored if stored in ("float32", "bfloat16", "float16") else "float32"
    model, tok = load_model(smk.input.model, dtype, "cpu", smk.threads)
    mask = read_mask(smk.input.mask)
    rows = mask_rows(pd.read_csv(smk.input.transfer), wc.kind, wc.setting, wc.source)
    card = model_card(read_identity(smk.input.model), f"{wc.kind}/{wc.setting}/{wc.source}", mask, rows,
                      smk.params.ablation, smk.params.learn_names)
    with atomic_path(smk.output[0], is_dir=True) as tmp:
        n = export_pruned(model, tok, mask, smk.params.ablation, tmp, card)
    log.info("exported %s/%s/%s (%d %s, %s) with %d evaluation rows", wc.kind, wc.setting, wc.source, n,
             "parameters projected" if wc.kind == "directions" else "entries zeroed", dtype, len(rows))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
