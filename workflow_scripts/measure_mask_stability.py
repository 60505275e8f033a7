"""Stage 4e: how stable are masks across names? -> ``results/tables/mask_stability.csv``.

For every context and every neuron and one-shot head setting, the mask is learned twice
from the caches, once on each half of the seeded race x gender balanced name split
(``names.split_names``), and the two masks are compared: Jaccard overlap
|A & B| / |A | B|, beside the overlap two random sets of the same sizes would have
(``jaccard_chance`` = E|A & B| / (|A| + |B| - E|A & B|), E|A & B| = |A| |B| / N). A mask
that reflects names rather than a context's bias changes with the names.
Greedy head masks need a model run per pick and are not included.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

from typing import Any

import numpy as np


def jaccard(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, float, int, int]:
    """(Jaccard, chance Jaccard, |A|, |B|) over all arrays of two masks."""
    inter = sum(int((a[k] & b[k]).sum()) for k in a)
    na, nb = sum(int(v.sum()) for v in a.values()), sum(int(v.sum()) for v in b.values())
    total = sum(v.size for v in a.values())
    union = na + nb - inter
    expected = na * nb / total if total else 0.0
    chance = expected / (na + nb - expected) if na + nb - expected > 0 else float("nan")
    return (inter / union if union else float("nan")), chance, na, nb


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json

    import pandas as pd

    from workflow_scripts.files import write_csv
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.modeling import IDENTITY_FILE, load_model
    from workflow_scripts.score_heads import group_attention, parse_variant as parse_head, select_heads
    from workflow_scripts.score_neurons import group_sumsq, names_filter, neuron_masks, parse_variant as parse_neuron

    log = setup_logging(smk.log[0], "prunebias.measure_mask_stability")
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    model, _ = load_model(smk.input.model, "float32", smk.params.device, smk.threads)
    halves = smk.params.halves
    neuron_settings = [parse_neuron(v) for v in smk.params.neuron_settings]
    rows: list[dict[str, Any]] = []
    for act, att in zip(smk.input.activations, smk.input.attention):
        context = Path(act).stem
        if neuron_settings:
            a = neuron_masks(model, group_sumsq([act], names_filter(halves["learn"])), neuron_settings)
            b = neuron_masks(model, group_sumsq([act], names_filter(halves["holdout"])), neuron_settings)
            for name, ma, mb in zip(smk.params.neuron_settings, a, b):
                j, chance, na, nb = jaccard(ma, mb)
                rows.append({"kind": "neurons", "setting": name, "source": context, "n_a": na, "n_b": nb,
                             "jaccard": j, "jaccard_chance": chance})
        att_a = group_attention([att], identity["n_layers"], identity["n_heads"], halves["learn"])
        att_b = group_attention([att], identity["n_layers"], identity["n_heads"], halves["holdout"])
        for name in smk.params.head_settings:
            v = parse_head(name)
            ha = select_heads(att_a["white"], att_a["black"], v)[0].numpy()
            hb = select_heads(att_b["white"], att_b["black"], v)[0].numpy()
            j, chance, na, nb = jaccard({"heads": ha}, {"heads": hb})
            rows.append({"kind": "heads", "setting": name, "source": context, "n_a": na, "n_b": nb,
                         "jaccard": j, "jaccard_chance": chance})
    table = pd.DataFrame(rows, columns=["kind", "setting", "source", "n_a", "n_b", "jaccard", "jaccard_chance"])
    write_csv(table, smk.output[0])
    log.info("mask stability across name halves:\n%s", table.to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
