"""Rule measure_mask_stability: how stable are masks across names? -> ``results/tables/{model}/mask_stability.csv``.

For every context and every setting learned from the caches (the activation and the head
attention cache: Wanda and one-shot head masks by default), the mask is learned twice
from the caches, once on each half of the seeded race x gender balanced name split
(``prunebias.audit.names.split_names``), and the two masks are compared: Jaccard overlap
|A & B| / |A | B|, beside the overlap two random sets of the same sizes would have
(``jaccard_chance`` = E|A & B| / (|A| + |B| - E|A & B|), E|A & B| = |A| |B| / N). A mask
that reflects names rather than a context's bias changes with the names.
Greedy head masks need a model run per pick and are not included. With cross-fitting the
masks already hold both halves (fold 0 learned on one, fold 1 on the other): they are
read and compared instead of learned again.
"""

from typing import Any

import pandas as pd

from prunebias.model.activations import group_sumsq, names_filter
from prunebias.files import write_csv
from prunebias.methods.heads import group_attention
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import jaccard, read_folds
from prunebias.methods.registry import FAMILIES, learn_all
from prunebias.model.modeling import load_model, read_identity

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
        pairs = []  # ((family, setting), mask on one half, mask on the other)
        if p.activation_learned:
            a, b = (learn_all(p.activation_learned, model, group_sumsq([act], names_filter(halves[h])))
                    for h in ("learn", "holdout"))
            pairs += zip(p.activation_learned, a, b)
        if p.attention_learned:
            a, b = (learn_all(p.attention_learned, *_races(group_attention([att], *shape, halves[h])))
                    for h in ("learn", "holdout"))
            pairs += zip(p.attention_learned, a, b)
        for (family, setting), ma, mb in pairs:
            j, chance, na, nb = jaccard({k: v for k, v in ma.items() if k != "scores"},
                                        {k: v for k, v in mb.items() if k != "scores"})
            rows.append({"kind": FAMILIES[family].kind, "setting": setting.name, "source": context, "n_a": na,
                         "n_b": nb, "jaccard": j, "jaccard_chance": chance})
    _write(pd.DataFrame(rows, columns=COLUMNS), smk.output[0], log)


def _races(att: dict[str, Any]) -> tuple[Any, Any]:
    return att["white"], att["black"]


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
