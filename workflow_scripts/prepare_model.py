"""Rule prepare_model: materialize the configured model once -> ``results/model/{name}/``.

A hub model that is neither in the local Hugging Face cache nor allowed to download
stops here (dry-runs and lint only warn, so a cluster user can plan before downloading).
Writes a safetensors directory (weights, config, tokenizer) plus ``prunebias_model.json``
(the model's identity: source, architecture, sizes, config hash), atomically: the
directory appears under its final name only when complete.
"""

import time

import torch

from prunebias.files import atomic_path
from prunebias.workflow.logs import setup_logging
from prunebias.model.modeling import check_hub_cached, materialize, resolve_source


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.prepare_model")
    torch.set_num_threads(smk.threads)
    src = resolve_source(smk.params.source)
    check_hub_cached(src, smk.params.allow_download)  # a hub model must be cached (or downloads allowed)
    t0 = time.perf_counter()
    with atomic_path(smk.output[0], is_dir=True) as tmp:
        ident = materialize(src, tmp, smk.params.name, smk.params.allow_download)
    log.info("materialized %s (%s, %d params) in %.1f s", ident["source"], ident["architecture"],
             ident["n_params"], time.perf_counter() - t0)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
