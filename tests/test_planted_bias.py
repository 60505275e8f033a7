"""A bias planted by hand into a tiny model must be found, pruned, and removed.

tests/tiny_model.py: build_planted_model routes the surname "Washington" through two
known weights (layer 0 v_proj[0, 31] and o_proj[31, 0]) to make Black names answer 2/3
and White names 7/8. The whole workflow runs on it through Snakemake.
"""

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake, tiny_config, tiny_localization
from tiny_model import PLANTED, build_planted_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    model_dir = build_planted_model(tmp_path_factory.mktemp("planted") / "model")
    work = tmp_path_factory.mktemp("planted_wf")
    cfg = tiny_config(model_dir, samples_per_name=2, names_file="data/names/audit40.csv", use_surnames=True)
    cfg["contexts"] = ["purchase-bicycle", "purchase-car"]
    cfg["context_overrides"] = {c: {"range": [0, 100]} for c in cfg["contexts"]}
    cfg["localization"] = tiny_localization(
        batch_size=16, neurons={"directions": ["black"], "p": [[15, 15]]}, cross_fit=True,
        heads={"scores": ["sum"], "k": [2], "greedy": [2]}, pools={}, auto_pools=[],
        directions={"depths": [50], "positions": ["answer"]},
        attribution={"mlp_neurons": True, "patch_heads": [2], "grid_size": 8, "faithfulness_heads": 3,
                     "faithfulness_neurons": 3})
    cfg["evaluation"] = {"samples_per_name": 2, "random_controls": True, "random_draws": 2}
    run_snakemake(work, cfg)
    (work / "planted_config.yaml").write_text(yaml.safe_dump(cfg))
    return work


def test_baseline_shows_the_planted_bias(planted_run):
    base = pd.read_csv(planted_run / "results/tables/tiny/baseline_bias.csv").set_index("context")
    for ctx in ("purchase-bicycle", "purchase-car"):
        assert base.loc[ctx, "mean_white"] > 6.5 and base.loc[ctx, "mean_black"] < 3.5
        assert base.loc[ctx, "smd"] > 3 and base.loc[ctx, "smd_ci_low"] > 0
        assert base.loc[ctx, "p_perm"] < 0.01 and base.loc[ctx, "names_white"] == 20


def test_planted_weights_are_in_the_mask_of_both_folds(planted_run):
    """Cross-fitting: the mask file holds one mask per half of the names; each finds the
    plant on its own half, and mask_stability.csv compares the two (read from the file)."""
    from prunebias.methods.masks import jaccard, read_folds

    path = planted_run / "results/masks/tiny/neurons/black_b15_w15_global/purchase-bicycle.npz"
    folds = read_folds(path)
    assert len(folds) == 2
    learned = [set(f["learn_names"]) for f in folds[0].meta["folds"]]
    evaluated = [set(f["eval_names"]) for f in folds[0].meta["folds"]]
    assert learned[0] == evaluated[1] and learned[1] == evaluated[0] and not learned[0] & learned[1]
    assert len(learned[0] | learned[1]) == 40
    for mask in folds:
        for key, row, col in PLANTED:
            assert mask.arrays[key][row, col], key
        assert mask.meta["n_pruned"] < 0.2 * mask.meta["n_total"]
    stability = pd.read_csv(planted_run / "results/tables/tiny/mask_stability.csv").set_index(["kind", "setting", "source"])
    j = jaccard(*({k: v for k, v in m.arrays.items() if k != "scores"} for m in folds))[0]
    assert stability.loc[("neurons", "black_b15_w15_global", "purchase-bicycle"), "jaccard"] == pytest.approx(j)


def test_pruning_removes_the_bias_and_transfers_within_scenario(planted_run):
    from prunebias.methods.masks import read_mask

    t = pd.read_csv(planted_run / "results/tables/tiny/transfer.csv")
    neurons = t[(t.kind == "neurons") & (t.scoring == "wanda")].set_index(["source", "target"])
    same = neurons.loc[("purchase-bicycle", "purchase-bicycle")]
    assert same.level == "same_context"
    # paired against the unpruned reference on the held-out names, same prompts and seeds;
    # cross-fitted: every name is held out once (each fold's mask answers the other half)
    assert same.ref_significant and same.names_eval == 40 and same.folds == 2 and 0 < same.fold_jaccard <= 1
    answers = pd.read_parquet(planted_run / "results/eval/tiny/neurons/black_b15_w15_global/purchase-bicycle/"
                                            "purchase-bicycle.parquet")
    folds = read_mask(planted_run / "results/masks/tiny/neurons/black_b15_w15_global/purchase-bicycle.npz").meta["folds"]
    for k, fold in enumerate(folds):
        assert set(answers.loc[answers["fold"] == k, "name"]) == set(fold["eval_names"])
    assert same.effect_ref_ci_low > 3 and abs(same.smd_pruned) < 0.5 < 3 < same.smd_ref
    assert same.delta_abs_ci_high < 0 and same.bias_reduction > 0.8 and same.bias_reduction_ci_low > 0.5
    # the change toward 0 along the baseline bias (White answers more here: +1) is the signed change
    assert same.bias_to_remove and same.estimand == "change toward 0"
    assert same.delta_toward_zero == pytest.approx(same.delta) and same.delta_toward_zero_ci_high < 0
    other = neurons.loc[("purchase-bicycle", "purchase-car")]
    assert other.level == "same_scenario" and other.bias_reduction > 0.8
    # matched random masks of the same size leave the bias: the reduction is specific
    assert same.delta_vs_random_ci_high < 0 and same.control_draws == 2
    controls = pd.read_csv(planted_run / "results/tables/tiny/transfer_controls.csv")
    assert len(controls) == len(t) * 2
    # the Wanda mask holds both planted weights, so its controls (which exclude the real
    # weights) cannot: they all leave the bias. (A grad mask misses them, and a control of
    # it drawn from the same band may hit one by chance.)
    assert (controls[controls.setting == "black_b15_w15_global"].effect_pruned > 3).all()
    assert set(t.kind) == {"neurons", "heads", "directions"}
    # (neurons wanda and gradmlp, heads sum_k2, greedy_k2 and patch_k2, direction resid_d50_answer)
    # x 2 sources x 2 targets
    assert len(t) == 6 * 2 * 2
    # attribution patching finds the planted head, where the weight gradients are blind
    # (tests/test_attribution.py); the attention mask holds it too
    for setting in ("patch_k2", "sum_k2"):
        heads = read_mask(planted_run / f"results/masks/tiny/heads/{setting}/purchase-bicycle.npz").arrays["heads"]
        assert heads[0, 0] and heads.sum() == 2, setting
    greedy = t[(t.kind == "heads") & (t.setting == "greedy_k2")]
    assert len(greedy) == 4 and greedy.pruned_fraction.notna().all()
    stability = pd.read_csv(planted_run / "results/tables/tiny/mask_stability.csv")
    neuron_stability = stability[stability.kind == "neurons"]
    assert (neuron_stability.jaccard > neuron_stability.jaccard_chance).all()
    for png in ["transfer_neurons__black_b15_w15_global.png", "reduction_by_level.png", "baseline_forest.png"]:
        assert (planted_run / "results/plots/tiny" / png).stat().st_size > 5000
        assert (planted_run / "results/plots/tiny" / png.replace(".png", ".svg")).read_text().startswith("<?xml")
    assert not (planted_run / "results/plots/tiny/dose_response.png").exists()  # one dose per kind: nothing to draw


def test_editing_one_context_reruns_only_its_evaluations(planted_run, tmp_path):
    """On a finished run (copied, mtimes and metadata kept), an edit of purchase-car's
    prompt plans its reference and the evaluations whose target or mask source it is;
    the evaluation of purchase-bicycle's masks on purchase-bicycle is not planned."""
    import re
    work = tmp_path / "work"
    shutil.copytree(planted_run, work, symlinks=True)
    cfg = yaml.safe_load((work / "planted_config.yaml").read_text())  # the fixture's, not a later test's
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(run_snakemake(work, cfg, "-n"))
    cfg["context_overrides"]["purchase-car"]["answer_prefix"] = "I would offer $"
    out = run_snakemake(work, cfg, "-n").stdout
    jobs = re.findall(r"rule (evaluate_\w+):\n(?:    .*\n)*?    wildcards: ([^\n]+)", out)
    planned = {(rule, wc) for rule, wc in jobs}
    assert planned == {("evaluate_reference", "model=tiny, target=purchase-car"),
                       ("evaluate_pruned", "model=tiny, source=purchase-car, target=purchase-car"),
                       ("evaluate_pruned", "model=tiny, source=purchase-car, target=purchase-bicycle"),
                       ("evaluate_pruned", "model=tiny, source=purchase-bicycle, target=purchase-car")}, planned


def test_gradient_attribution_masks_run_through_the_workflow(planted_run):
    """gradmlp_ masks (whole MLP neurons within Wanda's MLP count) and patch_ head masks: the
    objective sees the planted bias and follows the sampled answers, and the masks go through
    matched controls, evaluation and the table. (The plant is in attention: the weight
    gradients are blind to it, test_attribution.py; patching finds its head, above.)"""
    import json

    from prunebias.methods.masks import read_mask

    for source in ("purchase-bicycle", "purchase-car"):
        wanda = read_mask(planted_run / f"results/masks/tiny/neurons/black_b15_w15_global/{source}.npz")
        grad = read_mask(planted_run / f"results/masks/tiny/neurons/gradmlp_black_b15_w15_global/{source}.npz")
        assert grad.meta["n_pruned"] <= sum(v for k, v in wanda.meta["counts"].items()
                                            if k.split(".")[-1] in ("gate_proj", "up_proj", "down_proj"))
        rows = grad.arrays["layers.0.gate_proj"].any(axis=1)  # whole neurons: gate, up rows and down column
        assert (grad.arrays["layers.0.gate_proj"][rows]).all() and grad.arrays["layers.0.down_proj"][:, rows].all()
        summary = json.loads((planted_run / f"results/attribution/tiny/{source}.json").read_text())
        obj = summary["contexts"][source]
        assert obj["B"] > 0.2  # White names' expected log answer is larger, as planted
        assert obj["agreement"]["spearman"] > 0.5  # the grid expectation follows the sampled answers
        faith = obj["faithfulness"]["head"]["units"]  # three heads ablated one at a time, predicted beside measured
        assert len(faith) == 3 and all(abs(h["measured"]) < 10 for h in faith)
        assert len(obj["faithfulness"]["neuron"]["units"]) == 3
        assert obj["B_ci_low"] <= obj["B"] <= obj["B_ci_high"] and obj["B_ci_low"] > 0  # name-bootstrap CI
    objective = pd.read_csv(planted_run / "results/tables/tiny/attribution_objective.csv")
    assert set(objective.source) == {"purchase-bicycle", "purchase-car"} and (objective.B_ci_low > 0).all()
    faith = pd.read_csv(planted_run / "results/tables/tiny/attribution_faithfulness.csv")
    assert len(faith) == 4 and set(faith.unit) == {"head", "neuron"} and faith.units.eq(3).all()
    units = pd.read_csv(planted_run / "results/tables/tiny/attribution_faithfulness_units.csv")
    assert len(units) == 12 and (planted_run / "results/plots/tiny/attribution_faithfulness.png").stat().st_size > 5000
    t = pd.read_csv(planted_run / "results/tables/tiny/transfer.csv")
    for setting, scoring in (("gradmlp_black_b15_w15_global", "grad_mlp"), ("patch_k2", "patching")):
        rows = t[t.setting == setting]
        assert len(rows) == 4 and (rows.scoring == scoring).all() and rows.delta_vs_random.notna().all()


def export_and_apply(planted_run, mask_id):
    """Export ``mask_id`` through the workflow and reload it with plain transformers: (export
    folder, exported model, its logits, the in-memory edited model's, the unedited model's)
    on one prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    from prunebias.methods.masks import read_mask
    from prunebias.model.modeling import load_model
    from prunebias.model.pruning import pruned

    cfg = yaml.safe_load((planted_run / "test_config.yaml").read_text())
    run_snakemake(planted_run, {**cfg, "export": [mask_id]})  # the default target now includes the export
    out = planted_run / "results/export/tiny" / mask_id
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    model, tok = load_model(planted_run / "results/model/tiny", "float32", "cpu", 1)
    ids = tok("We are hiring Jamal Washington. My offer is $", return_tensors="pt").input_ids
    with torch.no_grad(), pruned(model, read_mask(planted_run / f"results/masks/tiny/{mask_id}.npz")):
        want = model(ids).logits
    with torch.no_grad():
        return out, exported, exported(ids).logits, want, model(ids).logits


def test_exported_pruned_model_reloads_with_the_same_logits_and_its_evidence(planted_run):
    """The export target writes the pruned model as a Hugging Face directory: plain
    transformers reloads it, its logits equal the in-memory pruned model's, the planted
    weights are zero in it, and its card carries the mask's evaluation with CIs."""
    import torch

    out, exported, got, want, _ = export_and_apply(planted_run, "neurons/black_b15_w15_global/purchase-bicycle")
    assert torch.equal(got, want)
    weights = dict(exported.named_parameters())
    for key, row, col in PLANTED:
        layer, module = key.split(".")[1], key.split(".")[2]
        name = next(n for n in weights if f"layers.{layer}." in n and n.endswith(f"{module}.weight"))
        assert weights[name][row, col] == 0, key
    card = (out / "README.md").read_text()
    row = pd.read_csv(planted_run / "results/tables/tiny/transfer.csv").query(
        "kind == 'neurons' and setting == 'black_b15_w15_global' and source == 'purchase-bicycle'"
        " and target == 'purchase-bicycle'").iloc[0]
    lo, hi = row.delta_toward_zero_ci_low, row.delta_toward_zero_ci_high
    assert f"{row.delta_toward_zero:.2f} [{lo:.2f}, {hi:.2f}]" in card
    assert "purchase-car" in card and "black_b15_w15_global" in card and "Wilson" in card


def test_a_race_direction_finds_the_planted_dimension_and_removes_the_bias(planted_run):
    """Direction editing through the DAG (rules score_directions, draw_controls,
    evaluate_pruned): the Black - White mean residual at the answer position points along
    dimension 31, the only one the plant writes; projecting it out removes the bias at
    home and in the other context and costs nothing in perplexity. The tiny model answers
    through three hand-set dimensions of 32, so a random direction's projection takes a
    share of them and breaks it: every such control is flagged, none is averaged, and
    real - random is then undefined rather than a comparison with a broken model."""
    from prunebias.methods.masks import read_folds

    real = read_folds(planted_run / "results/masks/tiny/directions/resid_d50_answer/purchase-bicycle.npz")
    control = read_folds(planted_run / "results/masks/tiny/random_directions/resid_d50_answer/purchase-bicycle/draw0.npz")
    assert len(real) == len(control) == 2  # cross-fitted: one direction per fold, each with its control
    for fold, random in zip(real, control):
        v = fold.arrays["direction"]
        assert fold.meta["method"]["layer"] == 1 and fold.meta["method"]["family"] == "direction"
        assert abs(v[31]) / np.linalg.norm(v) > 0.8  # the planted dimension (chance: about 0.18)
        assert np.linalg.norm(random.arrays["direction"]) == pytest.approx(np.linalg.norm(v), rel=1e-5)
        assert abs(random.arrays["direction"][31]) / np.linalg.norm(v) < 0.8
    t = pd.read_csv(planted_run / "results/tables/tiny/transfer.csv")
    rows = t[t.kind == "directions"].set_index(["source", "target"])
    assert len(rows) == 4 and (rows.scoring == "direction").all() and (rows.ablation == "project").all()
    for source in ("purchase-bicycle", "purchase-car"):
        for target in ("purchase-bicycle", "purchase-car"):
            r = rows.loc[(source, target)]
            assert r.names_eval == 40 and r.delta_toward_zero_ci_high < 0, (source, target)
            assert abs(r.perplexity_pruned - r.perplexity_ref) < 0.01 * r.perplexity_ref
            assert r.controls_broken == r.control_draws == 2 and np.isnan(r.delta_vs_random)
    controls = pd.read_csv(planted_run / "results/tables/tiny/transfer_controls.csv")
    assert controls[controls.kind == "directions"].breaks_model.all()


def test_an_exported_direction_edit_reloads_with_the_same_logits(planted_run):
    """The edited model exports like a pruned one: plain transformers reloads it untied,
    with the logits of the in-memory edit, and the model card says what was edited."""
    import torch

    out, _, got, want, plain = export_and_apply(planted_run, "directions/resid_d50_answer/purchase-bicycle")
    assert torch.equal(got, want) and not torch.equal(got, plain)
    card = (out / "README.md").read_text()
    assert "projected out of every matrix that writes to the residual stream" in card and "layer 1" in card


def test_side_effects_of_a_mask_and_its_random_control(planted_run, tmp_path):
    """measure_side_effects runs the shipped lm-eval tasks on the unpruned model, the mask
    and its first matched random control; each difference is the paired mean over the same
    items (recomputed here from the per-item table) with a CI around it; the plot is drawn.
    A copy of the finished project in another folder plans nothing new (issue 26: the
    job's params held absolute task paths)."""
    import yaml

    cfg = yaml.safe_load((planted_run / "test_config.yaml").read_text())
    mask_id = "neurons/black_b15_w15_global/purchase-bicycle"
    cfg["side_effects"] = {"tasks": ["data/side_effects/number_sense.yaml", "data/side_effects/name_choice_race.yaml"],
                           "masks": [mask_id], "limit": 24}
    run_snakemake(planted_run, cfg, "results/tables/tiny/side_effects.csv", "results/plots/tiny/side_effects.png")
    table = pd.read_csv(planted_run / "results/tables/tiny/side_effects.csv", keep_default_na=False)
    control = f"random_{mask_id}/draw0"
    assert set(zip(table["task"], table["metric"], table["mask"])) == {
        (t, m, k) for t, m in [("number_sense", "acc"), ("name_choice_race", "unknown"), ("name_choice_race", "bias"),
                               ("number_sense", "loglik_right"), ("name_choice_race", "loglik_right")]
        for k in (mask_id, control)}
    assert (table.loc[table["mask"] == control, "control_of"] == mask_id).all()
    assert (table["n_items"] == 24).all()
    items = pd.read_parquet(planted_run / "results/side_effects/tiny/items.parquet")
    for _, row in table.iterrows():
        if row["metric"] == "loglik_right":  # from the per-item log-likelihoods of the right choice
            per = items[items["task"] == row["task"]].drop_duplicates(["model", "doc_id"])
            wide = per.pivot(index="doc_id", columns="model", values="target_loglik")
        else:
            per = items[(items["task"] == row["task"]) & (items["metric"] == row["metric"])]
            wide = per.pivot(index="doc_id", columns="model", values="value")
        assert row["unpruned"] == pytest.approx(wide["unpruned"].mean())
        assert row["difference"] == pytest.approx((wide[row["mask"]] - wide["unpruned"]).mean())
        assert row["difference_ci_low"] <= row["difference"] <= row["difference_ci_high"]
        # lm-eval's stderr of a mean: the items' SD / sqrt(n)
        assert row["unpruned_stderr"] == pytest.approx(wide["unpruned"].std(ddof=1) / len(wide) ** 0.5)
    assert (planted_run / "results/plots/tiny/side_effects.png").stat().st_size > 5000
    moved = tmp_path / "moved"
    shutil.copytree(planted_run, moved, symlinks=True)  # copy2: modification times are kept
    proc = run_snakemake(moved, cfg, "-n", "results/tables/tiny/side_effects.csv")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_what_was_pruned_counts_every_masks_entries(planted_run):
    """pruned_by_layer.csv (from the masks' meta) equals the masks' own arrays, counted
    here; both figures are drawn, as PNG and SVG."""
    import numpy as np

    from prunebias.methods.masks import read_mask

    table = pd.read_csv(planted_run / "results/tables/tiny/pruned_by_layer.csv")
    for (setting, source), part in table.groupby(["setting", "source"]):
        mask = read_mask(planted_run / f"results/masks/tiny/neurons/{setting}/{source}.npz")
        for r in part.itertuples():
            arr = mask.arrays[f"layers.{r.layer}.{r.module}"]
            assert (r.pruned, r.total) == (int(arr.sum()), arr.size)
        assert part["pruned"].sum() == sum(int(a.sum()) for k, a in mask.arrays.items() if k != "scores")
    assert np.allclose(table["percent"], 100 * table["pruned"] / table["total"])
    assert set(table["source"]) == {"purchase-bicycle", "purchase-car"}
    head = pd.read_csv(planted_run / "results/tables/tiny/headline.csv")
    assert {"baseline", "best mask"} <= set(head["section"])
    import json

    results = json.loads((planted_run / "results/tiny/results.json").read_text())
    numbers = head[head["section"] != "provenance"]
    assert len(results["results"]) == len(numbers) and results["config"]["seed"] == 20250211
    assert results["provenance"]["dtype"] == "float32" and results["provenance"]["commit"]
    t = pd.read_csv(planted_run / "results/tables/tiny/transfer.csv")
    best = head[(head["section"] == "best mask") & head["item"].str.startswith("neurons/")]
    same = t[(t.kind == "neurons") & (t.level == "same_context")]
    assert sorted(best["estimate"]) == sorted(same.groupby("scoring")["delta_toward_zero"].min())  # one per scoring
    for name in ("pruned_neurons", "pruned_heads"):
        assert (planted_run / f"results/plots/tiny/{name}.png").stat().st_size > 5000
        assert (planted_run / f"results/plots/tiny/{name}.svg").exists()


def test_the_report_opens_with_the_design_and_the_headline(planted_run):
    """snakemake --report renders the front page's Jinja with the config, and the headline
    table and the "what was pruned" figures are in it."""
    import yaml

    cfg = yaml.safe_load((planted_run / "test_config.yaml").read_text())
    run_snakemake(planted_run, cfg, "--report", "report.html")
    html = (planted_run / "report.html").read_text()
    assert "snakemake.config" not in html  # the front page's Jinja was rendered with the config
    assert "racial bias of <strong>tiny</strong>" in html
    assert "Design: contexts purchase-bicycle, purchase-car;" in html
    for item in ("results/tables/tiny/headline.csv", "results/tables/tiny/headline.html",
                 "results/plots/tiny/pruned_neurons.png", "results/plots/tiny/pruned_heads.png",
                 "results/tables/tiny/pruned_by_layer.csv"):
        assert f'"{item}": {{"name"' in html, item
