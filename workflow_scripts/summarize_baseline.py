"""Stage 3: bias per context (and per context x gender) -> ``results/tables/*.csv``.

Usable outcomes are winsorized within each context (pooled over both groups, at the
configured percentiles) before the metrics; anomalies count towards the anomaly rate
and, by kind, towards ``anomaly_<kind>`` columns. Inference is at the level of names
(``metrics.bias_summary``): cluster-bootstrap CIs, permutation p-values, power.
"""


import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

from typing import Sequence

import numpy as np
import pandas as pd

from workflow_scripts.metrics import BIAS_COLUMNS, bias_summary, winsorize
from workflow_scripts.parsing import ANOMALY_KINDS
from workflow_scripts.seeds import derive_seed


def summarize(answers: pd.DataFrame, by: Sequence[str] = ("context",), winsor: tuple[float, float] | None = (1, 99),
              n_boot: int = 1000, seed: int = 0, effect: str = "log_smd", n_perm: int = 2000) -> pd.DataFrame:
    """One row per group in ``by`` with the name-level bias metrics; winsorizing is per context."""
    df = answers.copy()
    df["outcome_w"] = df["outcome"].astype(float)
    if winsor is not None:
        for _, idx in df.groupby("context", sort=False).groups.items():
            vals = df.loc[idx, "outcome_w"].to_numpy()
            df.loc[idx, "outcome_w"] = winsorize(vals, winsor[0], winsor[1])
    rows = []
    for key, g in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row.update(bias_summary(g, effect, n_boot=n_boot, n_perm=n_perm, seed=derive_seed(seed, "bootstrap", *key),
                                value="outcome_w"))
        for k in ANOMALY_KINDS:
            row[f"anomaly_{k}"] = float((g["kind"] == k).mean()) if len(g) else np.nan
        rows.append(row)
    cols = list(by) + BIAS_COLUMNS + [f"anomaly_{k}" for k in ANOMALY_KINDS]
    return pd.DataFrame(rows, columns=cols)


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.files import read_parquet, write_csv
    from workflow_scripts.logs import setup_logging

    log = setup_logging(smk.log[0], "prunebias.summarize_baseline")
    need = ["context", "race", "gender", "name", "anomaly", "kind", "outcome"]
    answers = pd.concat([read_parquet(p, need) for p in smk.input.answers], ignore_index=True)
    winsor = tuple(smk.params.winsorize) if smk.params.winsorize else None
    opts = {"n_boot": smk.params.n_boot, "seed": smk.params.seed, "effect": smk.params.effect,
            "n_perm": smk.params.n_perm}
    by_ctx = summarize(answers, ("context",), winsor, **opts)
    by_gender = summarize(answers, ("context", "gender"), winsor, **opts)
    write_csv(by_ctx, smk.output.by_context)
    write_csv(by_gender, smk.output.by_gender)
    from workflow_scripts.plots import baseline_forest

    baseline_forest(by_ctx, by_gender, smk.params.effect, smk.output.forest)
    log.info("bias (%s) for %d contexts:\n%s", smk.params.effect, len(by_ctx),
             by_ctx[["context", smk.params.effect, f"{smk.params.effect}_ci_low", f"{smk.params.effect}_ci_high",
                     "p_perm", "mde"]].to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
