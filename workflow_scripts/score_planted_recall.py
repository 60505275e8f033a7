"""Rule score_planted_recall: every neuron mask and race direction of a planted model scored
against what was planted -> ``results/tables/{model}/planted_recall.csv``.

One row per mask (setting x source): the share of the planted gate/up rows and down
columns it selects, the selected share of the planted down columns' squared magnitude, the
planted neurons it removes (at least half of the down column), and the share of all
weights it prunes (the chance level of the recall). A race direction: the share of the
planted down columns' squared magnitude along it (``recall_down_mass``; chance for a random
direction is 1 / d_model). Head masks are not scored: the plant lies in MLP weights.
"""

import pandas as pd

from prunebias.files import write_csv
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import read_mask
from prunebias.planted.planted_model import planted_weights_of, read_planted
from prunebias.planted.planted_recall import RECALL_COLUMNS, direction_recall, recall_columns


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_planted_recall")
    planted = read_planted(smk.input.model)
    weights = planted_weights_of(smk.input.model, planted)
    rows = []
    for (kind, setting, source), path in zip(smk.params.masks, smk.input.masks):
        mask = read_mask(path)
        scope = {"kind": kind, "setting": setting, "source": source,
                 "in_scope": planted.scope == "general" or source in planted.contexts}
        if kind == "directions":
            rows.append({**scope, **direction_recall(planted, mask.arrays["direction"], weights),
                         "pruned_fraction": float("nan")})
            continue
        n_total = mask.meta.get("n_total") or sum(a.size for a in mask.arrays.values())
        rows.append({**scope, **recall_columns(planted, mask.arrays, weights),
                     "pruned_fraction": mask.meta.get("n_pruned", 0) / n_total if n_total else float("nan")})
    table = pd.DataFrame(rows, columns=["kind", "setting", "source", "in_scope", *RECALL_COLUMNS, "pruned_fraction"])
    write_csv(table, smk.output.table)
    log.info("recall of the planted weights (%s plant, layer %d neurons %s):\n%s", planted.scope, planted.layer,
             planted.neurons, table.to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
