"""Every column the workflow writes into its main tables is documented in docs/outputs.md
(issue 24: a data dictionary that cannot fall behind the code)."""

import re

import pytest

from conftest import REPO
from prunebias.report import headline
from prunebias.stats import metrics, transfer
from prunebias.audit.parsing import ANOMALY_KINDS
from prunebias.planted.planted_recall import RECALL_COLUMNS

SECTIONS = {
    "baseline_bias.csv": ["context", *metrics.BIAS_COLUMNS, *(f"anomaly_{k}" for k in ANOMALY_KINDS)],
    "transfer.csv": transfer.COLUMNS,
    "transfer_controls.csv": transfer.CONTROL_COLUMNS,
    "headline.csv": headline.COLUMNS,
    "planted_recall.csv": ["kind", "setting", "source", "in_scope", *RECALL_COLUMNS, "pruned_fraction"],
}


def section(text: str, table: str) -> str:
    """The text of the section headed by ``table``'s path, up to the next heading."""
    start = text.index(f"### `results/tables/{{model}}/{table}`")
    end = text.find("\n#", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.parametrize("table", list(SECTIONS))
def test_every_column_is_documented(table):
    text = section((REPO / "docs/outputs.md").read_text(), table)
    named = set(re.findall(r"`([A-Za-z0-9_]+)`", text))
    # X with `_ci_low` / `_ci_high` beside it is documented once, as X (the page says so)
    missing = [c for c in SECTIONS[table] if re.sub(r"_ci_(low|high)$", "", c) not in named]
    assert not missing, f"docs/outputs.md, section {table}, lacks {missing}"
