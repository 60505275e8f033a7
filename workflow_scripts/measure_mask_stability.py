"""Rule measure_mask_stability: how stable are masks across names? -> ``results/tables/{model}/mask_stability.csv``.

For every context and every neuron and one-shot head setting, the mask is learned twice
from the caches, once on each half of the seeded race x gender balanced name split
(``prunebias.names.split_names``), and the two masks are compared: Jaccard overlap
|A & B| / |A | B|, beside the overlap two random sets of the same sizes would have
(``jaccard_chance`` = E|A & B| / (|A| + |B| - E|A & B|), E|A & B| = |A| |B| / N). A mask
that reflects names rather than a context's bias changes with the names.
Greedy head masks need a model run per pick and are not included.
"""

from typing import Any

import pandas as pd

from prunebias.activations import group_sumsq, names_filter
from prunebias.files import write_csv
from prunebias.heads import group_attention, select_heads
from prunebias.logs import setup_logging
from prunebias.masks import jaccard
from prunebias.modeling import load_model, read_identity
from prunebias.neurons import neuron_masks

COLUMNS = ["kind", "setting", "source", "n_a", "n_b", "jaccard", "jaccard_chance"]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.measure_mask_stability")
    p = smk.params
    identity = read_identity(smk.input.model)
    model, _ = load_model(smk.input.model, "float32", p.device, smk.threads)
    halves = p.halves
    shape = identity["n_layers"], identity["n_heads"]
    rows: list[dict[str, Any]] = []
    for context, act, att in zip(p.contexts, smk.input.activations, smk.input.attention):
        if p.neuron_settings:
            a = neuron_masks(model, group_sumsq([act], names_filter(halves["learn"])), p.neuron_settings)
            b = neuron_masks(model, group_sumsq([act], names_filter(halves["holdout"])), p.neuron_settings)
            for setting, ma, mb in zip(p.neuron_settings, a, b):
                j, chance, na, nb = jaccard(ma, mb)
                rows.append({"kind": "neurons", "setting": setting.name, "source": context, "n_a": na, "n_b": nb,
                             "jaccard": j, "jaccard_chance": chance})
        att_a = group_attention([att], *shape, halves["learn"])
        att_b = group_attention([att], *shape, halves["holdout"])
        for setting in p.head_settings:
            ha = select_heads(att_a["white"], att_a["black"], setting)[0].numpy()
            hb = select_heads(att_b["white"], att_b["black"], setting)[0].numpy()
            j, chance, na, nb = jaccard({"heads": ha}, {"heads": hb})
            rows.append({"kind": "heads", "setting": setting.name, "source": context, "n_a": na, "n_b": nb,
                         "jaccard": j, "jaccard_chance": chance})
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(table, smk.output[0])
    log.info("mask stability across name halves:\n%s", table.to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
