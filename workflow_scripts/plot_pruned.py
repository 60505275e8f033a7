"""Rule plot_pruned: what every learned mask removes -> ``results/tables/{model}/pruned_by_layer.csv``
(neurons: pruned and total entries per mask, layer and module, read from the masks' meta)
and ``results/plots/{model}/pruned_neurons.png`` / ``pruned_heads.png``, one per mask kind the config
learns (``prunebias.report.plots``)."""

import pandas as pd

from prunebias.files import write_csv
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import Mask, check_model, pruned_by_module, read_mask, read_meta
from prunebias.model.modeling import read_identity
from prunebias.report.plots import pruned_heads_plot, pruned_neurons_plot

COLUMNS = ["kind", "setting", "source", "layer", "module", "pruned", "total", "percent"]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.plot_pruned")
    rows, heads = [], {}
    identity = read_identity(smk.input.model)
    for (kind, setting, source), path in zip(smk.params.masks, smk.input.masks):
        meta = read_meta(path)
        check_model(Mask(meta, {}), identity, path)  # a mask of another model: its file and the fix
        if kind == "neurons":
            rows += [{"kind": kind, "setting": setting, "source": source, **r} for r in pruned_by_module(meta)]
        else:
            heads.setdefault(setting, []).append(read_mask(path).arrays["heads"])
    table = pd.DataFrame(rows, columns=COLUMNS[:-1])
    table["percent"] = 100 * table["pruned"] / table["total"]
    write_csv(table[COLUMNS], smk.output.table)
    for kind, path in zip(smk.params.kinds, smk.output.plots):
        if kind == "neurons":
            pruned_neurons_plot(table, path)
        else:
            pruned_heads_plot(heads, path)
    log.info("%d neuron mask rows, head settings %s", len(table), sorted(heads))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
