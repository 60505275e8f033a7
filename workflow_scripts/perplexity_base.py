"""The unpruned model's perplexity on the neutral text, computed once -> ``results/eval/base_perplexity.json``."""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.files import write_json
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.modeling import load_model
    from workflow_scripts.perplexity import perplexity

    log = setup_logging(smk.log[0], "prunebias.perplexity_base")
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads)
    ppl = perplexity(model, tok, Path(smk.input.text).read_text(), max_tokens=smk.params.max_tokens)
    write_json({"perplexity": ppl}, smk.output[0])
    log.info("base perplexity %.3f", ppl)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
