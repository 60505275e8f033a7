"""The README's default-run block is rendered from a run's tables, and the check sees a disagreement."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prunebias.report.readme_figures import BEGIN, END, main, render_block, splice, verdict

REPO = Path(__file__).resolve().parents[1]
CONTEXTS = ["purchase-house", "hiring-lawyer"]


def baseline(est: float) -> pd.DataFrame:
    return pd.DataFrame({"context": CONTEXTS, "log_smd": [est, est / 2], "log_smd_ci_low": [est - 0.3, -0.2],
                         "log_smd_ci_high": [est + 0.3, 0.3], "names_white": [32, 31], "names_black": [32, 32]})


def transfer(delta_abs: float, to_remove: bool) -> pd.DataFrame:
    rows = []
    for s in CONTEXTS:
        for t in CONTEXTS:
            rows.append({"scoring": "wanda", "source": s, "target": t, "names_eval": 32, "bias_to_remove": to_remove,
                         "delta_abs": delta_abs, "delta_abs_ci_low": delta_abs - 0.4,
                         "delta_abs_ci_high": delta_abs + 0.3, "delta_toward_zero": delta_abs if to_remove else None,
                         "delta_toward_zero_ci_low": delta_abs - 0.4 if to_remove else None,
                         "delta_toward_zero_ci_high": delta_abs + 0.3 if to_remove else None,
                         "effect_pruned": -0.3, "effect_pruned_ci_low": -0.6, "effect_pruned_ci_high": 0.05,
                         "delta": 0.1, "delta_ci_low": -0.2,
                         "delta_ci_high": 0.4, "delta_vs_random": -0.5, "delta_vs_random_ci_low": -0.9,
                         "delta_vs_random_ci_high": -0.1, "control_draws": 2, "controls_broken": 0,
                         "perplexity_ref": 35.04, "perplexity_pruned": 36.51, "perplexity_control": 37.0,
                         "anomaly_rate_ref": 0.10, "anomaly_rate_pruned": 0.12})
    # a race direction beside each Wanda row; head rows are not in the block
    rows += [{**r, "scoring": "direction", "delta_vs_random": -0.25, "perplexity_pruned": 35.2} for r in list(rows)]
    rows.append({**rows[0], "scoring": "attention", "delta_abs": 9.99})
    return pd.DataFrame(rows)


def headline(commit: str) -> pd.DataFrame:
    prov = {"commit": commit, "date": "2026-12-05T20:00:00+00:00", "dtype": "bfloat16", "device": "cpu",
            "cpu_amx": "True", "torch": "2.13.0+cpu"}
    return pd.DataFrame({"section": "provenance", "item": list(prov), "note": list(prov.values())})


def tables(commit: str = "abcdef0123") -> dict:
    return {"base": {"baseline": baseline(0.05), "transfer": transfer(0.0, False), "headline": headline(commit)},
            "plant": {"baseline": baseline(-1.0), "transfer": transfer(-0.6, True), "headline": headline(commit),
                      "recall": pd.DataFrame({"kind": ["neurons", "neurons", "directions"],
                                              "source": CONTEXTS + CONTEXTS[:1], "recall_planted": [0.5, 0.25, None],
                                              "recall_down_mass": [0.8, 0.6, 0.93],
                                              "pruned_fraction": [0.003, 0.002, None]})}}


def test_verdicts_are_read_off_the_cis():
    row = {"bias_to_remove": True, "source": "a", "target": "a", "delta_toward_zero_ci_low": -1.0,
           "delta_toward_zero_ci_high": -0.1,
           "delta_ci_low": -1.0, "delta_ci_high": 0.5}
    assert verdict(row) == "removed"
    assert verdict({**row, "target": "b"}) == "transferred"
    assert verdict({**row, "delta_toward_zero_ci_high": 0.1}) == "not shown (CI covers 0)"
    assert verdict({**row, "delta_toward_zero_ci_low": 0.1, "delta_toward_zero_ci_high": 0.5}) == "bias grew"
    assert verdict({**row, "bias_to_remove": False}) == "no bias to remove; no change"
    assert verdict({**row, "bias_to_remove": False, "delta_ci_low": 0.1}) == \
        "no bias to remove; the effect moved; no usable random control to compare"
    # an edit that breaks the model (the controls' criterion) is named beside the verdict
    costs = {"perplexity_ref": 35.0, "anomaly_rate_ref": 0.1, "anomaly_rate_pruned": 0.12}
    assert verdict({**row, **costs, "perplexity_pruned": 98.0}) == "removed; but the edit breaks the model (perplexity x2.8)"
    assert verdict({**row, **costs, "perplexity_pruned": 69.0}) == "removed"
    # by its answers: the measure that broke it is named, not a perplexity that did not move
    assert verdict({**row, **costs, "perplexity_pruned": 36.0, "anomaly_rate_pruned": 0.6}) == \
        "removed; but the edit breaks the model (60% of answers unusable, unpruned 10%)"
    # is the change the edit's own? its matched random controls decide (real - random)
    vs = {"delta_vs_random_ci_low": -0.8, "delta_vs_random_ci_high": 0.2}
    assert verdict({**row, **vs}) == "removed, no more than its random control"
    assert verdict({**row, **vs, "delta_vs_random_ci_high": -0.1}) == "removed"
    moved = {**row, **vs, "bias_to_remove": False, "delta_ci_low": 0.1}
    assert verdict(moved) == "no bias to remove; the effect moved, as under its random control"
    assert verdict({**moved, "delta_vs_random_ci_low": 0.05}) == \
        "no bias to remove; the effect moved, beyond its random control"
    # a row without usable answers under the edit has no CI: not estimable, not "moved"
    nan = float("nan")
    assert verdict({**row, "bias_to_remove": False, "delta_ci_low": nan, "delta_ci_high": nan}) == \
        "not estimable (too few usable answers)"


def test_block_shows_every_wanda_and_direction_row_with_its_ci_and_n():
    block = render_block(tables(), {"plant": "general plant"})
    assert "commit abcdef0 (2026-12-05), bfloat16 on cpu" in block
    assert "| plant (general plant) | -1.00 [-1.30, -0.70], n = 32 + 32 |" in block
    assert "**Wanda mask and race direction**" in block
    rows = [line for line in block.splitlines() if " -> " in line and "(n = " in line]
    assert len(rows) == 16 and "9.99" not in block  # 4 Wanda and 4 direction rows per model, no head row
    # each direction row follows the Wanda row of the same source and target
    assert "| plant | Wanda | purchase-house -> purchase-house (n = 32) | -0.60 [-1.00, -0.30] | " \
           "-0.30 [-0.60, +0.05] | -0.50 [-0.90, -0.10] | 35.0 / 36.5 / 37.0 | 0 of 2 | removed |\n" \
           "| plant | direction | purchase-house -> purchase-house (n = 32) | -0.60 [-1.00, -0.30] | " \
           "-0.30 [-0.60, +0.05] | -0.25 [-0.90, -0.10] | 35.0 / 35.2 / 37.0 | 0 of 2 | removed |" in block
    assert "signed: +0.10 [-0.20, +0.40]" in block  # no bias to remove: the signed change, not |effect|
    assert ("- plant, Wanda mask learned on hiring-lawyer: 0.25 of the entries, 0.60 of the write's mass "
            "(prunes 0.0020)") in block
    assert "- plant, race direction learned on purchase-house: 0.93 of the write's mass" in block


def test_without_directions_the_block_is_the_wanda_table():
    t = tables()
    for m in t.values():
        m["transfer"] = m["transfer"][m["transfer"]["scoring"] != "direction"]
    block = render_block(t, {"plant": "general plant"})
    assert "**Wanda mask** (" in block and "| direction |" not in block


def test_splice_replaces_only_the_block():
    readme = f"# title\ntext\n{BEGIN}\nold figures\n{END}\nmore\n"
    assert splice(readme, "new\n") == f"# title\ntext\n{BEGIN}\nnew\n{END}\nmore\n"
    with pytest.raises(ValueError, match="needs one"):
        splice("no markers", "new\n")


def test_check_fails_until_the_readme_agrees_with_the_run(tmp_path, capsys):
    (tmp_path / "config").mkdir()
    cfg = {"models": [{"name": "base", "source": "x"},
                      {"name": "plant", "plant": {"from": "base", "scope": "context", "contexts": ["hiring-lawyer"]}}]}
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    for model, t in tables().items():
        d = tmp_path / "results/tables" / model
        d.mkdir(parents=True)
        t["baseline"].to_csv(d / "baseline_bias.csv", index=False)
        t["transfer"].to_csv(d / "transfer.csv", index=False)
        t["headline"].to_csv(d / "headline.csv", index=False)
        if "recall" in t:
            t["recall"].assign(setting=["black_b15_w15_global", "sum_k10", "resid_d80_answer"]).to_csv(
                d / "planted_recall.csv", index=False)
    (tmp_path / "README.md").write_text(f"# x\n{BEGIN}\nfigures typed by hand\n{END}\n")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert main(["--write", "--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "figures typed by hand" not in text and "| plant (context plant: hiring-lawyer) |" in text
    assert "learned on hiring-lawyer" not in text  # a recall row of a head mask is not the Wanda mask's
    assert "race direction learned on purchase-house: 0.93" in text


def test_the_readme_block_names_a_commit_of_this_repository():
    """The shipped README has one block; where it names the commit it was measured on,
    that commit is in this repository's history (a fresh clone can check it out)."""
    readme = (REPO / "README.md").read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1
    block = readme.split(BEGIN)[1].split(END)[0]
    if "fresh clone of commit " not in block:
        pytest.skip("the README's block holds no run yet")
    commit = block.split("fresh clone of commit ")[1].split()[0]
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    got = subprocess.run(["git", "-C", str(REPO), "cat-file", "-t", commit], capture_output=True, text=True)
    assert got.stdout.strip() == "commit", commit


def test_the_comparison_shows_every_method_and_counts_its_rows():
    """make compare's block: every family's rows, and a summary per method counted from them."""
    from prunebias.report.readme_figures import ALL_METHODS
    t = tables()
    for m in t.values():
        m["recall"] = m.get("recall", pd.DataFrame()).copy()
    t["plant"]["recall"]["setting"] = ["black_b15_w15_global", "gradmlp_black_b15_w15_global", "resid_d95_answer"]
    block = render_block(t, {"plant": "general plant"}, ALL_METHODS, "make compare")
    assert block.startswith("Measured by `make compare` on")
    assert "**Every method**" in block and block.count("heads: as many per layer") == 1
    rows = [line for line in block.splitlines() if " -> " in line and "(n = " in line]
    assert len(rows) == 18  # 4 Wanda, 4 direction and 1 attention-head row per model
    assert "| plant | attention heads | purchase-house -> purchase-house (n = 32) |" in block
    summary = block.split("**By method**")[1]
    # plant: 2 home rows and 2 away rows per method, all CIs below 0; base: 4 rows without a bias
    # whose signed change covers 0; perplexity 36.51 / 35.04 = x1.04; no edit breaks the model
    assert "| Wanda | 2 of 2 | 2 of 2 | 4 of 4 | 0 of 4 | x1.04-1.04 | +2 to +2 points | 0 of 8 |" in summary
    assert "| direction | 2 of 2 | 2 of 2 | 4 of 4 | 0 of 4 | x1.00-1.00 | +2 to +2 points | 0 of 8 |" in summary
    assert "| attention heads | 1 of 1 | 0 of 0 | 1 of 1 | 0 of 1 |" in summary
    assert "- plant, gradient MLP-neuron mask learned on hiring-lawyer" not in block  # grad_mlp has no rows here
    assert "rises over x2 or its share of unusable answers by 50 percentage points" in block
    # a removal by an edit that makes 90% of the answers unusable is counted apart
    plant = t["plant"]["transfer"]
    broken = (plant["scoring"] == "attention").to_numpy()
    t["plant"]["transfer"] = plant.assign(anomaly_rate_pruned=plant["anomaly_rate_pruned"].where(~broken, 0.9))
    block = render_block(t, {"plant": "general plant"}, ALL_METHODS, "make compare")
    assert "| attention heads | 1 of 1 (0 with the model intact) | 0 of 0 | 1 of 1 | 0 of 1 |" in block
    assert "removed; but the edit breaks the model (90% of answers unusable, unpruned 10%)" in block
    t["plant"]["transfer"] = pd.concat([t["plant"]["transfer"],
                                        t["plant"]["transfer"].iloc[:1].assign(scoring="grad_mlp")])
    block = render_block(t, {"plant": "general plant"}, ALL_METHODS, "make compare")
    assert "- plant, gradient MLP-neuron mask learned on hiring-lawyer: 0.25 of the entries" in block


def test_compare_merges_its_configfile_and_writes_its_own_document(tmp_path):
    from prunebias.report.readme_figures import merged
    assert merged({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump({"models": [{"name": "plant", "source": "x"}]}))
    (tmp_path / "config/compare.yaml").write_text(yaml.safe_dump({"localization": {"heads": {"k": [10]}}}))
    d = tmp_path / "results/tables/plant"
    d.mkdir(parents=True)
    t = tables()["plant"]
    t["baseline"].to_csv(d / "baseline_bias.csv", index=False)
    t["transfer"].to_csv(d / "transfer.csv", index=False)
    t["headline"].to_csv(d / "headline.csv", index=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/comparison.md").write_text(f"# c\n{BEGIN}\n{END}\n")
    (tmp_path / "README.md").write_text(f"# r\n{BEGIN}\nuntouched\n{END}\n")
    args = ["--root", str(tmp_path), "--configfile", "config/compare.yaml", "--doc", "docs/comparison.md"]
    assert main([*args, "--check"]) == 1
    assert main([*args, "--write"]) == 0 and main([*args, "--check"]) == 0
    assert "| plant | attention heads |" in (tmp_path / "docs/comparison.md").read_text()
    assert "untouched" in (tmp_path / "README.md").read_text()
