from pathlib import Path

import pandas as pd
import pytest
import yaml

from prunebias.audit.contexts import expand_context_names, render_template, resolve_all, resolve_context
from prunebias.errors import ConfigError
from prunebias.audit.prompts import build_prompts
from prunebias.audit.names import load_names

REPO = Path(__file__).resolve().parents[1]
SCEN = yaml.safe_load((REPO / "data" / "scenarios.yaml").read_text())
SETS = yaml.safe_load((REPO / "data" / "context_sets.yaml").read_text())
ALL = [f"{s}-{v}" for s, d in SCEN.items() for v in d["variations"]]


def test_shipped_sets_match_the_science():
    assert len(SETS["paper_code_train"]) == 12 and len(SETS["paper_code_heldout"]) == 6
    assert not set(SETS["paper_code_train"]) & set(SETS["paper_code_heldout"])
    assert len(SETS["paper_purchase"]) == 10 and len(SETS["paper_other"]) == 9
    assert {c.split("-")[0] for c in SETS["audit"]} == {"purchase", "chess", "public_office", "sports", "hiring"}
    for members in SETS.values():
        assert set(members) <= set(ALL)


@pytest.mark.parametrize("names_file", ["audit40.csv", "paper64.csv"])
@pytest.mark.parametrize("level", ["low", "high", "numeric"])
def test_every_prompt_has_its_name_and_no_other(names_file, level):
    names = load_names(REPO / "data" / "names" / names_file)
    assert set(names.race) == {"white", "black"}
    assert len(names) == {"audit40.csv": 40, "paper64.csv": 64}[names_file]
    for c in ALL:
        ctx = resolve_context(c, SCEN, level)
        df = build_prompts(ctx, names, 2, seed=1)
        assert len(df) == 2 * len(names)
        for prompt, name, first in zip(df.prompt, df.name, df.first_name):
            assert prompt.count(name) == 1
            assert [f for f in names.first_name if f in prompt] == [first]
        assert df.seed.is_unique


def test_seeds_stable_when_names_are_added():
    names = load_names(REPO / "data" / "names" / "audit40.csv")
    ctx = resolve_context("purchase-car", SCEN)
    a = build_prompts(ctx, names.iloc[:4], 3, seed=7)
    b = build_prompts(ctx, names, 3, seed=7)
    merged = a.merge(b, on=["name", "sample"], suffixes=("_a", "_b"))
    assert (merged.seed_a == merged.seed_b).all() and len(merged) == 12


def test_text_reaches_prompt_verbatim_and_nothing_is_evaluated():
    t = "Buy {item} from {name}. {__class__} is not touched? {0} {x.y}"
    out = render_template("Buy {item} from {name}. {0} {x.y} $ {{", {"item": "a {name} b", "name": "N"})
    assert out == "Buy a {name} b from N. {0} {x.y} $ {{"
    with pytest.raises(ConfigError, match="__class__"):
        render_template(t, {"item": "x", "name": "y"})


@pytest.mark.parametrize("override,msg", [
    ({"template": "I buy a {item}."}, "exactly once"),
    ({"template": "{name} and {name} buy"}, "exactly once"),
    ({"template": "{name} buys a {color} {item}"}, "color"),
    ({"range": [10, 1]}, "not below"),
    ({"detail_level": "medium"}, "unknown detail level"),
    ({"level": "high"}, "now called detail_level"),
])
def test_bad_context_overrides(override, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve_context("purchase-car", SCEN, "low", override)


@pytest.mark.parametrize("name,msg", [
    ("purchase-spaceship", "unknown variation"),
    ("shopping-car", "unknown scenario"),
    ("purchase", "exactly one '-'"),
])
def test_unknown_contexts(name, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve_context(name, SCEN)


def test_sets_expand_in_order_without_duplicates():
    out = expand_context_names(["purchase-car", "purchase-bicycle"], ["paper_code_heldout"], SETS)
    assert out[0] == "purchase-car" and out.count("purchase-car") == 1 and "purchase-bicycle" in out
    with pytest.raises(ConfigError, match="no such set"):
        expand_context_names([], ["nope"], SETS)


def test_resolve_all_rejects_override_of_unselected_context():
    cfg = {"scenarios_file": "data/scenarios.yaml", "context_sets_file": "data/context_sets.yaml",
           "contexts": ["purchase-car"], "context_sets": [], "context_overrides": {"purchase-cra": {"detail_level": "high"}}}
    with pytest.raises(ConfigError, match="purchase-cra"):
        resolve_all(cfg, REPO / "data/scenarios.yaml", REPO / "data/context_sets.yaml")


HEADER = "first_name,surname,race,gender,source\n"


@pytest.mark.parametrize("text,message", [
    (HEADER + "Ann,,white,woman,x\n", "no names with race 'black'"),
    (HEADER + "Ann,,white,woman,x\nBo,,purple,man,x\n", "race 'purple'"),
    ("first_name,race\nAnn,white\n", "missing column"),
    (HEADER + "Ann,,white,woman,x\nAnna,,black,woman,x\n", "part of name"),
])
def test_names_file_problems(tmp_path, text, message):
    f = tmp_path / "n.csv"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_names(f)


def test_context_spec_roundtrip():
    ctx = resolve_context("sports-hockey", SCEN, "numeric")
    assert ctx.outcome == "reverse_rank" and ctx.detail_level == "numeric" and ctx.range == (1.0, 100.0)
    spec = ctx.spec()
    assert pd.Series(spec).notna().all() and spec["range"] == [1.0, 100.0]


def test_name_split_is_seeded_and_balanced():
    from prunebias.audit.names import split_names

    names = load_names(REPO / "data" / "names" / "paper64.csv", use_surnames=False)
    a = split_names(names, 7)
    assert a == split_names(names.sample(frac=1, random_state=1), 7)  # row order does not matter
    assert a != split_names(names, 8)
    assert sorted(a["learn"] + a["holdout"]) == sorted(names["name"]) and not set(a["learn"]) & set(a["holdout"])
    groups = names.set_index("name")[["race", "gender"]]
    for half in a.values():
        counts = groups.loc[half].value_counts()
        assert len(counts) == 4 and (counts == 8).all()  # 16 per race x gender: 8 on each side


def test_cross_fitting_folds_mirror_the_name_split():
    """Two folds that swap the halves (every name evaluated once); one fold without
    cross-fitting; none of it without a name split, and cross-fitting then refused."""
    from prunebias.errors import ConfigError
    from prunebias.audit.names import Fold, check_cross_fit, load_names, name_folds, split_names

    names = load_names(REPO / "data/names/paper64.csv", use_surnames=False)
    halves = split_names(names, 7)
    two = name_folds(names, 7, name_split=True, cross_fit=True)
    assert two == [Fold(halves["learn"], halves["holdout"]), Fold(halves["holdout"], halves["learn"])]
    assert sorted(two[0].evaluate + two[1].evaluate) == sorted(names["name"]) and len(names) == 64
    assert name_folds(names, 7, name_split=True, cross_fit=False) == two[:1]
    assert name_folds(names, 7, name_split=False, cross_fit=False) == [Fold(None, None)]
    with pytest.raises(ConfigError, match="localization.cross_fit.*name_split"):
        check_cross_fit({"cross_fit": True, "name_split": False})
    check_cross_fit({"cross_fit": False, "name_split": False})
