"""Side effects on lm-eval tasks: the paired statistics against hand computations, the
local task files' checks, and lm-eval on the tiny model (pruned and unpruned) against
log-likelihoods computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from prunebias.errors import ConfigError
from prunebias.report.side_effects import (check_task_file, data_files, name_choice_metrics, paired_difference,
                                    side_effect_table)

ITEMS = [("Which is larger: 3 or 30?", ["3", "30"], 1), ("What is 2 + 2?", ["4", "5", "22"], 0),
         ("Which costs more: a house or a pencil?", ["a house", "a pencil"], 0),
         ("What is 10 + 5?", ["105", "15"], 1), ("Which is smaller: 7 or 70?", ["7", "70"], 0),
         ("What is 1 + 1?", ["2", "11"], 0)]


def write_task(folder: Path, name: str = "tiny_mc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.jsonl").open("w") as fh:
        for i, (q, choices, label) in enumerate(ITEMS):
            fh.write(json.dumps({"question": q, "choices": choices, "label": label, "cluster": i // 2}) + "\n")
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {name}.jsonl\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"Question: {{question}}\\nAnswer:\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{label}}\"\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    return folder / f"{name}.yaml"


def test_paired_difference_is_the_mean_item_difference_with_a_cluster_bootstrap():
    base = pd.Series([1, 0, 1, 1, 0, 0, 1, 1], dtype=float)
    pruned = pd.Series([0, 0, 1, 0, 0, 1, 0, 1], dtype=float)
    clusters = pd.Series(["a", "a", "b", "b", "c", "c", "d", "d"])
    est, lo, hi = paired_difference(base, pruned, clusters, n_boot=4000, seed=1)
    assert est == pytest.approx((pruned - base).mean())  # -2/8
    # the bootstrap can only reach means of resampled clusters: the extremes are the worst
    # and best cluster (a: -0.5, c: +0.5)
    assert -0.5 <= lo < est < hi <= 0.5
    same = paired_difference(base, base + 0.25, clusters)
    assert same == pytest.approx((0.25, 0.25, 0.25))


def test_clusters_widen_the_interval_when_items_of_a_cluster_agree():
    """Eight pairs of identical items: resampling pairs must not be narrower than
    resampling 16 independent items would be (the pseudo-replication a referee flags)."""
    rng = np.random.default_rng(0)
    d = np.repeat(rng.choice([-1.0, 0.0, 1.0], size=8), 2)
    base = pd.Series(np.zeros(16))
    paired = paired_difference(base, pd.Series(d), pd.Series(np.repeat(np.arange(8), 2)), n_boot=4000)
    naive = paired_difference(base, pd.Series(d), pd.Series(np.arange(16)), n_boot=4000)
    assert paired[2] - paired[1] > 1.2 * (naive[2] - naive[1])


def test_name_choice_metrics_score_bbq_style():
    doc = {"label": 2, "stereotyped": 1, "anti_stereotyped": 0}
    assert name_choice_metrics(doc, [(-3.0, False), (-1.0, True), (-2.0, False)]) == {"unknown": 0.0, "bias": 1.0}
    assert name_choice_metrics(doc, [(-1.0, True), (-3.0, False), (-2.0, False)]) == {"unknown": 0.0, "bias": -1.0}
    assert name_choice_metrics(doc, [(-3.0, False), (-2.0, False), (-1.0, True)]) == {"unknown": 1.0, "bias": 0.0}


def test_shipped_tasks_pass_their_checks_and_are_balanced():
    for name in ("number_sense", "name_choice_race"):
        path = REPO / "data/side_effects" / f"{name}.yaml"
        cfg = check_task_file(path, "test")
        assert cfg["task"] == name and all(Path(f).is_file() for f in data_files(path, cfg))
    rows = pd.read_json(REPO / "data/side_effects/name_choice_race.jsonl", lines=True)
    assert (rows["label"] == 2).all() and rows["choices"].map(lambda c: c[2] == "Cannot be determined").all()
    # each polarity has the White name first as often as the Black name
    first_white = rows.apply(lambda r: r["choices"][0] == r["white"], axis=1)
    assert first_white.groupby(rows["polarity"]).mean().tolist() == [0.5, 0.5]
    stereo = rows.apply(lambda r: r["choices"][r["stereotyped"]], axis=1)
    assert (stereo == rows["black"]).groupby(rows["polarity"]).mean().to_dict() == {"negative": 1.0, "positive": 0.0}


@pytest.mark.parametrize("write,message", [
    (lambda d: d / "none.yaml", "not found"),
    (lambda d: (d / "t.yaml").write_text("- a list\n") and d / "t.yaml", "no 'task:' name"),
    (lambda d: (d / "t.yaml").write_text("task: t\ndataset_kwargs:\n  data_files:\n    test: gone.jsonl\n")
     and d / "t.yaml", "gone.jsonl"),
    (lambda d: (d / "t.yaml").write_text("task: [unclosed\n") and d / "t.yaml", "not valid YAML"),
])
def test_bad_task_files_get_an_error_naming_them(tmp_path, write, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        check_task_file(write(tmp_path), "config: side_effects.tasks")


def _choice_logprob(model, tok, context: str, continuation: str) -> float:
    """Sum of log p(continuation tokens | context), encoded as context + continuation."""
    import torch

    ctx = tok(context, add_special_tokens=False).input_ids
    whole = tok(context + continuation, add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return float(sum(logp[i - 1, whole[i]] for i in range(len(ctx), len(whole))))


def test_lm_eval_on_the_tiny_model_matches_hand_computed_choices(tmp_path, tiny_model):
    """The unpruned and a pruned model answer a local task; each item's accuracy equals the
    argmax of log-likelihoods computed by hand with the same model (and, for the pruned
    one, the same mask applied); the table pairs them."""
    from prunebias.methods.masks import Mask
    from prunebias.model.pruning import pruned
    from prunebias.report.side_effects import evaluate_models, higher_is_better, load_tasks

    model, tok = tiny_model
    tasks = load_tasks([str(write_task(tmp_path / "tasks"))])
    assert list(tasks) == ["tiny_mc"]
    mask = Mask(meta={"kind": "neurons"}, arrays={
        f"layers.{i}.down_proj": np.ones(tuple(layer.mlp.down_proj.weight.shape), bool)
        for i, layer in enumerate(model.model.layers)})
    items, scores = evaluate_models(model, tok, tasks, {"every_down_proj": mask}, "q_rows", batch_size=4)

    def hand() -> tuple[list[float], list[float]]:
        lls = [[_choice_logprob(model, tok, f"Question: {q}\nAnswer:", f" {c}") for c in choices]
               for q, choices, _ in ITEMS]
        return ([float(np.argmax(ll) == label) for ll, (_, _, label) in zip(lls, ITEMS)],
                [ll[label] for ll, (_, _, label) in zip(lls, ITEMS)])

    acc = items[items["metric"] == "acc"]
    got = acc.pivot(index="doc_id", columns="model", values="value")
    ll = acc.pivot(index="doc_id", columns="model", values="target_loglik")
    want_acc, want_ll = hand()
    assert got["unpruned"].tolist() == want_acc
    assert ll["unpruned"].to_numpy() == pytest.approx(want_ll, abs=1e-3)
    with pruned(model, mask):
        want_acc, pruned_ll = hand()
    assert got["every_down_proj"].tolist() == want_acc
    assert ll["every_down_proj"].to_numpy() == pytest.approx(pruned_ll, abs=1e-3)
    assert np.abs(np.subtract(pruned_ll, want_ll)).max() > 0.1  # the mask was applied: likelihoods moved
    table = side_effect_table(items, scores, {"every_down_proj": None}, higher_is_better(tasks), n_boot=200)
    assert list(zip(table["metric"], table["n_items"])) == [("acc", len(ITEMS)), ("loglik_right", len(ITEMS))]
    moved = table.iloc[1]  # the right choice's log-likelihood, the mask's change of it paired by item
    assert moved["difference"] == pytest.approx(np.mean(np.subtract(pruned_ll, want_ll)), abs=1e-3)
    assert moved["unpruned"] == pytest.approx(np.mean(want_ll), abs=1e-3)
    row = table.iloc[0]
    assert (row["task"], row["metric"], row["n_items"]) == ("tiny_mc", "acc", len(ITEMS))
    assert row["unpruned"] == pytest.approx(got["unpruned"].mean())
    assert row["difference"] == pytest.approx(got["every_down_proj"].mean() - got["unpruned"].mean())
    assert row["difference_ci_low"] <= row["difference"] <= row["difference_ci_high"]


def test_an_uncached_lm_eval_dataset_stops_with_its_name(monkeypatch, tmp_path):
    from prunebias.report.side_effects import load_tasks

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache") as err:
        load_tasks(["arc_easy"])
    assert "arc_easy" in str(err.value) and "allenai/ai2_arc" in str(err.value)
    with pytest.raises(ConfigError, match="is not an lm-eval task"):
        load_tasks(["no_such_task_xyz"])
