"""The notebook API (``import prunebias``): a mask applied to any loaded Hugging Face model,
a cache read back, the bias table of a data frame of answers."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import prunebias


def test_import_is_light():
    """``import prunebias`` must not pull in torch (the Snakefile imports the package at parse time)."""
    import subprocess
    import sys

    code = "import sys, prunebias, prunebias.workflow.plan, prunebias.audit.contexts; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_exported_name_resolves():
    """``prunebias.X`` for every name of ``__all__`` (lazy exports name their module: a moved
    class must move here too)."""
    for name in prunebias.__all__:
        assert getattr(prunebias, name).__name__ in (name, "summarize"), name


def test_pruned_applies_a_mask_file_to_a_plain_transformers_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    w = model.model.layers[1].mlp.down_proj.weight
    keep = w.detach().clone()
    arr = np.zeros(tuple(w.shape), dtype=bool)
    arr[0, :3] = arr[2, 5] = True
    path = tmp_path / "m.npz"
    prunebias.write_mask(path, "neurons", {}, {"layers.1.down_proj": arr})
    ids = torch.tensor([[1, 5, 7, 9]])
    before = model(input_ids=ids).logits
    with prunebias.pruned(model, path) as n:
        assert n == 4
        assert (w[torch.from_numpy(arr)] == 0).all() and torch.equal(w[~torch.from_numpy(arr)],
                                                                      keep[~torch.from_numpy(arr)])
        during = model(input_ids=ids).logits
    assert torch.equal(w, keep) and torch.equal(model(input_ids=ids).logits, before)
    assert not torch.equal(during, before)
    mask = prunebias.read_mask(path)
    assert mask.kind == "neurons" and mask.meta["n_pruned"] == 4


def test_read_cache_filters_names_and_columns(tmp_path):
    df = pd.DataFrame({"row": [0, 1, 2], "name": ["Amy", "Jamal", "Amy"], "race": ["white", "black", "white"],
                       "sumsq": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]})
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pandas(df), path)
    got = prunebias.read_cache(path, ["row", "sumsq"], names=["Amy"])
    assert list(got.columns) == ["row", "sumsq"] and got["row"].tolist() == [0, 2]
    norms = np.sqrt(np.stack(got["sumsq"]).sum(0))  # the Wanda norms of that subset, by hand
    assert norms == pytest.approx([np.sqrt(1 + 5), np.sqrt(2 + 6)])
    assert len(prunebias.read_cache(path)) == 3


def test_bias_table_of_a_data_frame_of_answers():
    rng = np.random.default_rng(0)
    rows = [{"context": "purchase-car", "race": race, "gender": "woman", "name": f"{race}{i}", "anomaly": False,
             "answer_kind": "ok", "outcome": float(rng.normal(110 if race == "white" else 100, 5))}
            for race in ("white", "black") for i in range(8) for _ in range(3)]
    table = prunebias.bias_table(pd.DataFrame(rows), n_boot=200, n_perm=200, effect="diff")
    assert len(table) == 1 and table.loc[0, "names_white"] == 8
    d = pd.DataFrame(rows)
    by_hand = d[d.race == "white"].outcome.mean() - d[d.race == "black"].outcome.mean()
    # winsorized at the 1st/99th percentiles: within a hair of the raw difference
    assert table.loc[0, "diff"] == pytest.approx(by_hand, abs=0.5) and table.loc[0, "diff_ci_low"] > 0


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        prunebias.no_such_thing  # noqa: B018
