"""The preflight as a library function (issue 25): the config resolved into a dataclass,
or one ConfigError naming the keys and the fix, without Snakemake."""

import pytest
from snakemake.utils import validate

from conftest import REPO, default_config
from prunebias.errors import ConfigError
from prunebias.workflow.preflight import Preflight, preflight


def _resolved(cfg: dict, tmp_path, monkeypatch) -> Preflight:
    monkeypatch.chdir(tmp_path)  # no prepared models here: nothing to check against
    validate(cfg, str(REPO / "config/schema.yaml"), set_default=True)
    return preflight(cfg, REPO)


def test_the_default_config_resolves(tmp_path, monkeypatch):
    pre = _resolved(default_config(), tmp_path, monkeypatch)
    assert list(pre.contexts) == ["purchase-house", "hiring-lawyer"]
    assert list(pre.models) == ["smollm2-135m-instruct", "planted-general", "planted-hiring"]
    assert pre.models["planted-hiring"]["plant"]["contexts"] == ["hiring-lawyer"]  # follows `contexts`
    assert pre.side_effect_masks == ["neurons/black_b10_w10_global/hiring-lawyer",
                                     "directions/resid_d95_answer/hiring-lawyer"]
    assert [s.name for s in pre.plan.settings("neurons")] == ["black_b10_w10_global"]
    assert pre.names["name"].nunique() == 64 and pre.names_file.endswith("data/names/paper64.csv")
    assert len(pre.task_files) == 2 and pre.warnings == []


def test_stale_keys_are_one_error_and_small_designs_a_warning(tmp_path, monkeypatch):
    cfg = default_config()
    cfg["contexts"] = ["purchase-house"]
    cfg["export"] = ["neurons/black_b10_w10_global/hiring-lawyer"]
    cfg["models"][2]["plant"]["contexts"] = ["hiring-lawyer"]
    with pytest.raises(ConfigError, match=r"2 keys name what this config does not have: \(1\) config: export"):
        _resolved(cfg, tmp_path, monkeypatch)
    one_fold = default_config()
    one_fold["localization"]["cross_fit"] = False
    [warning] = _resolved(one_fold, tmp_path, monkeypatch).warnings
    assert warning.startswith("the pruned models' evaluation can detect a standardized bias of 0.63")
