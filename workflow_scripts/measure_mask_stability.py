"""Rule measure_mask_stability: how stable are masks across names? -> ``results/tables/{model}/mask_stability.csv``.

For every context and every neuron and one-shot head setting, the mask is learned twice
from the caches, once on each half of the seeded race x gender balanced name split
(``prunebias.names.split_names``), and the two masks are compared: Jaccard overlap
|A & B| / |A | B|, beside the overlap two random sets of the same sizes would have
(``jaccard_chance`` = E|A & B| / (|A| + |B| - E|A & B|), E|A & B| = |A| |B| / N). A mask
that reflects names rather than a context's bias changes with the names.
Greedy head masks need a model run per pick and are not included. With cross-fitting the
masks already hold both halves (fold 0 learned on one, fold 1 on the other): they are
read and compared instead of learned again.
"""

from typing import Any

import pandas as pd

from prunebias.activations import group_sumsq, names_filter
from prunebias.files import write_csv
from prunebias.heads import group_attention, select_heads
from prunebias.logs import setup_logging
from prunebias.masks import jaccard, read_folds
from prunebias.modeling import load_model, read_identity
from prunebias.neurons import neuron_masks

COLUMNS = ["kind", "setting", "source", "n_a", "n_b", "jaccard", "jaccard_chance"]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.measure_mask_stability")
    p = smk.params
    if smk.input.masks:
        rows = [_compare_folds(key, path) for key, path in zip(p.mask_keys, smk.input.masks)]
        _write(pd.DataFrame(rows, columns=COLUMNS), smk.output[0], log)
        return
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
    _write(pd.DataFrame(rows, columns=COLUMNS), smk.output[0], log)


def _compare_folds(key: tuple[str, str, str], path: str) -> dict[str, Any]:
    """The Jaccard row of a cross-fitted mask: its fold 0 (one half) against fold 1 (the other)."""
    kind, setting, source = key
    a, b = ({k: v for k, v in m.arrays.items() if k != "scores"} for m in read_folds(path)[:2])
    j, chance, na, nb = jaccard(a, b)
    return {"kind": kind, "setting": setting, "source": source, "n_a": na, "n_b": nb, "jaccard": j,
            "jaccard_chance": chance}


def _write(table: pd.DataFrame, path: str, log: Any) -> None:
    write_csv(table, path)
    log.info("mask stability across name halves:\n%s", table.to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
