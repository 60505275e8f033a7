"""Stage 3: bias per context (and per context x gender) -> ``results/tables/*.csv``.

Usable outcomes are winsorized within each context (pooled over both groups, at the
configured percentiles) before the metrics; anomalies count towards the anomaly rate
and, by kind, towards ``anomaly_<kind>`` columns.
"""


import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

from typing import Sequence

import numpy as np
import pandas as pd

from workflow_scripts.metrics import bias_summary, winsorize
from workflow_scripts.parsing import ANOMALY_KINDS
from workflow_scripts.seeds import derive_seed

METRIC_COLUMNS = ["n_white", "n_black", "mean_white", "mean_black", "diff", "smd", "smd_ci_low", "smd_ci_high",
                  "mwu_p", "anomaly_rate"]


def _one(df: pd.DataFrame, n_boot: int, seed: int) -> dict:
    w = df.loc[(df["race"] == "white") & ~df["anomaly"], "outcome_w"].to_numpy()
    b = df.loc[(df["race"] == "black") & ~df["anomaly"], "outcome_w"].to_numpy()
    row = bias_summary(w, b, int((df["race"] == "white").sum()), int((df["race"] == "black").sum()),
                       n_boot=n_boot, seed=seed)
    for k in ANOMALY_KINDS:
        row[f"anomaly_{k}"] = float((df["kind"] == k).mean()) if len(df) else np.nan
    return row


def summarize(answers: pd.DataFrame, by: Sequence[str] = ("context",), winsor: tuple[float, float] | None = (1, 99),
              n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per group in ``by`` with the bias metrics; winsorizing is per context."""
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
        row.update(_one(g, n_boot, derive_seed(seed, "bootstrap", *key)))
        rows.append(row)
    cols = list(by) + METRIC_COLUMNS + ["note"] + [f"anomaly_{k}" for k in ANOMALY_KINDS]
    return pd.DataFrame(rows, columns=cols)


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.files import read_parquet, write_csv
    from workflow_scripts.logs import setup_logging

    log = setup_logging(smk.log[0], "prunebias.summarize_baseline")
    need = ["context", "race", "gender", "anomaly", "kind", "outcome"]
    answers = pd.concat([read_parquet(p, need) for p in smk.input.answers], ignore_index=True)
    winsor = tuple(smk.params.winsorize) if smk.params.winsorize else None
    by_ctx = summarize(answers, ("context",), winsor, smk.params.n_boot, smk.params.seed)
    by_gender = summarize(answers, ("context", "gender"), winsor, smk.params.n_boot, smk.params.seed)
    write_csv(by_ctx, smk.output.by_context)
    write_csv(by_gender, smk.output.by_gender)
    log.info("bias for %d contexts: mean |SMD| %.3f", len(by_ctx), by_ctx["smd"].abs().mean())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
