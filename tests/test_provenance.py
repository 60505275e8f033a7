"""Provenance: what a run's figures depend on beyond the config, checked against
independent computations (hashlib over the files, git, the dtype rule)."""

import hashlib
import re

from conftest import REPO
from prunebias.workflow.code_version import git_commit
from prunebias.report.headline import headline_html, provenance_rows
from prunebias.workflow.provenance import provenance, weights_sha256


def test_weights_hash_is_the_sha256_of_the_safetensors_files(tiny_model_dir):
    h = hashlib.sha256()
    for f in sorted(tiny_model_dir.glob("*.safetensors")):
        h.update(f.read_bytes())
    assert weights_sha256(tiny_model_dir) == h.hexdigest()


def test_provenance_records_the_resolved_dtype_and_the_versions(tiny_model_dir):
    import torch

    rec = provenance(tiny_model_dir, "float32", "cpu")
    assert rec["dtype"] == "float32" and rec["dtype_config"] == "float32" and rec["device"] == "cpu"
    assert rec["torch"] == torch.__version__ and re.match(r"\d+\.\d+", rec["transformers"])
    auto = provenance(tiny_model_dir, "auto", "cpu")["dtype"]
    fast = rec["cpu_avx512_bf16"] or rec["cpu_amx"]
    assert auto == ("bfloat16" if fast else "float32")  # the rule that makes machines of one kind differ


def test_git_commit_names_the_checkout_or_says_unknown(tmp_path):
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", git_commit(REPO))
    assert git_commit(tmp_path) == "unknown"


def test_provenance_rows_carry_values_without_estimates():
    rows = provenance_rows({"dtype": "bfloat16", "commit": "abc"})
    assert [(r["section"], r["item"], r["note"]) for r in rows] == [("provenance", "dtype", "bfloat16"),
                                                                    ("provenance", "commit", "abc")]
    import pandas as pd

    assert "bfloat16" in headline_html(pd.DataFrame(rows))
