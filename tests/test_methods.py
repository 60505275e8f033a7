"""The method registry (prunebias.methods.registry): families are told apart by the registry, not by
their attributes, and a new family is one entry plus one schema key."""

import math

import numpy as np
import pytest
import yaml

from prunebias.methods.masks import read_folds, read_meta
from prunebias.methods.registry import FAMILIES, UNIFORM, Family, parse_setting, parsed, register, resolve
from prunebias.methods.settings import DirectionSetting, GradHeadSetting, GradNeuronSetting, HeadSetting, NeuronSetting

from conftest import REPO, copy_workflow, run_snakemake, small_config

WANDA = NeuronSetting("black", 15, 15)


def test_every_setting_belongs_to_exactly_one_family():
    cases = {"wanda": WANDA, "attention": HeadSetting("sum", 10), "greedy": HeadSetting("greedy", 3),
             "grad_weights": GradNeuronSetting(WANDA), "grad_mlp": GradNeuronSetting(WANDA, whole=True),
             "grad_heads": GradHeadSetting(10), "patch_heads": GradHeadSetting(10, "patch"),
             "direction": DirectionSetting(80)}
    assert set(cases) == set(FAMILIES)
    for family, setting in cases.items():
        assert parsed(setting.kind, setting.name)[0].name == family
        assert parse_setting(setting.kind, setting.name) == setting
    assert {f.control.name for f in FAMILIES.values()} == {"band", "units", "heads", "sphere"}
    # every "module:function" the registry names exists (they are imported only in jobs)
    for f in FAMILIES.values():
        assert callable(resolve(f.control.draw)) and (f.learn is None or callable(resolve(f.learn)))
    with pytest.raises(ValueError, match="not a neurons mask setting"):
        parse_setting("neurons", "sum_k10")


def test_a_family_is_checked_when_it_is_made_and_registered():
    with pytest.raises(ValueError, match="learns_from"):
        Family("x", "neurons", "localization.x", NeuronSetting.parse, lambda c: [], "weights", UNIFORM)
    with pytest.raises(ValueError, match="calls learn"):
        Family("x", "neurons", "localization.x", NeuronSetting.parse, lambda c: [], "activations", UNIFORM)
    with pytest.raises(ValueError, match="registered already"):
        register(FAMILIES["wanda"])


def test_uniform_controls_match_the_count_per_matrix_outside_the_mask():
    rng = np.random.default_rng(0)
    real = {"layers.0.q_proj": rng.random((6, 8)) < 0.2, "layers.1.down_proj": rng.random((8, 6)) < 0.1}
    draws = UNIFORM(real, [1, 2], None, None)
    assert len(draws) == 2 and not np.array_equal(draws[0]["layers.0.q_proj"], draws[1]["layers.0.q_proj"])
    for d in draws:
        for key, mask in real.items():
            assert d[key].sum() == mask.sum() and not (d[key] & mask).any()


# A toy family as a user would add it: appended to prunebias/methods/registry.py of a copy of the
# workflow, with its key in the copy's config/schema.yaml, and nothing else changed. It
# ranks each weight by |W_ij| times the gap between the races' activation norms of its
# input channel, learns from the activation cache (rule score_neurons) and is controlled
# by uniform draws of the same count per matrix.
TOY = '''

# --- a toy family (tests/test_methods.py) ---
import re as _re

from prunebias.model.architecture import MODULES, check_architecture, linear
from prunebias.methods.scoring import top_fraction
from prunebias.methods.settings import format_percent


@dataclass(frozen=True)
class GapSetting:
    p: float
    kind = "neurons"
    scoring = "norm_gap"

    @property
    def name(self):
        return f"gap_p{format_percent(self.p)}"

    @classmethod
    def parse(cls, name):
        m = _re.fullmatch(r"gap_p([0-9]+(?:[.][0-9]+)?)", name)
        if not m:
            raise ValueError(f"not a gap setting: {name!r}")
        return cls(float(m[1]))

    def params(self):
        return {"p_black": self.p}


def _learn_gap(model, sums, settings):
    out = [{} for _ in settings]
    for layer in range(check_architecture(model).n_layers):
        for module, (_, site) in MODULES.items():
            w = linear(model, layer, module).weight.detach()
            gap = (sums["black"][(layer, site)].sqrt() - sums["white"][(layer, site)].sqrt()).abs().to(w.device)
            for i, s in enumerate(settings):
                out[i][f"layers.{layer}.{module}"] = top_fraction(w.abs() * gap, s.p).cpu().numpy()
    return out


register(Family("gap", "neurons", "localization.gap", GapSetting.parse,
                lambda config: [GapSetting(p) for p in config["localization"]["gap"]], "activations", UNIFORM,
                learn=_learn_gap))
'''


@pytest.fixture(scope="module")
def toy_workflow(tmp_path_factory):
    """A copy of the workflow with the toy family: one registry entry and one schema key."""
    code = copy_workflow(tmp_path_factory.mktemp("toy") / "code")
    methods = code / "prunebias" / "methods" / "registry.py"
    methods.write_text(methods.read_text() + TOY)
    schema_file = code / "config" / "schema.yaml"
    schema = yaml.safe_load(schema_file.read_text())
    schema["properties"]["localization"]["properties"]["gap"] = {
        "type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100}, "default": []}
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))
    return code


def test_a_toy_family_is_planned_learned_and_controlled_through_the_registry_alone(toy_workflow, tiny_model_dir,
                                                                                  tmp_path):
    cfg = small_config(tiny_model_dir)
    cfg["localization"]["gap"] = [5]
    snakefile = toy_workflow / "Snakefile"
    # the dry-run plans its masks, controls, evaluations and heatmap beside Wanda's
    summary = run_snakemake(tmp_path, cfg, "--summary", snakefile=snakefile).stdout
    planned = {line.split("\t")[0] for line in summary.splitlines()}
    contexts = cfg["contexts"]
    for c in contexts:
        assert f"results/masks/tiny/neurons/gap_p5/{c}.npz" in planned
        assert f"results/masks/tiny/random_neurons/gap_p5/{c}/draw0.npz" in planned
        for t in contexts:
            for method in ("neurons", "random_neurons"):
                assert f"results/eval/tiny/{method}/gap_p5/{c}/{t}.json" in planned
    assert "results/plots/tiny/transfer_neurons__gap_p5.png" in planned
    # and the rules run it: score_neurons calls its learn, draw_controls its control
    source = contexts[0]
    mask_file = tmp_path / f"results/masks/tiny/neurons/gap_p5/{source}.npz"
    control_file = tmp_path / f"results/masks/tiny/random_neurons/gap_p5/{source}/draw0.npz"
    wanda_file = tmp_path / f"results/masks/tiny/neurons/black_b15_w15_global/{source}.npz"
    run_snakemake(tmp_path, cfg, str(control_file.relative_to(tmp_path)), snakefile=snakefile)
    meta = read_meta(mask_file)
    assert meta["method"]["family"] == "gap" and meta["method"]["p_black"] == 5
    real, control, wanda = read_folds(mask_file)[0], read_folds(control_file)[0], read_folds(wanda_file)[0]
    assert read_meta(wanda_file)["method"]["family"] == "wanda"
    for key, mask in real.arrays.items():
        assert mask.sum() == math.ceil(mask.size * 5 / 100)  # its own top 5% of every matrix
        assert control.arrays[key].sum() == mask.sum() and not (control.arrays[key] & mask).any()
    assert any(not np.array_equal(real.arrays[k], wanda.arrays[k]) for k in real.arrays)


def test_an_edit_of_a_learner_reruns_the_jobs_of_its_family_only(tmp_path):
    """A learner named as "module:function" is imported only in its job, out of sight of
    the scripts' import walk; its module's code version is a param of the rules that call
    it (rules/common.smk, learner_code), so an edit of neurons.py changes the Wanda
    learner's version and not the attribution learners'."""
    from prunebias.workflow.code_version import code_files, reference_version

    code = copy_workflow(tmp_path / "code")
    wanda, grad = FAMILIES["wanda"].learn, FAMILIES["grad_mlp"].learn
    before = {ref: reference_version(ref, code) for ref in (wanda, grad)}
    neurons = code / "prunebias" / "methods" / "neurons.py"
    neurons.write_text(neurons.read_text() + "\n# an edit\n")
    assert reference_version(wanda, code) != before[wanda]
    assert reference_version(grad, code) == before[grad]
    # the scripts themselves no longer reach every learner's module through their imports
    assert "attribution_select.py" not in {p.name for p in code_files(REPO / "workflow_scripts/score_neurons.py", REPO)}
    assert reference_version(_learn_in_place, code) == ""  # a function given itself: its code is methods/registry.py


def _learn_in_place(*args):
    return []
