"""The plan's vocabulary (prunebias.workflow.plan), without Snakemake: names round-trip, pools and levels by hand."""

import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from prunebias.errors import ConfigError
from prunebias.methods.registry import parse_setting
from prunebias.workflow.plan import LEVELS, Method, Plan, Pool, Source, auto_pools, configured_pools, transfer_level
from prunebias.methods.settings import HeadSetting, NeuronSetting, format_percent

from conftest import REPO

# every value the config schema allows: p in (0, 100) and at least 1e-6, k >= 1
percent = st.floats(min_value=1e-6, max_value=100, exclude_max=True, allow_nan=False, allow_infinity=False)
ks = st.integers(min_value=1, max_value=10**6)
slug = st.from_regex(r"^[a-z][a-z0-9_]{0,12}$", fullmatch=True)
context = st.builds(lambda a, b: f"{a}-{b}", slug, slug)


@given(st.sampled_from(["black", "white"]), percent, percent, st.sampled_from(["global", "row"]))
def test_neuron_setting_round_trips(direction, pb, pw, selection):
    s = NeuronSetting(direction, pb, pw, selection)
    assert NeuronSetting.parse(s.name) == s
    assert parse_setting("neurons", s.name) == s
    assert "e" not in s.name.split("_b", 1)[1]  # positional: never 5e-05
    assert len(s.name) < 100


@given(st.sampled_from(["sum", "diff", "greedy"]), ks)
def test_head_setting_round_trips(score, k):
    s = HeadSetting(score, k)
    assert HeadSetting.parse(s.name) == s and parse_setting("heads", s.name) == s


@given(st.sampled_from(["black", "white"]), percent, percent, st.sampled_from(["global", "row"]), st.booleans(),
       ks, st.sampled_from(["gate", "patch"]))
def test_attribution_settings_round_trip(direction, pb, pw, selection, whole, k, score):
    from prunebias.methods.settings import GradHeadSetting, GradNeuronSetting

    n = GradNeuronSetting(NeuronSetting(direction, pb, pw, selection), whole)
    assert n.name.startswith("gradmlp_" if whole else "grad_") and parse_setting("neurons", n.name) == n
    h = GradHeadSetting(k, score)
    assert h.name == f"{'grad' if score == 'gate' else 'patch'}_k{k}" and parse_setting("heads", h.name) == h


@given(ks, ks)
def test_setdiff_head_setting_round_trips(kb, kw):
    s = HeadSetting("setdiff", kb, kw)
    assert s.name == f"setdiff_k{kb}_{kw}" and HeadSetting.parse(s.name) == s


@given(st.one_of(context, st.builds(lambda f, p: Source(f, p).name, st.sampled_from(["pooled", "common"]),
                                    st.one_of(slug, st.builds(lambda c: f"loo_{c}", context)))))
def test_source_round_trips(name):
    assert Source.parse(name).name == name


@given(st.sampled_from(["neurons", "heads"]), st.booleans())
def test_method_round_trips(kind, control):
    m = Method(kind, control)
    assert Method.parse(m.name) == m


def test_small_percentages_have_a_parseable_folder():
    """The defect: {:g} wrote 5e-05, which the parser rejected after the caches were built."""
    s = NeuronSetting("black", 5e-05, 15, "global")
    assert s.name == "black_b0.00005_w15_global" and NeuronSetting.parse(s.name) == s
    assert format_percent(15.0) == format_percent(15) == "15" and format_percent(0.1) == "0.1"


def test_equal_settings_share_one_name_and_the_plan_lists_them_once():
    assert NeuronSetting("black", 15, 15) == NeuronSetting("black", 15.0, 15.0)
    plan = Plan.from_config(_config(p=[[15, 15], [15.0, 15.0], [40, 35]]), SCENARIOS, {})
    assert [s.name for s in plan.planned["wanda"]] == ["black_b15_w15_global", "black_b40_w35_global"]


@pytest.mark.parametrize("bad", ["black_b15_w15", "black_b1e-5_w15_global", "red_b15_w15_global",
                                 "black_b15_w15_global_x", "black_b15._w15_global"])
def test_neuron_setting_rejects_malformed_names(bad):
    with pytest.raises(ValueError):
        NeuronSetting.parse(bad)


@pytest.mark.parametrize("bad", ["sum_k0", "sum_k", "setdiff_k40", "max_k3", "sum_k10_2"])
def test_head_setting_rejects_malformed_names(bad):
    with pytest.raises(ValueError):
        HeadSetting.parse(bad)


def test_settings_reject_values_outside_the_schema():
    for args in [("black", 0, 15), ("black", 15, 100), ("green", 15, 15)]:
        with pytest.raises(ValueError):
            NeuronSetting(*args)
    with pytest.raises(ValueError):
        HeadSetting("sum", 10, 3)  # k_white only for setdiff
    with pytest.raises(ValueError):
        Source.parse("merged@train")


# --- pools and levels, by hand --------------------------------------------------------------

SCENARIOS = {"purchase-bicycle": "purchase", "purchase-car": "purchase", "purchase-house": "purchase",
             "hiring-lawyer": "hiring"}
POOLS = {
    "train": Pool("train", ("purchase-bicycle", "purchase-car")),
    "loo_purchase-house": Pool("loo_purchase-house", ("purchase-bicycle", "purchase-car"), "leave_one_out",
                               heldout="purchase-house"),
    "others_hiring": Pool("others_hiring", ("purchase-bicycle", "purchase-car", "purchase-house"), "other_scenarios",
                          target_scenario="hiring"),
    "mixed": Pool("mixed", ("purchase-car", "hiring-lawyer")),
}


@pytest.mark.parametrize("source,target,level", [
    ("purchase-car", "purchase-car", "same_context"),
    ("purchase-car", "purchase-house", "same_scenario"),
    ("purchase-car", "hiring-lawyer", "other_scenario"),
    ("common@train", "purchase-car", "pool_member"),
    ("pooled@train", "purchase-house", "pool_heldout"),
    ("common@loo_purchase-house", "purchase-house", "pool_heldout"),
    ("common@others_hiring", "hiring-lawyer", "other_scenario_pool"),
    ("common@train", "hiring-lawyer", "other_scenario_pool"),
    ("common@mixed", "purchase-bicycle", "mixed_pool_heldout"),
    ("common@mixed", "hiring-lawyer", "pool_member"),
])
def test_levels(source, target, level):
    assert transfer_level(Source.parse(source), target, SCENARIOS, POOLS) == level
    assert LEVELS[level] in (1, 2, 3)


def test_levels_use_the_scenario_not_the_name():
    """A context's scenario comes from its Context, never from splitting its name."""
    scen = {"a-x": "s1", "b-y": "s1", "c-z": "s2"}
    assert transfer_level(Source.parse("a-x"), "b-y", scen, {}) == "same_scenario"
    assert transfer_level(Source.parse("a-x"), "c-z", scen, {}) == "other_scenario"


def test_auto_pools_by_hand():
    pools = auto_pools(SCENARIOS, ["leave_one_out", "other_scenarios"])
    assert set(pools) == {"loo_purchase-bicycle", "loo_purchase-car", "loo_purchase-house", "others_hiring"}
    assert pools["loo_purchase-car"].members == ("purchase-bicycle", "purchase-house")
    assert pools["loo_purchase-car"].heldout == "purchase-car"
    assert pools["others_hiring"].members == ("purchase-bicycle", "purchase-car", "purchase-house")
    assert pools["others_hiring"].target_scenario == "hiring"
    # others_purchase would hold one context (hiring-lawyer): too small, so absent
    assert auto_pools(SCENARIOS, ["leave_one_out"]).keys() == {"loo_purchase-bicycle", "loo_purchase-car",
                                                               "loo_purchase-house"}
    two = {"purchase-house": "purchase", "hiring-lawyer": "hiring"}
    assert auto_pools(two, ["leave_one_out", "other_scenarios"]) == {}


def test_configured_pools_expand_sets_and_reject_bad_members():
    sets = {"cars": ["purchase-car", "purchase-bicycle"]}
    pools = configured_pools({"p": ["cars", "purchase-car", "hiring-lawyer"]}, sets, list(SCENARIOS))
    assert pools["p"].members == ("purchase-car", "purchase-bicycle", "hiring-lawyer")
    with pytest.raises(ConfigError, match="localization.pools.q.*purchase-boat"):
        configured_pools({"q": ["purchase-car", "purchase-boat"]}, sets, list(SCENARIOS))
    with pytest.raises(ConfigError, match="at least two"):
        configured_pools({"q": ["purchase-car", "purchase-car"]}, sets, list(SCENARIOS))


def _config(p=([15, 15],), pools=None, pool_masks=("common", "pooled"), auto=("leave_one_out", "other_scenarios")):
    return {"localization": {"neurons": {"directions": ["black"], "p": [list(x) for x in p], "selection": "global"},
                             "heads": {"scores": ["sum"], "k": [10], "greedy": [3], "setdiff": [[40, 5]]},
                             "pools": pools or {}, "pool_masks": list(pool_masks), "auto_pools": list(auto)},
            "evaluation": {"random_controls": True}}


def test_plan_sources_methods_and_settings():
    plan = Plan.from_config(_config(pools={"train": ["purchase-bicycle", "purchase-car"]}), SCENARIOS, {})
    assert [s.name for s in plan.scored_sources()] == list(SCENARIOS) + ["pooled@train"]
    assert [s.name for s in plan.common_sources()] == [
        "common@train", "common@loo_purchase-bicycle", "common@loo_purchase-car", "common@loo_purchase-house",
        "common@others_hiring"]
    assert [m.name for m in plan.methods()] == ["neurons", "heads", "directions", "random_neurons", "random_heads",
                                                "random_directions"]
    assert plan.settings("directions") == []  # none configured here (the schema's default fills them in)
    assert [s.name for s in plan.settings("heads")] == ["sum_k10", "setdiff_k40_5", "greedy_k3"]
    assert plan.setting("heads", "greedy_k3") == HeadSetting("greedy", 3)
    # the registry tells the families apart: which rule learns each, which control it gets
    assert [(f.name, s.name) for f, s in plan.learned_from("attention")] == [
        ("attention", "sum_k10"), ("attention", "setdiff_k40_5")]
    assert [(f.name, s.name) for f, s in plan.learned_from("model_runs")] == [("greedy", "greedy_k3")]
    assert plan.family("heads", "greedy_k3").control.name == "heads"
    assert plan.family("neurons", plan.planned["wanda"][0].name).control.needs_activations
    assert plan.source_contexts(Source.parse("common@loo_purchase-car")) == ["purchase-bicycle", "purchase-house"]
    assert plan.level(Source.parse("pooled@train"), "purchase-car") == "pool_member"
    assert plan.pool_info()["train"] == {"members": ["purchase-bicycle", "purchase-car"], "origin": "configured"}
    with pytest.raises(KeyError, match="sum_k10"):
        plan.setting("heads", "sum_k11")


def test_plan_of_the_shipped_default_config():
    """The default config's plan: two contexts of two scenarios, no pools, four mask settings."""
    from snakemake.utils import validate

    from conftest import default_config

    cfg = default_config()
    validate(cfg, str(REPO / "config/schema.yaml"), set_default=True)
    sets = yaml.safe_load((REPO / "data/context_sets.yaml").read_text())
    plan = Plan.from_config(cfg, {"purchase-house": "purchase", "hiring-lawyer": "hiring"}, sets)
    assert plan.contexts == cfg["contexts"] == ["purchase-house", "hiring-lawyer"]
    assert plan.pools == {}
    assert plan.level(Source.parse("purchase-house"), "hiring-lawyer") == "other_scenario"
    assert all(parse_setting(k, s.name) == s for k in ("neurons", "heads", "directions") for s in plan.settings(k))
    assert not math.isnan(plan.planned["wanda"][0].p_black)
    # the race direction beside the Wanda mask, learned from the residual cache
    assert [s.name for s in plan.settings("directions")] == ["resid_d95_answer"]
    assert [(f.name, s.name) for f, s in plan.learned_from("residuals")] == [("direction", "resid_d95_answer")]


def test_counts_that_arrive_as_floats_keep_their_names():
    """JSON Schema integers include 10.0 (a YAML or --config value): names stay sum_k10."""
    assert HeadSetting("sum", 10.0).name == "sum_k10" and HeadSetting("setdiff", 40.0, 5.0).name == "setdiff_k40_5"
    from prunebias.methods.settings import GradHeadSetting

    assert GradHeadSetting(3.0).name == "grad_k3"
    with pytest.raises(ValueError):
        HeadSetting("sum", 2.5)
