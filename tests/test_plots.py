"""Figures are reproducible: the same table draws the same bytes (reruns stay byte-identical)."""

import numpy as np
import pandas as pd

from prunebias.report.plots import reduction_by_level


def test_level_plot_is_byte_identical_on_a_rerun(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"kind": k, "scoring": "wanda" if k == "neurons" else "attention", "level": lv, "source": "s", "target": f"t{i}",
             "delta_toward_zero": rng.normal(), "delta_vs_random": rng.normal()}
            for k in ("neurons", "heads") for lv in ("same_context", "other_scenario") for i in range(4)]
    table = pd.DataFrame(rows)
    np.random.seed(1)
    reduction_by_level(table, tmp_path / "a.png")
    np.random.seed(2)  # a different global state must not change the jitter
    reduction_by_level(table, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()  # the vector twin too


def test_level_plot_names_the_papers_level_numbers(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from prunebias.report import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig))
    rows = [{"kind": "neurons", "scoring": "wanda", "level": lv, "source": "s", "target": f"t{i}", "delta_toward_zero": 0.1 * i,
             "delta_vs_random": 0.0} for lv in ("same_context", "same_scenario", "other_scenario") for i in range(3)]
    plots.reduction_by_level(pd.DataFrame(rows), tmp_path / "x.png")
    labels = [t.get_text() for t in seen[0].axes[0].get_xticklabels()]
    assert labels == ["1: same_context", "2: same_scenario", "3: other_scenario"]
    plt.close("all")


def test_level_plot_draws_each_row_with_its_own_ci_and_counts_from_the_data(tmp_path, monkeypatch):
    """One error bar per row (its own name CI), rows without a bias to remove left out,
    and titles that count what the rows show."""
    import matplotlib.pyplot as plt

    from prunebias.report import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig))
    rows = [{"kind": "neurons", "scoring": "wanda", "level": "same_context", "source": "a", "target": "a", "bias_to_remove": True,
             "delta_toward_zero": -0.6, "delta_toward_zero_ci_low": -1.0, "delta_toward_zero_ci_high": -0.2,
             "delta_vs_random": -0.3,
             "delta_vs_random_ci_low": -0.7, "delta_vs_random_ci_high": 0.1},
            {"kind": "neurons", "scoring": "wanda", "level": "other_scenario", "source": "a", "target": "b", "bias_to_remove": True,
             "delta_toward_zero": -0.1, "delta_toward_zero_ci_low": -0.5, "delta_toward_zero_ci_high": 0.3,
             "delta_vs_random": -0.4,
             "delta_vs_random_ci_low": -0.8, "delta_vs_random_ci_high": -0.1},
            {"kind": "neurons", "scoring": "wanda", "level": "other_scenario", "source": "a", "target": "c", "bias_to_remove": False,
             "delta_toward_zero": -9.0, "delta_toward_zero_ci_low": -9.5, "delta_toward_zero_ci_high": -8.5,
             "delta_vs_random": -9.0,
             "delta_vs_random_ci_low": -9.5, "delta_vs_random_ci_high": -8.5}]
    plots.reduction_by_level(pd.DataFrame(rows), tmp_path / "x.png")
    left, right = seen[0].axes
    assert left.get_title() == "bias toward 0: pruned - reference:\n1 of 2 rows' CIs below 0"
    assert right.get_title() == "bias toward 0: real mask - matched random:\n1 of 2 rows' CIs below 0"
    assert "1 rows with no bias to remove left out" in seen[0]._suptitle.get_text()
    ys = sorted(float(y) for line in left.get_lines() for y in line.get_ydata() if len(line.get_ydata()) == 1)
    assert -9.0 not in ys and -0.6 in ys and -0.1 in ys  # the no-bias row is not drawn
    low, high = left.get_ylim()
    assert low <= -1.0 and high >= 0.3  # the CIs are drawn, not only the points
    plt.close("all")


def test_dose_response_has_the_unpruned_line_in_every_legend(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from prunebias.report import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig))
    rows = [{"kind": "neurons", "scoring": "wanda", "level": "same_context", "p_black": p, "dose": p, "k": np.nan,
             "target": f"t{i}", "delta_toward_zero": -0.01 * p, "perplexity_pruned": 30 + p, "perplexity_ref": 30.0}
            for p in (15, 40) for i in range(3)]
    # a family without a dose (gradient neurons take Wanda's p_black as a budget) is left out
    rows += [{**r, "scoring": "grad_mlp", "dose": np.nan} for r in rows]
    plots.dose_response(pd.DataFrame(rows), tmp_path / "d.png")
    neuron_axes = [seen[0].axes[0], seen[0].axes[2]]  # the neuron column: |bias| and perplexity
    for ax in neuron_axes:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "unpruned" in labels and "grad_mlp" not in labels
    plt.close("all")


def test_heatmap_says_no_bias_where_there_is_none_and_counts_its_cells_in_the_title(tmp_path, monkeypatch):
    import matplotlib.axes

    from prunebias.report import plots

    rows = [{"kind": "neurons", "setting": "b15", "source": s, "target": t, "effect": "log_smd",
             "delta_toward_zero": d, "delta_toward_zero_ci_low": d - 0.1, "delta_toward_zero_ci_high": d + 0.1,
             "underpowered": False,
             "bias_to_remove": t == "a"} for s, t, d in [("a", "a", -0.5), ("a", "b", -0.4), ("b", "a", 0.05),
                                                        ("b", "b", -0.3)]]
    titles, texts = [], []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, **kw: titles.append(t))
    real_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text",
                        lambda self, x, y, s, *a, **kw: (texts.append(s), real_text(self, x, y, s, *a, **kw))[1])
    plots.heatmap(pd.DataFrame(rows), "neurons", "b15", ["a", "b"], tmp_path / "h.png")
    assert "1 of 2 cells with a bias smaller, 0 larger" in titles[0] and "2 of 4 with no bias to remove" in titles[0]
    assert texts.count("no bias") == 2 and "-0.50*" in texts and "0.05" in texts


def test_side_effects_plot_splits_rates_from_loglik_and_says_when_there_is_no_bias(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from prunebias.report import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig))
    rows = []
    for mask, control_of in [("neurons/s/a", ""), ("random_neurons/s/a/draw0", "neurons/s/a")]:
        for metric in ("acc", "loglik_right"):
            rows.append({"mask": mask, "control_of": control_of, "task": "t", "metric": metric, "difference": -0.1,
                         "difference_ci_low": -0.2, "difference_ci_high": 0.0, "higher_is_better": metric == "acc"})
    transfer = pd.DataFrame([{"kind": "neurons", "setting": "s", "source": "a", "method": "neurons", "level_number": 1,
                              "bias_reduction": np.nan, "bias_reduction_ci_low": np.nan,
                              "bias_reduction_ci_high": np.nan}])
    plots.side_effects_plot(pd.DataFrame(rows), transfer, tmp_path / "s.png")
    titles = [ax.get_title() for ax in seen[0].axes]
    assert "Side effects on lm-eval tasks: rates and accuracies" in titles
    assert "Side effects on lm-eval tasks: log-likelihoods (nats)" in titles
    assert len(seen[0].axes) == 2  # no empty right panel: the title says why there is none
    assert "No mask's own context has an established bias" in seen[0]._suptitle.get_text()
    biased = transfer.assign(bias_reduction=0.4, bias_reduction_ci_low=0.1, bias_reduction_ci_high=0.7)
    plots.side_effects_plot(pd.DataFrame(rows), biased, tmp_path / "s.png")
    right = seen[1].axes[-1]
    assert right.get_title() == "Bias removed against capability kept" and seen[1]._suptitle is None
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["neurons/s/a\nt acc"]  # higher-is-better only
    plt.close("all")


def test_forest_titles_count_what_the_cis_show(tmp_path, monkeypatch):
    from prunebias.report import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig))
    by_context = pd.DataFrame([{"context": c, "smd": e, "smd_ci_low": lo, "smd_ci_high": hi, "p_perm": 0.01}
                               for c, e, lo, hi in [("a", -0.5, -0.9, -0.1), ("b", 0.1, -0.2, 0.4), ("c", 0.6, 0.2, 1.0)]])
    by_gender = by_context.assign(gender="man", smd_ci_low=-1.0, smd_ci_high=1.0)  # not counted: the title is per context
    plots.baseline_forest(by_context, by_gender, "smd", tmp_path / "f.png")
    assert ("2 of 3 CIs exclude 0: 1 with Black names' answers higher, 1 White names'"
            in seen[0].axes[0].get_title())


def test_the_side_effects_title_says_which_reason_leaves_no_points(tmp_path, monkeypatch):
    from prunebias.report import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig))
    rows = [{"mask": "neurons/s/a", "control_of": "", "task": "t", "metric": "bias", "difference": 0.1,
             "difference_ci_low": 0.0, "difference_ci_high": 0.2, "higher_is_better": False}]
    transfer = pd.DataFrame([{"kind": "neurons", "setting": "s", "source": "a", "method": "neurons", "level_number": 1,
                              "bias_reduction": 0.4, "bias_reduction_ci_low": 0.1, "bias_reduction_ci_high": 0.7}])
    plots.side_effects_plot(pd.DataFrame(rows), transfer, tmp_path / "s.png")
    assert seen[0]._suptitle.get_text().startswith("No task metric is higher-is-better")
    plots.side_effects_plot(pd.DataFrame(rows).assign(higher_is_better=True), transfer.iloc[:0], tmp_path / "s.png")
    assert seen[1]._suptitle.get_text().startswith("No transfer row for these masks")
