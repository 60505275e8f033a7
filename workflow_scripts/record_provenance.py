"""Rule record_provenance: what the model's figures depend on beyond the config ->
``results/tables/{model}/provenance.json`` (``prunebias.workflow.provenance``: weights sha256,
resolved dtype and device, versions, CPU features). A model job like the others, so it
records the kind of node they run on; the headline adds the commit and its date."""

from prunebias.files import write_json
from prunebias.workflow.logs import setup_logging
from prunebias.model.modeling import read_identity
from prunebias.workflow.provenance import provenance


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.record_provenance")
    p = smk.params
    record = {"model": p.name, "model_source": read_identity(smk.input.model)["source"],
              **provenance(smk.input.model, p.dtype, p.device)}
    write_json(record, smk.output[0])
    log.info("provenance: %s", record)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
