"""The headline table copies numbers from the workflow's tables: checked against them."""

import pandas as pd

from prunebias.report.headline import headline, headline_html


def test_headline_picks_the_largest_same_context_reduction_per_method_and_says_it_was_selected():
    base = pd.DataFrame([{"context": "c1", "log_smd": -0.1, "log_smd_ci_low": -0.4, "log_smd_ci_high": 0.2,
                          "names_white": 16, "names_black": 16, "p_perm": 0.5, "mde": 0.4}])
    rows = []
    for kind, scoring, setting in [("neurons", "wanda", "b15"), ("heads", "attention", "k10")]:
        for source, target, delta in [("c1", "c1", -0.2), ("c2", "c2", -0.5), ("c1", "c2", -0.9)]:
            rows.append({"kind": kind, "scoring": scoring, "setting": setting, "source": source, "target": target,
                         "level": "same_context" if source == target else "other_scenario", "effect": "log_smd",
                         "names_eval": 32, "delta_abs": delta, "delta_abs_ci_low": delta - 0.3,
                         "delta_abs_ci_high": delta + 0.3, "delta_toward_zero": delta,
                         "delta_toward_zero_ci_low": delta - 0.3, "delta_toward_zero_ci_high": delta + 0.3,
                         "delta_vs_random": 0.1, "delta_vs_random_ci_low": -0.2,
                         "delta_vs_random_ci_high": 0.4, "bias_reduction": None, "underpowered": True})
    side = pd.DataFrame([
        {"task": "t", "metric": "acc", "mask": "neurons/b15/c2", "control_of": "", "n_items": 10, "unpruned": 0.5,
         "difference": -0.1, "difference_ci_low": -0.3, "difference_ci_high": 0.1},
        {"task": "t", "metric": "acc", "mask": "random_neurons/b15/c2/draw0", "control_of": "neurons/b15/c2",
         "n_items": 10, "unpruned": 0.5, "difference": 0.0, "difference_ci_low": -0.2, "difference_ci_high": 0.2}])
    table = headline(base, pd.DataFrame(rows), "log_smd", side)
    assert table["section"].tolist() == ["baseline", "best mask", "best mask", "side effect"]
    assert table.loc[0, "n"] == 32 and table.loc[0, "estimate"] == -0.1
    best = table[table["section"] == "best mask"].set_index("item")
    # -0.9 is a transfer to another context, not a same-context row: -0.5 (source c2) is the best
    assert best["estimate"].tolist() == [-0.5, -0.5]
    assert set(best.index) == {"heads/k10/c2", "neurons/b15/c2"}
    assert best["note"].str.contains("selected after the fact").all()
    assert best["note"].str.contains(r"real - random 0.10 \[-0.20, 0.40\]").all()
    html = headline_html(table)
    assert "<table" in html and "-0.5 [-0.8, -0.2]" in html and "heads/k10/c2" in html
    effect = table[table["section"] == "side effect"].iloc[0]
    assert (effect["estimate"], effect["n"]) == (-0.1, 10) and "random control 0.000" in effect["note"]


def _same_context(bias: dict) -> pd.DataFrame:
    return pd.DataFrame([{"kind": "neurons", "scoring": "wanda", "setting": "b15", "source": c, "target": c,
                          "level": "same_context", "effect": "log_smd", "names_eval": 32, "delta_abs": d,
                          "delta_abs_ci_low": d - 0.3, "delta_abs_ci_high": d + 0.3, "delta_toward_zero": d,
                          "delta_toward_zero_ci_low": d - 0.3, "delta_toward_zero_ci_high": d + 0.3,
                          "delta_vs_random": 0.0,
                          "bias_reduction": None, "underpowered": True, "bias_to_remove": bias[c]}
                         for c, d in [("c1", -0.2), ("c2", -0.6)]])


def test_the_best_mask_is_chosen_only_where_there_is_a_bias_to_remove():
    """c2's larger 'reduction' is of a bias that was never established: c1's is chosen."""
    from prunebias.report.headline import best_mask_rows

    rows = best_mask_rows(_same_context({"c1": True, "c2": False}))
    assert [(r["item"], r["estimate"]) for r in rows] == [("neurons/b15/c1", -0.2)]
    none = best_mask_rows(_same_context({"c1": False, "c2": False}))
    assert len(none) == 1 and none[0]["measure"] == "no bias to remove" and none[0]["estimate"] != none[0]["estimate"]


def test_bias_direction_reads_the_baseline_ci():
    from prunebias.stats.transfer import bias_direction

    base = pd.DataFrame({"context": ["a", "b", "c"], "log_smd_ci_low": [0.1, -0.5, -0.9],
                         "log_smd_ci_high": [0.6, 0.3, -0.2]})
    assert bias_direction(base, "log_smd") == {"a": 1, "b": 0, "c": -1}


def test_results_json_holds_the_headline_numbers_config_and_provenance():
    """results/{model}/results.json: every non-provenance headline row as written, NaN as
    null (valid JSON), beside the config and the provenance record."""
    import json
    import math

    from prunebias.report.headline import results_record

    table = pd.DataFrame([
        {"section": "baseline", "item": "c1", "measure": "log_smd", "estimate": -0.5, "ci_low": -0.9, "ci_high": -0.1,
         "n": 64, "note": "names"},
        {"section": "best mask", "item": "neurons/b15/c1", "measure": "no bias to remove", "estimate": math.nan,
         "ci_low": math.nan, "ci_high": math.nan, "n": None, "note": ""},
        {"section": "provenance", "item": "dtype", "measure": "", "estimate": math.nan, "ci_low": math.nan,
         "ci_high": math.nan, "n": None, "note": "bfloat16"}])
    rec = results_record("m", table, {"dtype": "bfloat16", "commit": "abc"}, {"seed": 1})
    text = json.dumps(rec, allow_nan=False)  # raises on NaN
    back = json.loads(text)
    assert back["model"] == "m" and back["config"] == {"seed": 1} and back["provenance"]["commit"] == "abc"
    assert [r["item"] for r in back["results"]] == ["c1", "neurons/b15/c1"]
    assert back["results"][0]["estimate"] == -0.5 and back["results"][1]["estimate"] is None


def test_ground_truth_judges_a_context_plant_at_home_and_outside_against_its_random_controls():
    """At home: removed when the change toward 0 lies below 0. Outside: contained, unless
    the mask moved the effect beyond its matched random controls (signed real - random)."""
    from prunebias.report.headline import ground_truth_rows

    def row(source, target, delta, vs, bias=False):
        return {"kind": "neurons", "setting": "b15", "source": source, "target": target, "names_eval": 64,
                "bias_to_remove": bias, "effect_ref": 0.1, "effect_ref_ci_low": -0.2, "effect_ref_ci_high": 0.4,
                "effect_pruned": 0.2, "effect_pruned_ci_low": 0.0, "effect_pruned_ci_high": 0.5,
                "delta": delta[0], "delta_ci_low": delta[1], "delta_ci_high": delta[2],
                "delta_toward_zero": delta[0], "delta_toward_zero_ci_low": delta[1],
                "delta_toward_zero_ci_high": delta[2],
                "delta_vs_random": vs[0], "delta_vs_random_ci_low": vs[1], "delta_vs_random_ci_high": vs[2]}

    nan = float("nan")
    transfer = pd.DataFrame([
        row("home", "home", (-0.6, -0.9, -0.3), (-0.5, -0.9, -0.2), True),
        row("home", "away", (0.37, 0.07, 0.71), (0.16, -0.29, 0.52)),
        row("home", "other", (0.37, 0.07, 0.71), (0.45, 0.10, 0.83)),
        row("home", "quiet", (0.1, -0.2, 0.4), (0.5, 0.2, 0.8)),
        row("home", "broken", (0.4, 0.1, 0.7), (nan, nan, nan)),
        row("home", "own", (-0.5, -0.8, -0.2), (-0.4, -0.7, -0.1), True)])
    record = {"scope": "context", "contexts": ["home"]}
    notes = {r["item"].split(" -> ")[1]: (r["measure"], r["estimate"], r["note"])
             for r in ground_truth_rows(transfer, pd.DataFrame(), record)}
    assert notes["home"][2].startswith("removed (context plant)")
    assert notes["away"][1] == 0.37 and "change of the effect" in notes["away"][0]
    assert notes["away"][2].startswith("contained: the effect moved, as under its random control")
    assert notes["other"][2].startswith("not contained: the effect moved, beyond its random control")
    assert notes["quiet"][2].startswith("contained: no change, as planted")  # the change covers 0: controls not asked
    assert notes["broken"][2].startswith("the effect moved; no usable random control to compare")
    # a target with the unpruned model's own bias: judged as a removal, not as containment
    assert notes["own"][2].startswith("nothing planted here, yet the baseline shows a bias: removed")
